"""The binary video codec's shipped weights and stored record: a fair experiment, consistent, and
re-measured on a sample (the chapter *A binary video codec with delta-sigma modulation*)."""

import json

import pytest
import torch

from nctutor import data, videotrain, zoo
from nctutor.checkpoints import WEIGHTS_DIR
from nctutor.codecs import video
from nctutor.rd import binary_video as bv

RECORD = WEIGHTS_DIR / "binary-video-eval.json"


@pytest.fixture(scope="module")
def record():
    return json.loads(RECORD.read_text())


def test_every_order_is_shipped_small_and_trained_alike(record):
    assert set(record["runs"]) == set(video.MODELS)
    budgets = set()
    for name, run in record["runs"].items():
        model, man = videotrain.load_weights(WEIGHTS_DIR / f"{name}.pt")
        assert man["sha256"] == run["sha256"] and man["profile"] == "cpu"
        assert man["steps"] == man["settings"]["steps"] >= 1000
        assert model.order == video.MODELS[name]
        s = man["settings"]
        budgets.add((s["steps"], s["seed"], s["N"], s["C"], s["frames"], s["patch_size"],
                     s["batch_size"], s["lr"], s["init_from"]))
        assert run["history"]["loss"][-1][0] == s["steps"]  # the history runs to the end
        assert run["history"]["val_psnr"][-1][0] == s["steps"]
    assert len(budgets) == 1  # same budget, same start: only the order differs
    assert sum(f.stat().st_size for f in WEIGHTS_DIR.glob("*.pt")) <= 60e6  # the house limit


def test_the_record_is_consistent(record):
    group = record["group"]
    assert list(record["clips"]) == list(bv.TEST_CLIPS)
    test_clips = {name for name, *_ in data.SPLIT["test"]}
    for clip, entry in record["clips"].items():
        assert clip in test_clips and entry["frames"] % group == 0
        h, w = entry["size"]
        for name, curve in entry["curves"].items():
            for r in curve["records"]:
                assert r["bpp"] == pytest.approx(8 * r["bytes"] / (entry["frames"] * h * w))
            if name in video.MODELS:
                bpps = [r["bpp"] for r in curve["records"]]
                assert bpps == sorted(bpps)  # more channels, more bytes
                for r in curve["records"]:
                    assert r["bpp"] < r["raw_bpp"] + 0.01  # the coder never costs much extra
    assert set(record["noise"]) == set(video.MODELS)


def test_a_sample_of_the_record_is_re_measured(record):
    """Carphone, the first-order model at a quarter of its channels, all frames: the shipped
    weights give the stored point (another CPU may flip a sign near 0: near, not equal)."""
    clip = "carphone_pristine"
    entry = record["clips"][clip]
    stored = next(r for r in entry["curves"]["frameconv3d-order1"]["records"]
                  if r["channels"] == video.BinaryVideoCodec().C // 4)
    model = zoo.video_model("frameconv3d-order1")
    x = data.clip_frames(clip, 0, entry["frames"])
    with torch.no_grad():
        again = bv.code_clip(model, x, stored["channels"], record["group"])
    assert again["bytes"] == pytest.approx(stored["bytes"], rel=0.005)
    assert again["psnr_rgb"] == pytest.approx(stored["psnr_rgb"], abs=0.02)
    assert again["psnr_y"] == pytest.approx(stored["psnr_y"], abs=0.02)


def test_a_held_out_segment_round_trips_through_the_cli_bit_exactly(tmp_path):
    """Ten frames of BasketballPass (never trained on; groups of 8 and 2) with the shipped
    first-order model: the decoded PNGs are the encoder's own one-thread reconstruction."""
    from nctutor import cli, config

    clip = data.clip_frames("BasketballPass", 0, 10)
    src = tmp_path / "frames"
    src.mkdir()
    for i, frame in enumerate(clip):
        data.save_image(frame, src / f"f{i:02d}.png")
    file, out = tmp_path / "clip.nct", tmp_path / "decoded"
    assert cli.main(["compress", str(src), str(file), "--model", "frameconv3d-order1",
                     "--channels", "16", "--profile", "cpu"]) == 0
    assert cli.main(["decompress", str(file), str(out)]) == 0
    decoded = torch.stack([data.load_image(f) for f in sorted(out.glob("*.png"))])
    model = zoo.video_model("frameconv3d-order1", "cpu")
    with config.one_thread():
        ref = torch.cat([model.decompress(**_group(model, clip[a : a + 8], 16))
                         for a in (0, 8)])[..., :240, :416]
    assert torch.equal(decoded, data.to_uint8(ref).float() / 255)


def _group(model, frames, channels):
    out = model.compress(frames, channels)
    return {"strings": out["strings"], "shape": out["shape"], "frames": len(frames),
            "channels": channels}
