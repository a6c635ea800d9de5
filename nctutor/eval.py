"""Evaluating image codecs: metrics, Bjøntegaard deltas, published curves, classic anchors.

Chapter *Transform coding with learned priors* (section *Evaluation*), applied in the notebook
*Rate-distortion curves of three learned codecs* (``notebooks/02_rd_curves``). One protocol for
every codec, learned or classic, the one CompressAI publishes its Kodak results with:

- every image is encoded **to real bytes** and decoded again; the rate is ``8·bytes / pixels``
  (:func:`bpp`), never an estimate from likelihoods;
- quality is measured on the **8-bit** decoded image, as a decoder writes it to disk: both
  images are rounded to ``uint8`` first (:func:`psnr`, :func:`ms_ssim`, RGB, peak 255);
- a curve point is the **mean** bpp and the **mean** PSNR over the images at one setting
  (CompressAI's convention: the mean of per-image PSNRs, not the PSNR of the mean MSE);
- curves are compared by Bjøntegaard deltas (:func:`bd_rate`, :func:`bd_psnr`) computed with the
  ``bjontegaard`` package (Akima interpolation by default).

The classic codecs (:func:`classic_anchor`) are measured live through Pillow and pillow-heif on
the same images, so that a learned codec is always compared with anchors run here, next to the
published curves shipped in ``nctutor/reference`` (:func:`reference_curve`).
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import to_uint8

#: Where the packaged reference curves live (JSON files, see its README.md).
REFERENCE_DIR = Path(__file__).with_name("reference")

#: The file of classic codecs measured with Pillow on the 24 Kodak images (mean bpp, mean PSNR).
CLASSIC_REFERENCE = "classic-kodak-pillow"

#: Default quality sweeps of :func:`classic_anchor`, each covering roughly 0.1–3 bpp on Kodak.
#: JPEG, WebP and AVIF use the settings of ``classic-kodak-pillow.json`` (found by re-measuring
#: it on the 24 images: the means agree to every printed digit). HEIF's quality scale is steeper
#: (that file's sweep reaches 6 bpp), so it gets its own. For JPEG 2000 the numbers are
#: compression ratios (``quality_mode="rates"``): 24 bits per RGB pixel / ratio = the target bpp.
DEFAULT_QUALITIES: dict[str, tuple[float, ...]] = {
    "jpeg": (10, 20, 35, 50, 70, 85, 95),
    "webp": (5, 15, 30, 50, 70, 85, 95),
    "avif": (10, 25, 40, 55, 70, 85, 95),
    "heic": (10, 20, 30, 40, 50, 60, 70),
    "jpeg2000": (240, 120, 60, 40, 24, 16, 8),
}

CLASSIC_CODECS = tuple(DEFAULT_QUALITIES)

#: Smallest image side MS-SSIM accepts: 5 scales of an 11-tap window need a side > (11-1)·2⁴.
MS_SSIM_MIN_SIDE = 161


# --------------------------------------------------------------------------- curves


@dataclass
class RDCurve:
    """A rate-distortion curve: one point per setting (quality, λ, compression ratio).

    Attributes:
        name: label of the curve (legend of :func:`rd_plot`).
        bpp: mean bits per pixel of each point.
        psnr: mean RGB PSNR (dB, 8-bit) of each point.
        ms_ssim: mean RGB MS-SSIM of each point (``None`` when unknown).
        qualities: the codec setting of each point (``None`` when unknown).
        encoding_time: mean encoding seconds per image of each point (``None`` when unknown).
        decoding_time: mean decoding seconds per image of each point (``None`` when unknown).
        records: one dict per (image, point) with the per-image measurements.
        description: free text (codec version, settings) written to JSON.

    Defined in book section *Transform coding with learned priors → Evaluation*; used throughout
    the notebook *Rate-distortion curves of three learned codecs*.
    """

    name: str
    bpp: list[float]
    psnr: list[float]
    ms_ssim: list[float] | None = None
    qualities: list | None = None
    encoding_time: list[float] | None = None
    decoding_time: list[float] | None = None
    records: list[dict] = field(default_factory=list)
    description: str = ""

    def __post_init__(self) -> None:
        self.bpp = [float(v) for v in self.bpp]
        self.psnr = [float(v) for v in self.psnr]
        if len(self.bpp) != len(self.psnr):
            raise ValueError(
                f"curve {self.name!r}: {len(self.bpp)} bpp values but {len(self.psnr)} PSNR values"
            )
        for key in ("ms_ssim", "qualities", "encoding_time", "decoding_time"):
            values = getattr(self, key)
            if values is not None and len(values) != len(self.bpp):
                raise ValueError(
                    f"curve {self.name!r}: {len(values)} {key} values for {len(self.bpp)} points"
                )

    def __len__(self) -> int:
        return len(self.bpp)


def join(curves: Sequence[RDCurve], name: str, description: str = "") -> RDCurve:
    """Join single points (e.g. one :func:`evaluate_model` per quality) into one curve.

    Points are sorted by rate; optional columns are kept only where every curve has them.
    Used in the notebook *Rate-distortion curves of three learned codecs → Learned codecs: train or
    load, then encode to bytes*.
    """
    if not curves:
        raise ValueError("join needs at least one curve")
    rows = [(c, i) for c in curves for i in range(len(c))]
    rows.sort(key=lambda r: r[0].bpp[r[1]])

    def column(key: str) -> list | None:
        if any(getattr(c, key) is None for c in curves):
            return None
        return [getattr(c, key)[i] for c, i in rows]

    return RDCurve(
        name=name,
        bpp=[c.bpp[i] for c, i in rows],
        psnr=[c.psnr[i] for c, i in rows],
        ms_ssim=column("ms_ssim"),
        qualities=column("qualities"),
        encoding_time=column("encoding_time"),
        decoding_time=column("decoding_time"),
        records=[r for c in curves for r in c.records],
        description=description,
    )


def _as_curve(curve: RDCurve | Mapping, what: str = "curve") -> RDCurve:
    """Accept an :class:`RDCurve`, a dict ``{"bpp", "psnr"[, "ms_ssim"]}`` or CompressAI's
    ``{"bpp", "psnr-rgb", "ms-ssim-rgb"}`` (optionally wrapped in ``{"name", "results"}``)."""
    if isinstance(curve, RDCurve):
        return curve
    if not isinstance(curve, Mapping):
        raise TypeError(f"{what} must be an RDCurve or a dict with 'bpp' and 'psnr', "
                        f"not {type(curve).__name__}")
    name = str(curve.get("name", what))
    res = curve.get("results", curve)
    if "bpp" not in res:
        raise ValueError(f"{what} has no 'bpp' (keys: {sorted(res)})")
    psnr_values = res.get("psnr", res.get("psnr-rgb"))
    if psnr_values is None:
        raise ValueError(f"{what} has no 'psnr' or 'psnr-rgb' (keys: {sorted(res)})")
    return RDCurve(name=name, bpp=list(res["bpp"]), psnr=list(psnr_values),
                   ms_ssim=res.get("ms_ssim", res.get("ms-ssim-rgb")))


# --------------------------------------------------------------------------- metrics


def _check_pair(x: torch.Tensor, x_hat: torch.Tensor) -> None:
    for arg, t in (("x", x), ("x_hat", x_hat)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{arg} must be a torch.Tensor, not {type(t).__name__}")
        if t.dim() not in (3, 4) or t.shape[-3] != 3:
            raise ValueError(f"{arg} must have shape (3, H, W) or (N, 3, H, W), got "
                             f"{tuple(t.shape)}")
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat differ in shape: {tuple(x.shape)} vs {tuple(x_hat.shape)}")


def _rounded(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` float64 in [0, 1] on the 8-bit grid (uint8 input is taken as is)."""
    q = x if x.dtype == torch.uint8 else to_uint8(x)
    q = q.to(torch.float64).div(255.0)
    return q if q.dim() == 4 else q.unsqueeze(0)


