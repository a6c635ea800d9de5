"""Tests of nctutor.rd.video_anchors: x264 and x265 anchors coded live through ffmpeg (for the
coming chapter on a binary video codec with delta-sigma modulation; no page calls them yet)."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest
import torch

from nctutor import data, rd
from nctutor.errors import NctutorError
from nctutor.rd import video_anchors as va


def moving_clip(t: int = 8, h: int = 64, w: int = 96, step: float = 1.5) -> torch.Tensor:
    """A smooth colour pattern moving right by ``step`` pixels a frame: ``(T, 3, H, W)``."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing="ij")
    frames = []
    for k in range(t):
        u = xx - step * k
        frames.append(torch.stack([0.5 + 0.4 * torch.sin(u / 9 + yy / 13),
                                   0.5 + 0.3 * torch.cos(u / 17 - yy / 7),
                                   0.5 + 0.35 * torch.sin((u + yy) / 11)]))
    return torch.stack(frames).float()


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return moving_clip()


@pytest.fixture(scope="module")
def coded(clip) -> dict:
    return {codec: va.encode_frames(clip, codec, 28, gop=4, return_frames=True)
            for codec in va.VIDEO_CODECS}


@pytest.mark.parametrize("codec", va.VIDEO_CODECS)
def test_a_real_stream_decoded_frame_by_frame(clip, coded, codec):
    r = coded[codec]
    t, _, h, w = clip.shape
    assert r["bytes"] == len(r["bitstream"]) > 0
    assert r["bpp"] == pytest.approx(8 * r["bytes"] / (t * h * w))
    assert r["frames"] == t and r["decoded"].shape == (t, h, w, 3)
    assert r["decoded"].dtype == np.uint8
    assert r["decoded_y"].shape == r["source_y"].shape == (t, h, w)
    assert r["frame_types"] == "IPPPIPPP"  # every group of 4 opens with an I frame, no B frame
    assert 25 < r["psnr_y"] < 60 and 20 < r["psnr_rgb"] < 60
    # the Annex B stream starts with a start code and a parameter set, no SEI left in it
    assert r["bitstream"][:4] == b"\x00\x00\x00\x01"
    assert b"x264 - core" not in r["bitstream"] and b"x265 (build" not in r["bitstream"]


@pytest.mark.parametrize("codec", va.VIDEO_CODECS)
def test_psnrs_computed_independently(clip, coded, codec):
    r = coded[codec]
    # RGB: the book's metric on the same 8-bit frames
    x8 = data.to_uint8(clip)
    x_hat = torch.from_numpy(r["decoded"]).permute(0, 3, 1, 2)
    assert r["psnr_rgb"] == pytest.approx(rd.psnr(x8, x_hat), abs=1e-9)
    # Y: the encoder's input is BT.601 limited range (within rounding of the textbook formula)
    rgb = x8.permute(0, 2, 3, 1).double().numpy()
    y601 = 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255
    assert np.abs(r["source_y"] - y601).max() <= 1
    assert np.array_equal(va.luma(clip), r["source_y"])  # what a learned codec is scored with
    y_of_rgb = va.luma(r["decoded"])
    assert r["psnr_y_via_rgb"] == va._psnr8(r["source_y"], y_of_rgb) <= r["psnr_y"]
    mse = ((r["source_y"].astype(float) - r["decoded_y"].astype(float)) ** 2).mean(axis=(1, 2))
    assert r["psnr_y"] == pytest.approx(np.mean(10 * np.log10(255**2 / mse)), abs=1e-9)
    # and the decoded Y is what an independent decode of the bitstream to gray gives
    import imageio_ffmpeg

    gray = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f",
                           va._FORMAT[codec], "-i", "-", "-f", "rawvideo", "-pix_fmt", "yuv420p",
                           "-"], input=r["bitstream"], capture_output=True, check=True, timeout=60)
    t, h, w = r["decoded_y"].shape
    y = np.frombuffer(gray.stdout, np.uint8).reshape(t, -1)[:, : h * w].reshape(t, h, w)
    assert np.array_equal(y, r["decoded_y"])


@pytest.mark.parametrize("codec", va.VIDEO_CODECS)
def test_curve_monotone_in_crf_and_deterministic(clip, codec):
    curve = va.anchor_curve(clip, codec, crfs=[18, 26, 34, 42], gop=4)
    assert isinstance(curve, rd.RDCurve) and curve.qualities == [18, 26, 34, 42]
    assert np.all(np.diff(curve.bpp) < 0) and np.all(np.diff(curve.psnr) < 0)
    psnr_y = [r["psnr_y"] for r in curve.records]
    assert np.all(np.diff(psnr_y) < 0)
    assert curve.psnr == [r["psnr_rgb"] for r in curve.records]
    assert codec in curve.description and "GOP 4" in curve.description
    again = va.encode_frames(clip, codec, 26, gop=4)
    assert again["bytes"] == curve.records[1]["bytes"]
    assert again["psnr_rgb"] == curve.records[1]["psnr_rgb"]
    y_curve = va.anchor_curve(clip, codec, crfs=[26], gop=4, metric="y")
    assert y_curve.psnr == [again["psnr_y"]] and y_curve.name.endswith("(Y)")


