"""The ``nctutor`` command: compress and decompress images, list, train, evaluate and time the
codecs (book sections *How to run this book → Training from the command line* and *Transform
coding with learned priors → Real bitstreams*).

::

    nctutor compress IN OUT.nct [--model mbt2018-mean] [--quality 3] [--coder table] [--profile P]
    nctutor compress IN… --out-dir DIR [same options]
    nctutor decompress IN.nct OUT.png
    nctutor decompress IN.nct… --out-dir DIR
    nctutor models [--profile P] [--json]
    nctutor train NAME --quality Q [--profile P] [--steps N] [--out DIR] [--init RUN]
    nctutor eval [--model NAME] [--quality Q …] [--dataset kodak] [--json OUT]
    nctutor bench [--model NAME …] [--images N] [--crop C] [--repeat R] [--per-image] [--json OUT]

``python -m nctutor …`` is the same command. ``train`` works under ``torchrun`` (PyTorch DDP)
unchanged.

*Files.* Without ``--out-dir``, ``compress`` and ``decompress`` take exactly two files, the input
and the output. With ``--out-dir DIR`` every file named is an input, written to ``DIR/<its name
without suffix>.nct`` (``.png`` for ``decompress``); the folder must exist. So that
``nctutor compress a.png b.png`` cannot overwrite an image, ``compress`` refuses an output named
like an image (:data:`IMAGE_SUFFIXES`) and ``decompress`` one ending in ``.nct``. A model is loaded
once and serves every file; a file that fails is reported and the others still run (exit status 2
at the end).

*Weights.* ``compress``, ``eval`` and ``bench`` never hand out a codec trained by surprise: they use
the weights :func:`nctutor.zoo.locate` finds (for ``--profile P`` or ``$NCTUTOR_PROFILE``, that
profile's, shipped or a complete run in the cache; otherwise the shipped weights, else a complete
run at the ``gpu`` or ``cpu`` profile) and, when there are none, refuse with the
``nctutor train …`` command that makes them. Only an explicit ``--profile`` trains missing weights
on the spot (seconds at ``smoke``, a barely trained codec). ``decompress`` reads the model's name,
quality and profile from the file's header and never trains. ``nctutor models`` lists every codec
and where its weights come from at each quality (``--json`` for scripts).

Errors in what the user gave (a missing or unreadable file, a damaged ``.nct``, a bad option,
missing weights) are printed as one line ``nctutor: error: …`` and exit with status 2; anything
else is an internal error (status 1; set ``NCTUTOR_DEBUG=1`` for the traceback); Ctrl-C exits
with 130.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
import warnings
from pathlib import Path

from . import __version__
from .errors import NctutorError, ZooError

EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130

#: The errors that are the user's (exit status 2), whether raised by a file or by the command.
USER_ERRORS = (NctutorError, ValueError, OSError)

#: Suffixes ``compress`` refuses for its output file (it would overwrite an image with bytes).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                            ".ppm", ".pgm", ".pnm", ".heic", ".heif", ".avif"})


def _report(error: BaseException) -> int:
    """Print ``error`` as the one-line message of a user error; returns 1 (one failure)."""
    print(f"nctutor: error: {error}", file=sys.stderr)
    return 1


def _pairs(files: list[str], out_dir: str | None, suffix: str) -> list[tuple[Path, Path]]:
    """(input, output) of each file: ``IN OUT`` without ``--out-dir``, else ``DIR/<stem><suffix>``
    for each input (see the module docstring)."""
    if out_dir is None:
        if len(files) != 2:
            raise ValueError(f"give an input and an output file ({len(files)} given), or "
                             f"--out-dir DIR to write DIR/NAME{suffix} for each input")
        src, dst = map(Path, files)
        if suffix == ".nct" and dst.suffix.lower() in IMAGE_SUFFIXES:
            raise ValueError(f"the output {dst} is named like an image, not an .nct file; to "
                             f"compress several images give --out-dir DIR")
        if suffix != ".nct" and dst.suffix.lower() == ".nct":
            raise ValueError(f"the output {dst} is named like an .nct file, not an image; to "
                             f"decompress several files give --out-dir DIR")
        return [(src, dst)]
    folder = Path(out_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder {folder} does not exist" if not folder.exists()
                                else f"--out-dir {folder} is a file, not a folder")
    pairs, seen = [], {}
    for file in map(Path, files):
        dst = folder / (file.stem + suffix)
        if dst in seen:
            raise ValueError(f"{seen[dst]} and {file} would both be written to {dst}; "
                             f"give them in two runs, with two --out-dir")
        seen[dst] = file
        pairs.append((file, dst))
    return pairs


def _check_input(file: Path, what: str) -> None:
    if file.is_dir():
        raise IsADirectoryError(f"{file} is a folder, not {what}")
    if not file.is_file():
        raise FileNotFoundError(f"input file {file} does not exist")


def _input_mode(file: Path) -> str | None:
    """Pillow's mode of an image file (``"RGB"``, ``"L"``, ``"RGBA"``, ``"I;16"``…), if readable."""
    from PIL import Image

    try:
        with Image.open(file) as im:
            return im.mode
    except (OSError, ValueError):
        return None  # load_image raises the proper error