def psnr(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """RGB PSNR in dB of the 8-bit rounded images: ``10·log10(1 / MSE)`` on ``[0, 1]``.

    Both images are rounded to ``uint8`` first (what a decoder writes), as CompressAI's
    evaluation does. ``x`` and ``x_hat`` are float tensors in ``[0, 1]`` (or uint8) of the same
    shape ``(3, H, W)`` or ``(N, 3, H, W)``; for a batch the result is the *mean of the
    per-image PSNRs*. Identical images (MSE 0) give ``float("inf")``.
    Defined in book section *Transform coding with learned priors → Evaluation*.
    """
    _check_pair(x, x_hat)
    mse = (_rounded(x) - _rounded(x_hat)).pow(2).flatten(1).mean(1)
    values = [math.inf if m == 0 else -10.0 * math.log10(m) for m in mse.tolist()]
    return float(np.mean(values))


def ms_ssim(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """RGB MS-SSIM (Wang et al. 2003) of the 8-bit rounded images, via ``pytorch_msssim``.

    Same inputs and rounding as :func:`psnr` (``data_range=1`` on the rounded values, the same
    as CompressAI's ``data_range=255`` on 0..255); a batch gives the mean over its images.
    MS-SSIM's five scales need both sides of at least :data:`MS_SSIM_MIN_SIDE` (161) pixels.
    Defined in book section *Transform coding with learned priors → Evaluation*.
    """
    from pytorch_msssim import ms_ssim as _ms_ssim

    _check_pair(x, x_hat)
    h, w = x.shape[-2:]
    if min(h, w) < MS_SSIM_MIN_SIDE:
        raise ValueError(f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE}×"
                         f"{MS_SSIM_MIN_SIDE} pixels (5 scales, 11-tap window); got {h}×{w}")
    a, b = _rounded(x).float(), _rounded(x_hat).float()
    return float(_ms_ssim(a, b, data_range=1.0, size_average=False).mean())


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on the decibel scale used in RD plots: ``−10·log10(1 − MS-SSIM)``.

    Defined in book section *Transform coding with learned priors → Evaluation* (point 2).
    """
    return math.inf if value >= 1 else -10.0 * math.log10(1.0 - value)


def bpp(num_bytes: int, height: int, width: int) -> float:
    """Bits per pixel of a bitstream of ``num_bytes`` bytes for a ``height``×``width`` image.

    ``8·num_bytes / (height·width)``: the real size of everything the decoder needs.
    Defined in book section *Transform coding with learned priors → Evaluation*.
    """
    for arg, v in (("num_bytes", num_bytes), ("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{arg} must be an integer, not {type(v).__name__}")
    if num_bytes < 0:
        raise ValueError(f"num_bytes must be >= 0, got {num_bytes}")
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height}×{width}")
    return 8.0 * num_bytes / (height * width)


# --------------------------------------------------------------------------- Bjøntegaard deltas


def _metric_values(c: RDCurve, metric: str) -> list[float]:
    if metric == "psnr":
        return c.psnr
    if metric == "ms_ssim":
        if c.ms_ssim is None:
            raise ValueError(f"curve {c.name!r} has no MS-SSIM values")
        return [ms_ssim_db(v) for v in c.ms_ssim]
    raise ValueError(f"metric must be 'psnr' or 'ms_ssim', not {metric!r}")


def _bd(kind: str, anchor, test, metric: str, method: str, min_overlap: float) -> float:
    import bjontegaard

    a, t = _as_curve(anchor, "anchor"), _as_curve(test, "test")
    for c in (a, t):
        if len(c) < 2:
            raise ValueError(f"curve {c.name!r} needs at least 2 points, has {len(c)}")
        if min(c.bpp) <= 0:
            raise ValueError(f"curve {c.name!r} has a rate <= 0: {c.bpp}")
    # Interpolation needs rates in increasing order.
    sa, st = np.argsort(a.bpp), np.argsort(t.bpp)
    fn = bjontegaard.bd_rate if kind == "rate" else bjontegaard.bd_psnr
    return float(fn(np.asarray(a.bpp)[sa], np.asarray(_metric_values(a, metric))[sa],
                    np.asarray(t.bpp)[st], np.asarray(_metric_values(t, metric))[st],
                    method=method, require_matching_points=False, min_overlap=min_overlap))


def bd_rate(anchor: RDCurve | Mapping, test: RDCurve | Mapping, metric: str = "psnr",
            method: str = "akima", min_overlap: float = 0.75) -> float:
    """Bjøntegaard-delta rate (%): the mean rate change of ``test`` w.r.t. ``anchor`` at equal
    quality, negative = ``test`` saves bits (Bjøntegaard, VCEG-M33, 2001).

    Both curves are interpolated as log10(rate) against quality (``method``: ``"akima"``,
    ``"pchip"`` or ``"cubic"``), the difference is averaged over the quality range they share,
    and ``(10^Δ − 1)·100`` is returned. ``metric="ms_ssim"`` uses MS-SSIM in dB
    (:func:`ms_ssim_db`). Curves are :class:`RDCurve` or dicts ``{"bpp": [...], "psnr": [...]}``
    (CompressAI's ``"psnr-rgb"`` keys work too). Computed by the ``bjontegaard`` package, which
    warns when the shared range is under ``min_overlap`` of the union (0 silences it).
    Defined in book section *Transform coding with learned priors → Evaluation*.
    Used in the notebook *Rate-distortion curves of three learned codecs → Bjøntegaard-delta rates
    against JPEG*.
    """
    return _bd("rate", anchor, test, metric, method, min_overlap)


def bd_psnr(anchor: RDCurve | Mapping, test: RDCurve | Mapping, metric: str = "psnr",
            method: str = "akima", min_overlap: float = 0.75) -> float:
    """Bjøntegaard-delta PSNR (dB): the mean quality gain of ``test`` over ``anchor`` at equal
    rate, both interpolated as quality against log10(rate) over their shared rate range.

    Same arguments as :func:`bd_rate`; with ``metric="ms_ssim"`` the result is in MS-SSIM dB.
    The companion of :func:`bd_rate` in book section *Transform coding with learned priors →
    Evaluation*, which quotes only BD-rates; no page calls it.
    """
    return _bd("psnr", anchor, test, metric, method, min_overlap)


# --------------------------------------------------------------------------- reference curves


def reference_names() -> list[str]:
    """Names accepted by :func:`reference_curve`: the packaged CompressAI Kodak results
    (``"jpeg"``, ``"compressai-mbt2018-mean_mse_cpu"``, …) and the live-measured classic codecs
    ``"classic-kodak-pillow/<codec>"``.
    Lists the published curves of book section *Transform coding with learned priors →
    Evaluation*; no page calls it.
    """
    names = sorted(p.stem for p in REFERENCE_DIR.glob("*.json") if p.stem != CLASSIC_REFERENCE)
    classic = json.loads((REFERENCE_DIR / f"{CLASSIC_REFERENCE}.json").read_text())
    return names + [f"{CLASSIC_REFERENCE}/{codec}" for codec in classic]


def reference_curve(name: str) -> RDCurve:
    """A published Kodak curve shipped with nctutor (mean bpp, RGB PSNR, MS-SSIM per point).

    ``name`` is one of :func:`reference_names`, e.g. ``"compressai-mbt2018-mean_mse_cpu"``
    (CompressAI's pretrained mean-scale hyperprior, MSE-trained, decoded on CPU), ``"vtm"`` or
    ``"classic-kodak-pillow/jpeg"``. CompressAI's files read
    ``{"name", "description", "results": {"bpp", "psnr-rgb", "ms-ssim-rgb", …}}``.
    Defined in book section *Transform coding with learned priors → Evaluation*.
    Used in the notebook *Rate-distortion curves of three learned codecs → Published curves*.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, not {type(name).__name__}")
    key = name.removesuffix(".json")
    if key.startswith(CLASSIC_REFERENCE + "/"):
        codec = key.split("/", 1)[1]
        table = json.loads((REFERENCE_DIR / f"{CLASSIC_REFERENCE}.json").read_text())
        if codec not in table:
            raise ValueError(f"unknown reference {name!r}; known: {', '.join(reference_names())}")
        res = table[codec]
        return RDCurve(name=f"{codec.upper()} (Pillow, Kodak)", bpp=res["bpp"],
                       psnr=res["psnr-rgb"], ms_ssim=res.get("ms-ssim-rgb"),
                       description="classic-kodak-pillow.json: Pillow 13.0.0, pillow-heif 1.8.1")
    file = REFERENCE_DIR / f"{key}.json"
    if "/" in key or not file.is_file():
        raise ValueError(f"unknown reference {name!r}; known: {', '.join(reference_names())}")
    doc = json.loads(file.read_text())
    res = doc["results"]
    if "psnr-rgb" not in res:
        raise ValueError(f"reference {name!r} has no RGB PSNR (keys: {sorted(res)})")
    return RDCurve(name=doc.get("name", key), bpp=res["bpp"], psnr=res["psnr-rgb"],
                   ms_ssim=res.get("ms-ssim-rgb"), encoding_time=res.get("encoding_time"),
                   decoding_time=res.get("decoding_time"),
                   description=doc.get("description", ""))


# --------------------------------------------------------------------------- classic anchors


def _image_list(images) -> list[tuple[str, torch.Tensor]]:
    """``(name, (3, H, W) float image)`` pairs from an ImageSet or a sequence of tensors."""
    if isinstance(images, torch.Tensor):
        if images.dim() == 3:
            images = [images]
        elif images.dim() != 4:
            raise ValueError(f"images must be (3, H, W) or (N, 3, H, W), got {tuple(images.shape)}")
    names = getattr(images, "names", None)
    out = []
    for i in range(len(images)):
        x = images[i]
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[0] != 3:
            raise ValueError(f"image {i} must be a (3, H, W) tensor, got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        out.append((names[i] if names is not None else str(i), x))
    if not out:
        raise ValueError("no images to evaluate")
    return out


def available_codecs() -> dict[str, bool]:
    """Which classic codecs :func:`classic_anchor` can run here (Pillow / pillow-heif builds).

    Used in the notebook *Rate-distortion curves of three learned codecs → Classic anchors, measured
    live*.
    """
    from PIL import features

    try:
        import pillow_heif

        heic = "x265" in pillow_heif.libheif_info().get("encoders", {})
    except ImportError:
        heic = False
    return {"jpeg": features.check("jpg"), "webp": features.check("webp"),
            "jpeg2000": features.check("jpg_2000"), "avif": features.check("avif"), "heic": heic}


def _encode(codec: str, image, quality: float) -> bytes:
    """Encode a PIL RGB image in memory with the codec's library defaults but ``quality``."""
    buf = io.BytesIO()
    if codec == "jpeg":  # libjpeg(-turbo), 4:2:0 chroma subsampling (Pillow's default)
        image.save(buf, format="JPEG", quality=int(quality))
    elif codec == "webp":  # libwebp lossy, method 4
        image.save(buf, format="WEBP", quality=int(quality))
    elif codec == "avif":  # libavif (AOM), 4:2:0, speed 6
        image.save(buf, format="AVIF", quality=int(quality))
    elif codec == "heic":  # libheif + x265 (HEVC intra), 4:2:0
        image.save(buf, format="HEIF", quality=int(quality))
    elif codec == "jpeg2000":  # OpenJPEG, one layer at compression ratio `quality`
        # Pillow's defaults are the lossless set-up (5/3 wavelet, no colour transform): lossy
        # JPEG 2000 wants the 9/7 wavelet and the YCbCr transform (mct=1, ≈3 dB here).
        image.save(buf, format="JPEG2000", quality_mode="rates", quality_layers=[float(quality)],
                   irreversible=True, mct=1)
    else:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CLASSIC_CODECS)}")
    return buf.getvalue()


def _decode(data: bytes) -> torch.Tensor:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(a.copy()).permute(2, 0, 1)


def _record(name: str, x8: torch.Tensor, x_hat8: torch.Tensor, num_bytes: int,
            enc_s: float, dec_s: float, with_ms_ssim: bool = True, **extra) -> dict:
    h, w = x8.shape[-2:]
    rec = {"image": name, **extra, "bytes": num_bytes, "bpp": bpp(num_bytes, h, w),
           "psnr": psnr(x8, x_hat8), "encoding_time": enc_s, "decoding_time": dec_s}
    if with_ms_ssim:
        rec["ms_ssim"] = ms_ssim(x8, x_hat8) if min(h, w) >= MS_SSIM_MIN_SIDE else math.nan
    return rec


def _mean_curve(name: str, records: list[dict], key: str, settings: list,
                description: str) -> RDCurve:
    keys = ["bpp", "psnr", "encoding_time", "decoding_time"]
    if all("ms_ssim" in r for r in records):
        keys.append("ms_ssim")
    cols: dict[str, list[float]] = {k: [] for k in keys}
    for s in settings:
        rows = [r for r in records if r[key] == s]
        for k, v in cols.items():
            v.append(float(np.mean([r[k] for r in rows])))
    return RDCurve(name=name, bpp=cols["bpp"], psnr=cols["psnr"], ms_ssim=cols.get("ms_ssim"),
                   qualities=list(settings), encoding_time=cols["encoding_time"],
                   decoding_time=cols["decoding_time"], records=records,
                   description=description)


def classic_anchor(codec: str, images, qualities: Sequence[float] | None = None,
                   name: str | None = None, with_ms_ssim: bool = True) -> RDCurve:
    """Measure a classic codec live on ``images``: encode to bytes, decode, score.

    ``codec`` is ``"jpeg"``, ``"webp"``, ``"jpeg2000"``, ``"avif"`` (all through Pillow) or
    ``"heic"`` (HEVC intra through pillow-heif and x265). ``qualities`` is the sweep (default
    :data:`DEFAULT_QUALITIES`: Pillow quality 0..100, for JPEG 2000 compression ratios). Each
    ``(3, H, W)`` image (an :class:`nctutor.data.ImageSet` or any sequence of tensors) is rounded
    to 8 bits, encoded in memory with the library's defaults, decoded, and scored: bpp from the
    real bytes, PSNR and MS-SSIM (``nan`` for images under 161 pixels a side; skipped, and the
    curve's ``ms_ssim`` left ``None``, with ``with_ms_ssim=False``) of the decoded image. The
    curve holds the mean over the images at each quality (CompressAI's convention) and
    ``records`` the per-image values.
    Defined in book section *Transform coding with learned priors → Evaluation*.
    Used in the notebook *Rate-distortion curves of three learned codecs → Classic anchors, measured
    live*.
    """
    from PIL import Image

    if codec not in DEFAULT_QUALITIES:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CLASSIC_CODECS)}")
    if not available_codecs()[codec]:
        raise RuntimeError(f"codec {codec!r} is not available in this Pillow/pillow-heif build")
    if codec == "heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
    qualities = list(DEFAULT_QUALITIES[codec] if qualities is None else qualities)
    if not qualities:
        raise ValueError("qualities must not be empty")
    records = []
    for img_name, x in _image_list(images):
        x8 = to_uint8(x)
        pil = Image.fromarray(x8.permute(1, 2, 0).cpu().numpy(), mode="RGB")
        for q in qualities:
            t0 = time.perf_counter()
            data = _encode(codec, pil, q)
            t1 = time.perf_counter()
            x_hat8 = _decode(data)
            t2 = time.perf_counter()
            records.append(_record(img_name, x8, x_hat8, len(data), t1 - t0, t2 - t1,
                                   with_ms_ssim, quality=q))
    from PIL import __version__ as pil_version

    return _mean_curve(name or codec.upper(), records, "quality", qualities,
                       f"{codec} measured live with Pillow {pil_version}")


