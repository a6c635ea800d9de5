"""The binary video codec measured: real bytes on held-out clips, x264/x265 beside it, noise.

Chapter *A binary video codec with delta-sigma modulation* (its sections *Against H.264 and H.265*
and *Noise shaping on trained codes*). One function per measurement, and :func:`run`, which
makes the stored record that page reads (``nctutor video-eval``):

- :func:`code_clip`: a clip coded group by group with ``K`` kept channels to real bytes
  (:meth:`~nctutor.codecs.video.BinaryVideoCodec.compress`, the context coder of
  :mod:`nctutor.entropy.binary`), decoded, scored like the anchors of
  :mod:`nctutor.rd.video_anchors`: bpp = ``8·bytes / (F·H·W)``, RGB PSNR of the 8-bit frames and
  Y PSNR (BT.601, ffmpeg's conversion), both means over frames;
- :func:`codec_curve`: one point per ``K``;
- :func:`noise_shaping`: on the trained codes of a clip, the time spectrum of the quantizer's
  error ``e = b − y`` (Eq. (B.2)) and of the error the decoder sees, ``b − c`` (Eq. (B.3));
- :func:`run`, :func:`tables`: everything above for the three modulator orders and both
  anchors on the test clips of :data:`nctutor.data.SPLIT`, with Bjøntegaard deltas.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from .. import container, data
from ..codecs import pad, video
from ..quant.deltasigma import modulate
from .curves import RDCurve, bd_rate
from .video_anchors import anchor_curve, luma

#: The held-out clips of the comparison, and what kind of motion they have.
#: The anchors' CRFs: :data:`nctutor.rd.video_anchors.DEFAULT_CRFS` extended down to CRF 51 (the
#: lowest quality), to meet the small learned codec's curve.
ANCHOR_CRFS = (17, 21, 25, 29, 33, 37, 41, 45, 48, 51)
TEST_CLIPS = {"BasketballPass": "fast motion (HEVC class D, 416×240)",
              "carphone_pristine": "slow motion (QCIF, 176×144)"}


def _psnr8(a: np.ndarray, b: np.ndarray) -> list[float]:
    """Per-frame PSNR (peak 255) of 8-bit frames ``(T, …)``."""
    mse = np.square(a.astype(np.float64) - b.astype(np.float64)).reshape(len(a), -1).mean(1)
    return [10 * math.log10(255.0**2 / max(m, 1e-10)) for m in mse]


def code_clip(model: video.BinaryVideoCodec, frames: torch.Tensor, channels: int,
              group: int = 8) -> dict:
    """Code ``frames`` ``(F, 3, H, W)`` in [0, 1] in groups of ``group`` with ``channels`` kept
    into the ``.nct`` file ``nctutor compress`` writes (:func:`nctutor.container.encode_video`),
    decode it (:func:`~nctutor.container.decode_video`, one thread: bit-exact), and score it.

    Returns ``{"channels", "bytes" (of the whole file: header, stream table and CRC included),
    "bpp", "raw_bpp" (the bits before entropy coding), "psnr_rgb", "psnr_y", "encoding_time",
    "decoding_time" (seconds per frame)}``. Defined in book section *A binary video codec with
    delta-sigma modulation → Against H.264 and H.265*.
    """
    f, _, h, w = frames.shape
    name = next(n for n, order in video.MODELS.items() if order == model.order)
    t0 = time.perf_counter()
    blob = container.encode_video(model, frames, name, "", channels, group)
    t1 = time.perf_counter()
    x_hat = torch.cat(list(container.decode_video(blob, model)))  # on one thread, bit-exact
    t2 = time.perf_counter()
    rgb = data.to_uint8(frames).permute(0, 2, 3, 1).numpy()
    rgb_hat = data.to_uint8(x_hat).permute(0, 2, 3, 1).numpy()
    raw = channels * f * -(-h // video.STRIDE) * -(-w // video.STRIDE)
    return {"channels": channels, "bytes": len(blob), "bpp": 8 * len(blob) / (f * h * w),
            "raw_bpp": raw / (f * h * w),
            "psnr_rgb": float(np.mean(_psnr8(rgb, rgb_hat))),
            "psnr_y": float(np.mean(_psnr8(luma(rgb), luma(rgb_hat)))),
            "encoding_time": (t1 - t0) / f, "decoding_time": (t2 - t1) / f}


def codec_curve(model: video.BinaryVideoCodec, frames: torch.Tensor, name: str,
                channels: Sequence[int] | None = None, group: int = 8,
                metric: str = "rgb") -> RDCurve:
    """The codec's curve on one clip: :func:`code_clip` at each number of kept channels
    (default: the model's :meth:`~nctutor.codecs.video.BinaryVideoCodec.channel_steps`).

    Defined in book section *A binary video codec with delta-sigma modulation → Against H.264
    and H.265*.
    """
    channels = list(channels or model.channel_steps())
    records = [code_clip(model, frames, k, group) for k in channels]
    return RDCurve(name=name, bpp=[r["bpp"] for r in records],
                   psnr=[r["psnr_rgb" if metric == "rgb" else "psnr_y"] for r in records],
                   qualities=channels, encoding_time=[r["encoding_time"] for r in records],
                   decoding_time=[r["decoding_time"] for r in records], records=records)


@torch.no_grad()
def noise_shaping(model: video.BinaryVideoCodec, frames: torch.Tensor, group: int = 8) -> dict:
    """The temporal spectra of the quantization error on the codes of a trained codec.

    For every group of ``frames`` and every code (channel, position): ``c`` the encoder's code,
    ``y`` the modulator's state and ``b`` its bit. Returns the mean periodogram over the ``group``
    frequencies ``k/group`` (``k`` = 0 … group/2) of ``e = b − y`` (Eq. (B.2), the quantizer's own
    error) and of ``n = b − c`` (what the decoder must remove; Eq. (B.3): ``n = (1 − z⁻¹)ⁿ e``),
    each normalized to total power 1 (white noise: flat), with the lag-1 autocorrelation of
    ``e`` (0 for white noise), the mean ``|c|`` and the share of ``|y| > 1`` (the modulator
    driven beyond the quantizer's range). Order 0 has ``y = c``. Defined in book section *A
    binary video codec with delta-sigma modulation → Noise shaping on trained codes*.
    """
    es, ns, cs, ys = [], [], [], []
    model.eval()
    for first in range(0, len(frames) - group + 1, group):
        x = pad(frames[first : first + group], video.STRIDE)[None]
        c = model.codes(x)  # (1, C, T, h, w)
        if model.order == 0:
            b, y = model.binarize(c), c
        else:
            b, y = modulate(c, model.order, dim=2, return_states=True)
        move = (lambda t: t[0].movedim(1, -1).reshape(-1, group))  # noqa: E731
        es.append(move(b - y))
        ns.append(move(b - c))
        cs.append(move(c))
        ys.append(move(y))
    if not es:
        raise ValueError(f"need at least {group} frames, got {len(frames)}")
    e, n, c, y = (torch.cat(v).double() for v in (es, ns, cs, ys))

    def spectrum(v: torch.Tensor) -> list[float]:
        p = torch.fft.rfft(v, dim=1).abs().square().mean(0)
        return (p / p.sum()).tolist()

    e0 = e - e.mean(1, keepdim=True)
    lag1 = float((e0[:, 1:] * e0[:, :-1]).mean() / e0.square().mean())
    return {"order": model.order, "frequencies": [k / group for k in range(group // 2 + 1)],
            "spectrum_e": spectrum(e), "spectrum_n": spectrum(n), "lag1_e": lag1,
            "mean_abs_c": float(c.abs().mean()), "overload": float((y.abs() > 1).double().mean())}


def ntf_spectrum(order: int, group: int = 8) -> list[float]:
    """``|1 − e^{−jω}|^{2·order}`` at the frequencies of :func:`noise_shaping`, normalized like
    its spectra: what white ``e`` would give (Eq. (B.4)). Defined in book section *A binary video
    codec with delta-sigma modulation → Noise shaping on trained codes*.
    """
    w = 2 * np.pi * np.arange(group // 2 + 1) / group
    p = np.abs(1 - np.exp(-1j * w)) ** (2 * order)
    return (p / p.sum()).tolist()


def run(models: dict[str, video.BinaryVideoCodec], clips: Sequence[str] = tuple(TEST_CLIPS),
        frames: int | None = None, group: int = 8, crfs: Sequence[float] | None = None,
        progress: bool = True) -> dict:
    """The chapter's measurements: every model's curve (RGB and Y PSNR) and x264/x265's on each
    clip (its first ``frames`` frames, cut to whole groups), and the noise shaping of each model
    on the first clip. Returns a JSON-able record. Defined in book section *A binary video codec
    with delta-sigma modulation → Against H.264 and H.265*.
    """
    from tqdm.auto import tqdm

    record: dict = {"group": group, "clips": {}, "noise": {}}
    for clip in tqdm(clips, disable=not progress, desc="clips"):
        x = data.clip_frames(clip, 0, frames)
        x = x[: len(x) - len(x) % group]
        entry = {"frames": len(x), "size": list(x.shape[-2:]), "motion": TEST_CLIPS.get(clip, ""),
                 "curves": {}}
        for name, model in models.items():
            entry["curves"][name] = _as_dict(codec_curve(model, x, name, group=group))
        for codec in ("x264", "x265"):
            entry["curves"][codec] = _as_dict(anchor_curve(x, codec, crfs or ANCHOR_CRFS,
                                                           gop=group))
        record["clips"][clip] = entry
        if clip == clips[0]:
            record["noise"] = {name: noise_shaping(m, x, group) for name, m in models.items()}
    return record


def tables(record: dict, metric: str = "psnr_rgb") -> dict[str, dict[str, dict]]:
    """BD-rate (%) of each learned curve against x264 and x265, per clip: ``{clip: {model:
    {"x264": …, "x265": …}}}`` (``None`` where the curves do not overlap enough).

    ``metric`` is ``"psnr_rgb"`` or ``"psnr_y"``; on Y, the anchors are scored like the learned
    codec, on the Y of their decoded RGB frames (``psnr_y_via_rgb``), not on their decoded Y
    planes (the field's figure, up to 1.8 dB higher at high rates: 4:2:0 and the conversions).
    Defined in book section *A binary video codec with delta-sigma modulation → Against H.264
    and H.265*.
    """
    out = {}
    for clip, entry in record["clips"].items():
        curves = {k: _curve(k, v, metric) for k, v in entry["curves"].items()}
        out[clip] = {}
        for name, c in curves.items():
            if name in ("x264", "x265"):
                continue
            row = {}
            for anchor in ("x264", "x265"):
                with warnings.catch_warnings():  # bjontegaard warns, then gives nan
                    warnings.simplefilter("ignore")
                    try:
                        value = bd_rate(curves[anchor], c)
                    except ValueError:
                        value = math.nan
                row[anchor] = None if math.isnan(value) else value
            out[clip][name] = row
    return out


def rate_ratio(ours: dict, anchor: dict, metric: str = "psnr_rgb") -> list[float | None]:
    """For each point of the curve ``ours`` (a record curve of :func:`run`), its rate over the
    rate the ``anchor`` curve needs for the same quality (log-rate interpolated between the
    anchor's points); ``None`` outside the anchor's quality range. A ratio of 3 means the anchor
    needs a third of our bits. Unlike a Bjøntegaard delta it needs no overlap of whole curves.
    Defined in book section *A binary video codec with delta-sigma modulation → Against H.264
    and H.265*.
    """
    m = "psnr_y_via_rgb" if metric == "psnr_y" else metric
    pts = sorted((r[m], math.log(r["bpp"])) for r in anchor["records"])
    q, logr = [p[0] for p in pts], [p[1] for p in pts]
    return [float(r["bpp"] / math.exp(np.interp(r[metric], q, logr)))
            if q[0] <= r[metric] <= q[-1] else None for r in ours["records"]]


def _as_dict(c: RDCurve) -> dict:
    return {"name": c.name, "qualities": list(c.qualities or []), "records": c.records,
            "description": c.description}


def _curve(name: str, d: dict, metric: str) -> RDCurve:
    recs = d["records"]
    if metric == "psnr_y" and name in ("x264", "x265"):
        metric = "psnr_y_via_rgb"
    return RDCurve(name=name, bpp=[r["bpp"] for r in recs], psnr=[r[metric] for r in recs])
