"""Trained codecs by name: shipped weights, the cache, or a training run.

Chapter *Transform coding with learned priors* (section *How this book uses them*) and the notebook
*Rate-distortion curves of three learned codecs* (section *Learned codecs: train or load, then
encode to bytes*).

``load("mbt2018-mean", 3)`` returns a model in eval mode with its entropy coders updated, found
in this order:

1. weights shipped in the package, ``nctutor/weights/<name>-q<Q>.pt`` with its manifest
   ``<name>-q<Q>.json`` (written by :func:`export`), used when the manifest's profile is the one
   asked for (the profile fixes the widths N, M);
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

from . import __version__, config, models, train
from .data import sha256
from .train import CheckpointError, TrainConfig, TrainResult

WEIGHTS_DIR = Path(__file__).with_name("weights")
WEIGHTS_FORMAT = "nctutor-weights/1"
COMPRESSAI_PREFIX = "compressai:"


class ZooError(RuntimeError):
    """A model cannot be obtained (e.g. CompressAI's pretrained weights while offline).

    Raised by :func:`load` (book section *Transform coding with learned priors → How this book
    uses them*).
    """


def _ready(model: torch.nn.Module, info: dict) -> torch.nn.Module:
    model.eval()
    model.update(force=True)
    model.nctutor = info  # name, quality, profile, source: what encoders write into headers
    return model


def _load_state(arch: str, N: int, M: int, state: dict, source: str | Path) -> torch.nn.Module:
    """A model ``arch`` of widths ``N``, ``M`` with ``state`` loaded (fp16 tensors widened)."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source} holds no state dict of tensors")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model = models.create(arch, N=N, M=M)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, IndexError) as e:
        raise CheckpointError(
            f"{source} does not fit {arch} with N={N}, M={M} (another architecture or other "
            f"widths?): {str(e).splitlines()[0]}") from e
    return model


# --------------------------------------------------------------------------- exported weights


