"""The ``nctutor`` command: compress and decompress images, list, train, evaluate and time the
codecs (book sections *How to run this book → Training from the command line* and *Transform
coding with learned priors → Real bitstreams*).

::

    nctutor compress IN OUT.nct [--model mbt2018-mean] [--quality 3] [--coder table] [--profile P]
                     [--quantizer {scalar,hex,oct}] [--latent-shift [--search {secant,brute}]]
    nctutor compress IN… --out-dir DIR [same options]
    nctutor compress CLIP.mp4|FRAMES/ OUT.nct --model frameconv3d-order1 [--frames N]
                     [--channels K] [--profile P]
    nctutor compress FRAME.png OUT.nct --model pframe-xgdc [--quality 2] --reference REF.png
                     [--switch {d,g,frame,quadtree}] [--profile P]
    nctutor decompress IN.nct OUT.png
    nctutor decompress VIDEO.nct FRAMES/|OUT.mkv
    nctutor decompress PFRAME.nct OUT.png --reference REF.png
    nctutor decompress IN.nct… --out-dir DIR
    nctutor models [--profile P] [--json]
    nctutor train NAME --quality Q [--profile P] [--steps N] [--lr LR] [--out DIR] [--init RUN]
                  [--metric {mse,ms-ssim}] [--patch-size P]
    nctutor train VIDEO_NAME [--profile P] [--steps N] [--lr LR] [--out DIR] [--init RUN]
                  [--patch-size P]
    nctutor train PFRAME_NAME --quality Q [--profile P] [--steps N] [--lr LR] [--out DIR]
                  [--init FILE] [--patch-size P]
    nctutor eval [--model NAME] [--quality Q …] [--dataset kodak] [--json OUT]
    nctutor bench [--model NAME …] [--images N] [--crop C] [--repeat R] [--per-image] [--json OUT]
    nctutor bench --modes compressai,scalar,hex,oct,shift … [same options]
    nctutor latent-eval [--out FILE] [--images kodak|clic|FILE…] [--profile cpu]
                        [--models NAME[:Q,…] …] [--modes MODE …] [--threads N]
    nctutor predictor-eval --runs DIR [--out FILE] [--qualities Q…] [--images N] [--threads N]
                           [--variants V…] [--experiment sgdn];
    nctutor predictor-eval --merge FILE… --out FILE
    nctutor video-eval [--weights DIR] [--frames N] [--out FILE] [--threads N]
    nctutor pframe-eval [--weights DIR] [--profile P] [--out FILE] [--threads N]
    nctutor bench --against mbt2018 [--model kwcc2018-hierarchical …] [same options]

``python -m nctutor …`` is the same command. ``train`` works under ``torchrun`` (PyTorch DDP)
unchanged.

*Files.* Without ``--out-dir``, ``compress`` and ``decompress`` take exactly two files, the input
and the output. With ``--out-dir DIR`` every file named is an input, written to ``DIR/<its name
without suffix>.nct`` (``.png`` for ``decompress``); the folder must exist. So that
``nctutor compress a.png b.png`` cannot overwrite an image, ``compress`` refuses an output named
like an image (:data:`IMAGE_SUFFIXES`) and ``decompress`` one ending in ``.nct``. A model is loaded
once and serves every file; a file that fails is reported and the others still run (exit status 2
at the end).

*Lattices and the latent shift* (chapter *Lattices and the latent shift on a trained codec*).
``compress --quantizer hex`` (or ``oct``) quantizes the latents with a lattice, ``--latent-shift``
lets the decoder shift them along the rate gradients; either one selects the lattice coder
(:class:`nctutor.codecs.latent.LatentCodec`; ``--coder lattice`` selects it with rounding), which
wraps ``bmshj2018-factorized`` and ``mbt2018-mean`` only. The file records the coder, the
quantizer and the shift's steps, so ``decompress`` needs no option. ``bench --modes`` times the
modes of :data:`LATENT_MODES` against rounding and CompressAI; ``latent-eval`` writes the record
of :mod:`nctutor.rd.latent`, from which the book's tables are made.

*Videos* (the binary video codec, :mod:`nctutor.codecs.video`: the models of
:data:`VIDEO_MODELS`). ``compress --model frameconv3d-order1`` reads a video file (anything ffmpeg
reads, through imageio-ffmpeg) or a folder of PNG frames (sorted by name, all of one size) and
codes it in groups of the model's training length ``T``, one group in memory at a time; the
first ``--frames`` frames only if asked, ``--channels K`` binary channels of the model's ``C``
(the rate; default ``C/4``). ``decompress`` of a video file writes a folder of PNG frames
(``frame_0001.png``…; created, or an empty one) or, for an output ending in ``.mkv``, a lossless
FFV1 video; with ``--out-dir``, the folder ``DIR/NAME``. The groups are decoded on one thread
(:func:`nctutor.container.decode_video`), so the frames are bit-exact whatever the thread count.
``train NAME`` of a video model runs :func:`nctutor.videotrain.train` (no ``--quality``).

*P-frames* (the conditional coders of :mod:`nctutor.codecs.conditional`, :data:`PFRAME_MODELS`;
chapter *Conditional coding in practice*). ``compress --model pframe-xgdc --reference REF.png``
codes one frame given its reference frame, the decoded previous frame exactly as its decoder
wrote it (:func:`nctutor.container.encode_pframe`; ``--quality`` defaults to 2); ``--switch``
chooses how xGDC picks between its two reconstructions (default: the quad-tree). ``decompress``
of a P-frame file needs the same ``--reference``: another frame is refused, as is a
``--reference`` given for an image or a video file. The weights come from
:func:`nctutor.zoo.pframe_model` and are never trained on the spot; ``train NAME --quality Q``
of a P-frame model runs :func:`nctutor.pframetrain.train`.

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
import contextlib
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__
from .errors import NctutorError, ZooError

EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130

#: The errors that are the user's (exit status 2), whether raised by a file or by the command.
USER_ERRORS = (NctutorError, ValueError, OSError)

#: The modes of ``bench --modes`` and ``latent-eval --modes``: the keys of
#: :data:`nctutor.rd.latent.MODES`, repeated here so that ``nctutor --help`` imports no torch
#: (tests/test_cli.py checks that the two agree).
LATENT_MODES = ("compressai", "scalar", "hex", "oct", "shift", "shift-brute", "hex+shift",
                "oct+shift")

#: The codecs and qualities ``latent-eval`` measures by default: the shipped ``cpu`` weights.
LATENT_MODELS = ("mbt2018-mean:1,2,3,4", "bmshj2018-factorized:1,3")

#: The binary video codecs (:data:`nctutor.codecs.video.MODELS`), repeated here so that
#: ``nctutor --help`` imports no torch (tests/test_video_cli.py checks that the two agree).
VIDEO_MODELS = ("frameconv3d-order0", "frameconv3d-order1", "frameconv3d-order2")

#: The P-frame coders (:data:`nctutor.codecs.conditional.CODERS`), repeated here so that
#: ``nctutor --help`` imports no torch (tests/test_pframe_cli.py checks that the two agree).
PFRAME_MODELS = ("pframe-diff", "pframe-codecnet64", "pframe-codecnet192", "pframe-gdc",
                 "pframe-xgdc")

#: Suffixes of video files: a video ``.nct`` is not decompressed to one of these but ``.mkv``
#: (lossless FFV1), and ``compress`` of a video does not overwrite one.
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".y4m", ".yuv", ".m4v",
                            ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".ogv"})

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


def _coder(args: argparse.Namespace) -> str:
    """The coder ``compress`` uses: ``--coder``, or ``lattice`` when ``--quantizer hex|oct`` or
    ``--latent-shift`` asks for it (``table`` when nothing is said). Refuses the options that do
    not go together, and a model the lattice coder cannot wrap."""
    from . import codecs

    lattice = args.quantizer != "scalar" or args.latent_shift
    if args.search is not None and not args.latent_shift:
        raise ValueError("--search chooses the step of the latent shift: give --latent-shift "
                         "too")
    if lattice and args.coder not in (None, "lattice"):
        asked = " and ".join(([f"--quantizer {args.quantizer}"] if args.quantizer != "scalar"
                              else []) + (["--latent-shift"] if args.latent_shift else []))
        raise ValueError(f"{asked} needs the lattice coder, not --coder {args.coder}: leave "
                         f"--coder out (or give --coder lattice)")
    coder = "lattice" if lattice else (args.coder or "table")
    if coder == "lattice":
        from .codecs.latent import has_latent_codec

        arch = codecs.architecture_of(args.model)
        if not has_latent_codec(arch):
            asked = ("--quantizer " + args.quantizer if args.quantizer != "scalar"
                     else "--latent-shift" if args.latent_shift else "--coder lattice")
            raise ValueError(f"{asked}: the lattice coder wraps bmshj2018-factorized and "
                             f"mbt2018-mean only; {args.model} is a {arch}")
    return coder


def _coder_label(coder: str, quantizer: str, steps: tuple[int, int]) -> str:
    """``table coder``, or ``lattice coder (hex, latent shift ρ_h = 0.017, ρ_f = 0.04)``."""
    if coder != "lattice":
        return f"{coder} coder"
    from .codecs.latent import MAIN_STEPS, SIDE_STEPS

    shift = (f", latent shift ρ_h = {MAIN_STEPS[steps[0]]:g}, ρ_f = {SIDE_STEPS[steps[1]]:g}"
             if steps != (0, 0) else "")
    return f"lattice coder ({quantizer}{shift})"


def _only_for(args: argparse.Namespace, options: tuple[str, ...], kind: str,
              models: tuple[str, ...]) -> None:
    """Refuse ``options`` of the ``kind`` models given for another model."""
    for option in options:
        if getattr(args, option) is not None:
            raise ValueError(f"--{option} is for the {kind} models ({', '.join(models)}), not "
                             f"{args.model}")


def cmd_compress(args: argparse.Namespace) -> int:
    """``nctutor compress``: image files → ``.nct`` files; prints bytes, bpp and seconds of each.

    Named in book sections *How to run this book → Training from the command line* and
    *Transform coding with learned priors → How this book uses them* (the shipped weights);
    ``--quantizer`` and ``--latent-shift``: chapter *Lattices and the latent shift on a trained
    codec*.
    """
    from . import codecs, container, data, zoo
    from .files import atomic_write

    if args.model in PFRAME_MODELS:
        return _compress_pframe(args)
    _only_for(args, ("reference", "switch"), "P-frame", PFRAME_MODELS)
    if args.model in VIDEO_MODELS:
        return _compress_video(args)
    _only_for(args, ("frames", "channels"), "video", VIDEO_MODELS)
    if args.quality is None:
        args.quality = 3
    pairs = _pairs(args.files, args.out_dir, ".nct")
    coder = _coder(args)
    search = args.search or "secant"
    if coder == "exact":
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
            if coder == "exact":
                model = exact(model)  # its exact twin, converted once for all files
            info = model.nctutor
        try:
            tic = time.perf_counter()
            blob = container.encode_image(model, x, info["name"], info["quality"],
                                          info["profile"], coder=coder,
                                          quantizer=args.quantizer, shift=args.latent_shift,
                                          search=search)
            seconds = time.perf_counter() - tic
            atomic_write(dst, blob)
        except USER_ERRORS as e:
            failed += _report(e)
            continue
        h, w = x.shape[-2:]
        steps = container.read_header(blob).steps
        print(f"{dst}: {len(blob)} bytes, {8 * len(blob) / (h * w):.4f} bpp, {w}×{h}, "
              f"{info['name']} q{info['quality']} [{info['profile'] or 'pretrained'}], "
              f"{_coder_label(coder, args.quantizer, steps)}, {seconds:.2f} s")
    return EXIT_USAGE if failed else 0


# ----------------------------------------------------------------------------- P-frames
def _compress_pframe(args: argparse.Namespace) -> int:
    """``nctutor compress --model pframe-…``: one frame and its ``--reference`` → a P-frame
    ``.nct`` file (:func:`nctutor.container.encode_pframe`); prints bytes, bpp, the split
    between motion, latents, switching bits and header, and seconds."""
    from . import container, data, zoo
    from .files import atomic_write

    refused = [o for o, given in (("--coder", args.coder is not None),
                                  ("--quantizer", args.quantizer != "scalar"),
                                  ("--latent-shift", args.latent_shift),
                                  ("--search", args.search is not None),
                                  ("--frames", args.frames is not None),
                                  ("--channels", args.channels is not None)) if given]
    if refused:
        raise ValueError(f"{refused[0]} is for the image or video codecs, not the P-frame model "
                         f"{args.model}")
    if args.reference is None:
        raise ValueError(f"the P-frame model {args.model} codes a frame given its reference "
                         f"frame: pass --reference REF.png (the decoded previous frame, the PNG "
                         f"its decoder wrote)")
    if args.switch is not None and args.model != "pframe-xgdc":
        raise ValueError(f"--switch chooses between xGDC's two reconstructions; {args.model} has "
                         f"one")
    if args.out_dir is not None:
        raise ValueError("--out-dir: a P-frame is coded against one reference frame; give one "
                         "frame and one output file")
    [(src, dst)] = _pairs(args.files, None, ".nct")
    reference = Path(args.reference)
    _check_input(src, "an image file")
    _check_input(reference, "a reference frame (an image file)")
    x, ref = data.load_image(src), data.load_image(reference)
    if x.shape != ref.shape:
        raise ValueError(f"{src} is {x.shape[2]}×{x.shape[1]}, its reference {reference} "
                         f"{ref.shape[2]}×{ref.shape[1]}: a frame and its reference must have "
                         f"the same size")
    quality = 2 if args.quality is None else args.quality
    model = zoo.pframe_model(args.model, quality, _video_profile(args)[0])
    info = model.nctutor
    tic = time.perf_counter()
    blob = container.encode_pframe(model, x, ref, info["name"], quality, info["profile"],
                                   switch=args.switch)
    seconds = time.perf_counter() - tic
    atomic_write(dst, blob)
    h = container.read_header(blob)
    split = h.split
    print(f"{dst}: {len(blob)} bytes, {8 * len(blob) / (h.height * h.width):.4f} bpp (motion "
          f"{split['motion']}, latents {split['latent']}, switching {split['side']}, header "
          f"{split['header']} bytes), {h.width}×{h.height}, {info['name']} q{quality} "
          f"[{info['profile']}], switch {h.switch}, {seconds:.2f} s")
    return 0


def _decompress_pframe(blob: bytes, header, dst: Path, ref, memo: dict) -> None:
    """Decode a P-frame ``.nct`` (its header read) against the reference frame ``ref`` into the
    PNG ``dst`` with the coder its header names (loaded once per coder, quality and profile,
    never trained); prints the summary."""
    from . import container, data, zoo
    from .files import atomic_write

    model = _memoized(memo, ("pframe", header.model, header.quality, header.profile),
                      lambda: zoo.pframe_model(header.model, header.quality,
                                               header.profile or None),
                      f"{header.model} q{header.quality} [{header.profile or 'n/a'}]")
    tic = time.perf_counter()
    x = container.decode_pframe(blob, model, ref)
    seconds = time.perf_counter() - tic
    atomic_write(dst, lambda tmp: data.save_image(x, tmp, format="PNG"))
    print(f"{dst}: {header.width}×{header.height}, {header.model} q{header.quality} "
          f"[{header.profile or 'n/a'}], switch {header.switch}, {len(blob)} bytes, "
          f"{8 * len(blob) / (header.height * header.width):.4f} bpp, {seconds:.2f} s")


# ----------------------------------------------------------------------------- video
def _video_input(src: Path, limit: int | None):
    """The frames of ``src`` (a video file, or a folder of PNG frames), at most ``limit``: an
    iterator of ``(3, H, W)`` tensors in [0, 1], read one at a time, and a function that
    releases the reader. A folder's frames are its ``*.png`` files sorted by name, whose sizes
    are checked (from their headers) before any frame is read."""
    import torch
    from PIL import Image

    from . import data
    from .errors import DataError

    if src.is_dir():
        files = sorted(f for f in src.iterdir() if f.is_file() and f.suffix.lower() == ".png")
        if not files:
            raise FileNotFoundError(f"{src} holds no PNG frames (*.png): give a video file or a "
                                    f"folder of PNG frames")
        files = files[:limit]
        sizes = {}
        for f in files:
            try:
                with Image.open(f) as im:
                    sizes[f] = im.size
            except (OSError, ValueError) as e:
                raise DataError(f"cannot read the frame {f}: {e}") from e
            if sizes[f] != sizes[files[0]]:
                (w, h), (w0, h0) = sizes[f], sizes[files[0]]
                raise ValueError(f"the frames of {src} must all have the same size: {f.name} is "
                                 f"{w}×{h}, {files[0].name} {w0}×{h0}")
        return (data.load_image(f) for f in files), lambda: None
    if not src.is_file():
        raise FileNotFoundError(f"input {src} does not exist")
    rgb, close = data.read_video(src, limit)
    return (torch.from_numpy(f.copy()).permute(2, 0, 1).float().div_(255.0) for f in rgb), close


def _video_profile(args: argparse.Namespace) -> tuple[str | None, bool]:
    """The profile a video model is looked for at, and whether it may be trained: the rule of
    the image codecs (see the module docstring)."""
    from . import config

    if args.profile:
        return config.get_profile(args.profile).name, True
    return os.environ.get(config.PROFILE_ENV) or None, False


def _compress_video(args: argparse.Namespace) -> int:
    """``nctutor compress --model frameconv3d-…``: video files or folders of PNG frames →
    ``.nct`` video files (:func:`nctutor.container.encode_video`), streamed group by group;
    prints frames, bytes, bpp and seconds of each."""
    from . import container, zoo
    from .files import atomic_write

    refused = [o for o, given in (("--quality", args.quality is not None),
                                  ("--coder", args.coder is not None),
                                  ("--quantizer", args.quantizer != "scalar"),
                                  ("--latent-shift", args.latent_shift),
                                  ("--search", args.search is not None)) if given]
    if refused:
        raise ValueError(f"{refused[0]} is for the image codecs; the video model {args.model} "
                         f"sets its rate with --channels K")
    if args.frames is not None and args.frames < 1:
        raise ValueError("--frames must be at least 1")
    pairs = _pairs(args.files, args.out_dir, ".nct")
    model, failed = None, 0
    for src, dst in pairs:
        try:
            if dst.suffix.lower() in VIDEO_SUFFIXES:
                raise ValueError(f"the output {dst} is named like a video, not an .nct file")
            frames, close = _video_input(src, args.frames)
        except USER_ERRORS as e:
            failed += _report(e)
            continue
        try:
            if model is None:  # once, for every file; its errors end the command
                profile, may_train = _video_profile(args)
                try:
                    model = zoo.video_model(args.model, profile, train_if_missing=may_train)
                except ZooError as e:
                    raise ZooError(f"{e} Or give --profile smoke to train a small one on the "
                                   f"spot (seconds; barely trained, for trying things "
                                   f"out).") from None
                info = model.nctutor
            channels = args.channels if args.channels is not None else model.C // 4
            try:
                if not 1 <= channels <= model.C:
                    raise ValueError(f"--channels must be in 1..{model.C} ({args.model} "
                                     f"[{info['profile']}] has C={model.C} binary channels)")
                tic = time.perf_counter()
                blob = container.encode_video(model, frames, info["name"], info["profile"],
                                              channels, info["frames"])
                seconds = time.perf_counter() - tic
                atomic_write(dst, blob)
            except USER_ERRORS as e:
                failed += _report(e)
                continue
        finally:
            close()
        h = container.read_header(blob)
        print(f"{dst}: {h.frames} frames, {h.width}×{h.height}, {len(blob)} bytes, "
              f"{8 * len(blob) / (h.frames * h.height * h.width):.4f} bpp, {info['name']} "
              f"[{info['profile']}], {channels} of {model.C} channels, groups of {h.group}, "
              f"{seconds:.2f} s")
    return EXIT_USAGE if failed else 0


def _write_frames(folder: Path, groups, count: int) -> None:
    """Write the decoded ``groups`` as ``folder/frame_0001.png``…: into a hidden folder beside
    it, renamed to ``folder`` once every frame is written (nothing is left on an error)."""
    import shutil
    import tempfile

    from . import data

    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file: a video decodes to a folder of PNG frames "
                              f"(created) or to a .mkv file")
    if folder.is_dir() and any(folder.iterdir()):
        raise FileExistsError(f"the folder {folder} is not empty: give a new or an empty one")
    if not folder.parent.is_dir():
        raise FileNotFoundError(f"the folder {folder.parent} does not exist")
    digits = max(4, len(str(count)))
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        index = 0
        for group in groups:
            for x in group:
                index += 1
                data.save_image(x, tmp / f"frame_{index:0{digits}d}.png", format="PNG")
        if folder.is_dir():
            folder.rmdir()
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_mkv(file: Path, groups, width: int, height: int) -> None:
    """Write the decoded ``groups`` as a lossless FFV1 video (8-bit RGB, at 25 frames a second:
    the ``.nct`` file does not keep a rate), through a hidden file renamed at the end."""
    import imageio_ffmpeg

    from . import data

    if file.is_dir():
        raise IsADirectoryError(f"{file} is a folder, not a .mkv file")
    if not file.parent.is_dir():
        raise FileNotFoundError(f"the folder {file.parent} does not exist")
    tmp = file.with_name(f".{file.stem}.{os.getpid()}.partial.mkv")
    writer = imageio_ffmpeg.write_frames(str(tmp), (width, height), pix_fmt_in="rgb24",
                                         pix_fmt_out="bgr0", codec="ffv1", fps=25, quality=None,
                                         macro_block_size=1, ffmpeg_log_level="error")
    try:
        writer.send(None)
        for group in groups:
            for frame in data.to_uint8(group).permute(0, 2, 3, 1).numpy():
                writer.send(frame.tobytes())
        writer.close()
        os.replace(tmp, file)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise


def _decompress_video(blob: bytes, header, dst: Path, memo: dict) -> None:
    """Decode a video ``.nct`` (its header read) into the folder or ``.mkv`` file ``dst`` with
    the model its header names (loaded once per model and profile, never trained); prints the
    summary."""
    from . import container, zoo

    suffix = dst.suffix.lower()
    if suffix != ".mkv" and (suffix in VIDEO_SUFFIXES or suffix in IMAGE_SUFFIXES):
        raise ValueError(f"{dst}: a video decodes to a folder of PNG frames or to a lossless "
                         f".mkv file, not a {suffix} file")
    model = _memoized(memo, ("video", header.model, header.profile),
                      lambda: zoo.video_model(header.model, header.profile or None,
                                              train_if_missing=False),
                      f"{header.model} [{header.profile or 'n/a'}]")
    tic = time.perf_counter()
    groups = container.decode_video(blob, model)
    if suffix == ".mkv":
        _write_mkv(dst, groups, header.width, header.height)
    else:
        _write_frames(dst, groups, header.frames)
    seconds = time.perf_counter() - tic
    print(f"{dst}: {header.frames} frames, {header.width}×{header.height}, {header.model} "
          f"[{header.profile or 'n/a'}], {header.channels} of {header.C} channels, {len(blob)} "
          f"bytes, {8 * len(blob) / (header.frames * header.height * header.width):.4f} bpp, "
          f"{seconds:.2f} s")


def _memoized(memo: dict, key: tuple, load: Callable[[], Any], written_by: str) -> Any:
    """The model of ``key``, made by ``load()`` once; a :class:`ZooError` is kept in ``memo`` too,
    so that each file that needs a missing model says so (``written_by``: which model wrote the
    file)."""
    if key not in memo:
        try:
            memo[key] = load()
        except ZooError as e:
            memo[key] = ZooError(f"written by {written_by}, whose weights are not here: {e}")
    if isinstance(memo[key], Exception):
        raise memo[key]
    return memo[key]


def _decoder(header, memo: dict):
    """The model that decodes a file with this header, loaded once per (model, quality, profile)
    and, for ``exact`` files, converted once to its twin; ``memo`` keeps models and the errors
    they gave (so that each file that needs a missing model says so)."""
    from . import zoo

    key = (header.model, header.quality, header.profile)
    _memoized(memo, key, lambda: zoo.load(header.model, header.quality,
                                          profile=header.profile or None,
                                          progress=sys.stderr.isatty(), train_if_missing=False),
              f"{header.model} q{header.quality} [{header.profile or 'pretrained'}]")
    if header.coder == "exact":
        if key + ("exact",) not in memo:
            from .codecs.exact import exact

            memo[key + ("exact",)] = exact(memo[key])
        key += ("exact",)
    return memo[key]


def cmd_decompress(args: argparse.Namespace) -> int:
    """``nctutor decompress``: ``.nct`` files → 8-bit PNGs, each with the model named in its
    header (loaded once per model, never trained); a video file → a folder of PNG frames or a
    lossless ``.mkv`` (:func:`_decompress_video`); a P-frame file → a PNG, given its reference
    frame with ``--reference`` (:func:`_decompress_pframe`). The file format is that of book section
    *Transform coding with learned priors → Real bitstreams*; no page runs the command."""
    from . import container, data
    from .files import atomic_write

    pairs = _pairs(args.files, args.out_dir, ".png")
    ref = None
    if args.reference is not None:
        if len(pairs) > 1:
            raise ValueError("--reference is the reference frame of one P-frame file: decompress "
                             "several P-frames in separate runs, each with its own reference")
        _check_input(Path(args.reference), "a reference frame (an image file)")
        ref = data.load_image(args.reference)
    memo, failed = {}, 0
    for src, dst in pairs:
        try:
            _check_input(src, "an .nct file")
            blob = src.read_bytes()
            header = container.read_header(blob)
            if (header.kind == "pframe") != (ref is not None):
                raise ValueError(
                    f"{src} is a P-frame of {header.model}: it decodes given the frame it was "
                    f"coded against; pass --reference REF.png (the exact decoded reference, the "
                    f"same PNG)" if ref is None else
                    f"--reference is for P-frame files; {src} holds "
                    f"{'an' if header.kind == 'image' else 'a'} {header.kind}: leave it out")
            if header.kind == "pframe":
                try:
                    _decompress_pframe(blob, header, dst, ref, memo)
                except ZooError as e:
                    raise ZooError(f"{src}: {e}") from None
                continue
            if header.kind == "video":
                try:
                    _decompress_video(blob, header, dst.with_suffix("") if args.out_dir else dst,
                                      memo)
                except ZooError as e:
                    raise ZooError(f"{src}: {e}") from None
                continue
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
              f"[{header.profile or 'pretrained'}], "
              f"{_coder_label(header.coder, header.quantizer, header.steps)}, "
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
        if m["kind"] == "video":
            w = m["weights"][0]
            print(f"{m['name']:<{width}}  {m['kind']}  {w['from']} [{w['profile']}]")
        else:
            print(f"{m['name']:<{width}}  {m['kind']}  {_qualities(m['weights'])}")
    for kind, usage, which in (("image", "nctutor train NAME --quality Q --profile P", ""),
                               ("video", "nctutor train NAME --profile P", " (video codecs)"),
                               ("pframe", "nctutor train NAME -q Q --profile P",
                                " (P-frame coders)")):
        commands = [w["command"] for m in found if m["kind"] == kind for w in m["weights"]
                    if "command" in w]
        if commands:
            print(f"needs training: `{usage}` makes them, e.g. `{commands[0]}`{which}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``nctutor train``: :func:`nctutor.train.train` with the given settings (DDP under
    ``torchrun``); prints the run folder and the final loss, bpp and PSNR. Defined in book section
    *How to run this book → Training from the command line*."""
    if args.name in VIDEO_MODELS:
        return _train_video(args)
    if args.quality is None:
        args.parser.error("the following arguments are required: --quality")
    if args.name in PFRAME_MODELS:
        return _train_pframe(args)
    import torch.distributed as dist

    from . import train

    cfg = train.TrainConfig(model=args.name, quality=args.quality, profile=args.profile,
                            steps=args.steps, lr=args.lr, out_dir=args.out,
                            seed=args.seed or 0, init_from=args.init, metric=args.metric,
                            patch_size=args.patch_size)
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


