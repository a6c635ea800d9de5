"""The files of the cross-machine check: every shipped model with every coder and quantizer.

:func:`write_matrix` encodes, in the calling process (default kernels), one small crop with
every shipped image model and quality and every coder/quantizer/shift combination it supports,
the shipped P-frame coders (xGDC with every switch) and the shipped binary video codecs.
tests/test_portable.py decodes them under other kernels; ``python tests/portable_files.py
tests/golden`` remakes the golden files (a subset: :data:`GOLDEN`) with their expected hashes.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

#: Every coder/quantizer/shift combination of an image model with a lattice coder.
LATTICE = [dict(coder="lattice", quantizer=q, shift=s) for q in ("scalar", "hex", "oct")
           for s in (False, True)]
#: The golden files: a small one of each kind and coder.
GOLDEN = ("mbt2018-mean-q1-table", "mbt2018-mean-q1-exact", "mbt2018-mean-q1-lattice-hex-shift",
          "bmshj2018-factorized-q1-table", "bmshj2018-factorized-q1-lattice-oct",
          "kwcc2018-hierarchical-q1-table", "pframe-diff-q2-none", "pframe-xgdc-q2-quadtree",
          "frameconv3d-order2")


def _modes(arch: str) -> list[dict]:
    from nctutor.codecs.exact import has_exact_coder
    from nctutor.codecs.latent import has_latent_codec

    modes = [dict(coder="table")]
    if has_exact_coder(arch):
        modes.append(dict(coder="exact"))
    if has_latent_codec(arch):
        modes += LATTICE
    return modes


def _mode_name(mode: dict) -> str:
    parts = [mode["coder"]]
    if mode.get("quantizer"):
        parts.append(mode["quantizer"])
    if mode.get("shift"):
        parts.append("shift")
    return "-".join(parts)


def crops() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 128×128 crop of kodim02; a BasketballPass pair (64×96); four frames of it (64×64)."""
    from nctutor import data

    image = data.kodak(2)[1][:, 200:328, 300:428]
    frames = data.basketball_pass(4)
    return image, frames[:2, :, 100:164, 200:296], frames[:, :, 100:164, 200:264]


def write_matrix(out: Path, only: tuple[str, ...] | None = None) -> list[str]:
    """Encode the files into ``out``; returns the worker's arguments (``FILE[@REF]``)."""
    from nctutor import codecs, container, data, zoo
    from nctutor.checkpoints import WEIGHTS_DIR
    from nctutor.codecs.video import MODELS as VIDEO_MODELS

    image, pair, clip = crops()
    jobs: list[str] = []

    def keep(name: str) -> bool:
        return only is None or name in only

    for (arch, quality) in sorted(zoo.shipped()):
        if arch not in codecs.ARCHITECTURES and arch not in codecs.PREDICTORS:
            continue
        if arch == "mbt2018":  # CompressAI's own autoregressive coder: see test_portable.py
            continue
        model = None
        for mode in _modes(arch):
            name = f"{arch}-q{quality}-{_mode_name(mode)}"
            if not keep(name):
                continue
            model = model or zoo.load(arch, quality, "cpu")
            (out / f"{name}.nct").write_bytes(
                container.encode_image(model, image, arch, quality, "cpu", **mode))
            jobs.append(str(out / f"{name}.nct"))
    ref = out / "reference.png"
    data.save_image(pair[0], ref)
    for man in sorted(WEIGHTS_DIR.glob("pframe-*-q*.json")):  # the shipped P-frame coders
        coder, quality = man.stem.rsplit("-q", 1)
        quality = int(quality)
        model = zoo.pframe_model(coder, quality)
        for switch in (container.SWITCHES[1:] if coder == "pframe-xgdc" else ("none",)):
            name = f"{coder}-q{quality}-{switch}"
            if keep(name):
                blob = container.encode_pframe(model, pair[1], data.load_image(ref), coder,
                                               quality, model.nctutor["profile"], switch)
                (out / f"{name}.nct").write_bytes(blob)
                jobs.append(f"{out / name}.nct@{ref}")
    for name in VIDEO_MODELS:
        if keep(name):
            model = zoo.video_model(name, "cpu")
            blob = container.encode_video(model, clip, name, "cpu", model.C // 2, 4)
            (out / f"{name}.nct").write_bytes(blob)
            jobs.append(str(out / f"{name}.nct"))
    return jobs


def main(argv: list[str]) -> None:
    """Remake the golden files in ``argv[0]`` (tests/golden): the ``.nct`` files, the reference
    frame of the P-frames, the decoded 8-bit frames (``NAME.pixels.npz``) and expected.json (the
    hash of the decoded latents of each file)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from portable_worker import decode

    warnings.filterwarnings("ignore")
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    expected = {}
    for job in write_matrix(out, GOLDEN):
        file, _, ref = job.partition("@")
        latents, pixels = decode(Path(file), Path(ref) if ref else None)
        np.savez_compressed(out / f"{Path(file).stem}.pixels.npz", pixels=pixels)
        expected[Path(file).name] = {"latents": latents, "reference": Path(ref).name if ref
                                     else None}
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
