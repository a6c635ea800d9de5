"""Which GDN is SGDN? Three forms of divisive normalization, trained alike, on Kodak.

Defined in book section *Predicting codes from their neighbours → Which GDN is SGDN?*.
:data:`VARIANTS` are the factorized prior of Ballé et al. (2017) with each form of
:mod:`nctutor.codecs.normalization`; every one trains from scratch with the same budget, seed
and data (:data:`TRAIN`; one seed gives them the same starting convolutions), and is evaluated
like every codec of the book (:func:`nctutor.rd.evaluate_model`: 24 Kodak images, real files,
RGB PSNR and MS-SSIM). The record (the shipped one: :data:`RECORD`, made by ``nctutor
predictor-eval --experiment sgdn``) holds the curves, the training runs' loss curves and the
commands.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.resources import files

import numpy as np
import torch

from ..codecs.normalization import GeneralGDN
from .curves import bd_rate
from .predictor import _at, _method, curve, evaluated, load_record

__all__ = ["VARIANTS", "TRAIN", "RECORD", "BASELINE", "train_command", "run", "tables",
           "exponents", "load"]

#: variant → (architecture, label).
VARIANTS: dict[str, tuple[str, str]] = {
    "sgdn": ("bmshj2018-factorized", "GDN with α = 2, ε = ½ (our reading of SGDN)"),
    "gdn-general": ("bmshj2018-factorized-gdn-general", "GDN with learned α, ε (Ballé 2016)"),
    "gdn1": ("bmshj2018-factorized-gdn1", "GDN1: α = 1, ε = 1 (Johnston 2019)"),
}
#: The variant the others are compared with.
BASELINE = "sgdn"
#: The budget every variant gets (``nctutor train`` options), from scratch.
TRAIN = {"profile": "cpu", "steps": 3000, "seed": 7}
#: The record shipped with the package.
RECORD = files("nctutor") / "weights" / "normalization-kodak.json"


def train_command(variant: str, quality: int, out: str = "RUNS") -> str:
    """The ``nctutor train`` command of ``variant`` at ``quality`` (its run folder
    ``<out>/<variant>-q<Q>``). Defined in book section *Predicting codes from their neighbours →
    Which GDN is SGDN?*."""
    arch, t = VARIANTS[variant][0], TRAIN
    return (f"OMP_NUM_THREADS=1 nctutor train {arch} --quality {quality} --profile {t['profile']}"
            f" --steps {t['steps']} --seed {t['seed']} --out {out}/{variant}-q{quality}")


def run(models: Mapping[tuple[str, int], torch.nn.Module], images, command: str = "",
        progress: bool = True) -> dict:
    """Code ``images`` with every model of ``models`` (``(variant, quality)`` → a loaded model
    of the variant's architecture) into real files; returns the record (as
    :func:`nctutor.rd.predictor.run`'s, plus each variant's parameter count). Defined in book
    section *Predicting codes from their neighbours → Which GDN is SGDN?*."""
    out = evaluated(models, images, VARIANTS, progress)
    out["command"] = command
    out["train"] = {"budget": TRAIN, "commands": {f"{v}-q{q}": train_command(v, q)
                                                  for (v, q) in models}}
    for (variant, q), model in models.items():
        entry = out["variants"][variant]
        entry["parameters"] = sum(p.numel() for p in model.parameters())
        if any(isinstance(m, GeneralGDN) for m in model.modules()):
            entry.setdefault("exponents", {})[str(q)] = exponents(model)
    return out


def exponents(model: torch.nn.Module) -> dict[str, dict[str, list[float]]]:
    """The exponents ``α`` and ``ε`` (after their bounds) of every :class:`GeneralGDN` layer of
    ``model``, by layer name (``g_a.1`` … ``g_s.5``). Defined in book section *Predicting codes
    from their neighbours → Which GDN is SGDN?*."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, GeneralGDN):
            with torch.no_grad():
                out[name] = {"alpha": m.alpha_bound(m.alpha).float().tolist(),
                             "epsilon": m.epsilon_bound(m.epsilon).float().tolist()}
    return out


def tables(record: dict) -> dict:
    """Per variant: its curve, its parameter count, BD-rate (%, against :data:`BASELINE`, RGB
    PSNR and MS-SSIM dB, PCHIP with fewer than four points; ``None`` where a curve's rate does
    not grow with its quality, as after a few steps of training), and the mean training loss of its
    last 10 % of steps per quality (``λ·255²·MSE + bpp`` on training crops: the objective
    itself, where a BD-rate only sees the Kodak points). Defined in book section *Predicting
    codes from their neighbours → Which GDN is SGDN?*."""
    curves = {v: curve(record, v) for v in record["variants"]}
    base = curves[BASELINE]
    out = {}
    for v, c in curves.items():
        row = {"curve": c, "parameters": record["variants"][v].get("parameters"),
               "bd_rate": None, "bd_rate_ms_ssim": None, "final_loss": {}}
        if v != BASELINE:
            anchor = _at(base, c["quality"])
            for key, metric in (("bd_rate", "psnr"), ("bd_rate_ms_ssim", "ms_ssim")):
                try:
                    row[key] = bd_rate(anchor, c, metric=metric, method=_method(anchor, c),
                                       min_overlap=0)
                except ValueError:  # a curve whose rate does not grow with quality: undefined
                    row[key] = None
        for q in c["quality"]:
            history = record["train"]["runs"].get(f"{v}-q{q}", {}).get("history", [])
            tail = [h["loss"] for h in history if h["step"] > 0.9 * TRAIN["steps"]]
            row["final_loss"][q] = float(np.mean(tail)) if tail else None
        out[v] = row
    return out


def load(file: str | os.PathLike | None = None) -> dict:
    """The record of :func:`run` (default: the shipped :data:`RECORD`). Defined in book section
    *Predicting codes from their neighbours → Which GDN is SGDN?*."""
    return load_record(file or RECORD)