# --------------------------------------------------------------------------- learned codecs


def _pad(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Zero-pad ``(N, C, H, W)`` to multiples of ``stride``, centred (as CompressAI's eval)."""
    h, w = x.shape[-2:]
    ph, pw = -h % stride, -w % stride
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)  # left, right, top, bottom
    return F.pad(x, pad, mode="constant", value=0.0), pad


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, images, name: str = "model",
                   stride: int | None = None, quality: float | None = None) -> RDCurve:
    """Evaluate a CompressAI-style learned codec on ``images`` with real bitstreams.

    For each image: zero-pad (centred) to a multiple of ``stride`` (default: the model's
    ``downsampling_factor``, else 64), ``model.compress`` → strings, ``model.decompress`` →
    reconstruction, crop back, round to 8 bits. The rate is ``8·(bytes of all strings)/pixels``
    of the *original* image; PSNR and MS-SSIM are those of the 8-bit decoded image; encoding and
    decoding seconds are wall-clock. ``model.update()`` is called first (a no-op when the entropy
    coder's tables already exist) and the model is put in eval mode. Returns a one-point
    :class:`RDCurve` (mean over images, ``records`` per image, ``qualities=[quality]``); join the
    points of several qualities with :func:`join`.
    Defined in book section *Transform coding with learned priors → How this book uses them*
    (the protocol of its section *Evaluation*); used in the notebook *Rate-distortion curves of
    three learned codecs → Learned codecs: train or load, then encode to bytes*.
    """
    if not hasattr(model, "compress") or not hasattr(model, "decompress"):
        raise TypeError("model must have compress() and decompress() (a CompressAI model)")
    stride = int(stride or getattr(model, "downsampling_factor", 64))
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    model.eval()
    if hasattr(model, "update"):
        model.update()
    dev = next(model.parameters()).device
    records = []
    for img_name, x in _image_list(images):
        x = x.to(dev)[None]
        h, w = x.shape[-2:]
        x_pad, (left, _, top, _) = _pad(x, stride)
        _sync(dev)
        t0 = time.perf_counter()
        enc = model.compress(x_pad)
        _sync(dev)
        t1 = time.perf_counter()
        out = model.decompress(enc["strings"], enc["shape"])
        _sync(dev)
        t2 = time.perf_counter()
        x_hat = out["x_hat"][..., top : top + h, left : left + w]
        num_bytes = sum(len(s) for group in enc["strings"] for s in group)
        records.append(_record(img_name, to_uint8(x[0]).cpu(), to_uint8(x_hat[0]).cpu(),
                               num_bytes, t1 - t0, t2 - t1, quality=quality))
    return _mean_curve(name, records, "quality", [quality], f"{name}: real bitstreams")


