"""Exact per-symbol coding of integer latents with ``constriction``: the book's one coder of
quantized Gaussians (and Laplacians).

Defined in book section "Transform coding with learned priors → Exact Gaussian coding"; the
chapter *From rounding to bits* measures it through :func:`nctutor.entropy.constriction_bits`,
a thin wrapper.

CompressAI's :class:`~compressai.entropy_models.GaussianConditional` does not code ``y`` with
the Gaussian its hyperprior predicts: it rounds each ``sigma`` *up* to one of 64 log-spaced
table scales (:func:`nctutor.entropy.table_scale`) and uses precomputed 16-bit CDF tables, which
costs about 1-3 % over ``-sum log2 P`` on Kodak. Here every symbol is coded with its own
quantized density instead, the bin masses of Eq. (17) of the code-space predictor supplement
(``klopp2018``) for the model's exact ``sigma`` (or Laplace ``b``), quantized to 24-bit
probabilities by ``constriction.stream.model.QuantizedGaussian`` (``QuantizedLaplace``) and
coded with its ANS coder (``constriction.stream.stack.AnsCoder``).

* :func:`encode_gaussian` / :func:`decode_gaussian`: integer symbols ↔ bytes, given per-symbol
  means and scales (both sides must pass bit-identical arrays) and the ``density``;
* the codecs that use it are in :mod:`nctutor.codecs.exact`; the ``.nct`` files that carry its
  streams (``coder`` = exact) are described in :mod:`nctutor.container`.

Stream layout (one string: one image's ``y``)::

    varint   lo    smallest symbol (zigzag LEB128: 1 byte while |lo| < 64)
    varint   hi    largest symbol (at least lo + 1)
    4 bytes  CRC32 of the symbols (int32, little-endian)
    …        the ANS coder's 32-bit words, little-endian

*The alphabet rule.* The alphabet ``[lo, hi]`` is the range of the data, stored in the stream,
so every integer round-trips however unlikely (constriction's leaky quantizer gives each symbol
of the alphabet a nonzero probability and puts each density's tail mass beyond ``lo`` and ``hi``
onto those two end symbols: ``P(lo) = F(lo + 1/2)``, ``P(hi) = 1 - F(hi - 1/2)``). Because
``[lo, hi]`` is the range of the data, this two-part code can spend *less* than ``-sum log2 P``
under the untruncated model when the scales are too wide for the symbols that occur (a barely
trained model). Only spans ``hi - lo`` beyond :data:`MAX_SPAN` are refused. *Integrity.* ANS
decoding never fails by itself: a truncated or damaged stream, or a decoder whose scales differ
in one bit from the encoder's, silently decodes other symbols. The CRC turns all of these into a
:class:`~nctutor.errors.BitstreamError`.

*Determinism.* Encoder and decoder must pass bit-identical means and scales: in a codec the
decoder recomputes them with ``h_s`` from the decoded ``z`` (CompressAI only needs the same table
*index*, which tolerates small differences except at the table's boundaries). Float
convolutions differ in the last bits between thread counts and between machines, so the files of
format version 4 compute the scales with integer networks (:mod:`nctutor.entropy.integer`):
the same arrays everywhere. When they are not identical (a float path, a wrong model), the CRC
reports the mismatch instead of producing a wrong image.
"""

from __future__ import annotations

import zlib

import constriction
import numpy as np
import torch

from ..errors import BitstreamError
from .framing import get_varint, put_varint, read_ans

__all__ = ["MAX_SPAN", "encode_gaussian", "decode_gaussian"]

#: Largest alphabet span ``hi - lo``: constriction must give each of the ``hi - lo + 1`` symbols
#: at least one of its 2^24 probability units, and the leaked mass costs ``~span · 2^-24 / ln 2``
#: bits per symbol (2^20: about 0.09 bits; real latents span a few dozen).
MAX_SPAN = 1 << 20


# --------------------------------------------------------------------------- arguments


def _as_array(a, dtype) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(a, dtype=dtype)).ravel()


def _model_arrays(means, scales) -> tuple[np.ndarray, np.ndarray]:
    """Flat float64 ``means`` (``None``: zeros) and ``scales``, checked."""
    if not isinstance(scales, torch.Tensor | np.ndarray):
        raise TypeError(f"scales must be a tensor or an array, got {type(scales).__name__}")
    s = _as_array(scales, np.float64)
    if s.size == 0:
        raise ValueError("scales is empty: nothing to code")
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError("scales must be finite and > 0 (bound them below, e.g. with "
                         "GaussianConditional.lower_bound_scale)")
    if means is None:
        m = np.zeros_like(s)
    else:
        m = _as_array(means, np.float64)
        if m.size != s.size:
            raise ValueError(f"means has {m.size} entries, scales {s.size}")
        if not np.all(np.isfinite(m)):
            raise ValueError("means must be finite")
    return m, s