def _profile(names: list[str], qualities: list[int], asked: str | None) -> tuple[str | None, bool]:
    """The profile ``compress``, ``eval`` and ``bench`` load ``names`` at ``qualities`` for, and
    whether missing weights may be trained: ``--profile`` (trained if missing); else the weights
    :func:`nctutor.zoo.require` finds for ``$NCTUTOR_PROFILE`` or, without it, for any useful
    profile; one profile for all. Raises :class:`ZooError` naming the commands that make the
    missing ones."""
    from . import codecs, config, zoo

    if asked:
        return config.get_profile(asked).name, True
    lookup = os.environ.get(config.PROFILE_ENV) or None
    found, missing = {}, []
    for name in names:
        if name.startswith(codecs.COMPRESSAI_PREFIX):
            continue
        for q in qualities:
            where = zoo.locate(name, q, lookup)
            if where["from"] == "needs training":
                missing.append((name, q, where["command"]))
            else:
                found[(codecs.canonical_name(name), q)] = where["profile"]
    if missing:
        try:
            zoo.require(missing[0][0], missing[0][1], lookup)
        except ZooError as e:
            also = "".join(f" Also missing: `{command}`." for _, _, command in missing[1:])
            raise ZooError(f"{e}{also} Or give --profile smoke to train small ones on the spot "
                           f"(seconds; barely trained, for trying things out).") from None
    profiles = sorted(set(found.values()))
    if len(profiles) > 1:
        raise ValueError("the weights found are of different profiles ("
                         + ", ".join(f"{n} q{q} [{p}]" for (n, q), p in found.items())
                         + "): give --profile to choose one")
    return (profiles[0] if profiles else lookup), False