def to_compressai_json(curve: RDCurve, file: str | os.PathLike | None = None,
                       description: str | None = None) -> dict:
    """The curve in CompressAI's results format, written to ``file`` when given.

    ``{"name", "description", "results": {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time",
    "decoding_time"}}`` (columns the curve lacks are left out), the format of
    ``compressai.utils.eval_model`` and of the files in ``nctutor/reference``: such a file loads
    back with :func:`load_json` and plots beside the published curves.
    Defined in book section *Transform coding with learned priors → How this book uses them*; used
    in the notebook *Rate-distortion curves of three learned codecs → Saving the results in
    CompressAI's format*.
    """
    curve = _as_curve(curve)
    results: dict[str, list[float]] = {"bpp": list(curve.bpp), "psnr-rgb": list(curve.psnr)}
    for key, col in (("ms-ssim-rgb", curve.ms_ssim), ("encoding_time", curve.encoding_time),
                     ("decoding_time", curve.decoding_time)):
        if col is not None:
            results[key] = [float(v) for v in col]
    doc = {"name": curve.name,
           "description": curve.description if description is None else description,
           "results": results}
    if file is not None:
        Path(file).write_text(json.dumps(doc, indent=2))
    return doc


def load_json(file: str | os.PathLike) -> RDCurve:
    """Read a CompressAI-style results JSON (as written by :func:`to_compressai_json`).

    Used in the notebook *Rate-distortion curves of three learned codecs → Saving the results in
    CompressAI's format*.
    """
    doc = json.loads(Path(file).read_text())
    res = doc.get("results", {})
    if "bpp" not in res or "psnr-rgb" not in res:
        raise ValueError(f"{file} is not a CompressAI results file (results keys: {sorted(res)})")
    return RDCurve(name=doc.get("name", Path(file).stem), bpp=res["bpp"], psnr=res["psnr-rgb"],
                   ms_ssim=res.get("ms-ssim-rgb"), encoding_time=res.get("encoding_time"),
                   decoding_time=res.get("decoding_time"),
                   description=doc.get("description", ""))


