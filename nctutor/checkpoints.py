"""Checkpoints and weights files: reading them safely, and where a run's weights came from.

Chapter *How to run this book → Training from the command line*. Two kinds of file hold weights:

- a run's ``checkpoint.pt`` (weights, optimizers, RNG, history: what a resumed run needs) with
  its ``manifest.json``, written by :func:`nctutor.train.train`;
- an exported weights file ``<model>-q<Q>.pt`` (weights only, fp16) with its manifest
  ``<model>-q<Q>.json``, written by :func:`nctutor.maintain.export`: what the package ships in
  ``nctutor/weights``.

Every file is read with ``torch.load(weights_only=True)``; a damaged one, or one made for another
architecture or widths, raises :class:`~nctutor.errors.CheckpointError` with what to do.
:func:`warm_start` reads either kind as the start of a new run and records its *lineage*.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from . import codecs
from .errors import CheckpointError
from .files import atomic_write, sha256

CHECKPOINT = "checkpoint.pt"
MANIFEST = "manifest.json"
WEIGHTS_DIR = Path(__file__).with_name("weights")
WEIGHTS_FORMAT = "nctutor-weights/1"


def save(obj: dict, file: str | os.PathLike) -> None:
    """Write a checkpoint (``torch.save``) or, for a ``.json`` file, a manifest, atomically.

    Used by :func:`nctutor.train.train` (chapter *How to run this book → Training from the
    command line*: a run interrupted at any moment resumes); no page calls it.
    """
    file = Path(file)
    if file.suffix == ".json":
        atomic_write(file, json.dumps(obj, indent=2))
    else:
        atomic_write(file, lambda tmp: torch.save(obj, tmp))


def load_checkpoint(file: Path, map_location="cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``); a damaged file gives CheckpointError.

    Used by the chapter *How to run this book → Training from the command line* (resume) and by
    :mod:`nctutor.zoo`; no page calls it.
    """
    try:
        return torch.load(file, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        raise CheckpointError(
            f"cannot read checkpoint {file}: {e}. Delete it to start the run afresh."
        ) from e


def read_exported(file: str | os.PathLike) -> tuple[dict, dict]:
    """The manifest and the stored state dict of a weights file written by
    :func:`nctutor.maintain.export` (its ``.json`` manifest beside it), after checking the
    manifest's format and the file's SHA-256.

    Used by :func:`nctutor.zoo.load_exported` and by ``nctutor train --init FILE`` (training
    shipped weights further, chapter *How to run this book → Training from the command line*);
    no page calls it.
    """
    file = Path(file)
    man_file = file.with_suffix(".json")
    try:
        man = json.loads(man_file.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read the manifest {man_file}: {e}") from e
    if not isinstance(man, dict) or man.get("format") != WEIGHTS_FORMAT:
        raise CheckpointError(f"{man_file} is not an nctutor weights manifest")
    if not file.is_file() or sha256(file) != man.get("sha256"):
        raise CheckpointError(f"{file} is missing or does not match the SHA-256 in {man_file}: "
                              f"the file is corrupted")
    return man, load_checkpoint(file).get("model")


def load_state(arch: str, N: int, M: int, state: dict, source: str | Path) -> torch.nn.Module:
    """A model ``arch`` of widths ``N``, ``M`` with ``state`` loaded (fp16 tensors widened).

    Used by :func:`nctutor.zoo.load` for shipped weights and cached runs (chapter *Transform
    coding with learned priors → How this book uses them*); no page calls it.
    """
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source} holds no state dict of tensors")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model = codecs.create(arch, N=N, M=M)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, IndexError) as e:
        raise CheckpointError(
            f"{source} does not fit {arch} with N={N}, M={M} (another architecture or other "
            f"widths?): {str(e).splitlines()[0]}") from e
    return model


def warm_start(source: str | os.PathLike, settings: dict, map_location="cpu") -> tuple[dict, dict]:
    """Load the weights (not the optimizer) of a finished run into ``net``: "λ fine-tuning".

    A model of one quality starts from a trained neighbour on the λ ladder and needs far fewer
    steps than from scratch (how the package's shipped family was trained, chapter *Transform
    coding with learned priors → How this book uses them*). ``source`` is a run folder, its
    ``checkpoint.pt``, or an exported weights file with its manifest beside it (such as the
    package's own ``nctutor/weights/<model>-q<Q>.pt``: the way to train the shipped weights
    further in a later session, when the full checkpoints are gone). It must hold the same
    architecture and widths. Returns what the manifest records of it: the source, its quality
    and its steps (and, for an exported file, its SHA-256 and where *it* started from).
    """
    file = Path(source)
    file = file / CHECKPOINT if file.is_dir() else file
    if not file.is_file():
        raise CheckpointError(f"init_from {source}: no run folder or checkpoint there")
    exported = file.name != CHECKPOINT and file.with_suffix(".json").is_file()
    if exported:  # a weights file of zoo.export: its manifest says what it holds
        man, state = read_exported(file)  # checks the manifest and the SHA-256
        stored = {k: man.get(k) for k in ("model", "N", "M", "quality")}
        ckpt = {"model": state, "step": man.get("steps")}
    else:
        ckpt = load_checkpoint(file, map_location=map_location)
        stored = ckpt.get("settings", {}) if isinstance(ckpt, dict) else {}
    wanted = {k: settings[k] for k in ("model", "N", "M")}
    if stored.get("model") == codecs.WARM_STARTS.get(wanted["model"]):  # e.g. a context model
        wanted["model"] = stored["model"]  # from the shipped mean-scale weights
    if {k: stored.get(k) for k in wanted} != wanted:
        raise CheckpointError(
            f"init_from {file} holds {stored.get('model')} N={stored.get('N')} M={stored.get('M')},"
            f" but this run is {wanted['model']} N={wanted['N']} M={wanted['M']}")
    state = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"init_from {file}: no model weights in it")
    record = {"from": str(source), "quality": stored.get("quality"), "steps": ckpt.get("step")}
    if stored.get("model") != settings["model"]:
        record["model"] = stored.get("model")
    if exported:
        record["sha256"] = man.get("sha256")
        siblings = {}  # the family beside it: where its own start may be found
        for other in file.parent.glob("*.json"):
            try:
                m = json.loads(other.read_text())
                siblings[m["settings"]["run_dir"]] = m
            except (OSError, ValueError, KeyError, TypeError):
                continue
        start = lineage(man.get("settings", {}).get("init"), siblings)
    else:
        start = stored.get("init")
    if start:
        record["init"] = start
    return state, record


