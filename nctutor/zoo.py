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
   at the ``smoke`` profile), so that every notebook runs anywhere; with
   ``train_if_missing=False`` (the command line, unless a profile is asked for) a
   :class:`ZooError` names the ``nctutor train`` command that makes them instead.

:func:`locate` says where the weights would come from without loading anything, and
:func:`models` lists every codec with the source of its weights at each quality (``nctutor
models``).

``video_model("frameconv3d-order1")`` gives the binary video codec (:mod:`nctutor.codecs.video`;
no quality: its rate is the number of kept channels) the same way: the shipped
``nctutor/weights/<name>.pt`` (:func:`nctutor.videotrain.export`), else a finished run of
:func:`nctutor.videotrain.train` in the cache, else trained now or a :class:`ZooError`;
:func:`video_locate` says where without loading.

``pframe_model("pframe-xgdc", 2)`` gives a P-frame coder of :mod:`nctutor.codecs.conditional`
(chapter *Conditional coding in practice*): the shipped ``nctutor/weights/<name>-q<Q>.pt``
(:func:`nctutor.pframetrain.export`), else a finished run of :func:`nctutor.pframetrain.train` in
the cache, else a :class:`ZooError` naming the ``nctutor train`` command (it never trains: the
training pairs take minutes to make); :func:`pframe_locate` says where without loading.

``load("compressai:mbt2018-mean", 3)`` wraps CompressAI's pretrained models
(:func:`compressai.zoo.mbt2018_mean` and friends, trained by CompressAI on Vimeo-90k); their
weights are downloaded once into torch hub's cache, and offline a :class:`ZooError` says so.

Every checkpoint is read with ``torch.load(weights_only=True)``; one made for another
architecture or widths, or damaged, raises :class:`nctutor.errors.CheckpointError`. CompressAI's
``load_state_dict`` resizes the entropy coders' buffers; :func:`load` then calls
``update(force=True)`` so the CDF tables are recomputed from the loaded parameters, in the
portable arithmetic of :func:`nctutor.entropy.integer.portable_tables` (the same tables, and
fingerprints, on every machine).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from . import codecs, config, pframetrain, train, videotrain
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
from .codecs import conditional as cc
from .codecs.video import MODELS as VIDEO_MODELS
from .codecs.video import BinaryVideoCodec
from .entropy.integer import portable_tables
from .errors import CheckpointError, ZooError
from .train import TrainConfig


def _ready(model: torch.nn.Module, info: dict) -> torch.nn.Module:
    model.eval()
    model.update(force=True)
    portable_tables(model)
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
    """The image codecs' weights shipped in the package: ``{(name, quality): manifest}``, sorted
    (the video codecs': :func:`video_locate`; the P-frame coders': :func:`pframe_locate`).

    Listed in book section *Transform coding with learned priors → How this book uses them*; the
    command line (``nctutor compress``) uses them by default.
    """
    found = {}
    for man_file in sorted(Path(weights_dir or WEIGHTS_DIR).glob("*.json")):
        try:
            man = json.loads(man_file.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot read the manifest {man_file}: {e}") from e
        if (isinstance(man, dict) and man.get("format") == WEIGHTS_FORMAT and "quality" in man
                and man.get("model") not in cc.CODERS):  # image codecs (videos: no quality)
            found[(man["model"], int(man["quality"]))] = man
    return dict(sorted(found.items()))


# --------------------------------------------------------------------------- where weights are

#: Profiles whose models are worth using when none is asked for, best first (:func:`locate`);
#: ``smoke`` models train in seconds and are barely codecs, so they are used only when asked for.
USEFUL_PROFILES = ("gpu", "cpu")


def _shipped_file(arch: str, quality: int, profile: str | None) -> Path | None:
    """The shipped weights file of ``arch`` at ``quality``, if its manifest says ``profile``."""
    return _shipped(WEIGHTS_DIR / f"{arch}-q{quality}.pt", profile)


def _shipped(file: Path, profile: str | None) -> Path | None:
    """``file`` if it and its manifest exist and the manifest says ``profile`` (any, for None)."""
    man_file = file.with_suffix(".json")
    if not (file.is_file() and man_file.is_file()):
        return None
    try:
        shipped_profile = json.loads(man_file.read_text()).get("profile")
    except (OSError, ValueError, AttributeError) as e:
        raise CheckpointError(f"cannot read {man_file}: {e}") from e
    return file if profile is None or shipped_profile == profile else None


def _complete_run(arch: str, quality: int, prof: config.Profile) -> Path | None:
    """The cache's run folder of ``arch`` at ``quality`` and ``prof``, if its run is complete (at
    least the profile's steps; a shorter one is resumed by :func:`load`)."""
    run = train.run_dir(TrainConfig(model=arch, quality=quality, profile=prof.name))
    if not ((run / MANIFEST).is_file() and (run / CHECKPOINT).is_file()):
        return None
    try:
        man = json.loads((run / MANIFEST).read_text())
        complete = man["steps"] >= max(man["settings"]["steps"], prof.steps)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"cannot read {run / MANIFEST}: {e}. Delete the folder "
                              f"to train afresh.") from e
    return run if complete else None


