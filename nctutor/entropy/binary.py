"""An adaptive binary arithmetic coder for the bits of a binary video codec.

The binary video codec (:mod:`nctutor.codecs.video`) turns a group of frames into bits
``b[t, c, i, j]`` of shape ``(T, C, h, w)``: frame, channel, latent row, latent column, the
codes ``b_t[i]`` of Eq. (A.1)-(A.2) of the supplement of Sun et al. (``sun_deltasigma``), which
the book derives in chapter *Delta-sigma modulation of binary latents: gradients and noise
shaping*. Here ``0`` stands for the code ``-1`` and ``1`` for ``+1``. The supplement does not say
how the bits are entropy coded; this module codes them losslessly. It is written for the book's
chapter *A binary video codec with delta-sigma modulation* (its section *Coding the bits*).

Written by hand, because the context modelling *is* the lesson (only the arithmetic coding is
``constriction``'s range coder):

- context: the same channel's bit in the previous frame (delta-sigma modulation makes it
  anti-correlated for small codes), the left and the upper neighbour in the same frame; each is
  0, 1 or 2 (not available: first frame, grid border), so 27 contexts, with one adaptive model
  per (channel, context);
- model: the Krichevsky-Trofimov estimate ``p1 = (n1 + 1/2) / (n0 + n1 + 1)`` from integer
  counts, computed in float64 from integers so that encoder and decoder agree bit for bit; both
  counts of a context are halved (rounding up) when their sum passes :data:`COUNT_LIMIT`, so the
  model follows a changing source. Counts start at zero in every call: each group of frames is
  decodable alone;
- order (a wavefront): frames in order, and in a frame the anti-diagonals ``d = i + j`` in
  order; the contexts of a diagonal depend only on earlier diagonals and frames, so all channels
  and positions of one diagonal are modelled at once with numpy. Encoder, decoder and
  :func:`code_length` share one generator (``_probabilities``): one copy of the model.

Stream layout::

    4 bytes  CRC32 (zlib, little-endian) of the shape (4 x uint64 little-endian), then of
             np.packbits of the bits in C order
    ...      the range coder's 32-bit words, little-endian

The decoder checks the CRC, so that a damaged stream is a :class:`~nctutor.errors.BitstreamError`
instead of wrong bits (range decoding itself rarely fails).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import constriction
import numpy as np

from ..errors import BitstreamError

__all__ = ["COUNT_LIMIT", "P_MIN", "code_length", "decode_bits", "encode_bits"]

#: When ``n0 + n1`` of a context passes this, both counts are halved (rounding up).
COUNT_LIMIT = 255
#: Every probability is clamped into ``[P_MIN, 1 - P_MIN]``.
P_MIN = 2.0**-12
CONTEXTS = 27  # 3 (previous frame) x 3 (left) x 3 (up)
_BERNOULLI = constriction.stream.model.Bernoulli(perfect=False)
_DAMAGED = "corrupted binary stream (or decoded with another shape than the encoder's)"


def _check_bits(bits: np.ndarray) -> np.ndarray:
    array = np.asarray(bits)
    if array.ndim != 4:
        raise ValueError(f"bits must have shape (T, C, h, w), got {array.ndim} dimensions "
                         f"{array.shape}")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"bits must be a boolean or numeric array, got dtype {array.dtype}")
    if not ((array == 0) | (array == 1)).all():
        raise ValueError("bits must be 0 or 1 only (0 stands for the code -1, 1 for +1)")
    return array.astype(np.uint8)


def _check_shape(shape: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    dims = tuple(shape)
    if len(dims) != 4 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                 and n >= 0 for n in dims):
        raise ValueError(f"shape must be four integers (T, C, h, w) >= 0, got {shape!r}")
    steps, channels, height, width = (int(n) for n in dims)
    return steps, channels, height, width


def _probabilities(bits: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(t, i, j, p1)`` for every anti-diagonal of every frame, in coding order.

    ``bits[t][:, i, j]`` (shape ``(C, n)``) are the bits of the diagonal and ``p1`` (float64,
    ``C * n`` values in that array's C order) their probabilities of being 1. The generator reads
    only earlier bits, and reads the diagonal's own bits when it is resumed, to update the
    counts: a decoder must have written them by then.
    """
    steps, channels, height, width = bits.shape
    if bits.size == 0:
        return
    counts = np.zeros((2, channels * CONTEXTS), dtype=np.int64)  # n0, n1 per (channel, context)
    base = (np.arange(channels) * CONTEXTS)[:, None]
    for t in range(steps):
        for d in range(height + width - 1):
            i = np.arange(max(0, d - width + 1), min(d, height - 1) + 1)
            j = d - i
            frame = bits[t]
            previous = bits[t - 1][:, i, j] if t > 0 else np.full((channels, len(i)), 2)
            left = np.where(j > 0, frame[:, i, np.maximum(j - 1, 0)], 2)
            up = np.where(i > 0, frame[:, np.maximum(i - 1, 0), j], 2)
            slot = (base + 9 * previous + 3 * left + up).ravel()
            n0, n1 = counts[0, slot], counts[1, slot]
            p1 = (2 * n1 + 1) / (2 * (n0 + n1) + 2)  # KT: (n1 + 1/2) / (n0 + n1 + 1)
            yield t, i, j, np.clip(p1, P_MIN, 1.0 - P_MIN)
            seen = frame[:, i, j].ravel()
            counts += np.stack([np.bincount(slot[seen == b], minlength=counts.shape[1])
                                for b in (0, 1)])
            full = counts.sum(axis=0) > COUNT_LIMIT
            counts[:, full] = (counts[:, full] + 1) // 2