def _train_video(args: argparse.Namespace) -> int:
    """``nctutor train`` of a video model: :func:`nctutor.videotrain.train` with the options that
    apply (no quality, no metric: the codec's rate is its number of kept channels, its loss the
    MSE); prints the run folder, the final loss and PSNR, and the validation PSNR at each rate."""
    from . import videotrain

    if args.quality is not None:
        raise ValueError(f"--quality: the video model {args.name} has none (its rate is the "
                         f"number of kept channels: `nctutor compress --channels K`)")
    if args.metric != "mse":
        raise ValueError(f"--metric {args.metric}: the video models train on the MSE only")
    cfg = videotrain.VideoTrainConfig(model=args.name, profile=args.profile, steps=args.steps,
                                      lr=args.lr, out_dir=args.out, seed=args.seed or 0,
                                      init_from=args.init, patch_size=args.patch_size)
    m = videotrain.train(cfg, progress=not args.quiet)["manifest"]
    final = {k: m.get("final", {}).get(k, float("nan")) for k in ("loss", "psnr")}
    val = m.get("final", {}).get("val_psnr") or {}
    print(f"{m['settings']['run_dir']}: {args.name} [{m['settings']['profile']}], {m['steps']} "
          f"steps in {m['seconds']} s, loss {final['loss']:.5f}, PSNR {final['psnr']:.2f} dB"
          + (", validation PSNR " + ", ".join(f"K={k}: {v:.2f} dB" for k, v in val.items())
             if val else ""))
    return 0


