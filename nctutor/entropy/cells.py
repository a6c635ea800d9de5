"""Coding the cells of lattice-quantized latents: one categorical table per group, an escape.

Defined in book section *Lattices and the latent shift on a trained codec → Coding lattice
points*. The codec (:mod:`nctutor.codecs.latent`) sorts its latent groups into *tables* (one
alphabet of likely cells each, :class:`nctutor.quant.cells.CellTable`); here each table's symbol
indices are coded with ``constriction``'s ANS coder and a categorical model of the table's
probabilities (24-bit fixed point, every symbol at least one unit), tables one after another.
An index equal to the table's size is an *escape*: the cell is not in the alphabet, and its
integer key follows in the stream's escape section (zigzag LEB128 varints), so that every
latent, however unlikely, is coded (Appendix D.3 of the paper drops such cells instead).

Stream layout (one image's ``y``)::

    varint   number of escaped key entries E
    E varints  the escaped keys, zigzag LEB128, in coding order
    4 bytes  CRC32 of the context (see encode_cells), every index (int64, little-endian) and
             then every escaped key
    …        the ANS coder's 32-bit words, little-endian

The CRC makes a damaged stream, or a decoder with other tables, a
:class:`~nctutor.errors.BitstreamError` instead of a wrong image (ANS decoding never fails by
itself). Encoder and decoder must build bit-identical tables (the codec computes them in float64
numpy from the model's entropy parameters).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import constriction
import numpy as np

from ..errors import BitstreamError
from .framing import get_uvarint, get_varint, put_uvarint, put_varint, read_ans

__all__ = ["encode_cells", "decode_cells"]


def _crc(indices: Sequence[np.ndarray], escapes: np.ndarray, context: bytes) -> bytes:
    crc = zlib.crc32(context)
    for ix in indices:
        crc = zlib.crc32(np.ascontiguousarray(ix, dtype="<i8").tobytes(), crc)
    crc = zlib.crc32(np.ascontiguousarray(escapes, dtype="<i8").tobytes(), crc)
    return crc.to_bytes(4, "little")


def _model(probs: np.ndarray):
    return constriction.stream.model.Categorical(np.asarray(probs, np.float64), perfect=False)


def encode_cells(tables: Sequence[np.ndarray], indices: Sequence[np.ndarray],
                 escapes: np.ndarray, context: bytes = b"") -> bytes:
    """Code ``indices[t]`` (alphabet indices) with the categorical ``tables[t]`` (probabilities,
    the last one the escape), for every table ``t`` in order, and the escaped keys ``escapes``
    (integers, any order the decoder expects). ``context`` (bytes the decoder knows from
    elsewhere, e.g. the file's shift steps) enters the CRC, so that a decoder with another
    context refuses the stream. Returns the stream of the module docstring.

    Defined in book section *Lattices and the latent shift on a trained codec → Coding lattice
    points*.
    """
    if len(tables) != len(indices):
        raise ValueError(f"{len(tables)} tables but {len(indices)} index arrays")
    escapes = np.asarray(escapes, dtype=np.int64).ravel()
    coder = constriction.stream.stack.AnsCoder()
    # a stack: push in reverse, pop in order
    for probs, ix in zip(reversed(tables), reversed(indices), strict=True):
        ix = np.asarray(ix, dtype=np.int64)
        if ix.size == 0:
            continue
        if ix.min() < 0 or ix.max() >= len(probs):
            raise ValueError(f"index out of range 0..{len(probs) - 1}")
        coder.encode_reverse(ix.astype(np.int32), _model(probs))
    head = put_uvarint(len(escapes)) + b"".join(put_varint(int(e)) for e in escapes)
    words = coder.get_compressed().astype("<u4")
    return head + _crc(indices, escapes, context) + words.tobytes()


def decode_cells(blob: bytes, tables: Sequence[np.ndarray], counts: Sequence[int],
                 context: bytes = b"") -> tuple[list[np.ndarray], np.ndarray]:
    """Decode a stream of :func:`encode_cells`: the index arrays (``counts[t]`` entries of
    table ``t``) and the escaped keys. The caller checks that the number of escaped keys fits the
    escapes decoded. Raises :class:`~nctutor.errors.BitstreamError` for a damaged stream or other
    tables (CRC mismatch). Defined in book section *Lattices and the latent shift on a trained
    codec → Coding lattice points*.
    """
    blob = bytes(blob)
    runs_past = "a varint runs past its end"
    n_esc, pos = get_uvarint(blob, 0, 9, runs_past)  # 9 bytes: 63 bits, an int64 key
    if n_esc > len(blob):
        raise BitstreamError("corrupted y stream: more escaped keys than bytes")
    esc = []
    for _ in range(n_esc):
        key, pos = get_varint(blob, pos, 9, runs_past)
        esc.append(key)
    escapes = np.array(esc, dtype=np.int64)
    crc, coder = read_ans(blob, pos)
    out = []
    for probs, n in zip(tables, counts, strict=True):
        out.append(coder.decode(_model(probs), int(n)).astype(np.int64) if n else
                   np.zeros(0, np.int64))
    if _crc(out, escapes, context) != crc or not coder.is_empty():
        raise BitstreamError("truncated or corrupted y stream, or decoded with other cell "
                             "tables than it was coded with (CRC mismatch)")
    return out, escapes
