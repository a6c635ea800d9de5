"""Trained codecs by name: shipped weights, the cache, or a training run.

Chapter *Transform coding with learned priors* (section *How this book uses them*) and the notebook
*Rate-distortion curves of three learned codecs* (section *Learned codecs: train or load, then
encode to bytes*).

``load("mbt2018-mean", 3)`` returns a model in eval mode with its entropy coders updated, found
in this order:

1. weights shipped in the package, ``nctutor/weights/<name>-q<Q>.pt`` with its manifest
   ``<name>-q<Q>.json`` (written by :func:`nctutor.maintain.export`), used when the manifest's
   profile is the one asked for (the profile fixes the widths N, M);
2. a *complete* run in the cache, :func:`nctutor.train.run_dir` of
   ``TrainConfig(model=name, quality=quality, profile=profile)`` (complete: at least the
   profile's number of steps; a shorter run, e.g. ``nctutor train … --steps 4``, is resumed);
3. otherwise the model is trained there with :func:`nctutor.train.train` at the profile (seconds
   at the ``smoke`` profile), so that every notebook runs anywhere.

``load("compressai:mbt2018-mean", 3)`` wraps CompressAI's pretrained models
(:func:`compressai.zoo.mbt2018_mean` and friends, trained by CompressAI on Vimeo-90k); their
weights are downloaded once into torch hub's cache, and offline a :class:`ZooError` says so.

Every checkpoint is read with ``torch.load(weights_only=True)``; one made for another
architecture or widths, or damaged, raises :class:`nctutor.train.CheckpointError`. CompressAI's
``load_state_dict`` resizes the entropy coders' buffers; :func:`load` then calls
``update(force=True)`` so the CDF tables are recomputed from the loaded parameters.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from . import codecs, config, train
from .checkpoints import (
    CHECKPOINT,
    MANIFEST,
    WEIGHTS_DIR,
    WEIGHTS_FORMAT,
    load_checkpoint,
    load_state,
    read_exported,
)
from .codecs import COMPRESSAI_PREFIX
from .errors import CheckpointError, ZooError
from .train import TrainConfig


def _ready(model: torch.nn.Module, info: dict) -> torch.nn.Module:
    model.eval()
    model.update(force=True)
    model.nctutor = info  # name, quality, profile, source: what encoders write into headers
    return model


# --------------------------------------------------------------------------- exported weights


def load_exported(file: str | os.PathLike) -> torch.nn.Module:
    """Load a weights file written by :func:`nctutor.maintain.export` (its ``.json`` manifest
    beside it): checks the SHA-256 (:func:`nctutor.checkpoints.read_exported`), the architecture
    and widths. Returns the model in eval mode, updated.

    Used by :func:`load` for shipped weights (chapter *Transform coding with learned priors*); no
    page calls it.
    """
    man, state = read_exported(file)
    arch = codecs.canonical_name(man["model"])
    model = load_state(arch, int(man["N"]), int(man["M"]), state, file)
    return _ready(model, {"name": arch, "quality": int(man["quality"]),
                          "profile": man["profile"], "source": str(file)})


def shipped(weights_dir: str | os.PathLike | None = None) -> dict[tuple[str, int], dict]:
    """The weights shipped in the package: ``{(name, quality): manifest}``, sorted.

    Listed in book section *Transform coding with learned priors → How this book uses them*; the
    command line (``nctutor compress``) uses them by default.
    """
    found = {}
    for man_file in sorted(Path(weights_dir or WEIGHTS_DIR).glob("*.json")):
        try:
            man = json.loads(man_file.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot read the manifest {man_file}: {e}") from e
        if isinstance(man, dict) and man.get("format") == WEIGHTS_FORMAT:
            found[(man["model"], int(man["quality"]))] = man
    return dict(sorted(found.items()))


# --------------------------------------------------------------------------- load


def _compressai_pretrained(arch: str, quality: int) -> torch.nn.Module:
    import urllib.error

    from compressai import zoo as czoo

    fn = {"bmshj2018-factorized": czoo.bmshj2018_factorized,
          "bmshj2018-hyperprior": czoo.bmshj2018_hyperprior,
          "mbt2018-mean": czoo.mbt2018_mean}[arch]
    try:
        model = fn(quality, metric="mse", pretrained=True, progress=False)
    except (urllib.error.URLError, OSError, ConnectionError) as e:
        raise ZooError(
            f"CompressAI's pretrained {arch} q{quality} could not be downloaded ({e}): the "
            f"network seems closed. Run where it is open once (the weights are then cached in "
            f"{torch.hub.get_dir()}/checkpoints), or use nctutor's own models, e.g. "
            f"zoo.load({arch!r}, {quality})."
        ) from e
    return _ready(model, {"name": COMPRESSAI_PREFIX + arch, "quality": quality, "profile": "",
                          "source": "compressai"})


def load(name: str, quality: int, profile: str | None = None,
         progress: bool = False) -> torch.nn.Module:
    """The trained codec ``name`` at ``quality`` (1..8) for ``profile`` (default: the current
    one): shipped weights, else a complete cached run, else trained now (see the module docstring).

    ``"compressai:<name>"`` gives CompressAI's pretrained model instead. The model is in eval mode
    with ``update(force=True)`` done; ``model.nctutor`` records name, quality, profile and source.
    Defined in book section *Transform coding with learned priors → How this book uses them* (first
    called in its section *The factorized prior*); used in the notebook *Rate-distortion curves of
    three learned codecs → Learned codecs: train or load, then encode to bytes*.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    codecs.lmbda(quality)
    if name.startswith(COMPRESSAI_PREFIX):
        return _compressai_pretrained(codecs.canonical_name(name[len(COMPRESSAI_PREFIX):]),
                                      quality)
    arch = codecs.canonical_name(name)
    prof = config.get_profile(profile)

    shipped = WEIGHTS_DIR / f"{arch}-q{quality}.pt"
    if shipped.is_file() and shipped.with_suffix(".json").is_file():
        try:
            shipped_profile = json.loads(shipped.with_suffix(".json").read_text()).get("profile")
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot read {shipped.with_suffix('.json')}: {e}") from e
        if shipped_profile == prof.name:
            return load_exported(shipped)

    cfg = TrainConfig(model=arch, quality=quality, profile=prof.name)
    run = train.run_dir(cfg)
    info = {"name": arch, "quality": quality, "profile": prof.name, "source": str(run)}
    if (run / MANIFEST).is_file() and (run / CHECKPOINT).is_file():
        try:
            man = json.loads((run / MANIFEST).read_text())
            complete = man["steps"] >= max(man["settings"]["steps"], prof.steps)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"cannot read {run / MANIFEST}: {e}. Delete the folder "
                                  f"to train afresh.") from e
        if complete:
            ckpt = load_checkpoint(run / CHECKPOINT)
            s = ckpt.get("settings", {}) if isinstance(ckpt, dict) else {}
            if s.get("model") != arch or s.get("quality") != quality:
                raise CheckpointError(f"{run / CHECKPOINT} is for {s.get('model')} "
                                      f"q{s.get('quality')}, not {arch} q{quality}")
            model = load_state(arch, int(s["N"]), int(s["M"]), ckpt.get("model"),
                                run / CHECKPOINT)
            return _ready(model, info)
    result = train.train(cfg, progress=progress)
    return _ready(result.model, {**info, "source": f"trained: {run}"})
