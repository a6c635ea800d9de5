"""The binary video codec's measurements (nctutor.rd.binary_video) on a synthetic clip."""

import json
import math

import numpy as np
import pytest
import torch

from nctutor import container
from nctutor.codecs import video
from nctutor.quant.deltasigma import modulate
from nctutor.rd import binary_video as bv
from nctutor.rd.video_anchors import luma


def _clip(t=8, h=48, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.avg_pool2d(torch.rand(1, 3, h + 8, w + 2 * t + 8, generator=g),
                                          9, stride=1)[0]
    return torch.stack([base[:, :h, i : i + w] for i in range(t)])  # a smooth pan


@pytest.fixture
def model():
    torch.manual_seed(0)
    return video.BinaryVideoCodec(1, N=8, C=16).eval()


def test_code_clip_counts_real_bytes_and_scores_like_the_anchors(model):
    x = _clip(t=6, h=40, w=56)  # two groups of 4 and 2, padded inside
    r = bv.code_clip(model, x, channels=4, group=4)
    streams = sum(len(model.compress(x[a : a + 4], 4)["strings"][0]) for a in (0, 4))
    file = container.encode_video(model, x, "frameconv3d-order1", "", 4, 4)
    assert r["bytes"] == len(file) and 30 < len(file) - streams < 100  # the header, the CRC
    assert r["bpp"] == pytest.approx(8 * len(file) / (6 * 40 * 56))
    assert r["raw_bpp"] == pytest.approx(4 * 6 * 3 * 4 / (6 * 40 * 56))  # K·T·h·w bits
    rgb = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert luma(rgb).shape == (6, 40, 56)
    assert 0 < r["psnr_rgb"] < 60 and 0 < r["psnr_y"] < 60


def test_more_channels_cost_more_bytes(model):
    curve = bv.codec_curve(model, _clip(), "o1", channels=[1, 4, 16], group=8)
    assert curve.qualities == [1, 4, 16]
    assert curve.bpp[0] < curve.bpp[1] < curve.bpp[2]


def test_noise_shaping_matches_the_modulator(model):
    x = _clip(t=8)
    ns = bv.noise_shaping(model, x, group=8)
    assert ns["frequencies"] == [0, 0.125, 0.25, 0.375, 0.5]
    assert sum(ns["spectrum_e"]) == pytest.approx(1) and sum(ns["spectrum_n"]) == pytest.approx(1)
    with torch.no_grad():
        c = model.codes(x[None])
        b, y = modulate(c, 1, dim=2, return_states=True)
    assert ns["mean_abs_c"] == pytest.approx(float(c.abs().mean()), rel=1e-5)
    assert ns["overload"] == pytest.approx(float((y.abs() > 1).float().mean()), rel=1e-5)
    with pytest.raises(ValueError, match="at least 8 frames"):
        bv.noise_shaping(model, x[:5], group=8)


def test_ntf_spectrum_is_the_normalized_filter_power():
    assert bv.ntf_spectrum(0, 8) == pytest.approx([0.2] * 5)
    p1 = bv.ntf_spectrum(1, 8)
    w = 2 * np.pi * np.arange(5) / 8
    assert p1 == pytest.approx(list((2 - 2 * np.cos(w)) / (2 - 2 * np.cos(w)).sum()))
    assert bv.ntf_spectrum(2, 8)[-1] > p1[-1]  # order 2 pushes more to the Nyquist frequency
    e = torch.randn(20000, 8, dtype=torch.float64)  # white noise through (1 - z^-1): close
    n = torch.diff(e, dim=1, prepend=torch.zeros(20000, 1, dtype=torch.float64))
    p = torch.fft.rfft(n, dim=1).abs().square().mean(0)
    assert (p / p.sum()).tolist() == pytest.approx(p1, abs=0.02)


def test_run_and_tables_on_a_synthetic_clip(model, monkeypatch):
    monkeypatch.setattr(bv.data, "clip_frames", lambda name, first, stop: _clip(t=10, seed=1))
    record = bv.run({"frameconv3d-order1": model}, clips=("a", "b"), group=4, crfs=[30, 45],
                    progress=False)
    assert list(record["clips"]) == ["a", "b"] and record["group"] == 4
    entry = record["clips"]["a"]
    assert entry["frames"] == 8  # cut to whole groups
    assert set(entry["curves"]) == {"frameconv3d-order1", "x264", "x265"}
    assert set(record["noise"]) == {"frameconv3d-order1"}
    table = bv.tables(record)
    value = table["a"]["frameconv3d-order1"]["x264"]
    assert value is None or math.isfinite(value)
    # a learned curve far below the anchors does not overlap them: None, not nan
    for c in entry["curves"]["frameconv3d-order1"]["records"]:
        c["psnr_rgb"] = c["psnr_rgb"] - 100
    assert bv.tables(record)["a"]["frameconv3d-order1"] == {"x264": None, "x265": None}


def test_video_eval_command_writes_the_record(tmp_path, monkeypatch, capsys):
    from nctutor import cli, videotrain

    for name in video.MODELS:
        run = tmp_path / "runs" / name
        videotrain.train(videotrain.VideoTrainConfig(model=name, steps=2, out_dir=str(run)),
                         progress=False)
        videotrain.export(run, tmp_path / "weights")
    monkeypatch.setattr(bv.data, "clip_frames", lambda name, first, stop: _clip(t=9, seed=2))
    monkeypatch.setattr(bv, "ANCHOR_CRFS", (35, 51))
    out = tmp_path / "record.json"
    assert cli.main(["video-eval", "--weights", str(tmp_path / "weights"), "--frames", "9",
                     "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["command"].startswith("nctutor video-eval --weights")
    assert set(record["runs"]) == set(video.MODELS) and record["group"] == 4  # smoke's T
    assert record["clips"]["BasketballPass"]["frames"] == 8
    assert record["runs"]["frameconv3d-order2"]["history"]["loss"][-1][0] == 2
    printed = capsys.readouterr().out
    assert "BD-rate" in printed and "frameconv3d-order0" in printed
    assert cli.main(["video-eval", "--weights", str(tmp_path / "none"), "--out",
                     str(out)]) == cli.EXIT_USAGE
    assert "nctutor train frameconv3d-order0" in capsys.readouterr().err


def test_rate_ratio_interpolates_the_anchor_in_log_rate():
    anchor = {"records": [{"bpp": 0.1, "psnr_rgb": 30.0}, {"bpp": 0.4, "psnr_rgb": 34.0}]}
    ours = {"records": [{"bpp": 0.4, "psnr_rgb": 32.0}, {"bpp": 0.1, "psnr_rgb": 25.0},
                        {"bpp": 0.3, "psnr_rgb": 30.0}]}
    ratios = bv.rate_ratio(ours, anchor)
    assert ratios[0] == pytest.approx(0.4 / 0.2)  # the geometric mean of 0.1 and 0.4
    assert ratios[1] is None  # below the anchor's lowest quality
    assert ratios[2] == pytest.approx(3.0)
