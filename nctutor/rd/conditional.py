"""The P-frame coders measured: real files on held-out pairs, Table 1, switching, ``I(x̃; r)``.

Chapter *Conditional coding in practice* (sections *Table 1 on our pairs*, *Switching* and *When
conditional coding loses*). One function per measurement, and :func:`run`, which makes the stored
record that page reads (``nctutor pframe-eval``):

- :func:`code_pair`: one pair coded by one coder to the ``.nct`` file ``nctutor compress
  --reference`` writes (motion, ``y``, ``z`` and switching side streams, header included),
  decoded, scored: bpp = ``8·bytes / (H·W)``, RGB PSNR of the 8-bit frame, and the Lagrangian
  cost ``J = λ·255²·MSE + bpp`` that the switching decisions use;
- :func:`hybrid`: frame-level switching between two coders (Section 6.4's "(H)" variants): per
  pair the smaller ``J``, one flag bit added to the rate;
- :func:`mutual_information`: a plug-in estimate of ``I(x̃; r)`` on a pair's 8-bit samples, the
  quantity of Eq. (4) that decides whether conditional coding can gain;
- :func:`run`, :func:`curves`, :func:`table`: all coders at every quality on the test pairs, the
  x264/x265 anchors on the same frames, and the Bjøntegaard deltas against the difference coder,
  beside the paper's (:data:`PAPER`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .. import container
from ..codecs import conditional as cc
from ..codecs import lmbda
from .curves import RDCurve, bd_rate
from .video_anchors import pair_anchor_curve

#: The variants of Table 1 and Fig. 4-5: label → (coder, switch mode of the file), and the two
#: hybrids of Section 6.4 built by :func:`hybrid` from two coders' files.
VARIANTS = {
    "DiffCoder": ("pframe-diff", "none"),
    "CodecNet-64": ("pframe-codecnet64", "none"),
    "CodecNet-192": ("pframe-codecnet192", "none"),
    "GDC": ("pframe-gdc", "none"),
    "xGDC x̂_d": ("pframe-xgdc", "d"),
    "xGDC x̂_g": ("pframe-xgdc", "g"),
    "xGDC (H)": ("pframe-xgdc", "frame"),
    "xGDC (QT)": ("pframe-xgdc", "quadtree"),
}
HYBRIDS = {"CodecNet-192 (H)": "CodecNet-192", "GDC (H)": "GDC"}
#: The paper's BD-rates against the difference coder on CLIC (Table 1 and Section 6.4) and its
#: parameter overheads; ``None``: not reported.
PAPER = {
    "CodecNet-64": {"bd_rate": None, "parameters": 25.0},
    "CodecNet-192": {"bd_rate": None, "parameters": 358.0},
    "CodecNet-192 (H)": {"bd_rate": -15.9, "parameters": 358.0},
    "GDC": {"bd_rate": None, "parameters": 1.6},
    "GDC (H)": {"bd_rate": -9.3, "parameters": 1.6},
    "xGDC x̂_g": {"bd_rate": -21.9, "parameters": 6.6},
    "xGDC (H)": {"bd_rate": -26.1, "parameters": 6.6},
    "xGDC (QT)": {"bd_rate": -27.8, "parameters": 6.7},
}


def _psnr8(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))


def code_pair(model: cc.PFrameCoder, quality: int, pair: dict, switch: str = "none") -> dict:
    """Code one test pair (``{"x", "ref"}`` uint8 ``(3, H, W)``, :func:`nctutor.pframetrain.pairs`)
    with ``model`` into a real ``.nct`` file, and its decoded frame (the encoder's
    reconstruction, equal to :func:`nctutor.container.decode_pframe`'s: tested).

    Returns ``{"bytes", "pixels", "motion_bytes", "side_bytes", "bpp", "psnr", "cost"}``: the
    whole file's size, the frame's pixels, two of its streams, and ``J = λ·255²·MSE + bpp``
    with λ of ``quality``. Defined in book section *Conditional coding in practice → Table 1 on
    our pairs*.
    """
    x = pair["x"].float() / 255
    ref = pair["ref"].float() / 255
    blob, x_hat = container.pframe_reconstruction(model, x, ref, quality, switch)
    header = container.read_header(blob)
    h, w = x.shape[-2:]
    x_hat8 = x_hat.mul(255).round()
    mse = (x_hat8 - pair["x"].double()).pow(2).mean().item() / 255**2
    bpp = 8 * len(blob) / (h * w)
    return {"bytes": len(blob), "pixels": h * w, "motion_bytes": header.lengths[0],
            "side_bytes": header.lengths[3], "bpp": bpp, "psnr": _psnr8(x_hat8, pair["x"]),
            "cost": lmbda(quality) * 255**2 * mse + bpp}


def switch_mask(blob: bytes) -> torch.Tensor | bool:
    """Where a P-frame file of xGDC uses ``x̂_g``: the quad-tree mask ``(H, W)`` (True = ``x̂_g``),
    or one bool for the other switch modes. Defined in book section *Conditional coding in
    practice → Switching*."""
    h = container.read_header(blob)
    start = h.header_size + sum(h.lengths[:3])
    bits = cc.unpack_bits(blob[start : start + h.lengths[3]], h.side_bits)
    if h.switch == "quadtree":
        return cc.decode_quadtree(bits, h.height, h.width)
    return h.switch == "g" or (h.switch == "frame" and bits == [1])


def hybrid(a: list[dict], b: list[dict]) -> list[dict]:
    """Frame-level switching (Section 6.4, "(H)"): for each pair the point of ``a`` or ``b`` with
    the smaller cost ``J``, its rate plus one flag bit; ``"choice"``: 0 for ``a``, 1 for ``b``.
    Defined in book section *Conditional coding in practice → Switching*."""
    out = []
    for pa, pb in zip(a, b, strict=True):
        k = cc.frame_switch([pa["cost"], pb["cost"]])
        p = dict((pa, pb)[k])
        p["bpp"] += 1 / p["pixels"]
        p["cost"] += 1 / p["pixels"]
        p["choice"] = k
        out.append(p)
    return out


def mutual_information(xt: torch.Tensor, x: torch.Tensor, levels: int = 32,
                       r_max: int = 64, r_step: int = 4) -> float:
    """A plug-in estimate of ``I(x̃; r)`` in bits per sample, ``r = x − x̃``, from one pair's 8-bit
    samples (all pixels and colours pooled): ``x̃`` in ``levels`` uniform bins, ``r`` clipped to
    ``±r_max`` in bins of ``r_step``; ``I = H(r) − H(r | x̃)`` of the joint histogram.

    Coarse on purpose: a few hundred thousand samples fill a few thousand cells. It ignores
    every dependence across pixels (a texture in ``x̃`` that predicts ``r``'s structure), so it
    is a lower bound on what a network with a receptive field can use. Defined in book section
    *Conditional coding in practice → When conditional coding loses*.
    """
    xt = xt.to(torch.int64).flatten()
    r = (x.to(torch.int64).flatten() - xt).clamp(-r_max, r_max)
    a = (xt * levels // 256).numpy()
    b = ((r + r_max) // r_step).numpy()
    joint = np.zeros((levels, 2 * r_max // r_step + 1))
    np.add.at(joint, (a, b), 1)
    joint /= joint.sum()
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / (pa @ pb)[nz])).sum())


def run(load: Callable[[str, int], cc.PFrameCoder], pairs: Sequence[dict],
        qualities: Sequence[int] = (1, 2, 3, 4), previous: Sequence[torch.Tensor] | None = None,
        anchors: bool = True, progress: bool = True) -> dict:
    """Every variant of :data:`VARIANTS` and :data:`HYBRIDS` at every quality on ``pairs``,
    the anchors on the same frames (``previous``: the original previous frames, which x264/x265
    code themselves), ``I(x̃; r)`` per pair, and the parameter counts.

    ``load(name, quality)``: the trained coder (e.g. :func:`nctutor.zoo.pframe_model`). The
    record: ``{"pairs": [{clip, frame, info, mi}], "points": {variant: [[point per pair] per
    quality]}, "anchors", "parameters", "qualities", "seconds"}``. Defined in book section
    *Conditional coding in practice → Table 1 on our pairs*.
    """
    from tqdm.auto import tqdm

    tic = time.perf_counter()
    points: dict[str, list[list[dict]]] = {v: [] for v in VARIANTS}
    parameters = {}
    jobs = [(label, q) for q in qualities for label in VARIANTS]
    for label, q in tqdm(jobs, desc="P-frame coders", disable=not progress):
        name, switch = VARIANTS[label]
        model = load(name, q)
        parameters[name] = cc.count_parameters(model)
        points[label].append([code_pair(model, q, p, switch) for p in pairs])
    for label, base in HYBRIDS.items():
        points[label] = [hybrid(points["DiffCoder"][i], points[base][i])
                         for i in range(len(qualities))]
    record = {"qualities": list(qualities), "parameters": parameters, "points": points,
              "pairs": [{"clip": p["clip"], "frame": p["frame"], "info": p["info"],
                         "mi": mutual_information(p["xt"], p["x"])} for p in pairs]}
    if anchors and previous is not None:
        frames = [(prev, p["x"].permute(1, 2, 0).numpy())
                  for prev, p in zip(previous, pairs, strict=True)]
        record["anchors"] = {codec: pair_anchor_curve(frames, codec) for codec in ("x264", "x265")}
    record["seconds"] = round(time.perf_counter() - tic, 1)
    return record


def curves(record: dict, clip: str | None = None) -> dict[str, RDCurve]:
    """One RD curve per variant: the mean bpp and mean PSNR over the pairs (of ``clip``, or all)
    at each quality. Defined in book section *Conditional coding in practice → Table 1 on our
    pairs*."""
    keep = [i for i, p in enumerate(record["pairs"]) if clip in (None, p["clip"])]
    out = {}
    for label, per_q in record["points"].items():
        bpp = [float(np.mean([pts[i]["bpp"] for i in keep])) for pts in per_q]
        psnr = [float(np.mean([pts[i]["psnr"] for i in keep])) for pts in per_q]
        out[label] = RDCurve(label, bpp, psnr)
    return out


def table(record: dict, clip: str | None = None) -> list[dict]:
    """Table 1 analog: each variant's BD-rate against the difference coder (%, negative saves;
    ``None`` where the curves share no quality range) and its parameter overhead, beside the
    paper's. Defined in book section *Conditional coding
    in practice → Table 1 on our pairs*."""
    c = curves(record, clip)
    params = record["parameters"]
    base = params["pframe-diff"]
    rows = []
    for label in [v for v in c if v != "DiffCoder"]:
        name = VARIANTS.get(label, VARIANTS.get(HYBRIDS.get(label, ""), ("",)))[0]
        try:
            bd = bd_rate(c["DiffCoder"], c[label], min_overlap=0)
        except ValueError:  # curves of fewer than two distinct points
            bd = None
        bd = None if bd is None or math.isnan(bd) else bd  # no shared quality range
        paper = PAPER.get(label, {})
        rows.append({"variant": label, "bd_rate": bd, "paper_bd_rate": paper.get("bd_rate"),
                     "parameters": 100 * (params[name] - base) / base,
                     "paper_parameters": paper.get("parameters")})
    return rows
