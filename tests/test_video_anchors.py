"""Tests of nctutor.rd.video_anchors: x264 and x265 anchors coded live through ffmpeg (for the
coming chapter on a binary video codec with delta-sigma modulation; no page calls them yet)."""

from __future__ import annotations

import json
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


# --------------------------------------------------------------------------- one P-frame: pairs


def basketball_pair() -> tuple[torch.Tensor, torch.Tensor] | None:
    """Frames f010 and f011 of BasketballPass (416×240), or ``None`` where no data root has them
    (nothing is downloaded)."""
    rels = data.files("video/BasketballPass")[9:11]
    if not any(all((r / rel).is_file() for rel in rels) for r in data.roots()):
        return None
    frames = data.basketball_pass(11)
    return frames[9], frames[10]


def moving_pair(h: int = 64, w: int = 96, step: float = 2.5) -> tuple[torch.Tensor, torch.Tensor]:
    """A finer colour pattern than :func:`moving_clip`'s, moved by ``(step, step / 2)`` pixels:
    enough detail that the P-frame's rate keeps falling up to CRF 38."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                            torch.arange(w, dtype=torch.float64), indexing="ij")
    frames = []
    for k in range(2):
        u, v = xx - step * k, yy - step * k / 2
        red = 0.5 + 0.3 * torch.sin(u / 3 + v / 5) + 0.1 * torch.sin(u * v / 200)
        frames.append(torch.stack([red, 0.5 + 0.3 * torch.cos(u / 7 - v / 3),
                                   0.5 + 0.3 * torch.sin((u + v) / 4)]).float())
    return frames[0], frames[1]


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 64×96 crops of consecutive frames: BasketballPass f010 → f011 (players moving) where
    the data is here, else :func:`moving_pair`."""
    full = basketball_pair()
    if full is None:
        return moving_pair()
    return full[0][:, 96:160, 160:256].contiguous(), full[1][:, 96:160, 160:256].contiguous()


@pytest.fixture(scope="module")
def pair_coded(pair) -> dict:
    return {codec: va.encode_pair(*pair, codec, 28, return_frames=True)
            for codec in va.VIDEO_CODECS}


def test_nal_units_tile_the_stream():
    # 4-byte and 3-byte start codes, trailing zeros: every byte goes to exactly one unit
    stream = (b"\x00\x00\x00\x01\x67\xaa" + b"\x00\x00\x01\x65\x88\x00\x00\x00\x00\x01\x41\x9a"
              + b"\x00\x00\x01\x41\x1b\x00")
    units = va._nal_units(stream, "x264")
    assert [(k, vcl) for k, vcl, _ in units] == [(7, False), (5, True), (1, True), (1, True)]
    assert b"".join(u for _, _, u in units) == stream
    assert [len(u) for _, _, u in units] == [6, 6, 6, 6]
    # first slice of a picture: H.264 first_mb_in_slice = 0 (bit 1), not so for 0x1b = 0b0001…
    pictures = va._pictures(stream, "x264")
    assert [[k for k, _, _ in p] for p in pictures] == [[7, 5], [1, 1]]
    hevc = (b"\x00\x00\x00\x01\x40\x01\x0c" + b"\x00\x00\x01\x28\x01\xaf"
            + b"\x00\x00\x01\x02\x01\xd0")
    assert [(k, vcl) for k, vcl, _ in va._nal_units(hevc, "x265")] == [(32, False), (20, True),
                                                                       (1, True)]
    assert len(va._pictures(hevc, "x265")) == 2
    with pytest.raises(va.FFmpegError, match="start code"):
        va._nal_units(b"\x12\x00\x00\x01\x41", "x264")


