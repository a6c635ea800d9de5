"""The ``nctutor`` command: compress and decompress images, train codecs (book section "Real
bitstreams → The command line").

::

    nctutor compress IN.png OUT.nct [--model mbt2018-mean] [--quality 3] [--profile P]
    nctutor decompress IN.nct OUT.png
    nctutor train NAME --quality Q [--profile P] [--steps N] [--out DIR] [--init RUN]
    nctutor eval [--model NAME] [--quality Q …] [--dataset kodak] [--json OUT]
    nctutor bench [--model NAME …] [--images N] [--crop C] [--repeat R] [--per-image] [--json OUT]

Models come from :func:`nctutor.zoo.load` (shipped weights, the cache, or a short training run at
the current profile ``$NCTUTOR_PROFILE``). ``compress`` uses the shipped weights
(:func:`nctutor.zoo.shipped`) unless ``--profile`` or ``$NCTUTOR_PROFILE`` asks for another
profile; ``decompress`` reads the model's name, quality and
profile from the file's header. ``train`` works under ``torchrun`` (PyTorch DDP) unchanged.

Errors in what the user gave (a missing or unreadable file, a damaged ``.nct``, a bad option) are
printed as one line ``nctutor: error: …`` and exit with status 2; anything else is an internal
error (status 1; set ``NCTUTOR_DEBUG=1`` for the traceback).
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

EXIT_USAGE = 2
EXIT_INTERNAL = 1


def _input_mode(file: Path) -> str | None:
    """Pillow's mode of an image file (``"RGB"``, ``"L"``, ``"RGBA"``, ``"I;16"``…), if readable."""
    from PIL import Image

    try:
        with Image.open(file) as im:
            return im.mode
    except (OSError, ValueError):
        return None  # load_image raises the proper error


def _default_profile(name: str, qualities: list[int], asked: str | None) -> str | None:
    """The profile ``compress`` and ``eval`` load models for: ``--profile``, else
    ``$NCTUTOR_PROFILE``, else that of the weights shipped for ``name`` at these qualities; else
    the default profile, with a warning (its models are trained now, and at ``smoke`` they are
    tiny)."""
    from . import codecs, config, zoo

    if asked or os.environ.get(config.PROFILE_ENV) or name.startswith(codecs.COMPRESSAI_PREFIX):
        return asked
    family = zoo.shipped()
    found = {family[key]["profile"] for key in ((codecs.canonical_name(name), q)
                                                for q in qualities) if key in family}
    missing = [q for q in qualities if (codecs.canonical_name(name), q) not in family]
    if len(found) == 1 and not missing:
        return found.pop()
    have = ", ".join(f"{n} q{q}" for n, q in family) or "none"
    warnings.warn(f"no weights are shipped for {name} q{', q'.join(map(str, missing))} "
                  f"(shipped: {have}); the models are trained now at the "
                  f"{config.get_profile().name!r} profile. Set --profile cpu (minutes) or gpu "
                  f"for useful models.", UserWarning, stacklevel=2)
    return None


def cmd_compress(args: argparse.Namespace) -> int:
    """``nctutor compress``: image file → ``.nct`` file; prints bytes, bpp and seconds."""
    from . import container, data, zoo
    from .files import atomic_write

    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        raise FileNotFoundError(f"input file {src} does not exist")
    mode = _input_mode(src)
    if mode is not None and mode != "RGB":
        warnings.warn(f"{src}: {mode} image converted to 8-bit RGB before compression",
                      UserWarning, stacklevel=2)
    x = data.load_image(src)
    profile = _default_profile(args.model, [args.quality], args.profile)
    model = zoo.load(args.model, args.quality, profile=profile, progress=sys.stderr.isatty())
    info = model.nctutor
    tic = time.perf_counter()
    blob = container.encode_image(model, x, info["name"], info["quality"], info["profile"])
    seconds = time.perf_counter() - tic
    atomic_write(dst, blob)
    h, w = x.shape[-2:]
    print(f"{dst}: {len(blob)} bytes, {8 * len(blob) / (h * w):.4f} bpp, {w}×{h}, "
          f"{info['name']} q{info['quality']} [{info['profile'] or 'pretrained'}], "
          f"{seconds:.2f} s")
    return 0