def read_exported(file: str | os.PathLike) -> tuple[dict, dict]:
    """The manifest and the stored state dict of a weights file written by :func:`export` (its
    ``.json`` manifest beside it), after checking the manifest's format and the file's SHA-256.

    Used by :func:`load_exported` and by ``nctutor train --init FILE`` (training shipped weights
    further, chapter *How to run this book → Training from the command line*); no page calls it.
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
    return man, train.load_checkpoint(file).get("model")


def load_exported(file: str | os.PathLike) -> torch.nn.Module:
    """Load a weights file written by :func:`export` (its ``.json`` manifest beside it): checks
    the SHA-256 (:func:`read_exported`), the architecture and widths. Returns the model in eval
    mode, updated.

    Used by :func:`load` for shipped weights (chapter *Transform coding with learned priors*); no
    page calls it.
    """
    man, state = read_exported(file)
    arch = models.canonical_name(man["model"])
    model = _load_state(arch, int(man["N"]), int(man["M"]), state, file)
    return _ready(model, {"name": arch, "quality": int(man["quality"]),
                          "profile": man["profile"], "source": str(file)})


def export(result_or_run_dir: TrainResult | str | os.PathLike, name: str, quality: int,
           out_dir: str | os.PathLike, half: bool = True) -> Path:
    """Write ``<out_dir>/<name>-q<Q>.pt`` (weights only, fp16 where ``half``) and its manifest
    ``<name>-q<Q>.json`` (settings, training summary, SHA-256): what the package ships.

    ``result_or_run_dir`` is a :class:`~nctutor.train.TrainResult` or a finished run folder.
    The entropy models' parameters stay in fp32 (they are small and set the probabilities); only
    the transforms are halved. Their integer CDF tables are written empty, as in a model never
    updated: :func:`load_exported` rebuilds them from the parameters (``update(force=True)``),
    so stored ones would only add bytes, or go stale once training moves the parameters.
    Returns the ``.pt`` path.
    A maintainer's tool (it fills ``nctutor/weights``) for the chapter *Transform coding with
    learned priors*; no page calls it.
    """
    arch = models.canonical_name(name)
    models.lmbda(quality)
    if isinstance(result_or_run_dir, TrainResult):
        state, manifest = result_or_run_dir.model.state_dict(), result_or_run_dir.manifest
    else:
        run = Path(result_or_run_dir)
        ckpt = train.load_checkpoint(run / train.CHECKPOINT)
        try:
            manifest = json.loads((run / train.MANIFEST).read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot read {run / train.MANIFEST}: {e}") from e
        state = ckpt["model"]
    settings = manifest.get("settings", {})
    if settings.get("model") != arch or settings.get("quality") != quality:
        raise ValueError(f"the run is {settings.get('model')} q{settings.get('quality')}, "
                         f"not {arch} q{quality}")

    def keep_fp32(key: str) -> bool:
        return key.startswith(("entropy_bottleneck.", "gaussian_conditional."))

    def rebuilt_at_load(key: str) -> bool:
        return keep_fp32(key) and key.endswith(("._quantized_cdf", "._offset", "._cdf_length"))

    out = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if rebuilt_at_load(k):
            v = v.new_zeros(0)
        elif half and v.is_floating_point() and not keep_fp32(k):
            h = v.half()
            v = h if torch.isfinite(h).all() else v  # a value beyond fp16's range stays fp32
        out[k] = v.clone()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    file = out_dir / f"{arch}-q{quality}.pt"
    tmp = file.with_name(file.name + ".part")
    torch.save({"format": WEIGHTS_FORMAT, "model": out}, tmp)
    os.replace(tmp, file)
    man = {
        "format": WEIGHTS_FORMAT, "model": arch, "quality": quality,
        "profile": settings.get("profile"), "N": settings.get("N"), "M": settings.get("M"),
        "lmbda": settings.get("lmbda"), "dtype": "float16" if half else "float32",
        "sha256": sha256(file), "bytes": file.stat().st_size,
        "steps": manifest.get("steps"), "seconds": manifest.get("seconds"),
        "final": manifest.get("final", {}), "settings": settings, "data": manifest.get("data"),
        "nctutor_version": __version__, "torch_version": torch.__version__,
    }
    file.with_suffix(".json").write_text(json.dumps(man, indent=2))
    return file


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


#: What the shipped family is compared with in its report (:func:`report`): the classic codecs
#: measured live with Pillow / pillow-heif on all 24 Kodak images, and CompressAI's published
#: curve of the same architecture (fully trained by CompressAI, N=128/192, M=192/320).
REPORT_ANCHORS = {
    "JPEG": "classic-kodak-pillow/jpeg",
    "WebP": "classic-kodak-pillow/webp",
    "AVIF": "classic-kodak-pillow/avif",
    "HEIC (x265)": "classic-kodak-pillow/heif",
    "CompressAI (published)": "compressai-{name}_mse_cpu",
}


def family_bd_rates(curve, name: str) -> dict[str, dict]:
    """BD-rate (%, PSNR) and BD-PSNR (dB) of ``curve`` against each of :data:`REPORT_ANCHORS`,
    with the PSNR range the two curves share (negative BD-rate: ``curve`` needs fewer bits).

    Used by :func:`report`; shown in the notebook *Rate-distortion curves of three learned
    codecs → The shipped weights*.
    """
    from . import eval as nceval

    out = {}
    for label, ref in REPORT_ANCHORS.items():
        anchor = nceval.reference_curve(ref.format(name=name))
        lo = max(min(anchor.psnr), min(curve.psnr))
        hi = min(max(anchor.psnr), max(curve.psnr))
        out[label] = {"reference": ref.format(name=name),
                      "bd_rate": round(nceval.bd_rate(anchor, curve, min_overlap=0), 2),
                      "bd_psnr": round(nceval.bd_psnr(anchor, curve, min_overlap=0), 3),
                      "shared_psnr_db": [round(lo, 2), round(hi, 2)]}
    return out


def report(name: str, weights_dir: str | os.PathLike | None = None, images=None,
           progress: bool = True) -> dict:
    """Evaluate the shipped weights of ``name`` (all their qualities) on Kodak with real
    bitstreams and write the family's report: ``<weights_dir>/<name>-kodak.json`` (CompressAI's
    results format, plus per-image records and :func:`family_bd_rates`), and each manifest's
    ``kodak`` entry (its own point and the family's BD-rates).

    A maintainer's tool run after :func:`export` (see ``nctutor/weights/README.md``); the notebook
    *Rate-distortion curves of three learned codecs → The shipped weights* reads what it writes.
    """
    from tqdm.auto import tqdm

    from . import data
    from . import eval as nceval

    wdir = Path(weights_dir or WEIGHTS_DIR)
    arch = models.canonical_name(name)
    family = {q: man for (n, q), man in shipped(wdir).items() if n == arch}
    if len(family) < 2:
        raise ValueError(f"{wdir} holds {len(family)} weights of {arch}; a report needs two")
    images = data.kodak() if images is None else images
    points = {}
    for q in tqdm(family, desc=f"{arch} on Kodak", disable=not progress):
        model = load_exported(wdir / f"{arch}-q{q}.pt")
        points[q] = nceval.evaluate_model(model, images, name=f"{arch} q{q}", quality=q)
    profiles = sorted({man["profile"] for man in family.values()})
    label = f"nctutor {arch} (shipped, {'/'.join(profiles)})"
    curve = nceval.join(list(points.values()), name=label,
                        description=f"nctutor.zoo.report: shipped weights {arch} q{list(family)}, "
                                    f"{len(images)} Kodak images, real bitstreams, "
                                    f"torch {torch.__version__}, nctutor {__version__}")
    bd = family_bd_rates(curve, arch)
    doc = nceval.to_compressai_json(curve)
    doc["results"]["quality"] = [int(q) for q in curve.qualities]
    doc["records"] = curve.records
    doc["bd_rate_psnr"] = bd
    (wdir / f"{arch}-kodak.json").write_text(json.dumps(doc, indent=2))
    for q, man in family.items():
        p = points[q]
        man["kodak"] = {"images": len(images), "bpp": p.bpp[0], "psnr": p.psnr[0],
                        "ms_ssim": p.ms_ssim[0] if p.ms_ssim else None,
                        "family_bd_rate_psnr": {k: v["bd_rate"] for k, v in bd.items()},
                        "report": f"{arch}-kodak.json"}
        (wdir / f"{arch}-q{q}.json").write_text(json.dumps(man, indent=2))
    return doc


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
    models.lmbda(quality)
    if name.startswith(COMPRESSAI_PREFIX):
        return _compressai_pretrained(models.canonical_name(name[len(COMPRESSAI_PREFIX):]),
                                      quality)
    arch = models.canonical_name(name)
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
    if (run / train.MANIFEST).is_file() and (run / train.CHECKPOINT).is_file():
        try:
            man = json.loads((run / train.MANIFEST).read_text())
            complete = man["steps"] >= max(man["settings"]["steps"], prof.steps)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"cannot read {run / train.MANIFEST}: {e}. Delete the folder "
                                  f"to train afresh.") from e
        if complete:
            ckpt = train.load_checkpoint(run / train.CHECKPOINT)
            s = ckpt.get("settings", {}) if isinstance(ckpt, dict) else {}
            if s.get("model") != arch or s.get("quality") != quality:
                raise CheckpointError(f"{run / train.CHECKPOINT} is for {s.get('model')} "
                                      f"q{s.get('quality')}, not {arch} q{quality}")
            model = _load_state(arch, int(s["N"]), int(s["M"]), ckpt.get("model"),
                                run / train.CHECKPOINT)
            return _ready(model, info)
    result = train.train(cfg, progress=progress)
    return _ready(result.model, {**info, "source": f"trained: {run}"})