def train_command(name: str, quality: int, profile: str) -> str:
    """The shell command that makes the weights of ``name`` at ``quality`` and ``profile``.

    Printed by the command line when they are missing (:func:`locate`); no page calls it.
    """
    return f"nctutor train {codecs.canonical_name(name)} --quality {quality} --profile {profile}"


def _compressai_file(arch: str, quality: int) -> Path:
    """Where torch hub keeps CompressAI's pretrained weights of ``arch`` at ``quality``."""
    from compressai.zoo.image import model_urls

    url = model_urls[arch]["mse"][quality]
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def locate(name: str, quality: int, profile: str | None = None) -> dict:
    """Where the weights of codec ``name`` at ``quality`` come from, without loading them.

    Returns ``{"quality", "from", "profile", "path"}`` (and ``"command"`` when they are missing),
    ``from`` being:

    - ``"shipped"``: the package's weights (``path`` the ``.pt`` file, ``profile`` its manifest's);
    - ``"cache"``: a complete run in the cache (``path`` its folder);
    - ``"needs training"``: neither; ``command`` is the ``nctutor train`` command that makes them;
    - ``"compressai"``: CompressAI's pretrained weights (``compressai:NAME``; ``path`` where torch
      hub keeps them, ``"downloaded"`` whether they are there).

    ``profile`` is :func:`load`'s: the weights for that profile (shipped ones whose manifest says
    it, else a complete run in the cache). ``None`` asks for any *useful* profile, the first
    found of: the shipped weights, a complete run at the ``gpu``, then ``cpu`` profile
    (:data:`USEFUL_PROFILES`; never ``smoke``'s unless asked for); missing ones then need
    training at ``cpu``. This is the command line's rule when neither ``--profile`` nor
    ``$NCTUTOR_PROFILE`` is given; no page calls it.
    """
    codecs.lmbda(quality)
    if name.startswith(COMPRESSAI_PREFIX):
        if codecs.canonical_name(name[len(COMPRESSAI_PREFIX):]) not in COMPRESSAI_MODELS:
            raise ZooError(f"CompressAI publishes no pretrained {name[len(COMPRESSAI_PREFIX):]}")
        file = _compressai_file(codecs.canonical_name(name[len(COMPRESSAI_PREFIX):]), quality)
        return {"quality": quality, "from": "compressai", "profile": "", "path": str(file),
                "downloaded": file.is_file()}
    arch = codecs.canonical_name(name)
    if profile is None:
        man = shipped().get((arch, quality))
        candidates = ([man["profile"]] if man else []) + list(USEFUL_PROFILES)
    else:
        candidates = [config.get_profile(profile).name]
    for prof in map(config.get_profile, dict.fromkeys(candidates)):
        file = _shipped_file(arch, quality, prof.name)
        if file is not None:
            return {"quality": quality, "from": "shipped", "profile": prof.name, "path": str(file)}
        run = _complete_run(arch, quality, prof)
        if run is not None:
            return {"quality": quality, "from": "cache", "profile": prof.name, "path": str(run)}
    prof = config.get_profile(profile or "cpu")
    run = train.run_dir(TrainConfig(model=arch, quality=quality, profile=prof.name))
    return {"quality": quality, "from": "needs training", "profile": prof.name,
            "path": str(run), "command": train_command(arch, quality, prof.name)}