def _crc(symbols: np.ndarray) -> bytes:
    return zlib.crc32(symbols.astype("<i4").tobytes()).to_bytes(4, "little")


# --------------------------------------------------------------------------- coder

#: constriction's quantized model of each density (:data:`nctutor.symbolic.rounding.DENSITIES`).
_FAMILIES = {
    "gaussian": constriction.stream.model.QuantizedGaussian,
    "laplace": constriction.stream.model.QuantizedLaplace,
}


def _family(density: str):
    key = density.strip().lower() if isinstance(density, str) else density
    if key not in _FAMILIES:
        raise ValueError(f"unknown density {density!r}: expected one of {', '.join(_FAMILIES)}")
    return _FAMILIES[key]


def encode_gaussian(symbols, means, scales, density: str = "gaussian") -> bytes:
    """Code the integers ``symbols`` with per-symbol quantized densities of ``means``, ``scales``.

    ``P(k) = F(k + 1/2) - F(k - 1/2)``, Eq. (17) of ``klopp2018``, with ``F`` the CDF of
    ``N(μ, σ²)`` (``density="gaussian"``) or ``Laplace(μ, b)`` (``"laplace"``), on the alphabet
    ``[lo, hi] = [min(symbols), max(symbols)]``, which is stored in the stream; the tail mass
    below ``lo`` and above ``hi`` is added to ``P(lo)`` and ``P(hi)`` (see the module docstring
    for the tails and the layout). ``means`` (``None``: 0) and ``scales`` hold one entry per
    symbol, in any shape with the same number of entries; the decoder must pass identical ones
    and the same ``density``.
    Defined in book section "Transform coding with learned priors → Exact Gaussian coding".
    """
    family = _family(density)
    if isinstance(symbols, torch.Tensor):
        symbols = symbols.detach().cpu().numpy()
    symbols = np.asarray(symbols)
    if symbols.dtype.kind not in "iuf":
        raise TypeError(f"symbols must be integers, got dtype {symbols.dtype}")
    if symbols.dtype.kind == "f":
        if not (np.all(np.isfinite(symbols)) and np.array_equal(symbols, np.rint(symbols))):
            raise ValueError("symbols must hold integer values")
    means, scales = _model_arrays(means, scales)
    q = symbols.ravel()
    if q.size != scales.size:
        raise ValueError(f"symbols has {q.size} entries, scales {scales.size}")
    lo, hi = int(q.min()), max(int(q.max()), int(q.min()) + 1)  # constriction wants 2 symbols
    if hi - lo > MAX_SPAN or lo < -(1 << 30) or hi >= 1 << 30:
        raise ValueError(f"symbols span [{lo}, {hi}]: more than MAX_SPAN={MAX_SPAN} values")
    q = q.astype(np.int32)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(q, family(lo, hi), means, scales)  # a stack: push in reverse, pop in order
    words = coder.get_compressed().astype("<u4")
    return put_varint(lo) + put_varint(hi) + _crc(q) + words.tobytes()


def decode_gaussian(blob: bytes, means, scales, density: str = "gaussian") -> torch.Tensor:
    """Decode a stream of :func:`encode_gaussian`: an ``int32`` tensor shaped like ``scales``.

    Raises :class:`~nctutor.errors.BitstreamError` when the stream is truncated or damaged,
    or was coded with other means, scales or density (the CRC of the symbols does not match).
    Defined in book section "Transform coding with learned priors → Exact Gaussian coding".
    """
    family = _family(density)
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise TypeError(f"blob must be bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    shape = tuple(scales.shape)
    means, scales = _model_arrays(means, scales)
    lo, pos = get_varint(blob, 0, 6, "bad alphabet header")
    hi, pos = get_varint(blob, pos, 6, "bad alphabet header")
    if not 1 <= hi - lo <= MAX_SPAN:
        raise BitstreamError(f"corrupted y stream: alphabet [{lo}, {hi}]")
    crc, coder = read_ans(blob, pos)
    q = coder.decode(family(lo, hi), means, scales)
    if _crc(q) != crc or not coder.is_empty():
        raise BitstreamError("truncated or corrupted y stream, or decoded with other means, "
                             "scales or density than it was coded with (CRC mismatch)")
    return torch.from_numpy(q.astype(np.int32)).reshape(shape)