def cmd_compress(args: argparse.Namespace) -> int:
    """``nctutor compress``: image files → ``.nct`` files; prints bytes, bpp and seconds of each.

    Named in book sections *How to run this book → Training from the command line* and
    *Transform coding with learned priors → How this book uses them* (the shipped weights).
    """
    from . import codecs, container, data, zoo
    from .files import atomic_write

    pairs = _pairs(args.files, args.out_dir, ".nct")
    if args.coder == "exact":
        from .codecs.exact import exact, has_exact_coder  # the exact coder only if asked

        if not has_exact_coder(codecs.architecture_of(args.model)):
            raise ValueError(f"--coder exact codes y with a hyperprior's Gaussians; "
                             f"{args.model} has none: use --coder table")
    model, failed = None, 0
    for src, dst in pairs:
        try:
            _check_input(src, "an image file")
            mode = _input_mode(src)
            if mode is not None and mode != "RGB":
                warnings.warn(f"{src}: {mode} image converted to 8-bit RGB before compression",
                              UserWarning, stacklevel=2)
            x = data.load_image(src)
        except USER_ERRORS as e:
            failed += _report(e)
            continue
        if model is None:  # once, for every file; its errors end the command
            profile, may_train = _profile([args.model], [args.quality], args.profile)
            model = zoo.load(args.model, args.quality, profile=profile,
                             progress=sys.stderr.isatty(), train_if_missing=may_train)
            if args.coder == "exact":
                model = exact(model)  # its exact twin, converted once for all files
            info = model.nctutor
        try:
            tic = time.perf_counter()
            blob = container.encode_image(model, x, info["name"], info["quality"],
                                          info["profile"], coder=args.coder)
            seconds = time.perf_counter() - tic
            atomic_write(dst, blob)
        except USER_ERRORS as e:
            failed += _report(e)
            continue
        h, w = x.shape[-2:]
        print(f"{dst}: {len(blob)} bytes, {8 * len(blob) / (h * w):.4f} bpp, {w}×{h}, "
              f"{info['name']} q{info['quality']} [{info['profile'] or 'pretrained'}], "
              f"{args.coder} coder, {seconds:.2f} s")
    return EXIT_USAGE if failed else 0


def _decoder(header, memo: dict):
    """The model that decodes a file with this header, loaded once per (model, quality, profile)
    and, for ``exact`` files, converted once to its twin; ``memo`` keeps models and the errors
    they gave (so that each file that needs a missing model says so)."""
    from . import zoo

    key = (header.model, header.quality, header.profile)
    if key not in memo:
        try:
            memo[key] = zoo.load(header.model, header.quality, profile=header.profile or None,
                                 progress=sys.stderr.isatty(), train_if_missing=False)
        except ZooError as e:
            memo[key] = ZooError(f"written by {header.model} q{header.quality} "
                                 f"[{header.profile or 'pretrained'}], whose weights are not "
                                 f"here: {e}")
    if isinstance(memo[key], Exception):
        raise memo[key]
    if header.coder == "exact":
        if key + ("exact",) not in memo:
            from .codecs.exact import exact

            memo[key + ("exact",)] = exact(memo[key])
        key += ("exact",)
    return memo[key]


def cmd_decompress(args: argparse.Namespace) -> int:
    """``nctutor decompress``: ``.nct`` files → 8-bit PNGs, each with the model named in its
    header (loaded once per model, never trained). The file format is that of book section
    *Transform coding with learned priors → Real bitstreams*; no page runs the command."""
    from . import container, data
    from .files import atomic_write

    pairs = _pairs(args.files, args.out_dir, ".png")
    memo, failed = {}, 0
    for src, dst in pairs:
        try:
            _check_input(src, "an .nct file")
            blob = src.read_bytes()
            header = container.read_header(blob)
            try:
                model = _decoder(header, memo)
            except ZooError as e:
                raise ZooError(f"{src}: {e}") from None
            tic = time.perf_counter()
            x = container.decode_image(blob, model)
            seconds = time.perf_counter() - tic
            atomic_write(dst, lambda tmp, x=x: data.save_image(x, tmp, format="PNG"))
        except USER_ERRORS as e:
            failed += _report(e)
            continue
        print(f"{dst}: {header.width}×{header.height}, {header.model} q{header.quality} "
              f"[{header.profile or 'pretrained'}], {header.coder} coder, "
              f"{8 * len(blob) / (header.height * header.width):.4f} bpp, {seconds:.2f} s")
    return EXIT_USAGE if failed else 0


def _qualities(entries: list[dict]) -> str:
    """``q1-q4 shipped [cpu], q5-q8 needs training [cpu]``: runs of equal sources joined."""
    runs: list[list] = []
    for w in entries:
        label = w["from"] + (f" [{w['profile']}]" if w["profile"] else "")
        if w["from"] == "compressai":
            label += " (downloaded)" if w["downloaded"] else " (downloaded on first use)"
        if runs and runs[-1][2] == label and runs[-1][1] == w["quality"] - 1:
            runs[-1][1] = w["quality"]
        else:
            runs.append([w["quality"], w["quality"], label])
    return ", ".join((f"q{a}" if a == b else f"q{a}-q{b}") + f" {label}" for a, b, label in runs)


