"""The framing the book's two ANS streams share: LEB128 varints and the CRC + 32-bit words tail.

:mod:`nctutor.entropy.gaussian` (the exact coder) and :mod:`nctutor.entropy.cells` (the lattice
coder) both write a small preamble of varints, then a CRC32 of what they coded, then
``constriction``'s ANS words; the pieces that read and write that framing live here, once.
Helpers of book sections *Transform coding with learned priors → Exact Gaussian coding* and
*Lattices and the latent shift on a trained codec → Coding lattice points*; no page calls them.
"""

from __future__ import annotations

import constriction
import numpy as np

from ..errors import BitstreamError

__all__ = ["get_uvarint", "get_varint", "put_uvarint", "put_varint", "read_ans"]


def put_uvarint(u: int) -> bytes:
    """LEB128 of ``u >= 0``: 7 bits a byte, high bit = more. A helper of the two coders; no
    page calls it."""
    out = bytearray()
    while True:
        out.append((u & 0x7F) | (0x80 if u > 0x7F else 0))
        u >>= 7
        if not u:
            return bytes(out)


def get_uvarint(blob: bytes, pos: int, max_bytes: int, what: str) -> tuple[int, int]:
    """Read one :func:`put_uvarint` of at most ``max_bytes`` bytes at ``pos``; return ``(value,
    next position)``. A varint that runs past the blob or past ``max_bytes`` raises
    :class:`BitstreamError` naming ``what``. A helper of the two coders; no page calls it."""
    u = shift = 0
    while True:
        if pos >= len(blob) or shift >= 7 * max_bytes:
            raise BitstreamError(f"truncated or corrupted y stream ({what})")
        byte = blob[pos]
        u |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return u, pos


def put_varint(v: int) -> bytes:
    """Zigzag (0, -1, 1, -2, … → 0, 1, 2, 3, …) then :func:`put_uvarint`. A helper of the two
    coders; no page calls it."""
    return put_uvarint(2 * v if v >= 0 else -2 * v - 1)


def get_varint(blob: bytes, pos: int, max_bytes: int, what: str) -> tuple[int, int]:
    """Read one :func:`put_varint` (see :func:`get_uvarint`). A helper of the two coders; no
    page calls it."""
    u, pos = get_uvarint(blob, pos, max_bytes, what)
    return (u >> 1) if not u & 1 else -((u + 1) >> 1), pos


def read_ans(blob: bytes, pos: int) -> tuple[bytes, constriction.stream.stack.AnsCoder]:
    """The stored 4-byte CRC at ``pos`` and an ANS decoder of the 32-bit little-endian words after
    it; a tail that is not whole words, or that constriction refuses, raises
    :class:`BitstreamError`. A helper of the two coders; no page calls it."""
    crc, pos = blob[pos : pos + 4], pos + 4
    if len(crc) < 4 or (len(blob) - pos) % 4:
        raise BitstreamError("truncated y stream: not a whole number of 32-bit words")
    words = np.frombuffer(blob, dtype="<u4", offset=pos).astype(np.uint32)
    try:
        return crc, constriction.stream.stack.AnsCoder(words)
    except ValueError as e:  # e.g. "ANS compressed data never ends in a zero word"
        raise BitstreamError(f"corrupted y stream: {e}") from None