def require(name: str, quality: int, profile: str | None = None) -> dict:
    """:func:`locate`, raising :class:`ZooError` when the weights need training: the message
    names what was looked for and the ``nctutor train`` command that makes them.

    Used by the command line (``compress``, ``eval``, ``bench`` never train unless a profile is
    asked for); no page calls it.
    """
    where = locate(name, quality, profile)
    if where["from"] != "needs training":
        return where
    arch = codecs.canonical_name(name)
    ships = [f"q{q} [{m['profile']}]" for (n, q), m in shipped().items() if n == arch]
    looked = (f"the {where['profile']} profile" if profile is not None
              else f"the {' or '.join(USEFUL_PROFILES)} profile")
    raise ZooError(
        f"no trained weights for {arch} q{quality} at {looked}: the package ships "
        + (f"{arch} at {', '.join(ships)} only" if ships else f"no {arch}")
        + f", and the cache has no complete run ({where['path']}). Make them with "
        f"`{where['command']}`; `nctutor models` lists the weights there are.")


def models(profile: str | None = None) -> list[dict]:
    """Every codec :func:`load`, :func:`video_model` and :func:`pframe_model` know, with the
    source of its weights.

    One dict per codec: ``{"name", "kind", "source", "qualities", "weights"}``: ``kind`` is
    ``"image"``, ``"video"`` or ``"pframe"``, ``source`` ``"nctutor"`` (the book's codecs,
    :data:`nctutor.codecs.IMAGE_MODELS`, :data:`nctutor.codecs.video.MODELS` and
    :data:`nctutor.codecs.conditional.CODERS`) or ``"compressai"`` (CompressAI's pretrained
    models, ``compressai:NAME``), ``qualities`` 1..8 (a P-frame coder: :data:`PFRAME_QUALITIES`;
    none for a video codec: its rate is the number of kept channels), and ``weights`` one
    :func:`locate` (:func:`pframe_locate`) dict per quality (a video codec: one
    :func:`video_locate` dict; ``profile`` as there). What ``nctutor models`` prints; no page
    calls it.
    """
    qualities = list(range(1, len(codecs.LAMBDAS) + 1))
    found = []
    ours = codecs.IMAGE_MODELS + tuple(codecs.PREDICTORS) + tuple(codecs.NORMALIZED)
    for source, prefix, archs in (("nctutor", "", ours),
                                  ("compressai", COMPRESSAI_PREFIX, COMPRESSAI_MODELS)):
        for arch in archs:
            name = prefix + arch
            found.append({"name": name, "kind": "image", "source": source,
                          "qualities": qualities,
                          "weights": [locate(name, q, profile) for q in qualities]})
    for name in VIDEO_MODELS:
        found.append({"name": name, "kind": "video", "source": "nctutor", "qualities": [],
                      "weights": [video_locate(name, profile)]})
    for name in cc.CODERS:
        found.append({"name": name, "kind": "pframe", "source": "nctutor",
                      "qualities": list(PFRAME_QUALITIES),
                      "weights": [pframe_locate(name, q, profile) for q in PFRAME_QUALITIES]})
    return found


# --------------------------------------------------------------------------- P-frame coders

#: The qualities the book trains its P-frame coders at (``nctutor models`` lists these; any of
#: 1..8 can be trained and loaded).
PFRAME_QUALITIES = (1, 2, 3, 4, 5)


