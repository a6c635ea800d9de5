"""The code-space predictor's experiment: every variant on Kodak with real files, one record.

Defined in book section *Predicting codes from their neighbours → How the table is made*.
:func:`run` codes the 24 Kodak images with every variant of :data:`VARIANTS` at every quality
into real ``.nct`` files (:func:`nctutor.rd.evaluate_model`: the rate is the whole file, the
8-bit RGB PSNR and MS-SSIM of the decoded image); :func:`tables` turns the record into
BD-rates. The record is a JSON file (the shipped one: :data:`RECORD`, made by ``nctutor
predictor-eval``, whose command and the training commands are stored in it).

Every variant trains for the same budget from the same start (:data:`TRAIN`: the shipped
``mbt2018-mean`` weights of its quality, then 1500 steps at λ of that quality), so that the
comparison measures the entropy model, not extra training: ``mbt2018-mean`` below is the shipped
mean-scale model trained on for those same steps ("hyperprior only"), and the shipped weights
themselves are the start (``shipped``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib.resources import files

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import codecs
from ..config import machine_info
from .curves import bd_rate
from .learned import evaluate_model
from .references import reference_curve

__all__ = ["VARIANTS", "OPTIONS", "TRAIN", "RECORD", "train_command", "run", "tables", "bit_map",
           "load_record", "curve", "merge"]

#: variant → (architecture, label). ``shipped`` is the start of all the others.
VARIANTS: dict[str, tuple[str, str]] = {
    "shipped": ("mbt2018-mean", "mean-scale hyperprior, shipped weights (the start)"),
    "mbt2018-mean": ("mbt2018-mean", "hyperprior only (mean-scale), same budget"),
    "kwcc2018-spatial": ("kwcc2018-spatial", "spatial predictor only"),
    "kwcc2018-hierarchical": ("kwcc2018-hierarchical", "hierarchical + spatial (Fig. 8)"),
    "kwcc2018-checkerboard": ("kwcc2018-checkerboard", "hierarchical + checkerboard, 2 passes"),
    "mbt2018": ("mbt2018", "Minnen et al.: mean-scale + context model (CompressAI)"),
    "kwcc2018-hierarchical-ms-ssim": ("kwcc2018-hierarchical",
                                      "hierarchical + spatial, trained for MS-SSIM"),
}
#: ``nctutor train`` options of a variant beyond :data:`TRAIN` (MS-SSIM needs crops of 161
#: pixels or more).
OPTIONS = {"kwcc2018-hierarchical-ms-ssim": "--metric ms-ssim --patch-size 192"}
#: The training budget every variant gets (``nctutor train`` options), from the shipped
#: ``mbt2018-mean-q<Q>.pt``.
TRAIN = {"profile": "cpu", "steps": 1500, "lr": 5e-4, "seed": 7}
#: The record shipped with the package.
RECORD = files("nctutor") / "weights" / "predictor-kodak.json"


def train_command(variant: str, quality: int, out: str = "RUNS") -> str:
    """The ``nctutor train`` command of ``variant`` at ``quality`` (its run folder
    ``<out>/<variant>-q<Q>``). Defined in book section *Predicting codes from their neighbours →
    How the table is made*."""
    arch = VARIANTS[variant][0]
    t = TRAIN
    extra = f" {OPTIONS[variant]}" if variant in OPTIONS else ""
    return (f"OMP_NUM_THREADS=1 nctutor train {arch} --quality {quality} --profile {t['profile']}"
            f" --steps {t['steps']} --lr {t['lr']} --seed {t['seed']}{extra} --init "
            f"nctutor/weights/mbt2018-mean-q{quality}.pt --out {out}/{variant}-q{quality}")


def run(models: Mapping[tuple[str, int], torch.nn.Module], images, command: str = "",
        progress: bool = True) -> dict:
    """Code ``images`` (name → ``(3, H, W)`` tensors, or an image set) with every model of
    ``models`` (``(variant, quality)`` → a loaded model of the variant's architecture) into
    real files; returns the record: ``{"command", "train", "machine", "variants": {variant:
    {"label", "arch", "qualities": {q: [per-image records]}}}}``, per image the file's
    ``bytes``, ``bpp``, ``psnr``, ``ms_ssim`` and seconds. Defined in book section
    *Predicting codes from their neighbours → How the table is made*."""
    out = evaluated(models, images, VARIANTS, progress)
    return {"command": command, "train": {"budget": TRAIN, "commands": {
                f"{v}-q{q}": train_command(v, q) for (v, q) in models if v != "shipped"}}, **out}


def evaluated(models: Mapping[tuple[str, int], torch.nn.Module], images,
              variants: Mapping[str, tuple[str, str]], progress: bool = True) -> dict:
    """``{"machine", "variants": {variant: {"label", "arch", "qualities": {q: [per-image
    records]}}}}``: ``images`` coded with every model of ``models`` (``(variant, quality)`` →
    a loaded model of the architecture ``variants`` names). The core of :func:`run` and of
    :func:`nctutor.rd.normalization.run`; no page calls it."""
    out = {"machine": machine_info(), "variants": {}}
    for (variant, q), model in tqdm(models.items(), desc="variants", disable=not progress):
        arch, label = variants[variant]
        if codecs.architecture_of_model(model) != arch:
            raise ValueError(f"{variant} needs a {arch}, got {type(model).__name__}")
        point = evaluate_model(model, images, name=f"{variant} q{q}", quality=q)
        entry = out["variants"].setdefault(variant, {"label": label, "arch": arch,
                                                     "qualities": {}})
        entry["qualities"][str(q)] = point.records
    return out


def merge(records: list[dict], command: str = "") -> dict:
    """One record from the records of several ``predictor-eval --variants … --qualities …``
    processes (each variant and quality from one of them): their variants, qualities and
    training runs joined, their commands listed (those of the parts of a record that is itself
    merged, so that a record can grow by a variant).
    Defined in book section *Predicting codes from their neighbours → How the table is made*."""
    if not records:
        raise ValueError("nothing to merge")
    out = {"command": command or "; ".join(r["command"] for r in records),
           "parts": [p for r in records for p in r.get("parts", [r["command"]])],
           "train": {"budget": records[0]["train"]["budget"], "commands": {}, "runs": {}},
           "machine": records[0]["machine"], "variants": {}}
    for r in records:
        if r["train"]["budget"] != out["train"]["budget"]:
            raise ValueError("the records were trained with different budgets")
        for variant, entry in r["variants"].items():
            have = out["variants"].setdefault(variant, {**entry, "qualities": {}})
            twice = set(have["qualities"]) & set(entry["qualities"])
            if twice:
                raise ValueError(f"{variant} q{sorted(twice)} in two records")
            have["qualities"] = dict(sorted({**have["qualities"], **entry["qualities"]}.items(),
                                            key=lambda kv: int(kv[0])))
        out["train"]["commands"].update(r["train"]["commands"])
        out["train"]["runs"].update(r["train"].get("runs", {}))
    order = list(VARIANTS)
    out["variants"] = dict(sorted(out["variants"].items(), key=lambda kv: order.index(kv[0])))
    return out


def load_record(file: str | os.PathLike | None = None) -> dict:
    """The record written by :func:`run` (default: the shipped :data:`RECORD`). Defined in book
    section *Predicting codes from their neighbours → How the table is made*."""
    with open(file or RECORD) as f:
        return json.load(f)


def curve(record: dict, variant: str) -> dict:
    """Mean bpp, PSNR and MS-SSIM over images per quality of ``variant`` (one point per
    quality, the paper's protocol), and the mean seconds. Defined in book section *Predicting
    codes from their neighbours → How the table is made*."""
    rows = record["variants"][variant]["qualities"]
    qs = sorted(rows, key=int)

    def mean(key: str) -> list[float]:
        return [float(np.mean([r[key] for r in rows[q]])) for q in qs]

    return {"quality": [int(q) for q in qs], "bpp": mean("bpp"), "psnr": mean("psnr"),
            "ms_ssim": mean("ms_ssim"), "encoding_time": mean("encoding_time"),
            "decoding_time": mean("decoding_time")}


#: Published curves every variant is also compared with (``nctutor/reference``).
ANCHORS = {"JPEG": "classic-kodak-pillow/jpeg", "WebP": "classic-kodak-pillow/webp",
           "HEIC (x265)": "classic-kodak-pillow/heif"}


def tables(record: dict, baseline: str = "mbt2018-mean") -> dict:
    """Per variant: its curve, BD-rate (%, RGB PSNR and MS-SSIM dB) against ``baseline``
    (default: the mean-scale model with the same budget) and against the shipped start, both
    taken at the variant's own qualities (a variant trained at qualities 1 and 3 is compared
    over the range of those two), and
    against the classic anchors of :data:`ANCHORS` (Akima interpolation, PCHIP where a curve
    has fewer than four points); the mean decode-time ratio to ``mbt2018``
    where both were run. Negative BD-rate: fewer bits. Defined in book section *Predicting
    codes from their neighbours → How the table is made*."""
    curves = {v: curve(record, v) for v in record["variants"]}
    out = {}
    for v, c in curves.items():
        row = {"curve": c, "bd_rate": {}, "bd_rate_ms_ssim": {}}
        for ref in (baseline, "shipped"):
            if ref in curves and ref != v and len(c["bpp"]) > 1:
                anchor = _at(curves[ref], c["quality"])  # the same qualities: the same range
                method = _method(anchor, c)
                row["bd_rate"][ref] = bd_rate(anchor, c, method=method, min_overlap=0)
                row["bd_rate_ms_ssim"][ref] = bd_rate(anchor, c, metric="ms_ssim",
                                                      method=method, min_overlap=0)
        if len(c["bpp"]) > 1:
            for label, ref in ANCHORS.items():
                row["bd_rate"][label] = bd_rate(reference_curve(ref), c, method=_method(c, c),
                                                min_overlap=0)
        if "mbt2018" in curves and v != "mbt2018":
            common = [q for q in c["quality"] if q in curves["mbt2018"]["quality"]]
            ratios = [c["decoding_time"][c["quality"].index(q)]
                      / curves["mbt2018"]["decoding_time"][curves["mbt2018"]["quality"].index(q)]
                      for q in common]
            row["decode_vs_mbt2018"] = float(np.mean(ratios)) if ratios else None
        out[v] = row
    return out


def _at(c: dict, qualities: list[int]) -> dict:
    """The points of curve ``c`` at ``qualities`` (those it has)."""
    keep = [c["quality"].index(q) for q in qualities if q in c["quality"]]
    return {k: [v[i] for i in keep] for k, v in c.items()}


def _method(a: dict, b: dict) -> str:
    """Akima interpolation with four points or more on both curves, else PCHIP (Akima needs
    more points than two or three)."""
    return "akima" if min(len(a["bpp"]), len(b["bpp"])) >= 4 else "pchip"


@torch.no_grad()
def bit_map(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """Bits per pixel of ``y`` at each latent position of the image ``x`` ``(3, H, W)``: the
    model's ``−Σ_c log2 P(ŷ)`` in eval mode (rounded latents, Eq. 17), spread over the
    ``16 × 16`` pixels each position covers (``ẑ``'s bits left out). The Fig. 9–10 analog of
    book section *Predicting codes from their neighbours → Where the bits go*."""
    model.eval()
    h, w = x.shape[-2:]
    out = model(codecs.pad(x[None], codecs.STRIDES[codecs.architecture_of_model(model)]))
    bits = -torch.log2(out["likelihoods"]["y"][0]).sum(0)
    return (bits / 256.0)[: -(-h // 16), : -(-w // 16)].numpy()