# --------------------------------------------------------------------------- plots


def rd_plot(curves: Sequence[RDCurve | Mapping], metric: str = "psnr", ax=None):
    """Rate-distortion plot: bpp on x, one line with markers per curve, legend, grid.

    ``metric``: ``"psnr"`` (dB), ``"ms_ssim"`` (MS-SSIM in dB, :func:`ms_ssim_db`) or
    ``"ms_ssim_raw"``. Draws on ``ax`` (a new figure when ``None``) and returns the axes.
    Listed in book section *Transform coding with learned priors → How this book uses them*; used in
    the notebook *Rate-distortion curves of three learned codecs → The rate-distortion plot*.
    """
    import matplotlib.pyplot as plt

    labels = {"psnr": "PSNR (RGB) [dB]", "ms_ssim": "MS-SSIM (RGB) [dB]",
              "ms_ssim_raw": "MS-SSIM (RGB)"}
    if metric not in labels:
        raise ValueError(f"metric must be one of {', '.join(labels)}, not {metric!r}")
    if isinstance(curves, (RDCurve, Mapping)):
        curves = [curves]
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
    for c in curves:
        c = _as_curve(c)
        order = np.argsort(c.bpp)
        if metric == "psnr":
            y = c.psnr
        elif metric == "ms_ssim":
            y = _metric_values(c, "ms_ssim")
        else:
            if c.ms_ssim is None:
                raise ValueError(f"curve {c.name!r} has no MS-SSIM values")
            y = c.ms_ssim
        ax.plot(np.asarray(c.bpp)[order], np.asarray(y)[order], marker="o", markersize=4,
                label=c.name)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(labels[metric])
    ax.grid(True, alpha=0.4)
    ax.legend()
    return ax
