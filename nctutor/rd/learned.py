"""Learned codecs evaluated with real bitstreams, under the one stride rule.

Chapter *Transform coding with learned priors* (section *How this book uses them*, the protocol of
its section *Evaluation*); applied in the notebook *Rate-distortion curves of three learned
codecs*.
"""

from __future__ import annotations

import time

import torch

from .. import codecs, config
from ..data import to_uint8
from .curves import RDCurve, mean_curve
from .metrics import image_list, record


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, images, name: str = "model",
                   stride: int | None = None, quality: float | None = None) -> RDCurve:
    """Evaluate a CompressAI-style learned codec on ``images`` with real bitstreams.

    For each image: pad to a multiple of ``stride`` by the one stride rule
    (:func:`nctutor.codecs.pad`) (default: the model's
    ``downsampling_factor``, else 64), ``model.compress`` → strings, ``model.decompress`` →
    reconstruction, crop back, round to 8 bits. The rate is ``8·(bytes of all strings)/pixels``
    of the *original* image; PSNR and MS-SSIM are those of the 8-bit decoded image; encoding and
    decoding seconds are wall-clock. ``model.update()`` is called first (a no-op when the entropy
    coder's tables already exist) and the model is put in eval mode. Returns a one-point
    :class:`RDCurve` (mean over images, ``records`` per image, ``qualities=[quality]``); join the
    points of several qualities with :func:`join`.
    Defined in book section *Transform coding with learned priors → How this book uses them*
    (the protocol of its section *Evaluation*); used in the notebook *Rate-distortion curves of
    three learned codecs → Learned codecs: train or load, then encode to bytes*.
    """
    if not hasattr(model, "compress") or not hasattr(model, "decompress"):
        raise TypeError("model must have compress() and decompress() (a CompressAI model)")
    stride = int(stride or getattr(model, "downsampling_factor", 64))
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    model.eval()
    if hasattr(model, "update"):
        model.update()
    dev = next(model.parameters()).device
    records = []
    for img_name, x in image_list(images):
        x = x.to(dev)[None]
        h, w = x.shape[-2:]
        x_pad = codecs.pad(x, stride)
        config.synchronize(dev)
        t0 = time.perf_counter()
        enc = model.compress(x_pad)
        config.synchronize(dev)
        t1 = time.perf_counter()
        out = model.decompress(enc["strings"], enc["shape"])
        config.synchronize(dev)
        t2 = time.perf_counter()
        x_hat = codecs.crop(out["x_hat"], h, w)
        num_bytes = sum(len(s) for group in enc["strings"] for s in group)
        records.append(record(img_name, to_uint8(x[0]).cpu(), to_uint8(x_hat[0]).cpu(),
                               num_bytes, t1 - t0, t2 - t1, quality=quality))
    return mean_curve(name, records, "quality", [quality], f"{name}: real bitstreams")
