"""Decode .nct files and report what the entropy decoders produced: the cross-machine check.

Run as a script in a fresh process whose environment picks other kernels (``ONEDNN_MAX_CPU_ISA``,
``ATEN_CPU_CAPABILITY``, ``OMP_NUM_THREADS``, ``NPY_DISABLE_CPU_FEATURES``)::

    python tests/portable_worker.py OUT_DIR FILE.nct [REF.png] ...

For each file it writes ``OUT_DIR/<file stem>.npy`` (the decoded 8-bit frames) and prints one
JSON line per file: ``{"file", "latents", "error"}``, where ``latents`` is a SHA-256 of every
tensor the entropy decoders returned (symbols with their means: CompressAI's
``EntropyModel.decompress``, the exact coder's ``_decode_y``, the lattice coder's ``_decode_y``,
the code-space predictor's ``_code``, the binary video coder's ``decode_bits``), in decoding
order. Equal hashes mean equal symbols and equal means; tests/test_portable.py compares them
across kernel settings, and tests/test_golden.py against the hashes stored with the golden files.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch


@contextmanager
def recorded_latents():
    """Patch the entropy decoders to hash what they return; yields the running hash."""
    from compressai.entropy_models import EntropyModel

    from nctutor.codecs import exact, latent, predictor
    from nctutor.entropy import binary

    digest = hashlib.sha256()
    places = [(EntropyModel, "decompress"), (exact._ExactY, "_decode_y"),
              (latent.LatentCodec, "_decode_y"), (predictor._PredictorCodec, "_code"),
              (binary, "decode_bits")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in places]

    def wrap(fn):
        def recorded(*args, **kwargs):
            out = fn(*args, **kwargs)
            a = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
            digest.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
            return out
        return recorded

    for owner, name, fn in saved:
        setattr(owner, name, wrap(fn))
    try:
        yield digest
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


_MODELS: dict[tuple, torch.nn.Module] = {}


def _model(h):
    """The shipped model that wrote the file of header ``h`` (loaded once per process)."""
    from nctutor import zoo

    key = (h.kind, h.model, getattr(h, "quality", 0), h.profile)
    if key not in _MODELS:
        if h.kind == "pframe":
            _MODELS[key] = zoo.pframe_model(h.model, h.quality, h.profile or None)
        elif h.kind == "video":
            _MODELS[key] = zoo.video_model(h.model, h.profile or None)
        else:
            _MODELS[key] = zoo.load(h.model, h.quality, h.profile or None,
                                    train_if_missing=False)
    return _MODELS[key]


def decode(file: Path, ref: Path | None = None) -> tuple[str, np.ndarray]:
    """``(latents hash, 8-bit frames (F, 3, H, W))`` of one file, decoded in this process."""
    from nctutor import container, data

    blob = file.read_bytes()
    h = container.read_header(blob)
    model = _model(h)
    with recorded_latents() as digest:
        if h.kind == "image":
            frames = [container.decode_image(blob, model)]
        elif h.kind == "pframe":
            frames = [container.decode_pframe(blob, model, data.load_image(ref))]
        else:
            frames = list(container.decode_video(blob, model))
    pixels = torch.stack(frames).mul(255).round().to(torch.uint8).numpy()
    return digest.hexdigest(), pixels


def main(argv: list[str]) -> None:
    warnings.filterwarnings("ignore")
    out_dir, rest = Path(argv[0]), argv[1:]
    for item in rest:
        file, _, ref = item.partition("@")
        path = Path(file)
        try:
            latents, pixels = decode(path, Path(ref) if ref else None)
            np.save(out_dir / f"{path.stem}.npy", pixels)
            print(json.dumps({"file": path.name, "latents": latents, "error": None}), flush=True)
        except Exception as e:  # reported, compared by the test
            print(json.dumps({"file": path.name, "latents": None,
                              "error": f"{type(e).__name__}: {e}"}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