def cmd_decompress(args: argparse.Namespace) -> int:
    """``nctutor decompress``: ``.nct`` file → 8-bit PNG, with the model named in its header."""
    from . import container, data, zoo
    from .files import atomic_write

    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        raise FileNotFoundError(f"input file {src} does not exist")
    blob = src.read_bytes()
    header = container.read_header(blob)
    model = zoo.load(header.model, header.quality, profile=header.profile or None,
                     progress=sys.stderr.isatty())
    tic = time.perf_counter()
    x = container.decode_image(blob, model)
    seconds = time.perf_counter() - tic
    atomic_write(dst, lambda tmp: data.save_image(x, tmp, format="PNG"))
    print(f"{dst}: {header.width}×{header.height}, {header.model} q{header.quality}, "
          f"{8 * len(blob) / (header.height * header.width):.4f} bpp, {seconds:.2f} s")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``nctutor train``: :func:`nctutor.train.train` with the given settings (DDP under
    ``torchrun``); prints the run folder and the final loss, bpp and PSNR."""
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
    (:func:`nctutor.eval.evaluate_model`), one per quality; ``--json`` writes CompressAI's results
    format (:func:`nctutor.eval.to_compressai_json`)."""
    from . import config, data, rd, zoo

    profile = config.get_profile(_default_profile(args.model, args.quality, args.profile))
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
        model = zoo.load(args.model, q, profile=profile.name, progress=sys.stderr.isatty())
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
    ``-Σ log2 likelihood`` (:mod:`nctutor.bench`); prints a table, ``--json`` writes the rows."""
    import torch

    from . import bench, codecs, config

    profile = config.get_profile(args.profile)
    rows = bench.run(args.model or codecs.IMAGE_MODELS, args.quality, profile.name, args.images,
                     args.crop, args.repeat, args.device, progress=sys.stderr.isatty())
    n = len({r.image for r in rows})
    print(f"nctutor bench: {n} kodak image{'s' * (n > 1)}"
          + (f", {args.crop}×{args.crop} centre crops" if args.crop else "")
          + f", quality {args.quality}, profile {profile.name}, device {args.device or 'cpu'}, "
          f"{torch.get_num_threads()} threads, median of {args.repeat} after a warm-up")
    print(bench.table(rows, per_image=args.per_image))
    print("ours = nctutor .nct files; CAI = CompressAI compress/decompress; exact = y coded with "
          "nctutor.coding; ovh = bits / (-sum log2 likelihood) - 1")
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
    """The argument parser of the ``nctutor`` command."""
    parser = argparse.ArgumentParser(
        prog="nctutor", description="Neural image codecs of the nctutor book.")
    parser.add_argument("--version", action="version", version=f"nctutor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compress", help="compress an image into an .nct file")
    p.add_argument("input", help="image file (PNG, JPEG, …)")
    p.add_argument("output", help="the .nct file to write")
    p.add_argument("--model", default="mbt2018-mean",
                   help="codec name, or compressai:NAME for CompressAI's pretrained models "
                        "(default: %(default)s)")
    p.add_argument("--quality", type=int, default=3, choices=range(1, 9), metavar="Q",
                   help="quality 1..8 (default: %(default)s)")
    p.add_argument("--profile", default=None,
                   help="smoke, cpu or gpu (default: $NCTUTOR_PROFILE, else the profile of the "
                        "shipped weights)")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="decompress an .nct file into a PNG")
    p.add_argument("input", help="the .nct file")
    p.add_argument("output", help="the PNG file to write")
    p.set_defaults(func=cmd_decompress)

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
                   help="smoke, cpu or gpu (default: $NCTUTOR_PROFILE, else the profile of the "
                        "shipped weights)")
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
    p.add_argument("--profile", default=None, help="smoke, cpu or gpu (default: $NCTUTOR_PROFILE)")
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
    """Entry point of the ``nctutor`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    from .errors import NctutorError

    user_errors = (NctutorError, ValueError, OSError)
    def one_line(message, category, filename, lineno, line=None):
        return f"nctutor: warning: {message}\n"

    saved, warnings.formatwarning = warnings.formatwarning, one_line
    try:
        return args.func(args)
    except user_errors as e:
        print(f"nctutor: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("nctutor: interrupted", file=sys.stderr)
        return 130
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