def _pframe_run(name: str, quality: int, profile: str) -> Path:
    """The cache's run folder of the P-frame coder ``name`` at ``quality`` and ``profile`` (that
    of :class:`nctutor.pframetrain.PFrameTrainConfig` without ``out_dir``)."""
    return config.cache_dir() / "runs" / f"{name}-q{quality}-{profile}"


def _complete_pframe_run(name: str, quality: int, profile: str) -> Path | None:
    """The cache's run folder of ``name`` at ``quality`` and ``profile``, if its run is finished
    (as many steps as its settings ask)."""
    run = _pframe_run(name, quality, profile)
    if not ((run / MANIFEST).is_file() and (run / CHECKPOINT).is_file()):
        return None
    try:
        man = json.loads((run / MANIFEST).read_text())
        complete = man["steps"] >= man["settings"]["steps"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"cannot read {run / MANIFEST}: {e}. Delete the folder "
                              f"to train afresh.") from e
    return run if complete else None


def pframe_train_command(name: str, quality: int, profile: str) -> str:
    """The shell command that makes the weights of the P-frame coder ``name`` at ``quality`` and
    ``profile``.

    Printed when they are missing (:func:`pframe_locate`); no page calls it.
    """
    return f"nctutor train {name} -q {quality} --profile {profile}"


def _check_pframe_name(name: str, quality: int) -> None:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in cc.CODERS:
        raise ZooError(f"unknown P-frame model {name!r}; the P-frame models are "
                       f"{', '.join(cc.CODERS)}")
    codecs.lmbda(quality)  # 1..8


def pframe_locate(name: str, quality: int, profile: str | None = None) -> dict:
    """Where the weights of the P-frame coder ``name`` at ``quality`` come from, without loading
    them.

    Returns ``{"quality", "from", "profile", "path"}`` (and ``"command"`` when they are
    missing), ``from`` being ``"shipped"`` (``nctutor/weights/<name>-q<Q>.pt``, ``profile`` its
    manifest's), ``"cache"`` (a finished run, ``path`` its folder) or ``"needs training"``
    (``command`` makes them). As :func:`video_locate`: ``profile`` asks for that profile's
    weights; ``None`` for the shipped ones, else a finished run at the ``gpu``, then ``cpu``
    profile (:data:`USEFUL_PROFILES`), missing ones then needing training at ``cpu``. Used by
    the command line; no page calls it.
    """
    _check_pframe_name(name, quality)
    candidates = list(USEFUL_PROFILES) if profile is None else [config.get_profile(profile).name]
    file = _shipped(WEIGHTS_DIR / f"{name}-q{quality}.pt",
                    None if profile is None else candidates[0])
    if file is not None:
        man = json.loads(file.with_suffix(".json").read_text())
        return {"quality": quality, "from": "shipped", "profile": man.get("profile"),
                "path": str(file)}
    for prof in candidates:
        run = _complete_pframe_run(name, quality, prof)
        if run is not None:
            return {"quality": quality, "from": "cache", "profile": prof, "path": str(run)}
    prof = candidates[-1] if profile is not None else "cpu"
    return {"quality": quality, "from": "needs training", "profile": prof,
            "path": str(_pframe_run(name, quality, prof)),
            "command": pframe_train_command(name, quality, prof)}


