"""Rate-distortion curves: the curve type, Bjøntegaard deltas, CompressAI's JSON, plots.

Chapter *Transform coding with learned priors*, section *Evaluation*. A curve point is the
**mean** bpp and the **mean** PSNR over the images at one setting (CompressAI's convention: the
mean of per-image PSNRs, not the PSNR of the mean MSE); curves are compared by Bjøntegaard
deltas (:func:`bd_rate`, :func:`bd_psnr`) computed with the ``bjontegaard`` package (Akima
interpolation by default).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..files import atomic_write
from .metrics import ms_ssim_db

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


def from_compressai_json(doc: Mapping, name: str = "curve") -> RDCurve:
    """An :class:`RDCurve` from CompressAI's results format, the one parser of it in nctutor.

    Accepts ``{"name", "description", "results": {"bpp", "psnr-rgb", "ms-ssim-rgb",
    "encoding_time", "decoding_time"}}`` (the format of ``compressai.utils.eval_model`` and of
    the files in ``nctutor/reference``), the bare ``results`` dict, or nctutor's own keys
    ``{"bpp", "psnr", "ms_ssim"}``. ``name`` is used when the document has none.
    Defined in book section *Transform coding with learned priors → Evaluation*; no page calls it.
    """
    if not isinstance(doc, Mapping):
        raise TypeError(f"{name} must be a dict with 'bpp' and 'psnr-rgb', "
                        f"not {type(doc).__name__}")
    res = doc.get("results", doc)
    if not isinstance(res, Mapping) or "bpp" not in res:
        keys = sorted(res) if isinstance(res, Mapping) else res
        raise ValueError(f"{name} has no 'bpp' (keys: {keys!r})")
    psnr_values = res.get("psnr-rgb", res.get("psnr"))
    if psnr_values is None:
        raise ValueError(f"{name} has no RGB PSNR, 'psnr-rgb' or 'psnr' (keys: {sorted(res)})")
    return RDCurve(name=str(doc.get("name", name)), bpp=list(res["bpp"]), psnr=list(psnr_values),
                   ms_ssim=res.get("ms-ssim-rgb", res.get("ms_ssim")),
                   encoding_time=res.get("encoding_time"), decoding_time=res.get("decoding_time"),
                   description=str(doc.get("description", "")))


def as_curve(curve: RDCurve | Mapping, what: str = "curve") -> RDCurve:
    """``curve`` itself, or the :class:`RDCurve` of a dict (:func:`from_compressai_json`).

    Lets :func:`bd_rate` and :func:`rd_plot` take published results as they are (book section
    *Transform coding with learned priors → Evaluation*); no page calls it.
    """
    return curve if isinstance(curve, RDCurve) else from_compressai_json(curve, what)


def mean_curve(name: str, records: list[dict], key: str, settings: list,
                description: str) -> RDCurve:
    """The curve of per-image ``records``: one point per value of ``records[i][key]`` in
    ``settings``, each column the mean over its images (CompressAI's convention).

    Used by :func:`nctutor.rd.classic_anchor` and :func:`nctutor.rd.evaluate_model` (book
    section *Transform coding with learned priors → Evaluation*); no page calls it.
    """
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

    a, t = as_curve(anchor, "anchor"), as_curve(test, "test")
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


# --------------------------------------------------------------------------- JSON


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
    curve = as_curve(curve)
    results: dict[str, list[float]] = {"bpp": list(curve.bpp), "psnr-rgb": list(curve.psnr)}
    for key, col in (("ms-ssim-rgb", curve.ms_ssim), ("encoding_time", curve.encoding_time),
                     ("decoding_time", curve.decoding_time)):
        if col is not None:
            results[key] = [float(v) for v in col]
    doc = {"name": curve.name,
           "description": curve.description if description is None else description,
           "results": results}
    if file is not None:
        atomic_write(file, json.dumps(doc, indent=2))
    return doc


def load_json(file: str | os.PathLike) -> RDCurve:
    """Read a CompressAI-style results JSON (as written by :func:`to_compressai_json`).

    Used in the notebook *Rate-distortion curves of three learned codecs → Saving the results in
    CompressAI's format*.
    """
    try:
        doc = json.loads(Path(file).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {file}: {e}") from e
    if not isinstance(doc, Mapping) or not isinstance(doc.get("results"), Mapping):
        raise ValueError(f"{file} is not a CompressAI results file (no 'results')")
    return from_compressai_json(doc, Path(file).stem)


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
        c = as_curve(c)
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
