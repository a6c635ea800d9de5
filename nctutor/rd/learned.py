"""Learned codecs evaluated as real ``.nct`` files, under the one stride rule.

Chapter *Transform coding with learned priors* (section *How this book uses them*, the protocol of
its section *Evaluation*); applied in the notebook *Rate-distortion curves of three learned
codecs*.
"""

from __future__ import annotations

import time

import torch

from .. import codecs, config, container
from ..data import to_uint8
from .curves import RDCurve, mean_curve
from .metrics import image_list, record


def _file_settings(model: torch.nn.Module, quality: int | None) -> tuple[str, int, str]:
    """The model name, quality and profile that :func:`nctutor.container.encode_image` writes
    into the header: those of ``model.nctutor`` (set by :func:`nctutor.zoo.load`), else the
    architecture's registry name, ``quality`` and no profile."""
    try:
        arch = codecs.architecture_of_model(model)
    except TypeError as e:
        raise TypeError(f"evaluate_model codes real .nct files, which only the registry's "
                        f"architectures ({', '.join(codecs.ARCHITECTURES)}) have: {e}") from None
    info = getattr(model, "nctutor", None) or {}
    stored = info.get("quality")
    if quality is None:
        quality = stored
    elif stored is not None and stored != quality:
        raise ValueError(f"quality={quality}, but the model is {info.get('name', arch)} "
                         f"q{stored}; pass quality={stored} or leave it out")
    if quality is None:
        raise ValueError("the model does not say its quality (no model.nctutor): pass "
                         "quality=1..8, the one it was trained for, to write it into the header")
    codecs.lmbda(quality)  # validates it
    return info.get("name", arch), quality, info.get("profile") or ""


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, images, name: str = "model",
                   stride: int | None = None, quality: int | None = None) -> RDCurve:
    """Evaluate a learned codec of the registry on ``images`` by writing and reading real files.

    Each image is coded by :func:`nctutor.container.encode_image` into the very ``.nct`` file
    ``nctutor compress`` writes for it with the same model and quality (padded to the model's
    stride by the one stride rule, :func:`nctutor.codecs.pad`), then decoded by
    :func:`nctutor.container.decode_image` (cropped back, :func:`nctutor.codecs.crop`) and
    rounded to 8 bits. **The rate is the whole file**: the record's ``bytes`` are the file's
    length (header and CRC included, about 40-60 bytes), ``bpp = 8·bytes / pixels`` of the
    *original* image; ``stream_bytes`` are the entropy-coded streams alone (what CompressAI's
    own evaluation counts, the length of ``compress()``'s strings). PSNR and MS-SSIM are those of
    the 8-bit decoded image; encoding and decoding seconds are wall-clock for the file (header
    and checks included).

    The header's model name, quality and profile come from ``model.nctutor`` (set by
    :func:`nctutor.zoo.load`); a bare CompressAI model of the registry is written under its
    architecture's name (:func:`nctutor.codecs.architecture_of_model`) with ``quality``, which
    it then needs. A model of another class raises :class:`TypeError`. ``stride`` may be left
    out: the file format fixes it (:data:`nctutor.codecs.STRIDES`), any other value raises
    :class:`ValueError`. ``model.update()`` is called first (a no-op when the entropy coder's
    tables already exist) and the model is put in eval mode. Returns a one-point
    :class:`RDCurve` (mean over images, ``records`` per image, ``qualities=[quality]``); join the
    points of several qualities with :func:`join`.
    Defined in book section *Transform coding with learned priors → How this book uses them*
    (the protocol of its section *Evaluation*); used in the notebook *Rate-distortion curves of
    three learned codecs → Learned codecs: train or load, then encode to bytes*.
    """
    model_name, quality, profile = _file_settings(model, quality)
    arch_stride = codecs.STRIDES[codecs.architecture_of(model_name)]
    if stride is not None and stride != arch_stride:
        raise ValueError(f"stride={stride}, but {model_name} files are padded to multiples of "
                         f"{arch_stride} (codecs.STRIDES); leave stride out")
    model.eval()
    if hasattr(model, "update"):
        model.update()
    dev = next(model.parameters()).device
    records = []
    for img_name, x in image_list(images):
        config.synchronize(dev)
        t0 = time.perf_counter()
        blob = container.encode_image(model, x, model_name, quality, profile)
        config.synchronize(dev)
        t1 = time.perf_counter()
        x_hat = container.decode_image(blob, model)
        t2 = time.perf_counter()
        rec = record(img_name, to_uint8(x).cpu(), to_uint8(x_hat), len(blob), t1 - t0, t2 - t1,
                     quality=quality)
        rec["stream_bytes"] = container.read_header(blob).payload_size
        records.append(rec)
    return mean_curve(name, records, "quality", [quality],
                      f"{name}: .nct files (bpp of the whole file)")