def _train_pframe(args: argparse.Namespace) -> int:
    """``nctutor train`` of a P-frame model: :func:`nctutor.pframetrain.train` with the options
    that apply (the seed, unless given, is the trainer's: every coder sees the same crops; no
    metric: the loss is the MSE's); prints the run folder and the final loss, bpp and PSNR."""
    from . import pframetrain

    if args.metric != "mse":
        raise ValueError(f"--metric {args.metric}: the P-frame models train on the MSE only")
    seed = {} if args.seed is None else {"seed": args.seed}
    cfg = pframetrain.PFrameTrainConfig(model=args.name, quality=args.quality,
                                        profile=args.profile, steps=args.steps, lr=args.lr,
                                        patch_size=args.patch_size, out_dir=args.out,
                                        init_from=args.init, **seed)
    m = pframetrain.train(cfg, progress=not args.quiet)["manifest"]
    final = {k: m.get("final", {}).get(k, float("nan")) for k in ("loss", "bpp", "psnr")}
    print(f"{m['settings']['run_dir']}: {args.name} q{args.quality} [{m['settings']['profile']}]"
          f", {m['steps']} steps in {m['seconds']} s, loss {final['loss']:.4f}, bpp "
          f"{final['bpp']:.4f}, PSNR {final['psnr']:.2f} dB")
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
def _bench_header(label: str, rows: list, args: argparse.Namespace, profile: str) -> str:
    """The first line every ``nctutor bench`` mode prints: images, crop, quality, profile,
    device, threads and repeats."""
    import torch

    n = len({r.image for r in rows})
    return (f"{label}: {n} kodak image{'s' * (n > 1)}"
            + (f", {args.crop}×{args.crop} centre crops" if args.crop else "")
            + f", quality {args.quality}, profile {profile}, device {args.device or 'cpu'}, "
            f"{torch.get_num_threads()} threads, median of {args.repeat} after a warm-up")