def resume(run_dir: Path, settings: dict, identity_keys: tuple[str, ...]) -> dict | None:
    """The checkpoint of an unfinished or finished run in ``run_dir`` (``None``: none there),
    after checking that it was made with the same ``identity_keys`` of ``settings``: a run of
    other settings is refused, not silently continued.

    The resume step of the flat trainers (:mod:`nctutor.videotrain`, :mod:`nctutor.pframetrain`;
    chapters *A binary video codec with delta-sigma modulation* and *Conditional coding in
    practice*, sections *Training*); no page calls it.
    """
    file = Path(run_dir) / CHECKPOINT
    if not file.exists():
        return None
    ckpt = load_checkpoint(file)
    stored = ckpt.get("settings", {})
    mismatch = {k: (stored.get(k), settings[k]) for k in identity_keys
                if stored.get(k) != settings[k]}
    if mismatch:
        raise CheckpointError(f"{file} was made for another run (stored vs asked: {mismatch}). "
                              f"Use another out_dir, or delete the folder.")
    return ckpt


def load_matching(net: torch.nn.Module, state: dict) -> list[str]:
    """Copy into ``net`` every tensor of ``state`` whose name and shape match; return the names
    of ``net``'s parameters left as they were (its new parts).

    The warm start of a context model from the shipped mean-scale weights
    (:data:`nctutor.codecs.WARM_STARTS`: the transforms are the same, the predictor is new);
    chapter *Predicting codes from their neighbours → Training*. No page calls it.
    """
    own = net.state_dict()
    taken = {k: v.to(own[k].dtype) for k, v in state.items()
             if k in own and own[k].shape == v.shape}
    if not any(k.startswith(("g_a.", "g_s.")) for k in taken):
        raise CheckpointError("the warm-start weights share no transform with this model")
    own.update(taken)
    net.load_state_dict(own)
    return sorted(k for k in dict(net.named_parameters()) if k not in taken)


def lineage(init: dict | None, siblings: dict[str, dict]) -> dict | None:
    """``init`` with the start of each run it names nested into it as ``"init"``, as far as the
    records go: a run's own record, else the manifest in ``siblings`` (``run_dir`` → manifest)
    of the run it names.

    The weight lineage of the shipped family (``nctutor/weights/README.md``); used by
    :func:`warm_start`, no page calls it.
    """
    if not init:
        return init
    if "init" in init:
        return {**init, "init": lineage(init["init"], siblings)}
    source = siblings.get(init.get("from"))
    if source is None or not source.get("settings", {}).get("init"):
        return init
    return {**init, "init": lineage(source["settings"]["init"], siblings)}