def _load_pframe_run(name: str, quality: int, run: Path) -> cc.PFrameCoder:
    """The coder of a finished P-frame run's checkpoint (its settings give the widths), the
    entropy coders' tables rebuilt."""
    ckpt = load_checkpoint(run / CHECKPOINT)
    s = ckpt.get("settings", {}) if isinstance(ckpt, dict) else {}
    if (s.get("model"), s.get("quality")) != (name, quality):
        raise CheckpointError(f"{run / CHECKPOINT} is for {s.get('model')} q{s.get('quality')}, "
                              f"not {name} q{quality}")
    try:
        net = cc.create(name, int(s["N"]), int(s["M"]))
        state = {k: v for k, v in ckpt["model"].items() if not k.endswith(pframetrain.TABLES)}
        missing, unexpected = net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith(pframetrain.TABLES)]
        if missing or unexpected:
            raise KeyError(f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        raise CheckpointError(f"{run / CHECKPOINT} does not hold {name}: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}. "
                              f"Delete the folder to train afresh.") from e
    net.eval().update(force=True)
    return net


def pframe_model(name: str, quality: int, profile: str | None = None) -> cc.PFrameCoder:
    """The trained P-frame coder ``name`` (one of :data:`nctutor.codecs.conditional.CODERS`) at
    ``quality``, in eval mode with its entropy coders' tables built.

    Found as :func:`pframe_locate` says (``profile`` asks for that profile's weights, ``None``
    for the shipped ones or a finished ``gpu`` or ``cpu`` run): the shipped weights
    (:func:`nctutor.pframetrain.load_weights`), else the finished run in the cache (its
    checkpoint loaded strictly, the tables rebuilt by ``update(force=True)``); otherwise a
    :class:`ZooError` names the ``nctutor train NAME -q Q --profile P`` command that makes them.
    ``model.nctutor`` records name, quality, profile and source (what
    :func:`nctutor.container.encode_pframe`'s callers write into headers). Defined in book
    section *Conditional coding in practice → Real bitstreams*.
    """
    where = pframe_locate(name, quality, profile)
    if where["from"] == "shipped":
        net, man = pframetrain.load_weights(where["path"])
        if (man.get("model"), man.get("quality")) != (name, quality):
            raise CheckpointError(f"{where['path']} holds {man.get('model')} "
                                  f"q{man.get('quality')}, not {name} q{quality}")
    elif where["from"] == "cache":
        net = _load_pframe_run(name, quality, Path(where["path"]))
    else:
        looked = (f"the {where['profile']} profile" if profile is not None
                  else f"the {' or '.join(USEFUL_PROFILES)} profile")
        other = _shipped(WEIGHTS_DIR / f"{name}-q{quality}.pt", None)
        ships = (f"{name} q{quality} for the "
                 f"{json.loads(other.with_suffix('.json').read_text()).get('profile')} profile "
                 f"only" if other is not None else f"no {name} q{quality}")
        raise ZooError(f"no trained weights for {name} q{quality} at {looked}: the package "
                       f"ships {ships}, and the cache has no finished run ({where['path']}). "
                       f"Make them with `{where['command']}`; `nctutor models` lists the "
                       f"weights there are.")
    portable_tables(net)
    net.nctutor = {"name": name, "quality": quality, "profile": where["profile"],
                   "source": where["path"]}
    return net


# --------------------------------------------------------------------------- video codecs


def _video_shipped_file(name: str, profile: str | None) -> Path | None:
    """The shipped weights file of the video codec ``name``, if its manifest says ``profile``
    (any profile for ``None``)."""
    return _shipped(WEIGHTS_DIR / f"{name}.pt", profile)


def _video_run(name: str, profile: str) -> Path:
    """The cache's run folder of the video codec ``name`` at ``profile``."""
    return Path(videotrain.VideoTrainConfig(model=name, profile=profile).resolved()["run_dir"])


def _complete_video_run(name: str, profile: str) -> Path | None:
    """The cache's run folder of ``name`` at ``profile``, if its run is finished (at least the
    steps of its settings and of the profile)."""
    run = _video_run(name, profile)
    if not ((run / MANIFEST).is_file() and (run / CHECKPOINT).is_file()):
        return None
    try:
        man = json.loads((run / MANIFEST).read_text())
        complete = man["steps"] >= max(man["settings"]["steps"],
                                       config.VIDEO_SIZES[profile].steps)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"cannot read {run / MANIFEST}: {e}. Delete the folder "
                              f"to train afresh.") from e
    return run if complete else None