@contextlib.contextmanager
def _threads(n: int | None):
    """Run a block with ``n`` torch threads (``None``: unchanged), then restore the count: the
    ``--threads`` of the evaluation commands."""
    import torch

    saved = torch.get_num_threads()
    if n is not None:
        if n < 1:
            raise ValueError("--threads must be at least 1")
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _command_line(args: argparse.Namespace) -> str:
    """The command as typed (``main`` keeps its argv), for the records that store it."""
    import shlex

    argv = getattr(args, "argv", None)
    return "nctutor " + shlex.join(argv if argv is not None else sys.argv[1:])


def _machine() -> dict:
    """What a benchmark's JSON records of the machine and the versions
    (:func:`nctutor.config.machine_info` and nctutor's version)."""
    from .config import machine_info

    return {**machine_info(), "nctutor": __version__}


def cmd_bench(args: argparse.Namespace) -> int:
    """``nctutor bench``: encode/decode milliseconds of our files vs CompressAI's own
    ``compress``/``decompress`` vs the exact Gaussian coder, and each coder's overhead over
    ``-Σ log2 likelihood`` (:mod:`nctutor.bench`); prints a table, ``--json`` writes the rows.
    ``--modes`` and ``--against`` (one or the other) time other things: see
    :func:`_bench_modes` and :func:`_bench_against`. Run in book section *Transform coding
    with learned priors → How fast, how close to the entropy*."""

    from . import bench, codecs, config

    if args.against is not None:
        if args.modes is not None:
            raise ValueError("--against times whole codecs against a reference, --modes the "
                             "lattice codec's modes: give one of them")
        return _bench_against(args)
    if args.modes is not None:
        return _bench_modes(args)
    names = args.model or list(codecs.IMAGE_MODELS)
    profile = config.get_profile(_profile(names, [args.quality], args.profile)[0])
    rows = bench.run(names, args.quality, profile.name, args.images,
                     args.crop, args.repeat, args.device, progress=sys.stderr.isatty())
    print(_bench_header("nctutor bench", rows, args, profile.name))
    print(bench.table(rows, per_image=args.per_image))
    print("ours = nctutor .nct files; CAI = CompressAI compress/decompress; exact = .nct files "
          "with --coder exact (y coded by nctutor.entropy.gaussian); ovh = bits / (-sum log2 "
          "likelihood) - 1")
    if args.json:
        settings = {k: getattr(args, k) for k in ("model", "quality", "images", "crop", "repeat",
                                                  "device")}
        bench.to_json(rows, args.json, {**settings, "profile": profile.name, **_machine()})
        print(f"wrote {args.json}")
    return 0