def cmd_models(args: argparse.Namespace) -> int:
    """``nctutor models``: every codec, its kind, and where its weights come from at each quality
    (:func:`nctutor.zoo.models`); ``--json`` prints that list as JSON; no page calls it."""
    import json

    from . import config, zoo

    lookup = args.profile or os.environ.get(config.PROFILE_ENV) or None
    found = zoo.models(config.get_profile(lookup).name if lookup else None)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    width = max(len(m["name"]) for m in found)
    for m in found:
        print(f"{m['name']:<{width}}  {m['kind']}  {_qualities(m['weights'])}")
    commands = [w["command"] for m in found for w in m["weights"] if "command" in w]
    if commands:
        print(f"needs training: `nctutor train NAME --quality Q --profile P` makes them, e.g. "
              f"`{commands[0]}`")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``nctutor train``: :func:`nctutor.train.train` with the given settings (DDP under
    ``torchrun``); prints the run folder and the final loss, bpp and PSNR. Defined in book section
    *How to run this book → Training from the command line*."""
    import torch.distributed as dist

    from . import train

    cfg = train.TrainConfig(model=args.name, quality=args.quality, profile=args.profile,
                            steps=args.steps, out_dir=args.out, seed=args.seed,
                            init_from=args.init)
    try:
        result = train.train(cfg, progress=not args.quiet)
        rank = dist.get_rank() if dist.is_initialized() else 0
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if rank == 0:
        m = result.manifest
        final = {k: m.get("final", {}).get(k, float("nan")) for k in ("loss", "bpp", "psnr")}
        print(f"{m['settings']['run_dir']}: {m['settings']['model']} q{args.quality} "
              f"[{m['settings']['profile']}], {m['steps']} steps in {m['seconds']} s, "
              f"loss {final['loss']:.4f}, bpp {final['bpp']:.4f}, PSNR {final['psnr']:.2f} dB")
    return 0


# ----------------------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> int:
    """``nctutor eval``: rate-distortion points of a codec on Kodak or CLIC with real bitstreams
    (:func:`nctutor.rd.evaluate_model`), one per quality; ``--json`` writes CompressAI's results
    format (:func:`nctutor.rd.to_compressai_json`). The protocol of book section *Transform coding
    with learned priors → Evaluation*; no page runs the command."""
    from . import config, data, rd, zoo

    name, may_train = _profile([args.model], args.quality, args.profile)
    profile = config.get_profile(name)
    images = {"kodak": data.kodak, "clic": data.clic}[args.dataset]()
    n = args.images if args.images is not None else profile.eval_images
    crop = args.crop if args.crop is not None else profile.eval_crop
    if n < 1 or crop < 0:
        raise ValueError("--images must be at least 1 and --crop at least 0")
    chosen = [images[i] for i in range(min(n, len(images)))]
    if crop:
        chosen = [data.center_crop(x, crop) for x in chosen]
    points = []
    for q in args.quality:
        model = zoo.load(args.model, q, profile=profile.name, progress=sys.stderr.isatty(),
                         train_if_missing=may_train)
        points.append(rd.evaluate_model(model, chosen, name=model.nctutor["name"], quality=q))
        p = points[-1]
        print(f"{model.nctutor['name']} q{q}: {p.bpp[0]:.4f} bpp, {p.psnr[0]:.2f} dB PSNR"
              + (f", MS-SSIM {p.ms_ssim[0]:.4f}" if p.ms_ssim else "")
              + f" ({len(chosen)} {args.dataset} images"
              + (f", {crop}×{crop} centre crops" if crop else "") + f", profile {profile.name})")
    curve = rd.join(points, name=f"{args.model} [{profile.name}]",
                        description=f"nctutor eval on {len(chosen)} {args.dataset} images"
                                    + (f", {crop}px centre crops" if crop else ""))
    if args.json:
        rd.to_compressai_json(curve, args.json)
        print(f"wrote {args.json}")
    return 0


# ----------------------------------------------------------------------------- bench
def cmd_bench(args: argparse.Namespace) -> int:
    """``nctutor bench``: encode/decode milliseconds of our files vs CompressAI's own
    ``compress``/``decompress`` vs the exact Gaussian coder, and each coder's overhead over
    ``-Σ log2 likelihood`` (:mod:`nctutor.bench`); prints a table, ``--json`` writes the rows.
    Run in book section *Transform coding with learned priors → How fast, how close to the
    entropy*."""
    import torch

    from . import bench, codecs, config

    names = args.model or list(codecs.IMAGE_MODELS)
    profile = config.get_profile(_profile(names, [args.quality], args.profile)[0])
    rows = bench.run(names, args.quality, profile.name, args.images,
                     args.crop, args.repeat, args.device, progress=sys.stderr.isatty())
    n = len({r.image for r in rows})
    print(f"nctutor bench: {n} kodak image{'s' * (n > 1)}"
          + (f", {args.crop}×{args.crop} centre crops" if args.crop else "")
          + f", quality {args.quality}, profile {profile.name}, device {args.device or 'cpu'}, "
          f"{torch.get_num_threads()} threads, median of {args.repeat} after a warm-up")
    print(bench.table(rows, per_image=args.per_image))
    print("ours = nctutor .nct files; CAI = CompressAI compress/decompress; exact = .nct files "
          "with --coder exact (y coded by nctutor.entropy.gaussian); ovh = bits / (-sum log2 "
          "likelihood) - 1")
    if args.json:
        settings = {k: getattr(args, k) for k in ("model", "quality", "images", "crop", "repeat",
                                                  "device")}
        bench.to_json(rows, args.json, {**settings, "profile": profile.name,
                                        "threads": torch.get_num_threads(),
                                        "cpus": os.cpu_count(), "machine": platform.machine(),
                                        "torch": torch.__version__, "nctutor": __version__})
        print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nctutor`` command (see the module docstring); no page
    calls it."""
    parser = argparse.ArgumentParser(
        prog="nctutor", description="Neural image codecs of the nctutor book.")
    parser.add_argument("--version", action="version", version=f"nctutor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compress", help="compress images into .nct files")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="IN OUT: an image file (PNG, JPEG, …) and the .nct file to write; with "
                        "--out-dir, any number of image files")
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="write DIR/NAME.nct for each image NAME.png given (the folder must exist)")
    p.add_argument("--model", default="mbt2018-mean",
                   help="codec name, or compressai:NAME for CompressAI's pretrained models "
                        "(default: %(default)s; `nctutor models` lists them)")
    p.add_argument("--quality", type=int, default=3, choices=range(1, 9), metavar="Q",
                   help="quality 1..8 (default: %(default)s)")
    p.add_argument("--coder", choices=("table", "exact"), default="table",
                   help="entropy coder of y: CompressAI's tables, or one exact Gaussian per "
                        "symbol (hyperpriors only) (default: %(default)s)")
    p.add_argument("--profile", default=None,
                   help="smoke, cpu or gpu: use that profile's weights, training them now if "
                        "missing (default: $NCTUTOR_PROFILE's, else the shipped or best cached "
                        "weights; missing ones are refused)")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="decompress .nct files into PNGs")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="IN OUT: the .nct file and the PNG to write; with --out-dir, any number "
                        "of .nct files")
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="write DIR/NAME.png for each NAME.nct given (the folder must exist)")
    p.set_defaults(func=cmd_decompress)

    p = sub.add_parser("models", help="list the codecs and where their weights come from")
    p.add_argument("--profile", default=None,
                   help="smoke, cpu or gpu: the weights of that profile (default: "
                        "$NCTUTOR_PROFILE's, else the shipped or best cached ones)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list: name, kind, source, qualities, weights per quality")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train a codec (DDP under torchrun)")
    p.add_argument("name", help="codec name, e.g. mbt2018-mean")
    p.add_argument("--quality", type=int, required=True, choices=range(1, 9), metavar="Q",
                   help="quality 1..8")
    p.add_argument("--profile", default=None, help="smoke, cpu or gpu (default: $NCTUTOR_PROFILE)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: profile's)")
    p.add_argument("--out", default=None, help="run folder (default: in the cache)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--init", default=None, metavar="RUN",
                   help="start from the weights of a finished run (folder or checkpoint.pt) "
                        "or of an exported weights file (e.g. the shipped "
                        "nctutor/weights/NAME-qQ.pt) of the same model and widths")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="rate-distortion evaluation with real bitstreams")
    p.add_argument("--model", default="mbt2018-mean",
                   help="codec name or compressai:NAME (default: %(default)s)")
    p.add_argument("--quality", type=int, nargs="+", default=[3], choices=range(1, 9),
                   metavar="Q", help="one or more qualities 1..8 (default: 3)")
    p.add_argument("--dataset", choices=("kodak", "clic"), default="kodak")
    p.add_argument("--profile", default=None,
                   help="smoke, cpu or gpu: that profile's weights, trained now if missing "
                        "(default: $NCTUTOR_PROFILE's, else the shipped or best cached weights)")
    p.add_argument("--images", type=int, default=None,
                   help="use the first N images (default: the profile's eval_images)")
    p.add_argument("--crop", type=int, default=None,
                   help="centre crop side, 0 for whole images (default: the profile's eval_crop)")
    p.add_argument("--json", default=None, help="write the curve in CompressAI's JSON format")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="encode/decode speed and coding overhead vs CompressAI")
    p.add_argument("--model", nargs="+", default=None,
                   help="one or more codec names (default: the image codecs of the registry)")
    p.add_argument("--quality", type=int, default=3, choices=range(1, 9), metavar="Q",
                   help="quality 1..8 (default: %(default)s)")
    p.add_argument("--profile", default=None,
                   help="smoke, cpu or gpu: that profile's weights, trained now if missing "
                        "(default: $NCTUTOR_PROFILE's, else the shipped or best cached weights)")
    p.add_argument("--images", type=int, default=None,
                   help="use the first N Kodak images (default: the profile's eval_images)")
    p.add_argument("--crop", type=int, default=0,
                   help="centre crop side, 0 for whole images (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=3,
                   help="timed runs after one warm-up; the median is reported (default: 3)")
    p.add_argument("--device", default=None, help="torch device (default: cpu)")
    p.add_argument("--per-image", action="store_true", help="a row per image, not only means")
    p.add_argument("--json", default=None, help="write every row and the means as JSON")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nctutor`` console script and of ``python -m nctutor``; returns the
    exit status (0, :data:`EXIT_USAGE`, :data:`EXIT_INTERNAL` or :data:`EXIT_INTERRUPTED`).
    The command of book section *How to run this book → Training from the command line*."""
    args = build_parser().parse_args(argv)

    def one_line(message, category, filename, lineno, line=None):
        return f"nctutor: warning: {message}\n"

    saved, warnings.formatwarning = warnings.formatwarning, one_line
    try:
        return args.func(args)
    except BrokenPipeError:  # stdout closed early, as by `nctutor models --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INTERNAL
    except USER_ERRORS as e:
        _report(e)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("nctutor: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        print(f"nctutor: internal error: {type(e).__name__}: {e} (set NCTUTOR_DEBUG=1 for the "
              f"traceback, and please report it)", file=sys.stderr)
        if os.environ.get("NCTUTOR_DEBUG"):
            traceback.print_exc()
        return EXIT_INTERNAL
    finally:
        warnings.formatwarning = saved


if __name__ == "__main__":
    sys.exit(main())
