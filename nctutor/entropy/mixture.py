"""Coding integers with a Gaussian mixture per symbol: the code-space predictor's entropy coder.

Defined in book section *Predicting codes from their neighbours → Coding with a mixture*.

The spatial predictor (:mod:`nctutor.codecs.predictor`) gives every code symbol ``v`` its own
mixture of ``K`` Gaussians (weights ``w_k``, means ``μ_k``, scales ``σ_k``); the probability of
the integer ``v`` is the mixture's mass on its bin (Eq. 17 of the paper's supplement):

    P(v) = Σ_k w_k [Φ((v + ½ − μ_k)/σ_k) − Φ((v − ½ − μ_k)/σ_k)].

Two functions compute it: :func:`bin_likelihood` in torch for training (differentiable, the
rate term of the loss, with CompressAI's tail-accurate form and its 1e-9 floor), and
:func:`tables` in float64 numpy for coding, where encoder and decoder must compute *identical*
numbers (elementwise ``scipy.special.ndtr``, no threads, no reductions that depend on a
thread count).

A table covers ``2R + 1`` integers around the rounded mixture mean, ``R`` the power of two that
reaches ``TAIL`` scales beyond every component (at most :data:`R_MAX`); one more entry, the
*escape*, takes the rest of the mass: a symbol outside the table is coded as the escape and its
value follows in the stream's head as a zigzag varint. Symbols are coded with ``constriction``'s
ANS coder and a categorical model per symbol (24-bit fixed point, every entry at least one unit),
grouped by ``R`` so that each call codes one rectangular table.

Stream layout (one image's ``y``)::

    varint   number of escaped values E
    E varints  the escaped values (zigzag LEB128), in coding order
    4 bytes  CRC32 of every symbol (int64, little-endian) in coding order
    …        the ANS coder's 32-bit words, little-endian

Coding is *sequential*: the decoder learns the parameters of a group only after decoding the
groups before it. :class:`MixtureEncoder` collects the groups and codes them at the end (ANS is
a stack: it codes in reverse); :class:`MixtureDecoder` decodes them in order, and
:meth:`MixtureDecoder.finish` checks the CRC (a damaged stream or a decoder with another
predictor is a :class:`~nctutor.errors.BitstreamError`, never a wrong image).
"""

from __future__ import annotations

import zlib

import constriction
import numpy as np
import torch
from scipy.special import expm1, ndtr

from ..errors import BitstreamError
from .framing import get_uvarint, get_varint, put_uvarint, put_varint, read_ans

__all__ = ["SCALE_BOUND", "TAIL", "R_MAX", "V_MAX", "bin_likelihood", "mixture_parameters",
           "tables", "MixtureEncoder", "MixtureDecoder"]

#: Smallest scale of a component (CompressAI's ``GaussianConditional`` bound).
SCALE_BOUND = 0.11
#: A table reaches this many scales beyond the farthest component.
TAIL = 8.0
#: Largest table half-width; rarer values are escaped.
R_MAX = 256
#: Largest magnitude of a symbol (a latent of a sane codec stays far below it).
V_MAX = 2 ** 24
_FAMILY = constriction.stream.model.Categorical(perfect=False)


def _lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    from compressai.ops.bound_ops import LowerBoundFunction  # CompressAI's: gradient kept

    return LowerBoundFunction.apply(x, torch.tensor(bound, dtype=x.dtype, device=x.device))


def bin_likelihood(v: torch.Tensor, logits: torch.Tensor, means: torch.Tensor,
                   scales: torch.Tensor) -> torch.Tensor:
    """P(v) of the module docstring, differentiably: ``v`` of shape ``(B, C, H, W)``, the
    mixture parameters ``(B, K, C, H, W)`` (weights as logits, softmax over ``K``; scales raw,
    bounded below by :data:`SCALE_BOUND`). ``v`` may be noisy (training, Eq. 18) or integer
    (evaluation, Eq. 17). Returns ``(B, C, H, W)`` probabilities floored at 1e-9.

    Defined in book section *Predicting codes from their neighbours → The probability of a bin*.
    """
    if logits.dim() != 5 or logits.shape != means.shape or means.shape != scales.shape:
        raise ValueError(f"mixture parameters must be (B, K, C, H, W) alike, got "
                         f"{tuple(logits.shape)}, {tuple(means.shape)}, {tuple(scales.shape)}")
    w = torch.softmax(logits, dim=1)
    s = _lower_bound(scales, SCALE_BOUND)
    d = (v.unsqueeze(1) - means).abs()  # symmetric: the upper tail is computed as a lower one
    mass = ndtr_torch((0.5 - d) / s) - ndtr_torch((-0.5 - d) / s)
    return _lower_bound((w * mass).sum(1), 1e-9)