def _bench_against(args: argparse.Namespace) -> int:
    """``nctutor bench --against NAME``: encode/decode milliseconds and bytes of each model's
    ``.nct`` files against those of the model ``NAME`` on the same images, timed in the same
    rounds (:func:`nctutor.bench.run_against`); the models default to the code-space
    predictor's variants; the last lines give each model's decode time against ``NAME``, the
    mean of the per-image ratios. Run in book section *Predicting codes from their neighbours →
    Decoding time*."""

    import torch

    from . import bench, config

    if args.device and torch.device(args.device).type != "cpu":
        raise ValueError("--against: the code-space predictor's coder runs on the CPU (numpy); "
                         "leave --device out")
    names = args.model or list(bench.KWCC_MODELS)
    profile = config.get_profile(_profile([*names, args.against], [args.quality],
                                          args.profile)[0])
    rows = bench.run_against(names, args.against, args.quality, profile.name, args.images,
                             args.crop, args.repeat, progress=sys.stderr.isatty())
    print(_bench_header(f"nctutor bench --against {args.against}", rows, args, profile.name))
    print(bench.against_table(rows, per_image=args.per_image))
    print(f"times of .nct encode_image/decode_image; ref = {args.against}, timed in the same "
          f"rounds on the same image; ×ref = model / ref; mean rows: mean of the per-image "
          f"ratios")
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r.model, []).append(r)
    for model, group in groups.items():
        ratio = bench.mean_ratios(group)["dec_ratio"]
        print(f"{model}: decode time against {args.against}: {ratio:.2f}× (mean of per-image "
              f"ratios; goal ≤ 1.0×)")
    if args.json:
        settings = {k: getattr(args, k) for k in ("model", "against", "quality", "images",
                                                  "crop", "repeat")}
        command = _command_line(args)
        bench.against_to_json(rows, args.json, {**settings, "model": names, "command": command,
                                                "profile": profile.name, **_machine()})
        print(f"wrote {args.json}")
    return 0


def _bench_modes(args: argparse.Namespace) -> int:
    """``nctutor bench --modes …``: encode/decode milliseconds of the lattice codec's modes,
    their ratios to ``scalar`` and to CompressAI (:func:`nctutor.bench.run_modes`); the models
    default to the two the lattice coder wraps. Run in book section *Lattices and the latent
    shift on a trained codec → Time (Table 6)*."""
    import torch

    from . import bench, codecs, config
    from .codecs.latent import has_latent_codec

    modes = list(dict.fromkeys(m for spec in args.modes for m in spec.split(",") if m))
    unknown = [m for m in modes if m not in LATENT_MODES]
    if unknown or not modes:
        what = f"unknown mode {unknown[0]!r}" if unknown else "no mode given"
        raise ValueError(f"--modes: {what}; modes: {', '.join(LATENT_MODES)}")
    if args.device and torch.device(args.device).type != "cpu":
        raise ValueError("--modes: the lattice codec runs on the CPU (its cell tables are "
                         "numpy); leave --device out")
    names = args.model or [a for a in codecs.IMAGE_MODELS if has_latent_codec(a)]
    for name in names:
        arch = codecs.architecture_of(name)
        if not has_latent_codec(arch):
            raise ValueError(f"--modes times the lattice coder, which wraps "
                             f"bmshj2018-factorized and mbt2018-mean only; {name} is a {arch}")
    profile = config.get_profile(_profile(names, [args.quality], args.profile)[0])
    rows = bench.run_modes(names, modes, args.quality, profile.name, args.images, args.crop,
                           args.repeat, args.device, progress=sys.stderr.isatty())
    print(_bench_header("nctutor bench --modes", rows, args, profile.name))
    print(bench.modes_table(rows, per_image=args.per_image))
    print("modes of nctutor.rd.latent.MODES as .nct files (compressai: the table coder); "
          "×scalar = time / that of scalar (the lattice coder with rounding); ×CAI = time / "
          "CompressAI's own compress or decompress; cell tables cached by the warm-up")
    if args.json:
        settings = {k: getattr(args, k) for k in ("model", "quality", "images", "crop", "repeat",
                                                  "device")}
        bench.modes_to_json(rows, args.json, {**settings, "modes": modes,
                                              "profile": profile.name, **_machine()})
        print(f"wrote {args.json}")
    return 0