def video_train_command(name: str, profile: str) -> str:
    """The shell command that makes the weights of the video codec ``name`` at ``profile``.

    Printed by the command line when they are missing (:func:`video_locate`); no page calls it.
    """
    return f"nctutor train {name} --profile {profile}"


def _check_video_name(name: str) -> None:
    if name not in VIDEO_MODELS:
        raise ZooError(f"unknown video model {name!r}; the video models are "
                       f"{', '.join(VIDEO_MODELS)}")


def video_locate(name: str, profile: str | None = None) -> dict:
    """Where the weights of the video codec ``name`` come from, without loading them.

    Returns ``{"from", "profile", "path"}`` (and ``"command"`` when they are missing), ``from``
    being ``"shipped"`` (``nctutor/weights/<name>.pt``, ``profile`` its manifest's), ``"cache"``
    (a finished run, ``path`` its folder) or ``"needs training"`` (``command`` makes them). Like
    :func:`locate`: ``profile`` asks for that profile's weights; ``None`` for the shipped ones,
    else a finished run at the ``gpu``, then ``cpu`` profile (:data:`USEFUL_PROFILES`), missing
    ones then needing training at ``cpu``. Used by the binary video codec's command line; no page
    calls it yet.
    """
    _check_video_name(name)
    candidates = list(USEFUL_PROFILES) if profile is None else [config.get_profile(profile).name]
    file = _video_shipped_file(name, None if profile is None else candidates[0])
    if file is not None:
        man = json.loads(file.with_suffix(".json").read_text())
        return {"from": "shipped", "profile": man.get("profile"), "path": str(file)}
    for prof in candidates:
        run = _complete_video_run(name, prof)
        if run is not None:
            return {"from": "cache", "profile": prof, "path": str(run)}
    prof = candidates[-1] if profile is not None else "cpu"
    return {"from": "needs training", "profile": prof, "path": str(_video_run(name, prof)),
            "command": video_train_command(name, prof)}


def _ready_video(model: BinaryVideoCodec, info: dict) -> BinaryVideoCodec:
    model.eval()
    model.nctutor = info  # name, profile, frames, source: what the encoder writes into headers
    return model


def _load_video_run(name: str, run: Path, info: dict) -> BinaryVideoCodec:
    """The model of a finished video run's checkpoint (its settings give order, N, C, T)."""
    ckpt = load_checkpoint(run / CHECKPOINT)
    s = ckpt.get("settings", {}) if isinstance(ckpt, dict) else {}
    if s.get("model") != name:
        raise CheckpointError(f"{run / CHECKPOINT} is for {s.get('model')}, not {name}")
    try:
        net = BinaryVideoCodec(VIDEO_MODELS[name], int(s["N"]), int(s["C"]))
        net.load_state_dict(ckpt["model"])
        frames = int(s["frames"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{run / CHECKPOINT} does not hold {name}: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}. "
                              f"Delete the folder to train afresh.") from e
    return _ready_video(net, {**info, "frames": frames})