@pytest.mark.parametrize("codec", va.VIDEO_CODECS)
def test_all_intra_costs_more_than_groups_of_eight(clip, codec):
    intra = va.encode_frames(clip, codec, 28, gop=1)
    grouped = va.encode_frames(clip, codec, 28, gop=8)
    assert intra["frame_types"] == "I" * 8 and grouped["frame_types"] == "I" + "P" * 7
    assert intra["bytes"] > 1.5 * grouped["bytes"]


def test_sei_counted_only_when_asked(clip):
    bare = va.encode_frames(clip, "x264", 30, gop=4, return_frames=True)
    full = va.encode_frames(clip, "x264", 30, gop=4, strip_sei=False, return_frames=True)
    assert b"x264 - core" in full["bitstream"] and full["bytes"] > bare["bytes"] + 300
    assert np.array_equal(full["decoded"], bare["decoded"])  # the SEI carries no picture


def test_uint8_numpy_input_is_the_same_clip(clip):
    x8 = data.to_uint8(clip).permute(0, 2, 3, 1).numpy()
    a = va.encode_frames(clip, "x264", 30, gop=4)
    b = va.encode_frames(x8, "x264", 30, gop=4)
    assert (a["bytes"], a["psnr_rgb"], a["psnr_y"]) == (b["bytes"], b["psnr_rgb"], b["psnr_y"])


def test_wrong_input_refused(clip):
    with pytest.raises(ValueError, match="even width and height"):
        va.encode_frames(clip[:, :, :63], "x264", 30)
    with pytest.raises(ValueError, match="even width and height"):
        va.encode_frames(np.zeros((2, 64, 95, 3), np.uint8), "x265", 30)
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\)"):
        va.encode_frames(clip[0], "x264", 30)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        va.encode_frames(np.zeros((2, 3, 64, 96), np.uint8), "x264", 30)
    with pytest.raises(TypeError, match="uint8"):
        va.encode_frames(np.zeros((2, 64, 96, 3)), "x264", 30)
    with pytest.raises(ValueError, match="empty clip"):
        va.encode_frames(clip[:0], "x264", 30)
    with pytest.raises(ValueError, match="unknown codec"):
        va.encode_frames(clip, "vp9", 30)
    with pytest.raises(ValueError, match="unknown codec"):
        va.anchor_curve(clip, "av1")
    with pytest.raises(ValueError, match="gop"):
        va.encode_frames(clip, "x264", 30, gop=0)
    with pytest.raises(ValueError, match="crf"):
        va.encode_frames(clip, "x265", 60)
    with pytest.raises(ValueError, match="crfs"):
        va.anchor_curve(clip, "x264", crfs=[])
    with pytest.raises(ValueError, match="metric"):
        va.anchor_curve(clip, "x264", metric="ms_ssim")


def test_ffmpeg_failure_reports_its_error_output():
    # x265 refuses pictures under 16×16 (or so): ffmpeg's own message must reach the user
    tiny = np.full((2, 8, 8, 3), 128, np.uint8)
    with pytest.raises(va.FFmpegError, match="too small") as info:
        va.encode_frames(tiny, "x265", 30)
    assert isinstance(info.value, NctutorError) and isinstance(info.value, RuntimeError)
    assert "x265 encoding" in str(info.value)


def test_missing_ffmpeg_is_a_clear_error(monkeypatch, clip):
    import imageio_ffmpeg

    def no_binary():
        raise RuntimeError("No ffmpeg exe could be found.")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_binary)
    with pytest.raises(va.FFmpegError, match="imageio-ffmpeg"):
        va.encode_frames(clip, "x264", 30)


def test_basketball_pass_defaults_span_the_low_rates(monkeypatch):
    """On the book's clip (8 frames, cropped to 240×208) the default sweeps' ends reach both
    ends of the low rates (the whole sweeps on 16 full frames: the module's docstring)."""
    rels = data.files("video/BasketballPass")[:8]
    root = next((r for r in data.roots() if all((r / rel).is_file() for rel in rels)), None)
    if root is None:
        pytest.skip(f"no data root holds BasketballPass (searched: {data.roots()}); set "
                    "NCTUTOR_DATA to the book's data folder")
    monkeypatch.setenv("NCTUTOR_DATA", str(root))
    frames = data.basketball_pass(8)[:, :, :, :208]
    for codec in va.VIDEO_CODECS:
        ends = [va.DEFAULT_CRFS[codec][0], va.DEFAULT_CRFS[codec][-1]]
        curve = va.anchor_curve(frames, codec, crfs=ends, gop=8)
        assert curve.bpp[1] < 0.03 and curve.bpp[0] > 0.3, (codec, curve.bpp)
        assert all(math.isfinite(p) for p in curve.psnr)
        assert all(r["frame_types"] == "IPPPPPPP" for r in curve.records)
