"""Maintainer jobs: exporting trained weights into the package, and writing their reports.

Not on the path a student reads: what fills ``nctutor/weights`` (see its README.md). Chapter
*Transform coding with learned priors → How this book uses them* shows what these write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from . import __version__, codecs, data, rd, zoo
from .checkpoints import (
    CHECKPOINT,
    MANIFEST,
    WEIGHTS_DIR,
    WEIGHTS_FORMAT,
    load_checkpoint,
)
from .config import machine_info
from .errors import CheckpointError
from .files import atomic_write, sha256
from .train import TrainResult


def export(result_or_run_dir: TrainResult | str | os.PathLike, name: str, quality: int,
           out_dir: str | os.PathLike, half: bool = True) -> Path:
    """Write ``<out_dir>/<name>-q<Q>.pt`` (weights only, fp16 where ``half``) and its manifest
    ``<name>-q<Q>.json`` (settings, training summary, SHA-256): what the package ships.

    ``result_or_run_dir`` is a :class:`~nctutor.train.TrainResult` or a finished run folder.
    The entropy models' parameters stay in fp32 (they are small and set the probabilities); only
    the transforms are halved. Their integer CDF tables are written empty, as in a model never
    updated: :func:`nctutor.zoo.load_exported` rebuilds them from the parameters
    (``update(force=True)``), so stored ones would only add bytes, or go stale once training
    moves the parameters.
    Returns the ``.pt`` path.
    A maintainer's tool (it fills ``nctutor/weights``) for the chapter *Transform coding with
    learned priors*; no page calls it.
    """
    arch = codecs.canonical_name(name)
    codecs.lmbda(quality)
    if isinstance(result_or_run_dir, TrainResult):
        state, manifest = result_or_run_dir.model.state_dict(), result_or_run_dir.manifest
    else:
        run = Path(result_or_run_dir)
        ckpt = load_checkpoint(run / CHECKPOINT)
        try:
            manifest = json.loads((run / MANIFEST).read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot read {run / MANIFEST}: {e}") from e
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
    atomic_write(file, lambda tmp: torch.save({"format": WEIGHTS_FORMAT, "model": out}, tmp))
    man = {
        "format": WEIGHTS_FORMAT, "model": arch, "quality": quality,
        "profile": settings.get("profile"), "N": settings.get("N"), "M": settings.get("M"),
        "lmbda": settings.get("lmbda"), "dtype": "float16" if half else "float32",
        "sha256": sha256(file), "bytes": file.stat().st_size,
        "steps": manifest.get("steps"), "seconds": manifest.get("seconds"),
        "final": manifest.get("final", {}), "settings": settings, "data": manifest.get("data"),
        "nctutor_version": __version__, "torch_version": torch.__version__,
        "machine": machine_info(),
    }
    atomic_write(file.with_suffix(".json"), json.dumps(man, indent=2))
    return file


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


#: The architecture whose CompressAI-published curve stands beside a family in its report: its
#: own, or for the code-space predictor the published context model of Minnen et al.
PUBLISHED_AS = {"kwcc2018-hierarchical": "mbt2018", "kwcc2018-checkerboard": "mbt2018",
                "kwcc2018-spatial": "mbt2018"}


def family_bd_rates(curve, name: str) -> dict[str, dict]:
    """BD-rate (%, PSNR) and BD-PSNR (dB) of ``curve`` against each of :data:`REPORT_ANCHORS`,
    with the PSNR range the two curves share (negative BD-rate: ``curve`` needs fewer bits).

    Used by :func:`report`; shown in the notebook *Rate-distortion curves of three learned
    codecs → The shipped weights*.
    """
    out = {}
    published = PUBLISHED_AS.get(name, name)
    for label, ref in REPORT_ANCHORS.items():
        ref = ref.format(name=published)
        anchor = rd.reference_curve(ref)
        lo = max(min(anchor.psnr), min(curve.psnr))
        hi = min(max(anchor.psnr), max(curve.psnr))
        out[label] = {"reference": ref,
                      "bd_rate": round(rd.bd_rate(anchor, curve, min_overlap=0), 2),
                      "bd_psnr": round(rd.bd_psnr(anchor, curve, min_overlap=0), 3),
                      "shared_psnr_db": [round(lo, 2), round(hi, 2)]}
    return out


def report(name: str, weights_dir: str | os.PathLike | None = None, images=None,
           progress: bool = True) -> dict:
    """Evaluate the shipped weights of ``name`` (all their qualities) on Kodak as real ``.nct``
    files (:func:`nctutor.rd.evaluate_model`: the rate is the whole file, as ``nctutor compress``
    writes it) and write the family's report: ``<weights_dir>/<name>-kodak.json`` (CompressAI's
    results format, plus per-image records with the file's ``bytes`` and the streams'
    ``stream_bytes``, and :func:`family_bd_rates`), and each manifest's ``kodak`` entry (its own
    point, the streams' mean bpp alone, and the family's BD-rates).

    A maintainer's tool run after :func:`export` (see ``nctutor/weights/README.md``); the notebook
    *Rate-distortion curves of three learned codecs → The shipped weights* reads what it writes.
    """
    from tqdm.auto import tqdm

    from . import data
    wdir = Path(weights_dir or WEIGHTS_DIR)
    arch = codecs.canonical_name(name)
    family = {q: man for (n, q), man in zoo.shipped(wdir).items() if n == arch}
    if len(family) < 2:
        raise ValueError(f"{wdir} holds {len(family)} weights of {arch}; a report needs two")
    images = data.kodak() if images is None else images
    points = {}
    for q in tqdm(family, desc=f"{arch} on Kodak", disable=not progress):
        model = zoo.load_exported(wdir / f"{arch}-q{q}.pt")
        points[q] = rd.evaluate_model(model, images, name=f"{arch} q{q}", quality=q)
    profiles = sorted({man["profile"] for man in family.values()})
    label = f"nctutor {arch} (shipped, {'/'.join(profiles)})"
    curve = rd.join(list(points.values()), name=label,
                    description=f"nctutor.maintain.report: shipped weights {arch} "
                                f"q{list(family)}, {len(images)} Kodak images, .nct files (bpp "
                                f"of the whole file, header included), torch {torch.__version__}, "
                                f"nctutor {__version__}")
    bd = family_bd_rates(curve, arch)
    doc = rd.to_compressai_json(curve)
    doc["results"]["quality"] = [int(q) for q in curve.qualities]
    doc["records"] = curve.records
    doc["bd_rate_psnr"] = bd
    doc["machine"] = machine_info()
    atomic_write(wdir / f"{arch}-kodak.json", json.dumps(doc, indent=2))
    for q, man in family.items():
        p = points[q]
        stream_bpp = [r["bpp"] * r["stream_bytes"] / r["bytes"] for r in p.records]  # 8·s/px
        man["kodak"] = {"images": len(images), "bpp": p.bpp[0],
                        "stream_bpp": sum(stream_bpp) / len(stream_bpp), "psnr": p.psnr[0],
                        "ms_ssim": p.ms_ssim[0] if p.ms_ssim else None,
                        "family_bd_rate_psnr": {k: v["bd_rate"] for k, v in bd.items()},
                        "report": f"{arch}-kodak.json", "machine": doc["machine"]}
        atomic_write(wdir / f"{arch}-q{q}.json", json.dumps(man, indent=2))
    return doc


def latent_finetune(out: str | os.PathLike, qualities=(1, 2, 3, 4), noises=("scalar", "hex"),
                    steps: int = 200, lr: float = 3e-5, images=None, profile: str = "cpu",
                    command: str = "") -> dict:
    """Fine-tune ``g_s`` of the shipped ``mbt2018-mean`` with each cell noise
    (:func:`nctutor.finetune.finetune_decoder`, same start, steps and crops for all), then code
    ``images`` (default: Kodak) with every quantizer of ``noises`` and decode each file with the
    shipped and every fine-tuned decoder. Writes ``out`` (JSON): per quality, image, quantizer
    and decoder the file's bytes and the 8-bit RGB PSNR, and every fine-tune's loss curve.
    A maintainer's job for book section *Lattices and the latent shift on a trained codec →
    Fine-tuning the decoder for the lattice* (the page reads the stored record).
    """
    from .container import decode_image, encode_image
    from .finetune import finetune_decoder

    items = rd.image_list(images if images is not None else data.kodak())
    record: dict = {"command": command, "profile": profile, "steps": steps, "lr": lr,
                    "noises": list(noises), "images": [n for n, _ in items],
                    "machine": machine_info(), "qualities": {}}
    for q in qualities:
        model = zoo.load("mbt2018-mean", q, profile, train_if_missing=False)
        decoders = {"shipped": model}
        entry: dict = {"losses": {}, "rows": {}}
        for noise in noises:
            decoders[noise], entry["losses"][noise] = finetune_decoder(model, noise, steps, lr=lr)
        for image, x in items:
            row = entry["rows"].setdefault(image, {})
            for quantizer in noises:
                blob = encode_image(model, x, "mbt2018-mean", q, profile, coder="lattice",
                                    quantizer=quantizer)
                row[quantizer] = {"bytes": len(blob), "bpp": rd.bpp(len(blob), *x.shape[-2:])}
                for dec, m in decoders.items():
                    row[quantizer][f"psnr_{dec}"] = rd.psnr(x, decode_image(blob, m))
        record["qualities"][str(q)] = entry
        atomic_write(out, json.dumps(record, indent=1))
    return record


def _load_finished(run: Path, arch: str, quality: int) -> torch.nn.Module:
    """The finished training run ``run`` of ``arch`` at ``quality``, exported to fp16 as shipped
    weights are (``<run>/export``) and loaded from there, so that it is evaluated with the
    precision it would ship with. A helper of the experiments below; no page calls it."""
    man = json.loads((run / MANIFEST).read_text())
    if man["steps"] < man["settings"]["steps"]:
        raise ValueError(f"{run} has {man['steps']} of its {man['settings']['steps']} steps: "
                         f"finish it first")
    return zoo.load_exported(export(run, arch, quality, run / "export"))


def _facts(model: torch.nn.Module, run: Path | None) -> dict:
    """What the manifest of ``model``'s weights says of its training (file, hash, steps,
    seconds, final figures, start), and the loss curve of its run folder ``run`` when there is
    one (every 25th step and every validation, rounded). A helper of the experiments below."""
    src = Path(model.nctutor["source"])
    man = json.loads(src.with_suffix(".json").read_text())
    out = {"weights": src.name, "sha256": man.get("sha256"), "steps": man.get("steps"),
           "seconds": man.get("seconds"), "final": man.get("final"),
           "init": (man.get("settings") or {}).get("init", {}).get("from")}
    if run is not None and (run / CHECKPOINT).is_file():
        history = load_checkpoint(run / CHECKPOINT).get("history", [])
        out["history"] = [{k: round(v, 5) if isinstance(v, float) else v for k, v in h.items()}
                          for h in history if h["step"] % 25 == 0 or "val_bpp" in h]
    return out


def predictor_experiment(runs: str | os.PathLike, out: str | os.PathLike,
                         qualities=(1, 2, 3, 4), images=None, command: str = "",
                         progress: bool = True, variants=None, experiment: str = "context"
                         ) -> dict:
    """Evaluate every variant of the code-space predictor's experiment
    (:data:`nctutor.rd.predictor.VARIANTS`) on ``images`` (default: the 24 Kodak images) and
    write the record ``out`` (:func:`nctutor.rd.predictor.run`).

    ``shipped`` is the package's ``mbt2018-mean``; every other variant at quality ``Q`` is the
    package's own weights of its architecture when they exist and are that variant's
    (``kwcc2018-hierarchical``), else the finished run ``<runs>/<variant>-q<Q>`` (made by
    :func:`nctutor.rd.predictor.train_command`),
    exported to fp16 as shipped weights are (``<run>/export``) so that every variant is
    evaluated with the precision it would ship with; a missing run is skipped. ``variants``
    limits the record to some variants (several processes can share the work; join their
    records with :func:`nctutor.rd.predictor.merge`). ``experiment="sgdn"``: the same for the
    normalizations of :mod:`nctutor.rd.normalization` (all from ``runs``). A maintainer's
    job for book section *Predicting codes from their neighbours → How the table is made* and
    *Predicting codes from their neighbours → Which GDN is SGDN?* (the page reads the stored
    records).
    """
    from .rd import normalization, predictor

    experiments = {"context": predictor, "sgdn": normalization}
    if experiment not in experiments:
        raise ValueError(f"experiment must be one of {', '.join(experiments)}, got {experiment!r}")
    module = experiments[experiment]
    runs = Path(runs)
    models = {}
    for variant, (arch, _) in module.VARIANTS.items():
        if variants is not None and variant not in variants:
            continue
        for q in qualities:
            shipped_file = WEIGHTS_DIR / f"{arch}-q{q}.pt"
            run = runs / f"{variant}-q{q}"
            if variant == "shipped" or (variant == arch != "mbt2018-mean"
                                        and shipped_file.is_file()):
                if shipped_file.is_file():
                    models[(variant, q)] = zoo.load_exported(shipped_file)
            elif (run / CHECKPOINT).is_file():
                models[(variant, q)] = _load_finished(run, arch, q)
    if not models:
        raise FileNotFoundError(f"no weights found for the experiment in {WEIGHTS_DIR} or {runs}")
    record = module.run(models, images if images is not None else data.kodak(), command,
                        progress)
    record["train"]["runs"] = {  # the start has no run folder of this experiment
        f"{v}-q{q}": _facts(model, None if v == "shipped" else runs / f"{v}-q{q}")
        for (v, q), model in models.items()}
    atomic_write(out, json.dumps(record, indent=1))
    return record


def video_experiment(models: dict[str, str | os.PathLike], out: str | os.PathLike,
                     frames: int | None = None, command: str = "", progress: bool = True) -> dict:
    """The binary video codec's record: :func:`nctutor.rd.binary_video.run` on the held-out
    clips for each model (a weights file of :func:`nctutor.videotrain.export`: what the package
    ships, so that a test can re-measure the record), with each run's settings and training
    history (:func:`nctutor.videotrain.summary`): the Fig. 2 analog and the RD comparison from
    one run.

    Written to ``out`` (JSON) by ``nctutor video-eval``; the chapter *A binary video codec with
    delta-sigma modulation* reads it. A maintainer's tool; no page calls it.
    """
    from . import videotrain
    from .rd import binary_video

    nets, runs = {}, {}
    for name, source in models.items():
        net, man = videotrain.load_weights(source)
        if man["steps"] < man["settings"]["steps"]:
            raise CheckpointError(f"{source} holds an unfinished run ({man['steps']} of "
                                  f"{man['settings']['steps']} steps): train it to the end first")
        nets[name] = net
        runs[name] = {"settings": man["settings"], "weights": Path(source).name,
                      "sha256": man["sha256"], "seconds": man["seconds"],
                      "history": man["history"]}
    groups = {run["settings"]["frames"] for run in runs.values()}
    if len(groups) != 1:
        raise ValueError(f"the models were trained on groups of different lengths {groups}: "
                         f"compare models of one profile")
    record = binary_video.run(nets, frames=frames, group=groups.pop(), progress=progress)
    record.update({"runs": runs, "command": command, "nctutor_version": __version__,
                   "torch_version": torch.__version__, "machine": machine_info()})
    atomic_write(Path(out), json.dumps(record, indent=1))
    return record


def pframe_experiment(out: str | os.PathLike, weights: str | os.PathLike | None = None,
                      qualities: tuple[int, ...] = (1, 2, 3, 4, 5), profile: str = "cpu",
                      command: str = "", progress: bool = True) -> dict:
    """The P-frame coders' record: :func:`nctutor.rd.conditional.run` on the test pairs, with
    each coder's training settings and loss history, and a check that every run had the same
    budget and start.

    Each coder comes from ``<weights>/<name>-q<Q>.pt`` (:func:`nctutor.pframetrain.export`)
    where that file exists, else from :func:`nctutor.zoo.pframe_model` (shipped weights or a
    finished run of ``profile``). Written to ``out`` (JSON) by ``nctutor pframe-eval``; the
    chapter *Conditional coding in practice* reads it. A maintainer's tool; no page calls it.
    """
    from . import pframetrain
    from .codecs.conditional import CODERS
    from .rd import conditional

    folder = Path(weights) if weights else WEIGHTS_DIR
    nets, runs = {}, {}
    for name in CODERS:
        for q in qualities:
            file = folder / f"{name}-q{q}.pt"
            if not file.is_file() and zoo.pframe_locate(name, q, profile)["from"] == "shipped":
                file = Path(zoo.pframe_locate(name, q, profile)["path"])
            if file.is_file():
                net, man = pframetrain.load_weights(file)
                source = str(file.name)
            else:  # a finished run in the cache (else the zoo says how to train it)
                net = zoo.pframe_model(name, q, profile)
                source = net.nctutor["source"]
                man = json.loads((Path(source) / MANIFEST).read_text())
                man["history"] = pframetrain.summary(
                    load_checkpoint(Path(source) / CHECKPOINT)["history"])
            if man["steps"] < man["settings"]["steps"]:
                raise CheckpointError(f"{name} q{q} is an unfinished run ({man['steps']} of "
                                      f"{man['settings']['steps']} steps): finish it first")
            nets[name, q] = net
            runs[f"{name}-q{q}"] = {"settings": man["settings"], "source": source,
                                    "sha256": man.get("sha256"), "seconds": man["seconds"],
                                    "steps": man["steps"], "history": man.get("history")}
    budget = {k: (r["steps"], r["settings"]["batch_size"], r["settings"]["patch_size"],
                  r["settings"]["lr"], r["settings"]["seed"]) for k, r in runs.items()}
    if len(set(budget.values())) != 1:
        raise ValueError(f"the coders were trained with different budgets: {budget}")
    pairs = pframetrain.pairs("test", profile)
    clips = dict(zip([n for n, _, _ in data.SPLIT["test"]], data.split_frames("test"), strict=True))
    previous = [clips[p["clip"]][p["frame"] - 1].permute(1, 2, 0).numpy() for p in pairs]
    record = conditional.run(lambda name, q: nets[name, q], pairs, qualities, previous,
                             progress=progress)
    record.update({"runs": runs, "command": command, "profile": profile,
                   "split": {k: v for k, v in data.SPLIT.items()},
                   "nctutor_version": __version__, "torch_version": torch.__version__,
                   "machine": machine_info()})
    atomic_write(Path(out), json.dumps(record, indent=1))
    return record


#: The shipped families and coders whose entropy parameters come from networks, measured by
#: :func:`portable_cost` (the factorized prior's tables alone are portable now).
PORTABLE_FAMILIES = (("mbt2018-mean", "table"), ("mbt2018-mean", "exact"),
                     ("mbt2018-mean", "lattice"), ("bmshj2018-factorized", "table"),
                     ("kwcc2018-hierarchical", "table"))


def _coded(encode: Callable[[], bytes], decode: Callable[[bytes], torch.Tensor]
           ) -> tuple[bytes, torch.Tensor, float, float]:
    import time

    t0 = time.perf_counter()
    blob = encode()
    t1 = time.perf_counter()
    x_hat = decode(blob)
    return blob, x_hat, t1 - t0, time.perf_counter() - t1


def portable_cost(out: str | os.PathLike, images=None, pairs=None, progress: bool = True,
                  families=PORTABLE_FAMILIES) -> dict:
    """What the portable entropy path of format version 4 costs against the float path of
    versions 2/3 (:mod:`nctutor.entropy.integer`): every shipped quality of each family of
    ``families`` on Kodak (``images``), and the shipped P-frame coders on the 24 test pairs
    (``pairs``: :func:`nctutor.pframetrain.pairs`), each file written both ways
    (``encode_image(portable=…)``) and decoded; bytes, 8-bit PSNR, encoding and decoding
    seconds per file. Summary per family: the BD-rate of the integer path against the float path
    (PSNR, families of four qualities), the mean change of the file size, of the PSNR and the
    ratios of the times. Writes ``out`` (JSON, with the command and the machine).

    The record behind book section *Transform coding with learned priors → Decoding on another
    machine*; made by ``python -c "from nctutor import maintain;
    maintain.portable_cost('nctutor/weights/portable-cost.json')"``.
    """
    from tqdm.auto import tqdm

    from . import container, pframetrain
    from .codecs import conditional as cc

    images = data.kodak() if images is None else images
    rows = []
    jobs = [(arch, coder, q) for arch, coder in families
            for (name, q) in zoo.shipped() if name == arch]
    for arch, coder, q in tqdm(jobs, desc="portable cost", disable=not progress):
        model = zoo.load(arch, q, "cpu")
        for img_name, x in rd.image_list(images):
            x8 = data.to_uint8(x)
            for portable in (False, True):
                mode = dict(coder=coder, quantizer="hex" if coder == "lattice" else "scalar")
                blob, x_hat, enc, dec = _coded(
                    partial(container.encode_image, model, x, arch, q, "cpu", portable=portable,
                            **mode), partial(container.decode_image, model=model))
                rows.append({"family": arch, "coder": coder, "quality": q, "image": img_name,
                             "path": "integer" if portable else "float", "bytes": len(blob),
                             "bpp": rd.bpp(len(blob), *x.shape[-2:]),
                             "psnr": rd.psnr(x8, data.to_uint8(x_hat)),
                             "encode_s": enc, "decode_s": dec})
    pairs = pframetrain.pairs("test", "cpu") if pairs is None else pairs
    for man in sorted(WEIGHTS_DIR.glob("pframe-*-q*.json")):
        name, q = man.stem.rsplit("-q", 1)
        model = zoo.pframe_model(name, int(q))
        for pair in tqdm(pairs, desc=name, disable=not progress):
            x, ref = pair["x"].float() / 255, pair["ref"].float() / 255
            switch = "quadtree" if isinstance(model, cc.XGDC) else "none"
            for portable in (False, True):
                blob, x_hat, enc, dec = _coded(
                    partial(container.encode_pframe, model, x, ref, name, int(q), "cpu", switch,
                            portable=portable), partial(container.decode_pframe, model=model,
                                                        ref=ref))
                rows.append({"family": name, "coder": switch, "quality": int(q),
                             "image": f"{pair['clip']}-{pair['frame']}",
                             "path": "integer" if portable else "float", "bytes": len(blob),
                             "bpp": rd.bpp(len(blob), *x.shape[-2:]),
                             "psnr": rd.psnr(pair["x"], data.to_uint8(x_hat)),
                             "encode_s": enc, "decode_s": dec})
    doc = {"command": "python -c \"from nctutor import maintain; "
                      f"maintain.portable_cost('{out}')\"",
           "images": len(images), "pairs": len(pairs), "machine": machine_info(),
           "summary": portable_summary(rows), "rows": rows}
    atomic_write(Path(out), json.dumps(doc, indent=1))
    return doc


def portable_summary(rows: list[dict]) -> list[dict]:
    """Per family and coder of :func:`portable_cost`'s rows: qualities, the BD-rate (%) of the
    integer path against the float path (``None`` with fewer than four qualities), the mean
    relative change of the file size (%), the mean PSNR change (dB) and the ratios of the mean
    encoding and decoding times (integer / float). A helper of book section *Transform coding
    with learned priors → Decoding on another machine*; the page reads its output."""
    out = []
    for family, coder in dict.fromkeys((r["family"], r["coder"]) for r in rows):
        mine = [r for r in rows if (r["family"], r["coder"]) == (family, coder)]
        qualities = sorted({r["quality"] for r in mine})

        def mean(key: str, path: str, q: int | None = None, rows=mine) -> float:
            v = [r[key] for r in rows if r["path"] == path and q in (None, r["quality"])]
            return sum(v) / len(v)

        curves = {p: {"bpp": [mean("bpp", p, q) for q in qualities],
                      "psnr": [mean("psnr", p, q) for q in qualities]} for p in ("float",
                                                                                 "integer")}
        pairs = [(f, i) for f, i in zip([r for r in mine if r["path"] == "float"],
                                        [r for r in mine if r["path"] == "integer"], strict=True)]
        out.append({
            "family": family, "coder": coder, "qualities": qualities,
            "files": len(pairs),
            "bd_rate": (rd.bd_rate(curves["float"], curves["integer"])
                        if len(qualities) >= 4 else None),
            "size_change": 100 * sum(i["bytes"] / f["bytes"] - 1 for f, i in pairs) / len(pairs),
            "psnr_change": sum(i["psnr"] - f["psnr"] for f, i in pairs) / len(pairs),
            "encode_ratio": mean("encode_s", "integer") / mean("encode_s", "float"),
            "decode_ratio": mean("decode_s", "integer") / mean("decode_s", "float")})
    return out


def refresh_predictor_record(file: str | os.PathLike | None = None,
                             weights_dir: str | os.PathLike | None = None) -> dict:
    """Replace, in the predictor chapter's record (default: the shipped
    ``predictor-kodak.json``), the rows of the variants whose weights are shipped — ``shipped``
    (``mbt2018-mean``) and ``kwcc2018-hierarchical`` — by the records of their family reports
    (:func:`report`: the same images, files of the current format), and note it under
    ``remeasured``. The other variants' runs are not kept: their rows stay as measured.

    A maintainer's tool for a format change (``nctutor/weights/README.md``); the page *Predicting
    codes from their neighbours → How the table is made* reads the record.
    """
    from .rd import predictor as rp

    wdir = Path(weights_dir or WEIGHTS_DIR)
    path = Path(file or rp.RECORD)
    record = json.loads(path.read_text())
    done = {}
    for variant, family in (("shipped", "mbt2018-mean"),
                            ("kwcc2018-hierarchical", "kwcc2018-hierarchical")):
        report_doc = json.loads((wdir / f"{family}-kodak.json").read_text())
        qualities = record["variants"][variant]["qualities"]
        for q in qualities:
            rows = [r for r in report_doc["records"] if r["quality"] == int(q)]
            if [r["image"] for r in rows] != [r["image"] for r in qualities[q]]:
                raise ValueError(f"{family}-kodak.json has other images than the record at q{q}")
            qualities[q] = rows
        done[variant] = {"from": f"{family}-kodak.json", "machine": report_doc.get("machine")}
    record["remeasured"] = {
        "why": "format version 4 (integer entropy parameters): the shipped variants' files "
               "changed; the other variants' runs are not kept, their rows are the float path "
               "of format versions 2 and 3",
        "command": "python -c \"from nctutor import maintain; "
                   "maintain.refresh_predictor_record()\"",
        "variants": done}
    atomic_write(path, json.dumps(record, indent=1))
    return record
