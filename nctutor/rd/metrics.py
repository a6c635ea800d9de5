"""Image quality and rate: 8-bit RGB PSNR, MS-SSIM, bits per pixel; one record per image.

Chapter *Transform coding with learned priors*, section *Evaluation*. One protocol for every
codec, learned or classic, the one CompressAI publishes its Kodak results with:

- every image is encoded **to real bytes** and decoded again; the rate is ``8·bytes / pixels``
  (:func:`bpp`), never an estimate from likelihoods;
- quality is measured on the **8-bit** decoded image, as a decoder writes it to disk: both
  images are rounded to ``uint8`` first (:func:`psnr`, :func:`ms_ssim`, RGB, peak 255).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data import to_uint8

#: Smallest image side MS-SSIM accepts: 5 scales of an 11-tap window need a side > (11-1)·2⁴.
MS_SSIM_MIN_SIDE = 161

#: How far two PSNRs (dB) of one decoded file may differ and still count as the same: what the
#: pages and tests that re-measure a stored record compare with, never ``==`` (bytes, symbols and
#: steps are compared exactly). A file's bytes are the same on every machine, its float
#: reconstruction is not quite: other kernels (AVX-512 or AVX2, oneDNN's or ATen's, 1 or 2
#: threads) put a few dozen of its values on the neighbouring 8-bit level. Chosen by measurement
#: on an AMD EPYC (AVX-512; ``tests/test_tolerance.py`` re-checks both sides):
#:
#: - the same symbols decoded under other kernels (``ONEDNN_MAX_CPU_ISA=AVX2``,
#:   ``ATEN_CPU_CAPABILITY=default``, 1 thread; 8 Kodak images × 6 shipped weights) moved the PSNR
#:   by at most 1.1e-5 dB (1.3e-5 dB on 256×256 crops), 8× below it; the shipped records, made on
#:   another CPU, are re-measured there within 5e-6 dB;
#: - one latent of ŷ changed by ±1 moves the PSNR of a 192×192 Kodak crop by a median 7e-4 dB,
#:   more than it in 7 cases of 8. On a whole Kodak image a latent is diluted 11×: the PSNR then
#:   misses two thirds of them (median 6e-5 dB, some under 1e-7 dB where the change of the squared
#:   error cancels), which the exact byte count catches.
PSNR_TOLERANCE_DB = 1e-4

#: The same for MS-SSIM (on its 0..1 scale, computed in float32): other kernels moved it by at
#: most 4.8e-7, 10× below; one latent changed by ±1 moves it on a 192×192 crop by a median 1e-5.
MS_SSIM_TOLERANCE = 5e-6



def _check_pair(x: torch.Tensor, x_hat: torch.Tensor) -> None:
    for arg, t in (("x", x), ("x_hat", x_hat)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{arg} must be a torch.Tensor, not {type(t).__name__}")
        if t.dim() not in (3, 4) or t.shape[-3] != 3:
            raise ValueError(f"{arg} must have shape (3, H, W) or (N, 3, H, W), got "
                             f"{tuple(t.shape)}")
    if x.shape != x_hat.shape:
        raise ValueError(f"x and x_hat differ in shape: {tuple(x.shape)} vs {tuple(x_hat.shape)}")


def _rounded(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` float64 in [0, 1] on the 8-bit grid (uint8 input is taken as is)."""
    q = x if x.dtype == torch.uint8 else to_uint8(x)
    q = q.to(torch.float64).div(255.0)
    return q if q.dim() == 4 else q.unsqueeze(0)