# ----------------------------------------------------------------------------- latent-eval
def _latent_models(specs: list[str], profile: str) -> list[tuple[str, int]]:
    """``(name, quality)`` pairs of ``--models NAME[:Q,Q…]``; ``NAME`` alone means every quality
    with weights at ``profile``. Refuses a model the lattice coder cannot wrap."""
    from . import codecs, zoo
    from .codecs.latent import has_latent_codec

    pairs: list[tuple[str, int]] = []
    for spec in specs:
        name, _, qs = spec.partition(":")
        arch = codecs.architecture_of(name)
        if not has_latent_codec(arch):
            raise ValueError(f"--models {spec}: the lattice coder wraps bmshj2018-factorized and "
                             f"mbt2018-mean only; {name} is a {arch}")
        if qs:
            try:
                qualities = [int(q) for q in qs.split(",")]
            except ValueError:
                raise ValueError(f"--models {spec}: give NAME or NAME:Q[,Q…] with qualities "
                                 f"1..8") from None
        else:
            qualities = [q for q in range(1, len(codecs.LAMBDAS) + 1)
                         if zoo.locate(name, q, profile)["from"] != "needs training"]
            if not qualities:
                raise ValueError(f"--models {spec}: no trained weights of {name} at profile "
                                 f"{profile} (`nctutor models --profile {profile}` lists them)")
        for q in qualities:
            codecs.lmbda(q)  # 1..8
            if (name, q) in pairs:
                raise ValueError(f"--models names {name} q{q} twice")
            pairs.append((name, q))
    return pairs


class _NamedImages(list):
    """Image tensors with ``names``, as :func:`nctutor.rd.metrics.image_list` reads an
    ``ImageSet``."""

    names: list[str]


def _latent_images(given: list[str]):
    """``--images``: ``kodak`` or ``clic`` (the whole set), or image files (named by their stem)."""
    from . import data

    if given in (["kodak"], ["clic"]):
        return {"kodak": data.kodak, "clic": data.clic}[given[0]]()
    images = _NamedImages()
    images.names = []
    for file in map(Path, given):
        _check_input(file, "an image file")
        if file.stem in images.names:
            raise ValueError(f"two images named {file.stem}: the record keys images by name")
        images.names.append(file.stem)
        images.append(data.load_image(file))
    return images


def cmd_latent_eval(args: argparse.Namespace) -> int:
    """``nctutor latent-eval``: code images with every model and mode of the lattice codec and
    write the record of :func:`nctutor.rd.latent.run` (the command line is stored in it); a rerun
    with the same ``--out`` resumes it. Prints the means per family, quality and mode, and the
    BD-rates against rounding when there are two qualities or more. ``--threads`` holds for the
    run only (the thread count is restored after it, also for a caller in the same process).
    Defined in book section *Lattices and the latent shift on a trained codec → How the tables
    are made*."""
    import torch

    saved = torch.get_num_threads()
    try:
        return _latent_eval(args)
    finally:
        torch.set_num_threads(saved)