def ndtr_torch(x: torch.Tensor) -> torch.Tensor:
    """The standard normal CDF, ``½ erfc(−x/√2)`` (accurate in the lower tail, as CompressAI's
    ``_standardized_cumulative``). A helper of :func:`bin_likelihood`; no page calls it."""
    return 0.5 * torch.erfc(-x * (2 ** -0.5))


def mixture_parameters(logits: np.ndarray, means: np.ndarray,
                       scales: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The coder's view of raw predictor outputs ``(n, K)`` each: float64 weights (softmax),
    means, and scales bounded below by :data:`SCALE_BOUND`, computed elementwise in numpy so
    that both ends get the same numbers. Defined in book section *Predicting codes from their
    neighbours → Coding with a mixture*.

    The exponential is SciPy's scalar ``expm1`` plus one, not ``numpy.exp``, whose SIMD
    versions give other last bits with and without AVX-512 (book section *Transform coding with
    learned priors → Decoding on another machine*)."""
    logits = np.asarray(logits, np.float64)
    e = expm1(logits - logits.max(axis=1, keepdims=True)) + 1.0
    w = e / e.sum(axis=1, keepdims=True)
    return w, np.asarray(means, np.float64), np.maximum(np.asarray(scales, np.float64),
                                                        SCALE_BOUND)


def tables(w: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``c`` (int64) and half-widths ``R`` (powers of two, at most :data:`R_MAX`) of the
    tables of ``n`` symbols with mixture parameters ``(n, K)`` (see :func:`mixture_parameters`).

    Defined in book section *Predicting codes from their neighbours → Coding with a mixture*.
    """
    c = np.round((w * mu).sum(axis=1))
    reach = np.max(np.abs(mu - c[:, None]) + TAIL * sigma, axis=1)
    need = np.clip(np.ceil(reach), 1, R_MAX)
    r = 2 ** np.frexp(need - 1)[1].astype(np.int64)  # the next power of two, in exact arithmetic
    return c.astype(np.int64), r


def _probabilities(w, mu, sigma, c, r: int) -> np.ndarray:
    """``(n, 2r + 2)`` table rows: the bins ``c − r … c + r``, then the escape."""
    v = c[:, None] + np.arange(-r, r + 1)[None, :]  # (n, 2r+1)
    p = np.zeros(v.shape, np.float64)
    for k in range(w.shape[1]):  # one component at a time: a fixed order of additions
        hi = ndtr((v + 0.5 - mu[:, k:k + 1]) / sigma[:, k:k + 1])
        lo = ndtr((v - 0.5 - mu[:, k:k + 1]) / sigma[:, k:k + 1])
        p += w[:, k:k + 1] * (hi - lo)
    escape = np.maximum(1.0 - p.sum(axis=1, keepdims=True), 1e-9)
    return np.concatenate([p, escape], axis=1)


def _groups(w, mu, sigma):
    """Per half-width: (positions, table rows, centres, r), in increasing ``r``."""
    c, r = tables(w, mu, sigma)
    for rv in np.unique(r):
        at = np.flatnonzero(r == rv)
        yield at, _probabilities(w[at], mu[at], sigma[at], c[at], int(rv)), c[at], int(rv)


def _crc(symbols: list[np.ndarray]) -> bytes:
    crc = 0
    for s in symbols:
        crc = zlib.crc32(np.ascontiguousarray(s, dtype="<i8").tobytes(), crc)
    return crc.to_bytes(4, "little")


class MixtureEncoder:
    """Collects groups of symbols with their mixtures, codes them all in :meth:`finish`.

    Defined in book section *Predicting codes from their neighbours → Coding with a mixture*.
    """

    def __init__(self) -> None:
        self._indices: list[tuple[np.ndarray, np.ndarray]] = []  # (indices, table rows)
        self._escapes: list[int] = []
        self._symbols: list[np.ndarray] = []

    def add(self, symbols: np.ndarray, logits: np.ndarray, means: np.ndarray,
            scales: np.ndarray) -> None:
        """Queue ``n`` integer symbols with their raw mixture parameters ``(n, K)`` each."""
        symbols = np.asarray(symbols).ravel()
        if not np.all(np.isfinite(symbols)) or np.any(symbols != np.round(symbols)):
            raise ValueError("symbols must be finite integers")
        if symbols.size and np.abs(symbols).max() > V_MAX:
            raise ValueError(f"a symbol exceeds ±{V_MAX}: not the latent of a trained codec")
        symbols = symbols.astype(np.int64)
        w, mu, sigma = mixture_parameters(logits, means, scales)
        if len(symbols) != len(w):
            raise ValueError(f"{len(symbols)} symbols but {len(w)} mixtures")
        for at, probs, c, r in _groups(w, mu, sigma):
            idx = symbols[at] - c + r
            out = (idx < 0) | (idx > 2 * r)
            self._escapes.extend(int(v) for v in symbols[at][out])
            idx[out] = 2 * r + 1
            self._indices.append((idx.astype(np.int32), probs))
        self._symbols.append(symbols)

    def finish(self) -> bytes:
        """The stream of the module docstring."""
        coder = constriction.stream.stack.AnsCoder()
        for idx, probs in reversed(self._indices):  # a stack: push in reverse, pop in order
            coder.encode_reverse(idx, _FAMILY, probs)
        head = put_uvarint(len(self._escapes)) + b"".join(put_varint(e) for e in self._escapes)
        words = coder.get_compressed().astype("<u4")
        return head + _crc(self._symbols) + words.tobytes()


class MixtureDecoder:
    """Decodes the groups of a :class:`MixtureEncoder` stream in order.

    Defined in book section *Predicting codes from their neighbours → Coding with a mixture*.
    """

    def __init__(self, blob: bytes) -> None:
        blob = bytes(blob)
        runs_past = "a varint runs past its end"
        n_esc, pos = get_uvarint(blob, 0, 9, runs_past)
        if n_esc > len(blob):
            raise BitstreamError("corrupted y stream: more escaped values than bytes")
        esc = []
        for _ in range(n_esc):
            value, pos = get_varint(blob, pos, 9, runs_past)
            if abs(value) > V_MAX:
                raise BitstreamError(f"corrupted y stream: escaped value beyond ±{V_MAX}")
            esc.append(value)
        self._escapes = esc
        self._next_escape = 0
        self._crc, self._coder = read_ans(blob, pos)
        self._symbols: list[np.ndarray] = []

    def decode(self, logits: np.ndarray, means: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """The next ``n`` symbols (int64), given their raw mixture parameters ``(n, K)``."""
        w, mu, sigma = mixture_parameters(logits, means, scales)
        out = np.zeros(len(w), np.int64)
        for at, probs, c, r in _groups(w, mu, sigma):
            idx = self._coder.decode(_FAMILY, probs).astype(np.int64)
            values = idx + c - r
            for i in np.flatnonzero(idx == 2 * r + 1):  # escapes, in coding order
                if self._next_escape >= len(self._escapes):
                    raise BitstreamError("corrupted y stream: more escapes than escaped values")
                values[i] = self._escapes[self._next_escape]
                self._next_escape += 1
            out[at] = values
        self._symbols.append(out)
        return out

    def finish(self) -> None:
        """Check that the whole stream was used and its CRC matches; raise
        :class:`~nctutor.errors.BitstreamError` otherwise."""
        if (_crc(self._symbols) != self._crc or not self._coder.is_empty()
                or self._next_escape != len(self._escapes)):
            raise BitstreamError("truncated or corrupted y stream, or decoded with another "
                                 "predictor than it was coded with (CRC mismatch)")