def _crc(bits: np.ndarray) -> bytes:
    crc = zlib.crc32(np.asarray(bits.shape, dtype="<u8").tobytes())
    crc = zlib.crc32(np.packbits(bits, axis=None).tobytes(), crc)
    return crc.to_bytes(4, "little")


def encode_bits(bits: np.ndarray) -> bytes:
    """Code ``bits`` (shape ``(T, C, h, w)``, values 0/1 only; any dimension may be 0) into the
    stream of the module docstring; :func:`decode_bits` with the same shape gets them back.
    Raises :class:`ValueError` for another shape or other values.

    Defined in book section *A binary video codec with delta-sigma modulation → Coding the bits*.
    """
    bits = _check_bits(bits)
    symbols, probs = [], []
    for t, i, j, p1 in _probabilities(bits):
        symbols.append(bits[t][:, i, j].ravel())
        probs.append(p1)
    encoder = constriction.stream.queue.RangeEncoder()
    if symbols:
        encoder.encode(np.concatenate(symbols).astype(np.int32), _BERNOULLI,
                       np.concatenate(probs))
    return _crc(bits) + encoder.get_compressed().astype("<u4").tobytes()


def decode_bits(blob: bytes, shape: tuple[int, int, int, int]) -> np.ndarray:
    """The bits (uint8, of the given ``shape``) that :func:`encode_bits` coded into ``blob``.

    A truncated or damaged ``blob`` (or one coded with another shape) raises
    :class:`~nctutor.errors.BitstreamError`; nothing is allocated beyond ``shape``.

    Defined in book section *A binary video codec with delta-sigma modulation → Coding the bits*.
    """
    shape = _check_shape(shape)
    blob = bytes(blob)
    if len(blob) < 4 or len(blob) % 4:
        raise BitstreamError(f"truncated binary stream: {len(blob)} bytes is not a 4-byte CRC "
                             "and whole 32-bit words")
    bits = np.zeros(shape, dtype=np.uint8)
    try:
        decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(blob, "<u4", offset=4)
                                                         .astype(np.uint32))
        for t, i, j, p1 in _probabilities(bits):
            bits[t][:, i, j] = decoder.decode(_BERNOULLI, p1).reshape(len(bits[t]), len(i))
        exhausted = decoder.maybe_exhausted()
    except (AssertionError, RuntimeError, ValueError) as e:  # constriction: invalid data
        raise BitstreamError(f"{_DAMAGED}: {e}") from None
    if not exhausted:
        raise BitstreamError(f"{_DAMAGED}: data left after the last bit")
    if _crc(bits) != blob[:4]:
        raise BitstreamError(f"{_DAMAGED}: CRC mismatch")
    return bits


def code_length(bits: np.ndarray) -> float:
    """The ideal code length in bits of ``bits`` under the adaptive model of :func:`encode_bits`,
    ``sum -log2 p(bit)``, without coding (a cheap rate monitor; the stream is about this plus
    the 4-byte CRC and up to two 32-bit words).

    Used by the binary video codec (:mod:`nctutor.codecs.video`); no page calls it.
    """
    bits = _check_bits(bits)
    total = 0.0
    for t, i, j, p1 in _probabilities(bits):
        seen = bits[t][:, i, j].ravel()
        total -= float(np.log2(np.where(seen == 1, p1, 1.0 - p1)).sum())
    return total