def _latent_eval(args: argparse.Namespace) -> int:
    import json

    import numpy as np
    import torch

    from . import zoo
    from .rd import latent

    modes = list(dict.fromkeys(m for spec in args.modes for m in spec.split(",") if m))
    unknown = [m for m in modes if m not in latent.MODES]
    if unknown:
        raise ValueError(f"unknown mode {unknown[0]!r}; modes: {', '.join(latent.MODES)}")
    if "scalar" not in modes:
        raise ValueError("--modes must include scalar: rounding under the same coder is the "
                         "baseline of every table")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    pairs = _latent_models(args.models, args.profile)
    images = _latent_images(args.images)
    names = list(images.names)
    dataset = args.images[0] if args.images in (["kodak"], ["clic"]) else "images"
    out = Path(args.out or f"latent-{dataset}.json")
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder")
    if out.exists():  # run() resumes it: only a record of the same settings
        try:
            old = json.loads(out.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{out} exists and is not a record ({e}); give another "
                             f"--out") from None
        same = {"profile": args.profile, "modes": modes, "images": names}
        differ = [k for k, v in same.items() if old.get(k) != v]
        if differ:
            raise ValueError(f"{out} holds a record of other {' and '.join(differ)}; give another "
                             f"--out, or delete it to start again")
        print(f"resuming {out}")
    models = [(name, q, zoo.load(name, q, args.profile, progress=sys.stderr.isatty(),
                                 train_if_missing=False)) for name, q in pairs]
    command = _command_line(args)
    record = latent.run(out, models, images, args.profile, modes, command)
    print(f"wrote {out}: {len(names)} image{'s' * (len(names) > 1)}, "
          f"{len(pairs)} model{'s' * (len(pairs) > 1)}, {len(modes)} modes, "
          f"{record['threads']} thread(s), profile {args.profile}")
    print(f"{'model':<24}{'mode':>12}{'bpp':>9}{'PSNR dB':>9}{'enc s':>9}{'dec s':>9}")
    for name, q, _ in models:
        rows = list(record["families"][name][str(q)].values())
        for mode in modes:
            mean = {k: float(np.mean([r["modes"][mode][k] for r in rows]))
                    for k in ("bpp", "psnr", "enc_s", "dec_s")}
            print(f"{f'{name} q{q}':<24}{mode:>12}{mean['bpp']:>9.4f}{mean['psnr']:>9.3f}"
                  f"{mean['enc_s']:>9.3f}{mean['dec_s']:>9.3f}")
    several = {f: rows for f, rows in record["families"].items() if len(rows) >= 2}
    if several:
        tables = latent.tables({**record, "families": several})
        for fam, t in tables.items():
            print(f"{fam}: BD-rate against scalar, "
                  + ", ".join(f"{m} {t['bd_rate'][m]:+.2f} %" for m in modes if m != "scalar"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nctutor`` command (see the module docstring); no page
    calls it."""
    parser = argparse.ArgumentParser(
        prog="nctutor", description="Neural image codecs of the nctutor book.")
    parser.add_argument("--version", action="version", version=f"nctutor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compress", help="compress images (or videos) into .nct files")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="IN OUT: an image file (PNG, JPEG, …) and the .nct file to write; with "
                        "--out-dir, any number of image files. For a video model, IN is a video "
                        "file or a folder of PNG frames")
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="write DIR/NAME.nct for each image NAME.png given (the folder must exist)")
    p.add_argument("--model", default="mbt2018-mean",
                   help="codec name, or compressai:NAME for CompressAI's pretrained models, or a "
                        "video model (" + ", ".join(VIDEO_MODELS) + "), or a P-frame model ("
                        + ", ".join(PFRAME_MODELS) + ") (default: %(default)s; `nctutor models` "
                        "lists them)")
    p.add_argument("--quality", "-q", type=int, default=None, choices=range(1, 9), metavar="Q",
                   help="quality 1..8 of an image codec (default: 3) or a P-frame model "
                        "(default: 2)")
    p.add_argument("--reference", default=None, metavar="REF",
                   help="P-frame models: the reference frame the frame is coded against, the "
                        "decoded previous frame exactly as its decoder wrote it (a PNG)")
    p.add_argument("--switch", choices=("d", "g", "frame", "quadtree"), default=None,
                   help="pframe-xgdc: x̂_d or x̂_g everywhere, the better of the two for the "
                        "frame (one bit), or a quad-tree of blocks (default: quadtree)")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="video models: code the first N frames only (default: all)")
    p.add_argument("--channels", type=int, default=None, metavar="K",
                   help="video models: binary channels kept, the rate (1..C; default: C/4 of the "
                        "model, 32 of the cpu profile's 128)")
    p.add_argument("--coder", choices=("table", "exact", "lattice"), default=None,
                   help="entropy coder of y: CompressAI's tables, one exact Gaussian per "
                        "symbol (hyperpriors only), or the lattice coder's cell tables "
                        "(bmshj2018-factorized and mbt2018-mean) (default: table; lattice with "
                        "--quantizer hex|oct or --latent-shift)")
    p.add_argument("--quantizer", choices=("scalar", "hex", "oct"), default="scalar",
                   help="how y is quantized: rounding, or groups of 2 (hex, A2) or 3 (oct, A3*) "
                        "latents quantized with a unit-volume lattice; hex and oct use the "
                        "lattice coder (default: %(default)s)")
    p.add_argument("--latent-shift", action="store_true",
                   help="let the decoder shift the latents along the rate gradients, with steps "
                        "the encoder chooses and writes in the file (lattice coder)")
    p.add_argument("--search", choices=("secant", "brute"), default=None,
                   help="how the encoder chooses the main shift's step: two decodes and a "
                        "parabola, or a decode of every candidate (with --latent-shift; "
                        "default: secant)")
    p.add_argument("--profile", default=None,
                   help="smoke, cpu or gpu: use that profile's weights, training them now if "
                        "missing (default: $NCTUTOR_PROFILE's, else the shipped or best cached "
                        "weights; missing ones are refused)")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="decompress .nct files into PNGs (a video: PNG "
                                          "frames or a lossless .mkv)")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="IN OUT: the .nct file and the PNG to write (a video: a folder for its "
                        "PNG frames, created, or a .mkv file); with --out-dir, any number of "
                        ".nct files")
    p.add_argument("--out-dir", default=None, metavar="DIR",
                   help="write DIR/NAME.png for each NAME.nct given, DIR/NAME/ for a video (the "
                        "folder must exist)")
    p.add_argument("--reference", default=None, metavar="REF",
                   help="a P-frame file: the reference frame it was coded against (the same "
                        "PNG, bit for bit)")
    p.set_defaults(func=cmd_decompress)

    p = sub.add_parser("models", help="list the codecs and where their weights come from")
    p.add_argument("--profile", default=None,
                   help="smoke, cpu or gpu: the weights of that profile (default: "
                        "$NCTUTOR_PROFILE's, else the shipped or best cached ones)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list: name, kind, source, qualities, weights per quality")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train a codec (DDP under torchrun)")
    p.add_argument("name", help="codec name, e.g. mbt2018-mean, or a video model ("
                   + ", ".join(VIDEO_MODELS) + "), or a P-frame model ("
                   + ", ".join(PFRAME_MODELS) + ")")
    p.add_argument("--quality", "-q", type=int, default=None, choices=range(1, 9), metavar="Q",
                   help="quality 1..8 (required for an image codec and a P-frame model; none "
                        "for a video model)")
    p.add_argument("--profile", default=None, help="smoke, cpu or gpu (default: $NCTUTOR_PROFILE)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: profile's)")
    p.add_argument("--lr", type=float, default=None,
                   help="initial learning rate (default: profile's; a fine-tune from --init "
                        "usually wants less)")
    p.add_argument("--out", default=None, help="run folder (default: in the cache)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed (default: 0; a P-frame model: its trainer's default)")
    p.add_argument("--init", default=None, metavar="RUN",
                   help="start from the weights of a finished run (folder or checkpoint.pt) "
                        "or of an exported weights file (e.g. the shipped "
                        "nctutor/weights/NAME-qQ.pt) of the same model and widths")
    p.add_argument("--metric", choices=("mse", "ms-ssim"), default="mse",
                   help="the distortion of the loss (default: %(default)s; λ from its ladder)")
    p.add_argument("--patch-size", type=int, default=None,
                   help="training crop size (default: profile's; MS-SSIM needs at least 161)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train, parser=p)

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
    p.add_argument("--modes", nargs="+", default=None, metavar="MODE",
                   help="time these modes of the lattice codec instead (space- or "
                        "comma-separated: " + ",".join(LATENT_MODES) + ") against scalar and "
                        "CompressAI; the models default to bmshj2018-factorized and mbt2018-mean")
    p.add_argument("--against", default=None, metavar="NAME",
                   help="time the models' .nct files against those of the model NAME (e.g. "
                        "mbt2018) on the same images, and print the decode-time ratio; the "
                        "models default to kwcc2018-spatial, kwcc2018-hierarchical and "
                        "kwcc2018-checkerboard (not with --modes)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("latent-eval", help="lattice quantizers and the latent shift on trained "
                                           "codecs: the record of the latent chapter's tables")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="the record to write, resumed if it exists (default: latent-kodak.json, "
                        "latent-clic.json or latent-images.json in the current folder)")
    p.add_argument("--images", nargs="+", default=["kodak"], metavar="IMAGES",
                   help="kodak (24 photos), clic (2 large photos), or image files (default: "
                        "kodak)")
    p.add_argument("--profile", default="cpu",
                   help="the profile of the weights; missing weights are refused, never trained "
                        "(default: %(default)s, the shipped ones)")
    p.add_argument("--models", nargs="+", default=list(LATENT_MODELS), metavar="NAME[:Q,…]",
                   help="codecs and qualities, NAME alone for every quality with weights "
                        "(bmshj2018-factorized and mbt2018-mean only; default: "
                        + " ".join(LATENT_MODELS) + ")")
    p.add_argument("--modes", nargs="+", default=list(LATENT_MODES), metavar="MODE",
                   help="modes to code with, scalar included (default: all: "
                        + ", ".join(LATENT_MODES) + ")")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's; the shipped record used 1)")
    p.set_defaults(func=cmd_latent_eval)

    p = sub.add_parser("predictor-eval", help="the code-space predictor's variants on Kodak: "
                                              "the record of its chapter's table")
    p.add_argument("--runs", default=None, metavar="DIR",
                   help="folder of the variants' training runs (DIR/NAME-qQ)")
    p.add_argument("--experiment", choices=("context", "sgdn"), default="context",
                   help="context: the context models (nctutor.rd.predictor); sgdn: the "
                        "normalizations (nctutor.rd.normalization) (default: %(default)s)")
    p.add_argument("--variants", nargs="+", default=None, metavar="V",
                   help="only these variants (default: all of the experiment's VARIANTS)")
    p.add_argument("--merge", nargs="+", default=None, metavar="FILE",
                   help="instead: join the records of several runs with --variants into --out")
    p.add_argument("--out", default="predictor-kodak.json", metavar="FILE",
                   help="the record to write (default: %(default)s)")
    p.add_argument("--qualities", nargs="+", type=int, default=[1, 2, 3, 4], metavar="Q",
                   choices=range(1, 9), help="qualities (default: 1 2 3 4)")
    p.add_argument("--images", type=int, default=None, metavar="N",
                   help="the first N Kodak images (default: all 24)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's; the shipped record used 1)")
    p.set_defaults(func=cmd_predictor_eval)

    p = sub.add_parser("video-eval", help="the binary video codec's three orders against x264 "
                                          "and x265 on the held-out clips: its chapter's record")
    p.add_argument("--weights", default=None, metavar="DIR",
                   help="folder of the exported weights NAME.pt + NAME.json of the three orders "
                        "(default: the package's nctutor/weights)")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="the first N frames of each clip (default: all, cut to whole groups)")
    p.add_argument("--out", default="binary-video-eval.json", metavar="FILE",
                   help="the record to write (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's; decoding always runs on one)")
    p.set_defaults(func=cmd_video_eval)

    p = sub.add_parser("pframe-eval", help="the P-frame coders (difference coder, CodecNet, GDC, "
                                           "xGDC, switching) on the held-out pairs, beside x264 "
                                           "and x265: its chapter's record")
    p.add_argument("--weights", default=None, metavar="DIR",
                   help="folder of exported weights NAME-qQ.pt + .json (pframetrain.export); a "
                        "coder missing there comes from the zoo (shipped weights or a finished "
                        "run of --profile)")
    p.add_argument("--profile", default="cpu", help="profile of the runs (default: %(default)s)")
    p.add_argument("--out", default="pframe-eval.json", metavar="FILE",
                   help="the record to write (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's; decoding always runs on one)")
    p.set_defaults(func=cmd_pframe_eval)
    return parser


def cmd_pframe_eval(args: argparse.Namespace) -> int:
    """``nctutor pframe-eval``: :func:`nctutor.maintain.pframe_experiment`; prints the Table 1
    analog. Defined in book section *Conditional coding in practice → Table 1 on our pairs*."""
    from . import maintain
    from .rd import conditional

    out = Path(args.out)
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder")
    with _threads(args.threads):
        record = maintain.pframe_experiment(out, args.weights, profile=args.profile,
                                            command=_command_line(args),
                                            progress=sys.stderr.isatty())
    print(f"wrote {out} ({record['seconds']:.0f} s)")
    for row in conditional.table(record):
        bd = "no overlap" if row["bd_rate"] is None else f"{row['bd_rate']:+.1f} %"
        paper = "" if row["paper_bd_rate"] is None else f" (paper {row['paper_bd_rate']:+.1f} %)"
        print(f"{row['variant']:>18}: BD-rate vs DiffCoder {bd}{paper}, parameters "
              f"{row['parameters']:+.1f} %")
    return 0


def cmd_video_eval(args: argparse.Namespace) -> int:
    """``nctutor video-eval``: :func:`nctutor.maintain.video_experiment` on the three orders'
    exported weights; prints each curve and the BD-rates against x264 and x265. Defined in book
    section *A binary video codec with delta-sigma modulation → Against H.264 and H.265*."""

    from . import maintain
    from .checkpoints import WEIGHTS_DIR
    from .rd import binary_video

    out = Path(args.out)
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder")
    if args.frames is not None and args.frames < 1:
        raise ValueError("--frames must be at least 1")
    folder = Path(args.weights) if args.weights else WEIGHTS_DIR
    files = {name: folder / f"{name}.pt" for name in VIDEO_MODELS}
    for name, file in files.items():
        if not file.is_file():
            raise FileNotFoundError(f"{file}: no weights of {name}; train them (`nctutor train "
                                    f"{name} --profile cpu --seed 7`) and export the run "
                                    f"(nctutor.videotrain.export)")
    with _threads(args.threads):
        record = maintain.video_experiment(files, out, args.frames, _command_line(args),
                                           progress=sys.stderr.isatty())
    print(f"wrote {out}")
    for clip, entry in record["clips"].items():
        print(f"{clip} ({entry['frames']} frames)")
        for name, curve in entry["curves"].items():
            points = ", ".join(f"{r['bpp']:.4f} bpp {r['psnr_rgb']:.2f} dB"
                               for r in curve["records"])
            print(f"  {name:<20}{points}")
    for clip, rows in binary_video.tables(record).items():
        for name, row in rows.items():
            print(f"{clip} {name}: BD-rate " + ", ".join(
                f"vs {a} {'n/a' if v is None else f'{v:+.1f} %'}" for a, v in row.items()))
    return 0


def cmd_predictor_eval(args: argparse.Namespace) -> int:
    """``nctutor predictor-eval``: every variant of the code-space predictor's experiment on
    Kodak as real files (:func:`nctutor.maintain.predictor_experiment`); prints the curves and
    the BD-rates against the mean-scale model of the same budget. ``--threads`` holds for the
    run only. Defined in book section *Predicting codes from their neighbours → How the table is
    made*."""


    from . import data, maintain
    from .rd import normalization, predictor

    module = normalization if args.experiment == "sgdn" else predictor
    out = Path(args.out)
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder")
    command = _command_line(args)
    if args.merge:
        import json

        from .files import atomic_write

        parts = []
        for file in args.merge:
            _check_input(Path(file), "a record of predictor-eval")
            try:
                parts.append(json.loads(Path(file).read_text()))
            except ValueError as e:
                raise ValueError(f"{file} is not a record: {e}") from None
        record = predictor.merge(parts, command)
        atomic_write(out, json.dumps(record, indent=1))
        print(f"wrote {out}: variants {', '.join(record['variants'])}")
        return 0
    if args.runs is None:
        raise ValueError("give --runs DIR (the variants' training runs) or --merge FILE…")
    unknown = [v for v in args.variants or [] if v not in module.VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r}; variants: "
                         f"{', '.join(module.VARIANTS)}")
    if not Path(args.runs).is_dir():
        raise FileNotFoundError(f"--runs {args.runs}: no such folder (it holds the runs of "
                                f"`{module.train_command(list(module.VARIANTS)[-1], 1)}`)")
    with _threads(args.threads):
        images = data.kodak(args.images)
        record = maintain.predictor_experiment(args.runs, out, args.qualities, images, command,
                                               progress=sys.stderr.isatty(),
                                               variants=args.variants,
                                               experiment=args.experiment)
    print(f"wrote {out}")
    print(f"{'variant':<24}{'q':>3}{'bpp':>9}{'PSNR dB':>9}{'enc s':>8}{'dec s':>8}")
    t = module.tables(record)
    for v, row in t.items():
        c = row["curve"]
        for i, q in enumerate(c["quality"]):
            print(f"{v:<24}{q:>3}{c['bpp'][i]:>9.4f}{c['psnr'][i]:>9.3f}"
                  f"{c['encoding_time'][i]:>8.2f}{c['decoding_time'][i]:>8.2f}")
    for v, row in t.items():
        bd = row["bd_rate"]
        if isinstance(bd, float):
            bd = {normalization.BASELINE: bd}
        if bd:
            print(f"{v}: BD-rate " + ", ".join(f"vs {k} {b:+.2f} %" for k, b in bd.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nctutor`` console script and of ``python -m nctutor``; returns the
    exit status (0, :data:`EXIT_USAGE`, :data:`EXIT_INTERNAL` or :data:`EXIT_INTERRUPTED`).
    The command of book section *How to run this book → Training from the command line*."""
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # latent-eval records it

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