def psnr(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """RGB PSNR in dB of the 8-bit rounded images: ``10·log10(1 / MSE)`` on ``[0, 1]``.

    Both images are rounded to ``uint8`` first (what a decoder writes), as CompressAI's
    evaluation does. ``x`` and ``x_hat`` are float tensors in ``[0, 1]`` (or uint8) of the same
    shape ``(3, H, W)`` or ``(N, 3, H, W)``; for a batch the result is the *mean of the
    per-image PSNRs*. Identical images (MSE 0) give ``float("inf")``.
    Defined in book section *Transform coding with learned priors → Evaluation*.
    """
    _check_pair(x, x_hat)
    mse = (_rounded(x) - _rounded(x_hat)).pow(2).flatten(1).mean(1)
    values = [math.inf if m == 0 else -10.0 * math.log10(m) for m in mse.tolist()]
    return float(np.mean(values))


def ms_ssim(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """RGB MS-SSIM (Wang et al. 2003) of the 8-bit rounded images, via ``pytorch_msssim``.

    Same inputs and rounding as :func:`psnr` (``data_range=1`` on the rounded values, the same
    as CompressAI's ``data_range=255`` on 0..255); a batch gives the mean over its images.
    MS-SSIM's five scales need both sides of at least :data:`MS_SSIM_MIN_SIDE` (161) pixels.
    Defined in book section *Transform coding with learned priors → Evaluation*.
    """
    from pytorch_msssim import ms_ssim as _ms_ssim

    _check_pair(x, x_hat)
    h, w = x.shape[-2:]
    if min(h, w) < MS_SSIM_MIN_SIDE:
        raise ValueError(f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE}×"
                         f"{MS_SSIM_MIN_SIDE} pixels (5 scales, 11-tap window); got {h}×{w}")
    a, b = _rounded(x).float(), _rounded(x_hat).float()
    return float(_ms_ssim(a, b, data_range=1.0, size_average=False).mean())


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on the decibel scale used in RD plots: ``−10·log10(1 − MS-SSIM)``.

    Defined in book section *Transform coding with learned priors → Evaluation* (point 2).
    """
    return math.inf if value >= 1 else -10.0 * math.log10(1.0 - value)


def bpp(num_bytes: int, height: int, width: int) -> float:
    """Bits per pixel of a bitstream of ``num_bytes`` bytes for a ``height``×``width`` image.

    ``8·num_bytes / (height·width)``: the real size of everything the decoder needs.
    Defined in book section *Transform coding with learned priors → Evaluation*.
    """
    for arg, v in (("num_bytes", num_bytes), ("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{arg} must be an integer, not {type(v).__name__}")
    if num_bytes < 0:
        raise ValueError(f"num_bytes must be >= 0, got {num_bytes}")
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height}×{width}")
    return 8.0 * num_bytes / (height * width)


def image_list(images) -> list[tuple[str, torch.Tensor]]:
    """``(name, (3, H, W) float image)`` pairs from an ImageSet, a sequence of tensors, or one
    ``(3, H, W)`` / ``(N, 3, H, W)`` tensor; what every evaluation iterates over. No page calls
    it (book section *Transform coding with learned priors → Evaluation*).
    """
    if isinstance(images, torch.Tensor):
        if images.dim() == 3:
            images = [images]
        elif images.dim() != 4:
            raise ValueError(f"images must be (3, H, W) or (N, 3, H, W), got {tuple(images.shape)}")
    names = getattr(images, "names", None)
    out = []
    for i in range(len(images)):
        x = images[i]
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[0] != 3:
            raise ValueError(f"image {i} must be a (3, H, W) tensor, got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        out.append((names[i] if names is not None else str(i), x))
    if not out:
        raise ValueError("no images to evaluate")
    return out


def record(name: str, x8: torch.Tensor, x_hat8: torch.Tensor, num_bytes: int,
           enc_s: float, dec_s: float, with_ms_ssim: bool = True, **extra) -> dict:
    """The per-image record of one coded image: bytes, bpp, PSNR, MS-SSIM (``nan`` under
    :data:`MS_SSIM_MIN_SIDE`), seconds, and ``extra`` (e.g. the quality). No page calls it
    (book section *Transform coding with learned priors → Evaluation*).
    """
    h, w = x8.shape[-2:]
    rec = {"image": name, **extra, "bytes": num_bytes, "bpp": bpp(num_bytes, h, w),
           "psnr": psnr(x8, x_hat8), "encoding_time": enc_s, "decoding_time": dec_s}
    if with_ms_ssim:
        rec["ms_ssim"] = ms_ssim(x8, x_hat8) if min(h, w) >= MS_SSIM_MIN_SIDE else math.nan
    return rec