@pytest.mark.parametrize("codec", va.VIDEO_CODECS)
def test_pair_split_into_i_and_p(pair, pair_coded, codec):
    r = pair_coded[codec]
    _, h, w = pair[1].shape
    assert r["frame_types"] == "IP" and (r["height"], r["width"]) == (h, w)
    idr, non_idr = ([5], [1]) if codec == "x264" else ([19, 20], [0, 1])
    assert len(r["nal_types"]) == 2
    assert all(k in idr for k in r["nal_types"][0]) and all(k in non_idr for k in r["nal_types"][1])
    # the split tiles the stream: the I access unit, then the P-frame's slices (nothing else)
    assert r["p_other_bytes"] == 0
    assert r["i_bytes"] + r["p_bytes"] == len(r["bitstream"])
    assert r["bitstream"].endswith(r["p_stream"]) and len(r["p_stream"]) == r["p_bytes"]
    assert r["p_stream"][:3] == b"\x00\x00\x01" or r["p_stream"][:4] == b"\x00\x00\x00\x01"
    assert r["p_bpp"] == pytest.approx(8 * r["p_bytes"] / (h * w))
    assert r["i_bpp"] == pytest.approx(8 * r["i_bytes"] / (h * w))
    assert 0 < r["p_bytes"] < r["i_bytes"]  # consecutive frames: the P-frame is the cheap one
    # the stream without the P-frame's bytes decodes to the first frame alone, the same pixels
    import imageio_ffmpeg

    first = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f",
                            va._FORMAT[codec], "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgb24",
                            "-vf", va._TO_RGB, "-"], input=r["bitstream"][: r["i_bytes"]],
                           capture_output=True, check=True, timeout=60)
    assert np.array_equal(np.frombuffer(first.stdout, np.uint8).reshape(1, h, w, 3),
                          r["decoded"][:1])


@pytest.mark.parametrize("codec", va.VIDEO_CODECS)
def test_pair_psnrs_are_the_frames(pair, pair_coded, codec):
    r = pair_coded[codec]
    ref8, x8 = data.to_uint8(pair[0]), data.to_uint8(pair[1])
    decoded = torch.from_numpy(r["decoded"]).permute(0, 3, 1, 2)
    assert r["psnr"] == pytest.approx(rd.psnr(x8, decoded[1]), abs=1e-9)
    assert r["ref_psnr"] == pytest.approx(rd.psnr(ref8, decoded[0]), abs=1e-9)
    assert 25 < r["psnr"] < 50 and 25 < r["psnr_y"] < 55
    # the same stream as the clip anchor on the two frames, group of two
    clip = va.encode_frames(torch.stack(pair), codec, 28, gop=2, return_frames=True)
    assert clip["bitstream"] == r["bitstream"]
    assert clip["psnr_y"] == pytest.approx((r["psnr_y"] + r["ref_psnr_y"]) / 2, abs=1e-9)


@pytest.mark.parametrize("codec", va.VIDEO_CODECS)
def test_pair_bytes_repeat_and_uint8_input_is_the_same(pair, pair_coded, codec):
    again = va.encode_pair(*pair, codec, 28, return_frames=True)
    assert again["p_stream"] == pair_coded[codec]["p_stream"]
    assert again["bitstream"] == pair_coded[codec]["bitstream"]
    assert again["psnr"] == pair_coded[codec]["psnr"]
    ref8, x8 = (data.to_uint8(f).permute(1, 2, 0).numpy() for f in pair)
    assert va.encode_pair(ref8, pair[1], codec, 28)["p_bytes"] == again["p_bytes"]
    assert va.encode_pair(ref8, x8, codec, 28)["psnr"] == again["psnr"]


@pytest.mark.parametrize("codec", va.VIDEO_CODECS)
def test_static_pair_costs_almost_nothing(pair, codec):
    r = va.encode_pair(pair[0], pair[0], codec, 28)
    assert r["p_bytes"] < 0.05 * r["i_bytes"] and r["p_bytes"] < 40
    assert r["psnr"] >= r["ref_psnr"] - 0.5  # a copy of the decoded reference, or better