def video_model(name: str, profile: str | None = None,
                train_if_missing: bool = False) -> BinaryVideoCodec:
    """The trained video codec ``name`` (one of :data:`nctutor.codecs.video.MODELS`) in eval mode.

    Found as :func:`video_locate` says (``profile`` asks for that profile's weights, ``None`` for
    the shipped ones or a finished ``gpu`` or ``cpu`` run): the shipped weights
    (:func:`nctutor.videotrain.load_weights`), else the finished run in the cache. Missing ones
    are trained now with :func:`nctutor.videotrain.train` when ``train_if_missing`` (at
    ``profile``, or for ``None`` the current profile, :func:`nctutor.config.get_profile`: a
    finished run of it is used as it is); otherwise a :class:`ZooError` names the
    ``nctutor train NAME --profile P`` command that makes them. ``model.nctutor`` records name,
    profile, ``frames`` (the group length ``T`` it was trained on, what the encoder uses) and
    source. Defined in book section *A binary video codec with delta-sigma modulation → Real
    bytes*.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    where = video_locate(name, profile)
    if where["from"] == "shipped":
        net, man = videotrain.load_weights(where["path"])
        return _ready_video(net, {"name": name, "profile": man["profile"],
                                  "frames": int(man["frames"]), "source": where["path"]})
    info = {"name": name, "profile": where["profile"], "source": where["path"]}
    if where["from"] == "cache":
        return _load_video_run(name, Path(where["path"]), info)
    if not train_if_missing:
        looked = (f"the {where['profile']} profile" if profile is not None
                  else f"the {' or '.join(USEFUL_PROFILES)} profile")
        other = _video_shipped_file(name, None)
        ships = (f"{name} for the {json.loads(other.with_suffix('.json').read_text())['profile']}"
                 f" profile only" if other is not None else f"no {name}")
        raise ZooError(f"no trained weights for {name} at {looked}: the package ships {ships}, "
                       f"and the cache has no finished run ({where['path']}). Make them with "
                       f"`{where['command']}`; `nctutor models` lists the weights there are.")
    prof = config.get_profile(profile).name
    run = _complete_video_run(name, prof)
    info = {"name": name, "profile": prof, "source": str(_video_run(name, prof))}
    if run is not None:
        return _load_video_run(name, run, info)
    result = videotrain.train(videotrain.VideoTrainConfig(model=name, profile=prof),
                              progress=False)
    frames = int(result["manifest"]["settings"]["frames"])
    return _ready_video(result["model"], {**info, "frames": frames,
                                          "source": f"trained: {info['source']}"})


# --------------------------------------------------------------------------- load


#: The architectures of which CompressAI publishes pretrained weights (``compressai:NAME``).
COMPRESSAI_MODELS = ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "mbt2018")


def _compressai_pretrained(arch: str, quality: int) -> torch.nn.Module:
    import urllib.error

    from compressai import zoo as czoo

    if arch not in COMPRESSAI_MODELS:
        raise ZooError(f"CompressAI publishes no pretrained {arch}; its pretrained models here "
                       f"are {', '.join(COMPRESSAI_MODELS)}")
    fn = {"bmshj2018-factorized": czoo.bmshj2018_factorized,
          "bmshj2018-hyperprior": czoo.bmshj2018_hyperprior,
          "mbt2018-mean": czoo.mbt2018_mean, "mbt2018": czoo.mbt2018}[arch]
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


def load(name: str, quality: int, profile: str | None = None, progress: bool = False,
         train_if_missing: bool = True) -> torch.nn.Module:
    """The trained codec ``name`` at ``quality`` (1..8) for ``profile`` (default: the current
    one): shipped weights, else a complete cached run, else trained now (see the module docstring)
    — or, with ``train_if_missing=False``, a :class:`ZooError` naming the command that trains it.

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

    file = _shipped_file(arch, quality, prof.name)
    if file is not None:
        return load_exported(file)
    cfg = TrainConfig(model=arch, quality=quality, profile=prof.name)
    run = train.run_dir(cfg)
    info = {"name": arch, "quality": quality, "profile": prof.name, "source": str(run)}
    if _complete_run(arch, quality, prof) is not None:
        ckpt = load_checkpoint(run / CHECKPOINT)
        s = ckpt.get("settings", {}) if isinstance(ckpt, dict) else {}
        if s.get("model") != arch or s.get("quality") != quality:
            raise CheckpointError(f"{run / CHECKPOINT} is for {s.get('model')} "
                                  f"q{s.get('quality')}, not {arch} q{quality}")
        model = load_state(arch, int(s["N"]), int(s["M"]), ckpt.get("model"), run / CHECKPOINT)
        return _ready(model, info)
    if not train_if_missing:
        require(arch, quality, prof.name)  # raises the ZooError that says what to run
    result = train.train(cfg, progress=progress)
    return _ready(result.model, {**info, "source": f"trained: {run}"})
