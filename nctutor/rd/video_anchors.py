"""H.264 and H.265 anchors for video, measured live: x264 and x265 through ffmpeg.

Chapter *A binary video codec with delta-sigma modulation*, section *Against H.264 and H.265*
(through :mod:`nctutor.rd.binary_video`).
The protocol of :mod:`nctutor.rd.metrics`, carried over to video: every clip is coded **to a real
bitstream** by the ffmpeg binary of the ``imageio-ffmpeg`` wheel, decoded again, and scored on
8-bit frames.

- **Input format.** The RGB frames are converted once to ``yuv420p`` (8-bit 4:2:0, the field's
  standard input format) by ffmpeg's own scaler: BT.601 matrix, limited ("tv") range, bicubic
  chroma, i.e. ffmpeg's default conversion, likely the one that made the BasketballPass frames
  of the book's data from the sequence's YUV file (of the conversions tried, it loses least on a
  round trip). The encoder codes exactly these planes; the decoded planes go back to RGB with
  the same matrix. 4:2:0 alone caps the RGB PSNR (about 45 dB on BasketballPass).
- **Low-delay P.** Preset ``medium`` with ``tune zerolatency`` (no B-frames, no lookahead, no
  MB-tree/CU-tree: every frame is coded from the past only, as the learned codec does), a key
  frame every ``gop`` frames and nowhere else (``keyint = min-keyint = gop``, scene cuts off): each
  group starts with an I frame, as the learned codec codes each group independently. One thread,
  so the bytes repeat exactly.
- **Rate.** ``8·bytes / (T·H·W)`` of the raw elementary stream (``-f h264`` / ``-f hevc``, Annex
  B: no container). The encoders' self-description SEI messages (their version and option
  string, about 0.6 kB per x264 stream and 2.3 kB per x265 key frame; the decoder ignores them)
  are left out by default: at 0.02 bpp they would be 15–100 % of the file.
- **Quality.** RGB PSNR of the 8-bit frames (as :func:`nctutor.rd.psnr`: the mean over frames
  of per-frame PSNRs), and the PSNR of the decoded Y plane, 8-bit, against the encoder's input Y:
  the figure the video-coding field reports. A codec that outputs RGB is scored on Y through
  :func:`luma` of its frames; the anchors' decoded RGB scored that way (``psnr_y_via_rgb``) is up
  to 2 dB below their ``psnr_y`` at high rates, where 4:2:0 → RGB → Y is far from exact.

One P-frame (book section *Conditional coding in practice → Table 1 on our pairs*):
:func:`encode_pair` codes a pair (reference, current) as an I then a P frame with the same
settings and counts the P-frame's own bytes, split out of the stream at its NAL units;
:func:`pair_anchor_curve` sweeps the CRF over a list of pairs.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Sequence

import numpy as np
import torch

from ..data import to_uint8
from ..errors import NctutorError
from .curves import RDCurve

#: Default CRF sweeps of :func:`anchor_curve`: on the first 16 frames of BasketballPass (416×240,
#: GOP 8, 50 fps) both span about 0.02–0.5 bpp (measured; ``tests/test_video_anchors.py``).
DEFAULT_CRFS: dict[str, tuple[float, ...]] = {
    "x264": (17, 21, 25, 29, 33, 37, 41, 45),
    "x265": (17, 21, 25, 29, 33, 37, 41, 45),
}

VIDEO_CODECS = tuple(DEFAULT_CRFS)

_FORMAT = {"x264": "h264", "x265": "hevc"}  # raw elementary stream (Annex B) of each codec
_SEI_TYPES = {"x264": "6", "x265": "39|40"}  # NAL unit types of SEI messages (prefix|suffix)
_NAMES = {"x264": "H.264 (x264)", "x265": "H.265 (x265)"}
# ffmpeg's default RGB <-> YUV conversion, written out so that a change of default cannot move it
_TO_YUV = "scale=flags=bicubic:out_color_matrix=bt601:out_range=tv"
_TO_RGB = "scale=flags=bicubic:in_color_matrix=bt601:in_range=tv"


class FFmpegError(NctutorError, RuntimeError):
    """ffmpeg is missing, failed, or gave back something unexpected; the message ends with the tail
    of its error output. Raised by :func:`encode_frames`; no page calls it.
    """


def _ffmpeg() -> str:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise FFmpegError(f"no ffmpeg binary: install the imageio-ffmpeg wheel ({e})") from e


def _run(args: list[str], what: str, data: bytes | None,
         timeout: float) -> subprocess.CompletedProcess:
    """Run ffmpeg with ``args``, ``data`` on its stdin; an :class:`FFmpegError` if it fails."""
    cmd = [_ffmpeg(), "-hide_banner", "-nostats", "-y", *args]
    try:
        if data is None:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout)
        else:
            done = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        tail = (e.stderr or b"").decode(errors="replace")[-1500:]
        raise FFmpegError(f"ffmpeg ({what}) ran over {timeout:.0f} s and was stopped:\n"
                          f"{tail}") from e
    except OSError as e:
        raise FFmpegError(f"cannot run ffmpeg ({what}): {e}") from e
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-1500:]
        raise FFmpegError(f"ffmpeg ({what}) failed with exit status {done.returncode}:\n{tail}")
    return done


def _rgb8(frames) -> np.ndarray:
    """The clip as a contiguous ``(T, H, W, 3)`` uint8 array, checked (even sides, 4:2:0)."""
    if isinstance(frames, torch.Tensor):
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be a (T, 3, H, W) tensor, got {tuple(frames.shape)}")
        if frames.dtype != torch.uint8 and not frames.is_floating_point():
            raise TypeError(f"frames must be float in [0, 1] or uint8, not {frames.dtype}")
        x8 = frames if frames.dtype == torch.uint8 else to_uint8(frames)
        rgb = x8.permute(0, 2, 3, 1).cpu().numpy()
    elif isinstance(frames, np.ndarray):
        if frames.dtype != np.uint8:
            raise TypeError(f"a numpy clip must be uint8 (T, H, W, 3), not {frames.dtype}")
        if frames.ndim != 4 or frames.shape[3] != 3:
            raise ValueError(f"frames must be a (T, H, W, 3) uint8 array, got {frames.shape}")
        rgb = frames
    else:
        raise TypeError("frames must be a (T, 3, H, W) float tensor in [0, 1] or a (T, H, W, 3) "
                        f"uint8 numpy array, not {type(frames).__name__}")
    t, h, w, _ = rgb.shape
    if t == 0 or h == 0 or w == 0:
        raise ValueError(f"empty clip: {t} frames of {h}×{w}")
    if h % 2 or w % 2:
        raise ValueError(f"4:2:0 needs an even width and height, got {w}×{h}: crop the clip "
                         "by one row or column")
    return np.ascontiguousarray(rgb)


def _timeout(pixels: int) -> float:
    """Seconds one ffmpeg call may take: generous (x265 runs ≈10 Mpixel/s here), never hangs."""
    return 60.0 + 20.0 * pixels / 1e6


def _convert(raw: bytes, size: tuple[int, int], src: str, dst: str, vf: str) -> bytes:
    """Convert raw frames ``src`` → ``dst`` (ffmpeg pixel formats) with the filter ``vf``."""
    h, w = size
    return _run(["-f", "rawvideo", "-pix_fmt", src, "-s", f"{w}x{h}", "-i", "-", "-vf", vf,
                 "-f", "rawvideo", "-pix_fmt", dst, "-"], f"{src} to {dst}", raw,
                _timeout(len(raw) // 3)).stdout


def _encoder_args(codec: str, crf: float, gop: int, preset: str) -> list[str]:
    common = ["-preset", preset, "-tune", "zerolatency", "-crf", f"{crf:g}"]
    lowdelay = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:rc-lookahead=0"
    if codec == "x264":
        return ["-c:v", "libx264", *common, "-threads", "1", "-x264-params", lowdelay]
    return ["-c:v", "libx265", *common, "-x265-params",
            f"{lowdelay}:open-gop=0:pools=none:frame-threads=1:log-level=error"]


def _psnr8(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over frames of the PSNR (peak 255) of 8-bit frames ``(T, …)``, ``inf`` where equal:
    on ``(T, H, W, 3)`` RGB the value of :func:`nctutor.rd.psnr` (tested), faster."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = np.square(diff).reshape(len(a), -1).mean(1)
    with np.errstate(divide="ignore"):
        return float(np.mean(10.0 * np.log10(255.0**2 / mse)))


def _check(codec: str, crf: float, gop: int) -> None:
    if codec not in DEFAULT_CRFS:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(VIDEO_CODECS)}")
    if isinstance(gop, bool) or not isinstance(gop, (int, np.integer)) or gop < 1:
        raise ValueError(f"gop must be a positive integer, got {gop!r}")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must lie in [0, 51], got {crf!r}")


def _code(rgb: np.ndarray, yuv: bytes, codec: str, crf: float, gop: int, fps: float,
          preset: str, strip_sei: bool, return_frames: bool) -> dict:
    """Encode the ``yuv420p`` planes ``yuv`` of the clip ``rgb``, decode, measure."""
    t, h, w, _ = rgb.shape
    fmt, limit = _FORMAT[codec], _timeout(t * h * w)
    with tempfile.TemporaryDirectory(prefix="nctutor-video-") as folder:
        stream = os.path.join(folder, f"clip.{fmt}")
        sei = ["-bsf:v", f"filter_units=remove_types={_SEI_TYPES[codec]}"] if strip_sei else []
        t0 = time.perf_counter()
        _run(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}", "-framerate", f"{fps:g}",
              "-i", "-", *_encoder_args(codec, crf, gop, preset), *sei, "-f", fmt, stream],
             f"{codec} encoding", yuv, limit)
        t1 = time.perf_counter()
        # showinfo prints each decoded frame's type (I/P/B): the group structure, checked
        decoded = _run(["-threads", "1", "-f", fmt, "-i", stream, "-vf", "showinfo",
                        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"], f"{codec} decoding", None,
                       limit)
        with open(stream, "rb") as f:
            bitstream = f.read()
    yuv_hat = decoded.stdout
    rgb_hat = np.frombuffer(_convert(yuv_hat, (h, w), "yuv420p", "rgb24", _TO_RGB), np.uint8)
    t2 = time.perf_counter()
    if len(yuv_hat) != len(yuv) or rgb_hat.size != rgb.size:
        raise FFmpegError(f"{codec}: {t} frames coded but {len(yuv_hat) // (h * w * 3 // 2)} "
                          "decoded:\n" + decoded.stderr.decode(errors="replace")[-1500:])
    types = "".join(line.split(" type:")[1][0] for line in decoded.stderr.decode().splitlines()
                    if "showinfo" in line and " type:" in line)
    rgb_hat = rgb_hat.reshape(t, h, w, 3).copy()  # writable, like any decoded clip
    y = np.frombuffer(yuv, np.uint8).reshape(t, -1)[:, : h * w].reshape(t, h, w).copy()
    y_hat = np.frombuffer(yuv_hat, np.uint8).reshape(t, -1)[:, : h * w].reshape(t, h, w).copy()
    out = {"codec": codec, "crf": crf, "gop": gop, "frames": t, "bytes": len(bitstream),
           "bpp": 8.0 * len(bitstream) / (t * h * w),
           "psnr_rgb": _psnr8(rgb, rgb_hat), "psnr_y": _psnr8(y, y_hat),
           "psnr_y_via_rgb": _psnr8(y, luma(rgb_hat)),
           "frame_types": types, "encoding_time": t1 - t0, "decoding_time": t2 - t1}
    if return_frames:
        out.update(decoded=rgb_hat, decoded_y=y_hat, source_y=y, bitstream=bitstream)
    return out


def encode_frames(frames, codec: str, crf: float, gop: int = 8, *, fps: float = 50.0,
                  preset: str = "medium", strip_sei: bool = True,
                  return_frames: bool = False) -> dict:
    """Code a clip with x264 or x265 through ffmpeg, low-delay P, decode it, measure it.

    ``frames``: a ``(T, 3, H, W)`` float tensor in ``[0, 1]`` (rounded to 8 bits first; uint8 is
    taken as is) or a ``(T, H, W, 3)`` uint8 numpy array; ``H`` and ``W`` must be even (4:2:0).
    ``codec``: ``"x264"`` (H.264) or ``"x265"`` (H.265/HEVC); ``crf`` their constant rate factor,
    0–51; ``gop`` the group length: a key frame every ``gop`` frames, P frames between them
    (``gop=1``: all intra). ``fps`` is the frame rate the encoder is told (CRF depends on it a
    little; BasketballPass is 50). The settings (``yuv420p`` BT.601, preset ``medium``, ``tune
    zerolatency``, one thread) and the measurements are those of this module's docstring; with
    ``strip_sei=False`` the encoder's SEI messages are counted too.

    Returns a dict: ``bytes`` of the raw elementary stream, ``bpp`` = ``8·bytes / (T·H·W)``,
    ``psnr_rgb`` (mean over frames, 8-bit RGB), ``psnr_y`` (mean over frames, 8-bit Y against the
    encoder's input Y), ``psnr_y_via_rgb`` (the same, of the Y of the decoded *RGB* frames,
    :func:`luma`: how a codec that outputs RGB is scored on Y; below ``psnr_y`` at high rates, as
    4:2:0 → RGB → Y is not exact), ``frames`` (T), ``frame_types`` (the decoded frames' types, e.g.
    ``"IPPPPPPPIPPPPPPP"``), ``encoding_time`` and ``decoding_time`` (seconds of the ffmpeg calls,
    start-up included), and ``codec``, ``crf``, ``gop``. With ``return_frames=True`` also
    ``decoded`` (``(T, H, W, 3)`` uint8), ``decoded_y`` and ``source_y`` (``(T, H, W)`` uint8) and
    ``bitstream`` (the bytes counted). Raises :class:`FFmpegError` when ffmpeg is missing or
    fails (its error output ends the message), ``ValueError`` for a wrong shape or setting.
    Used by book section *A binary video codec with delta-sigma modulation → Against H.264 and
    H.265* (through :mod:`nctutor.rd.binary_video`); no page calls it directly.
    """
    _check(codec, crf, gop)
    rgb = _rgb8(frames)
    t, h, w, _ = rgb.shape
    yuv = _convert(rgb.tobytes(), (h, w), "rgb24", "yuv420p", _TO_YUV)
    return _code(rgb, yuv, codec, crf, gop, fps, preset, strip_sei, return_frames)


def luma(frames) -> np.ndarray:
    """The Y plane ``(T, H, W)`` uint8 of a clip, by the conversion the anchors code from.

    ffmpeg's RGB → ``yuv420p`` (BT.601, limited range: ``Y ≈ 16 + (65.481·R + 128.553·G +
    24.966·B) / 255`` on 8-bit values, rounded by ffmpeg), of the same inputs as
    :func:`encode_frames` (even sides). For the Y PSNR of a codec that outputs RGB frames, scored
    like :func:`encode_frames`'s ``psnr_y`` (whose source Y this is). Used by book section
    *A binary video codec with delta-sigma modulation → Against H.264 and H.265*; no page calls it
    directly.
    """
    rgb = _rgb8(frames)
    t, h, w, _ = rgb.shape
    yuv = _convert(rgb.tobytes(), (h, w), "rgb24", "yuv420p", _TO_YUV)
    return np.frombuffer(yuv, np.uint8).reshape(t, -1)[:, : h * w].reshape(t, h, w).copy()


def anchor_curve(frames, codec: str, crfs: Sequence[float] | None = None, gop: int = 8,
                 name: str | None = None, *, fps: float = 50.0, preset: str = "medium",
                 metric: str = "rgb") -> RDCurve:
    """The rate-distortion curve of x264 or x265 on one clip: :func:`encode_frames` at each CRF.

    ``crfs`` defaults to :data:`DEFAULT_CRFS` (about 0.02–0.5 bpp on BasketballPass); ``gop``,
    ``fps`` and ``preset`` as in :func:`encode_frames`. The curve's ``bpp`` and ``psnr`` are the
    clip's (RGB PSNR, mean over frames; ``metric="y"`` puts the Y PSNR there instead, for
    Bjøntegaard deltas on Y), ``qualities`` the CRFs, ``encoding_time`` and ``decoding_time``
    seconds per frame, and ``records`` one dict per CRF with everything :func:`encode_frames`
    measured (both PSNRs among it). The RGB → ``yuv420p`` conversion is done once for all points.
    Used by book section *A binary video codec with delta-sigma modulation → Against H.264 and
    H.265* (through :mod:`nctutor.rd.binary_video`); no page calls it directly.
    """
    if metric not in ("rgb", "y"):
        raise ValueError(f"metric must be 'rgb' or 'y', not {metric!r}")
    if codec not in DEFAULT_CRFS:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(VIDEO_CODECS)}")
    crfs = list(DEFAULT_CRFS[codec] if crfs is None else crfs)
    if not crfs:
        raise ValueError("crfs must not be empty")
    for crf in crfs:
        _check(codec, crf, gop)
    rgb = _rgb8(frames)
    t, h, w, _ = rgb.shape
    yuv = _convert(rgb.tobytes(), (h, w), "rgb24", "yuv420p", _TO_YUV)
    records = [_code(rgb, yuv, codec, crf, gop, fps, preset, True, False) for crf in crfs]
    import imageio_ffmpeg

    return RDCurve(
        name=name or _NAMES[codec] + (" (Y)" if metric == "y" else ""),
        bpp=[r["bpp"] for r in records],
        psnr=[r["psnr_rgb" if metric == "rgb" else "psnr_y"] for r in records],
        qualities=crfs,
        encoding_time=[r["encoding_time"] / t for r in records],
        decoding_time=[r["decoding_time"] / t for r in records],
        records=records,
        description=(f"{codec} through ffmpeg {imageio_ffmpeg.get_ffmpeg_version()} "
                     f"(imageio-ffmpeg): yuv420p BT.601, preset {preset}, tune zerolatency "
                     f"(low-delay P), GOP {gop}, {fps:g} fps, one thread; bits of the raw "
                     f"stream without SEI; PSNR {'RGB' if metric == 'rgb' else 'Y'}, 8-bit, "
                     f"mean over {t} frames of {w}×{h}"),
    )


# --------------------------------------------------------------------------- one P-frame: pairs

#: Default CRF sweeps of :func:`pair_anchor_curve`: on the BasketballPass pair f010 → f011
#: (416×240) the *P-frame* spans about 0.008–0.4 bpp (x264) and 0.008–0.5 bpp (x265), measured;
#: ``tests/test_video_anchors.py``. Lower than the clip sweeps: a P-frame predicted from a
#: reference coded at the same CRF costs little (0.05–0.07 bpp at CRF 22, 0.012–0.015 at CRF 32),
#: and above CRF 37 its rate is mostly fixed slice-header bits (at most 0.006 bpp at CRF 42–51).
DEFAULT_PAIR_CRFS: dict[str, tuple[float, ...]] = {
    "x264": (8, 12, 17, 22, 27, 32, 37),
    "x265": (8, 12, 17, 22, 27, 32, 37),
}

# NAL unit types (H.264: byte & 0x1F; HEVC: (byte >> 1) & 0x3F) that open an access unit when
# they follow a picture's slices: SEI, parameter sets, access unit delimiter
_AU_OPENERS = {"x264": {6, 7, 8, 9}, "x265": {32, 33, 34, 35, 39}}


def _nal_units(stream: bytes, codec: str) -> list[tuple[int, bool, bytes]]:
    """Split an Annex B stream into NAL units: ``(type, vcl, unit)`` with ``unit`` the NAL unit's
    bytes *with* its start code (``00 00 01``, or ``00 00 00 01`` with the zero byte before it);
    the units tile the stream exactly (trailing zeros go to the unit before them)."""
    starts, i = [], stream.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i)
        i = stream.find(b"\x00\x00\x01", i + 3)
    if not starts or stream[: starts[0]].strip(b"\x00"):
        raise FFmpegError(f"{codec}: the stream does not start with an Annex B start code")
    cuts = [p - 1 if p > 0 and stream[p - 1] == 0 else p for p in starts]
    cuts[0], units = 0, []
    for k, p in enumerate(starts):
        unit = stream[cuts[k] : cuts[k + 1] if k + 1 < len(cuts) else len(stream)]
        header = stream[p + 3 : p + 5]
        if len(header) < (1 if codec == "x264" else 2):
            raise FFmpegError(f"{codec}: a NAL unit at byte {p} is cut short")
        if codec == "x264":
            kind = header[0] & 0x1F
            vcl = 1 <= kind <= 5
        else:
            kind = (header[0] >> 1) & 0x3F
            vcl = kind <= 31
        units.append((kind, vcl, unit))
    return units


def _first_slice(unit: bytes, codec: str) -> bool:
    """Whether a slice NAL unit opens its picture: H.264 ``first_mb_in_slice == 0`` (ue(v) "1"),
    HEVC ``first_slice_segment_in_pic_flag``; the first bit after the NAL unit header."""
    p = unit.find(b"\x00\x00\x01") + 3
    body = unit[p + (1 if codec == "x264" else 2) :]
    return bool(body) and bool(body[0] & 0x80)


def _pictures(stream: bytes, codec: str) -> list[list[tuple[int, bool, bytes]]]:
    """The access units of an Annex B stream, each the list of its NAL units (parameter sets and
    other non-VCL units go with the picture they precede)."""
    pictures: list[list[tuple[int, bool, bytes]]] = [[]]
    for kind, vcl, unit in _nal_units(stream, codec):
        has_slice = any(v for _, v, _ in pictures[-1])
        if has_slice and ((vcl and _first_slice(unit, codec))
                          or (not vcl and kind in _AU_OPENERS[codec])):
            pictures.append([])
        pictures[-1].append((kind, vcl, unit))
    return pictures


def _intra(kinds: list[int], codec: str) -> bool:
    """Whether slice NAL unit types mark an intra random-access picture (IDR; HEVC IRAP)."""
    return any(k == 5 if codec == "x264" else 16 <= k <= 23 for k in kinds)


def _frame(frame, what: str) -> np.ndarray:
    """One frame as ``(1, H, W, 3)`` uint8, checked like a clip of :func:`encode_frames`."""
    if isinstance(frame, torch.Tensor):
        if frame.dim() != 3 or frame.shape[0] != 3:
            raise ValueError(f"{what} must be a (3, H, W) tensor, got {tuple(frame.shape)}")
        return _rgb8(frame.unsqueeze(0))
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"{what} must be a (H, W, 3) uint8 array, got {frame.shape}")
        return _rgb8(frame[None])
    raise TypeError(f"{what} must be a (3, H, W) float tensor in [0, 1] or a (H, W, 3) uint8 "
                    f"numpy array, not {type(frame).__name__}")


def _pair_rgb8(ref, x) -> np.ndarray:
    """The pair as a ``(2, H, W, 3)`` uint8 clip: reference first."""
    a, b = _frame(ref, "ref"), _frame(x, "x")
    if a.shape != b.shape:
        raise ValueError(f"ref and x must have the same size, got {a.shape[2]}×{a.shape[1]} "
                         f"and {b.shape[2]}×{b.shape[1]}")
    return np.concatenate([a, b])


def _code_pair(rgb: np.ndarray, yuv: bytes, codec: str, crf: float, fps: float, preset: str,
               return_frames: bool) -> dict:
    """Code the two-frame clip ``rgb`` (planes ``yuv``) as I then P and split the stream."""
    _, h, w, _ = rgb.shape
    r = _code(rgb, yuv, codec, crf, 2, fps, preset, True, True)
    pictures = _pictures(r["bitstream"], codec)
    kinds = [[k for k, vcl, _ in pic if vcl] for pic in pictures]
    if len(pictures) != 2 or not all(kinds):
        raise FFmpegError(f"{codec} at CRF {crf:g}: expected two coded pictures, found "
                          f"{sum(map(bool, kinds))} (NAL unit types per access unit: {kinds})")
    if _intra(kinds[1], codec) or r["frame_types"] != "IP":
        raise FFmpegError(f"{codec} at CRF {crf:g} coded the second frame as an intra picture "
                          f"(decoded frame types {r['frame_types']!r}, slice NAL unit types "
                          f"{kinds[1]}): no P-frame rate to report")
    p_bytes = sum(len(u) for _, vcl, u in pictures[1] if vcl)
    i_bytes = sum(len(u) for _, _, u in pictures[0])
    out = {"codec": codec, "crf": crf, "height": h, "width": w,
           "p_bytes": p_bytes, "i_bytes": i_bytes,
           "p_other_bytes": sum(len(u) for _, vcl, u in pictures[1] if not vcl),
           "p_bpp": 8.0 * p_bytes / (h * w), "i_bpp": 8.0 * i_bytes / (h * w),
           "psnr": _psnr8(rgb[1:], r["decoded"][1:]),
           "psnr_y": _psnr8(r["source_y"][1:], r["decoded_y"][1:]),
           "ref_psnr": _psnr8(rgb[:1], r["decoded"][:1]),
           "ref_psnr_y": _psnr8(r["source_y"][:1], r["decoded_y"][:1]),
           "nal_types": kinds, "frame_types": r["frame_types"],
           "encoding_time": r["encoding_time"], "decoding_time": r["decoding_time"]}
    if return_frames:
        out.update(decoded=r["decoded"], bitstream=r["bitstream"],
                   p_stream=b"".join(u for _, vcl, u in pictures[1] if vcl))
    return out


def encode_pair(ref, x, codec: str, crf: float, *, preset: str = "medium", fps: float = 50.0,
                return_frames: bool = False) -> dict:
    """Code one P-frame with x264 or x265: the two-frame clip ``(ref, x)`` as an I then a P frame.

    The anchor of Table 1 of Brand et al. (Generalized Difference Coder) on our pairs: the
    settings of :func:`encode_frames` (``yuv420p`` BT.601, preset ``medium``, ``tune
    zerolatency``: low-delay P, one thread, SEI stripped) on a group of two frames, so that ``x``
    is coded as a P picture predicted from the *decoded* ``ref``. The raw stream (Annex B) is
    split into NAL units at their start codes and into the two access units (H.264 type
    ``byte & 0x1F``: slices 1 and 5 (IDR), SPS/PPS 7/8; HEVC type ``(byte >> 1) & 0x3F``: slices
    0–31, IRAP 16–23, VPS/SPS/PPS 32–34; a picture opens at its first slice); the check is that
    exactly two pictures were coded and that the second is neither IDR/IRAP nor decoded as an I
    frame (else :class:`FFmpegError`).

    ``ref`` and ``x``: ``(3, H, W)`` float tensors in ``[0, 1]`` (rounded to 8 bits; uint8 taken
    as is) or ``(H, W, 3)`` uint8 arrays, of the same even size (4:2:0; an odd side is refused,
    as by :func:`encode_frames`). ``codec`` ``"x264"`` or ``"x265"``, ``crf`` in 0–51 (the
    encoder chooses the P-frame's quantiser from it, a few steps coarser than the I frame's).

    Returns a dict: ``p_bytes``, the bytes of the second picture's slice NAL units with their
    start codes (the P-frame's own rate: ``p_bpp = 8·p_bytes / (H·W)``); ``i_bytes``, all bytes
    of the first access unit, parameter sets included (``i_bpp``); ``p_other_bytes`` (non-slice
    units of the second access unit: none with these settings); ``psnr`` and ``psnr_y``, RGB
    and Y PSNR (8-bit) of the decoded second frame against ``x``; ``ref_psnr`` and
    ``ref_psnr_y`` of the decoded first frame against ``ref``; ``nal_types`` (slice NAL unit
    types of each picture), ``frame_types`` (``"IP"``), ``height``, ``width``, ``codec``,
    ``crf``, ``encoding_time`` and ``decoding_time`` (seconds, both frames). With
    ``return_frames=True`` also ``decoded`` (``(2, H, W, 3)`` uint8), ``bitstream`` (the whole
    stream) and ``p_stream`` (the P-frame's slice NAL units, the ``p_bytes`` counted).

    Defined in book section *Conditional coding in practice → Table 1 on our pairs*.
    """
    _check(codec, crf, 2)
    rgb = _pair_rgb8(ref, x)
    _, h, w, _ = rgb.shape
    yuv = _convert(rgb.tobytes(), (h, w), "rgb24", "yuv420p", _TO_YUV)
    return _code_pair(rgb, yuv, codec, crf, fps, preset, return_frames)


def pair_anchor_curve(pairs: Sequence[tuple], codec: str, crfs: Sequence[float] | None = None,
                      *, preset: str = "medium", fps: float = 50.0,
                      name: str | None = None) -> dict:
    """The P-frame rate-distortion curve of x264 or x265 over pairs: :func:`encode_pair` per CRF.

    ``pairs``: a list of ``(ref, x)`` (as :func:`encode_pair` takes them; the pairs may differ in
    size); ``crfs`` defaults to :data:`DEFAULT_PAIR_CRFS` (P-frames of about 0.01–0.5 bpp on
    BasketballPass). The rate counts the **P-frame's own bits** (its slice NAL units, start codes
    included), never the I frame's; but the anchor codes its reference itself, at the same CRF
    (its quality is ``ref_psnr``), whereas the learned P-frame coders
    (:mod:`nctutor.codecs.conditional`) predict from a JPEG 2000 reference at 35 dB. On
    BasketballPass the anchor's reference is near 35 dB (RGB) at CRF 27: better below, worse
    above, so at low CRFs the anchor predicts from a better reference than the learned coders.

    Returns a dict: ``codec``, ``crfs``; per CRF the means over pairs ``bpp`` (P-frame bpp,
    ``8·p_bytes / (H·W)``), ``psnr`` (RGB PSNR of the P-frame), ``psnr_y`` (its Y PSNR),
    ``ref_psnr``, ``ref_bpp`` (the I frame); the per-pair values ``pair_bpp``, ``pair_psnr``,
    ``pair_psnr_y`` (lists per CRF, one value per pair, in order) and ``records`` (per CRF, the
    dict of :func:`encode_pair` of each pair, without frames); ``encoding_time`` and
    ``decoding_time`` (mean seconds per frame at each CRF); ``name`` (a legend label) and
    ``description``. Plain values only, so the dict can be stored as JSON; for plots and
    Bjøntegaard deltas, ``RDCurve(r["name"], r["bpp"], r["psnr"], qualities=r["crfs"])``.

    Defined in book section *Conditional coding in practice → Table 1 on our pairs*.
    """
    if codec not in DEFAULT_PAIR_CRFS:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(VIDEO_CODECS)}")
    crfs = list(DEFAULT_PAIR_CRFS[codec] if crfs is None else crfs)
    if not crfs:
        raise ValueError("crfs must not be empty")
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs must not be empty")
    for crf in crfs:
        _check(codec, crf, 2)
    clips = []
    for k, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ValueError(f"pair {k} must be (ref, x), got {len(pair)} items")
        rgb = _pair_rgb8(*pair)
        clips.append((rgb, _convert(rgb.tobytes(), rgb.shape[1:3], "rgb24", "yuv420p", _TO_YUV)))
    records = [[_code_pair(rgb, yuv, codec, crf, fps, preset, False) for rgb, yuv in clips]
               for crf in crfs]

    def values(key: str) -> list[list[float]]:
        return [[r[key] for r in row] for row in records]

    def means(key: str) -> list[float]:
        return [float(np.mean(v)) for v in values(key)]

    import imageio_ffmpeg

    sizes = sorted({f"{rgb.shape[2]}×{rgb.shape[1]}" for rgb, _ in clips})
    description = (f"{codec} through ffmpeg {imageio_ffmpeg.get_ffmpeg_version()} "
                   f"(imageio-ffmpeg): yuv420p BT.601, preset {preset}, tune zerolatency, "
                   f"I then P, {fps:g} fps, one thread; bits of the P-frame's slice NAL units "
                   f"only (reference coded by the anchor at the same CRF); PSNR of the P-frame, "
                   f"8-bit, mean over {len(pairs)} pairs of {', '.join(sizes)}")
    return {"codec": codec, "crfs": crfs, "bpp": means("p_bpp"), "psnr": means("psnr"),
            "psnr_y": means("psnr_y"), "ref_psnr": means("ref_psnr"), "ref_bpp": means("i_bpp"),
            "pair_bpp": values("p_bpp"), "pair_psnr": values("psnr"),
            "pair_psnr_y": values("psnr_y"), "records": records,
            "encoding_time": [v / 2 for v in means("encoding_time")],
            "decoding_time": [v / 2 for v in means("decoding_time")],
            "name": name or _NAMES[codec] + " P-frame", "description": description}