@pytest.mark.parametrize("codec", va.VIDEO_CODECS)
def test_pair_curve_monotone_in_crf(pair, codec):
    ref, x = pair
    pairs = [(ref, x), (ref.flip(-1), x.flip(-1))]
    res = va.pair_anchor_curve(pairs, codec, crfs=[18, 28, 38])
    assert res["crfs"] == [18, 28, 38] and res["codec"] == codec
    assert np.all(np.diff(res["bpp"]) < 0) and np.all(np.diff(res["psnr"]) < 0)
    assert np.all(np.diff(res["psnr_y"]) < 0)
    for k in range(3):  # the means are those of the pairs, each the pair's own encode_pair
        assert len(res["pair_bpp"][k]) == 2
        assert res["bpp"][k] == pytest.approx(np.mean(res["pair_bpp"][k]))
        assert res["psnr"][k] == pytest.approx(np.mean(res["pair_psnr"][k]))
        assert res["psnr_y"][k] == pytest.approx(np.mean(res["pair_psnr_y"][k]))
    single = va.encode_pair(*pairs[1], codec, 28)
    assert res["pair_bpp"][1][1] == single["p_bpp"] and res["pair_psnr"][1][1] == single["psnr"]
    assert "P-frame" in res["name"] and "P-frame's slice NAL units" in res["description"]
    assert json.loads(json.dumps(res)) == res  # plain values: a record can be stored as JSON
    curve = rd.RDCurve(res["name"], res["bpp"], res["psnr"], qualities=res["crfs"])
    assert curve.bpp == res["bpp"]


def test_intra_second_picture_is_an_error(pair, monkeypatch):
    # an encoder that puts a key frame on every picture: the second is no P-frame
    original = va._encoder_args
    monkeypatch.setattr(va, "_encoder_args",
                        lambda codec, crf, gop, preset: original(codec, crf, 1, preset))
    for codec in va.VIDEO_CODECS:
        with pytest.raises(va.FFmpegError, match="second frame as an intra picture"):
            va.encode_pair(*pair, codec, 30)


def test_pair_wrong_input_refused(pair):
    ref, x = pair
    with pytest.raises(ValueError, match="same size"):
        va.encode_pair(ref, x[:, :32], "x264", 30)
    with pytest.raises(ValueError, match="same size"):
        va.encode_pair(ref, np.zeros((64, 98, 3), np.uint8), "x265", 30)
    with pytest.raises(ValueError, match="even width and height"):
        va.encode_pair(ref[:, :63], x[:, :63], "x264", 30)
    with pytest.raises(ValueError, match=r"ref must be a \(3, H, W\)"):
        va.encode_pair(ref[None], x, "x264", 30)
    with pytest.raises(ValueError, match=r"x must be a \(H, W, 3\)"):
        va.encode_pair(ref, np.zeros((3, 64, 96), np.uint8), "x264", 30)
    with pytest.raises(TypeError, match="uint8"):
        va.encode_pair(ref, np.zeros((64, 96, 3)), "x264", 30)
    with pytest.raises(TypeError, match="numpy array"):
        va.encode_pair(ref, [0], "x264", 30)
    with pytest.raises(ValueError, match="unknown codec"):
        va.encode_pair(ref, x, "vp9", 30)
    with pytest.raises(ValueError, match="crf"):
        va.encode_pair(ref, x, "x265", 52)
    with pytest.raises(ValueError, match="unknown codec"):
        va.pair_anchor_curve([pair], "av1")
    with pytest.raises(ValueError, match="crfs"):
        va.pair_anchor_curve([pair], "x264", crfs=[])
    with pytest.raises(ValueError, match="pairs"):
        va.pair_anchor_curve([], "x264")
    with pytest.raises(ValueError, match=r"\(ref, x\)"):
        va.pair_anchor_curve([(ref, x, x)], "x264")


def test_basketball_pass_pair_defaults_span_the_p_frame_rates():
    """On f010 → f011 of BasketballPass, whole frames, the ends of the default sweeps reach a
    P-frame of about 0.4 bpp and one under 0.01 bpp (the values: :data:`DEFAULT_PAIR_CRFS`)."""
    full = basketball_pair()
    if full is None:
        pytest.skip(f"no data root holds BasketballPass (searched: {data.roots()}); set "
                    "NCTUTOR_DATA to the book's data folder")
    for codec in va.VIDEO_CODECS:
        ends = [va.DEFAULT_PAIR_CRFS[codec][0], va.DEFAULT_PAIR_CRFS[codec][-1]]
        res = va.pair_anchor_curve([full], codec, crfs=ends)
        assert res["bpp"][0] > 0.3 and res["bpp"][1] < 0.01, (codec, res["bpp"])
        assert res["psnr"][0] > res["psnr"][1] + 8
        assert all(r["frame_types"] == "IP" for row in res["records"] for r in row)
