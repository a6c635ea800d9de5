"""From rounding to bits, numerically: rounded densities, their entropy, and real coders.

Chapter *From rounding to bits* (``book/foundations/rounding.md``), sections *Entropy of a
rounded Gaussian* and *Real entropy coders*; the closed forms come from
:mod:`nctutor.symbolic.rounding`.

* :func:`rounded_pmf` -- ``P(k)``, the mass of ``N(mu, sigma^2)`` or ``Laplace(mu, b)`` in
  the bin of ``round(y / step) = k`` (Eq. 17 of the code-space predictor supplement,
  ``klopp2018``, with a quantizer step ``step``);
* :func:`rounded_entropy` and :func:`high_resolution_entropy` -- ``H(Q)`` summed over the
  bins, against ``h(Y) - log2(step)``;
* :func:`ideal_bits` -- ``-sum log2 P(q)``, the length an ideal entropy coder reaches;
* :func:`compressai_gaussian_bits`, :func:`compressai_laplace_bits`,
  :func:`constriction_bits` -- what CompressAI's rANS (``begaint2020compressai``) and
  ``constriction``'s ANS coder really spend, each with an exact round-trip check (the latter
  through :mod:`nctutor.entropy.gaussian`, the coder of the exact codecs).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from functools import cache, lru_cache

import numpy as np
import scipy.stats
import sympy as sp
import torch

warnings.filterwarnings(
    "ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning
)

from compressai.entropy_models import GaussianConditional  # noqa: E402
from compressai.models.google import get_scale_table  # noqa: E402

from ..symbolic import rounding as sym  # noqa: E402
from .gaussian import decode_gaussian, encode_gaussian  # noqa: E402

__all__ = [
    "DENSITIES",
    "rounded_pmf",
    "rounded_entropy",
    "high_resolution_entropy",
    "ideal_bits",
    "sample_rounded",
    "default_scale_table",
    "LaplaceConditional",
    "compressai_gaussian_bits",
    "compressai_laplace_bits",
    "constriction_bits",
    "table_scale",
]

DENSITIES = sym.DENSITIES

# How far out (in units of sigma or b) the bins are summed: the neglected tail mass is
# below 1e-22 (Gaussian, 10 sigma) and 1e-17 (Laplacian, 40 b), far below float precision.
_TAIL_WIDTH = {"gaussian": 10.0, "laplace": 40.0}


_check_density = sym._check_density


def _check_positive(name: str, value) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return arr


def _dist(density: str, mu, scale):
    key = _check_density(density)
    scale = _check_positive("sigma" if key == "gaussian" else "b", scale)
    if key == "gaussian":
        return scipy.stats.norm(loc=mu, scale=scale)
    return scipy.stats.laplace(loc=mu, scale=scale)


def rounded_pmf(
    k, scale, mu=0.0, step: float = 1.0, density: str = "gaussian"
) -> np.ndarray:
    """``P(round(y / step) = k) = F((k + 1/2) step) - F((k - 1/2) step)``, Eq. (17).

    ``scale`` is ``sigma`` (Gaussian) or ``b`` (Laplacian); arguments broadcast.  Bins above
    the mean use the survival function, so that far tails keep their relative precision.
    Eq. (17) of the code-space predictor supplement (Sec. 8.1), evaluated numerically. Defined in
    book section *From rounding to bits → The probability of a rounded value*; used in its
    section *Real entropy coders*.
    """
    step = float(_check_positive("step", step))
    dist = _dist(density, mu, scale)
    k = np.asarray(k, dtype=np.float64)
    lo, hi = (k - 0.5) * step, (k + 0.5) * step
    below = dist.cdf(hi) - dist.cdf(lo)
    above = dist.sf(lo) - dist.sf(hi)
    return np.where(lo >= np.asarray(mu), above, below)


def rounded_entropy(
    scale: float, step: float = 1.0, mu: float = 0.0, density: str = "gaussian"
) -> float:
    """``H(Q) = -sum_k P(k) log2 P(k)`` of ``Q = round(Y / step)``, summed numerically.

    All bins within ``10 sigma`` (Gaussian) or ``40 b`` (Laplacian) of ``mu`` are summed;
    the rest carries less than ``1e-17`` of the mass.
    Defined in book section *From rounding to bits → Entropy of a rounded Gaussian*.
    """
    key = _check_density(density)
    scale = float(_check_positive("scale", scale))
    step = float(_check_positive("step", step))
    reach = _TAIL_WIDTH[key] * scale + step
    k = np.arange(np.floor((mu - reach) / step), np.ceil((mu + reach) / step) + 1)
    p = rounded_pmf(k, scale, mu, step, key)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


@cache
def _h_function(key: str) -> Callable:
    scale = sym.SIGMA if key == "gaussian" else sym.B
    return sp.lambdify(scale, sym.differential_entropy(key), "numpy")


def high_resolution_entropy(scale, step: float = 1.0, density: str = "gaussian"):
    """The high-resolution approximation ``H(Q) ~ h(Y) - log2(step)`` in bits.

    ``h(Y)`` is :func:`nctutor.symbolic.rounding.differential_entropy`, i.e.
    ``log2(2 pi e sigma^2)/2`` or ``log2(2 e b)``.  Good for ``scale >> step``; it goes
    negative for ``scale << step``, where the true ``H(Q)`` tends to 0 (``cover_thomas``,
    Thm. 8.3.1).  Defined in book section *From rounding to bits → Entropy of a rounded
    Gaussian*.
    """
    key = _check_density(density)
    scale = _check_positive("scale", scale)
    step = float(_check_positive("step", step))
    return _h_function(key)(scale) - np.log2(step)


def ideal_bits(symbols, pmf: Callable[[np.ndarray], np.ndarray]) -> float:
    """``-sum_i log2 pmf(symbols)[i]``: the bits of an ideal entropy coder (cross entropy).

    ``pmf`` maps the array of symbols to their model probabilities (one per symbol, e.g.
    with per-symbol means and scales).  This is the *rate* of Eq. (15)/(16) of the code-space
    predictor supplement with the sign it drops (see the errata box of *From rounding to bits*).
    Defined in book section *From rounding to bits → Real entropy coders*.
    """
    if not callable(pmf):
        raise TypeError("pmf must be a callable mapping symbols to probabilities")
    symbols = np.asarray(symbols)
    p = np.asarray(pmf(symbols), dtype=np.float64)
    if p.shape != symbols.shape:
        raise ValueError(f"pmf returned shape {p.shape}, expected {symbols.shape}")
    if np.any(p <= 0) or np.any(p > 1):
        raise ValueError("pmf must return probabilities in (0, 1] for every symbol")
    return float(-np.log2(p).sum())


def sample_rounded(
    n: int, scale, mu=0.0, density: str = "gaussian", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` draws ``y`` of the latent and their rounded values ``round(y)`` (Eq. 14).

    ``scale`` and ``mu`` may be scalars or arrays of length ``n`` (per-sample parameters). Eq. (14)
    of the code-space predictor supplement (rounding at test time). Defined in book section *From
    rounding to bits → Real entropy coders*.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    key = _check_density(density)
    scale = np.broadcast_to(_check_positive("scale", scale), (n,))
    mu = np.broadcast_to(np.asarray(mu, dtype=np.float64), (n,))
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n) if key == "gaussian" else rng.laplace(size=n)
    y = mu + scale * noise
    return y, np.rint(y).astype(np.int64)


def default_scale_table() -> list[float]:
    """CompressAI's 64 scales, log-spaced from 0.11 to 256 (``get_scale_table()``).

    The table of book section *From rounding to bits → Real entropy coders* (the default of
    :func:`table_scale` and the coders); no page calls it directly.
    """
    return get_scale_table().tolist()


def table_scale(scales, scale_table: Sequence[float] | None = None) -> np.ndarray:
    """The scale CompressAI really codes with: the smallest table entry ``>= sigma``.

    This is what ``GaussianConditional.build_indexes`` does (after bounding ``sigma`` below
    by the first entry); the model's ``sigma`` is thus rounded *up* by up to one table step
    (13 % for the default table).  Defined in book section *From rounding to bits → Where
    CompressAI's overhead comes from*.
    """
    # float32 like CompressAI's tensors, so that ties (sigma equal to an entry) agree
    table = np.asarray(default_scale_table() if scale_table is None else scale_table, np.float32)
    s = np.maximum(_check_positive("scales", scales).astype(np.float32), table[0])
    idx = np.minimum(np.searchsorted(table, s, side="left"), len(table) - 1)
    return table[idx].astype(np.float64)


class LaplaceConditional(GaussianConditional):
    """CompressAI's ``GaussianConditional`` with the Laplacian's CDF and quantile.

    ``update()`` and ``_likelihood`` only use the standardized CDF and quantile (the
    distribution is symmetric), so swapping these two gives a conditional Laplacian with
    the same scale table, 16-bit CDFs and tail handling.  Defined in book section *From
    rounding to bits → Real entropy coders*.
    """

    def _standardized_cumulative(self, inputs: torch.Tensor) -> torch.Tensor:
        # F(x) = exp(x)/2 for x < 0 and 1 - exp(-x)/2 otherwise, for unit scale.
        half = torch.exp(-inputs.abs()) / 2
        return torch.where(inputs < 0, half, 1 - half)

    @staticmethod
    def _standardized_quantile(quantile):
        return scipy.stats.laplace.ppf(quantile)


@lru_cache(maxsize=8)
def _conditional(family: str, table: tuple[float, ...]) -> GaussianConditional:
    """A ready-to-code conditional model (``update()`` builds its 16-bit CDF tables once)."""
    model = {"gaussian": GaussianConditional, "laplace": LaplaceConditional}[family](None)
    model.update_scale_table(list(table), force=True)
    return model


def _compressai_bits(family: str, y, scales, means, scale_table):
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}")
    if y.size < 2:
        # CompressAI's BufferedRansEncoder allocates one 32-bit word per symbol, and its final
        # flush alone writes two: a single symbol overruns the buffer and crashes the process.
        raise ValueError(f"y must hold at least 2 values for CompressAI's rANS, got {y.size}")
    scales = np.broadcast_to(_check_positive("scales", scales), y.shape)
    if scale_table is None:
        scale_table = default_scale_table()
    table = tuple(sorted(float(s) for s in _check_positive("scale_table", scale_table).ravel()))
    model = _conditional(family, table)
    as_t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)[None]  # noqa: E731
    y_t, scales_t = as_t(y), as_t(scales)
    means_t = None if means is None else as_t(np.broadcast_to(np.asarray(means, float), y.shape))
    indexes = model.build_indexes(scales_t)
    strings = model.compress(y_t, indexes, means=means_t)
    decoded = model.decompress(strings, indexes, means=means_t)
    expected = model.quantize(y_t, "dequantize", means_t)
    if not torch.equal(decoded, expected):
        raise RuntimeError("CompressAI round trip failed: decoded values differ")
    return len(strings[0]), decoded[0].double().numpy()


def compressai_gaussian_bits(
    y, scales, means=None, scale_table: Sequence[float] | None = None
) -> tuple[int, np.ndarray]:
    """Encode ``y`` with CompressAI's ``GaussianConditional`` (rANS); return ``(nbytes, decoded)``.

    The symbols are ``round(y - means)`` (CompressAI rounds the *residual*); ``decoded`` is
    ``round(y - means) + means``, checked to be exactly what was encoded (else
    ``RuntimeError``).  ``scale_table`` defaults to CompressAI's 64 log-spaced scales; each
    ``sigma`` is coded with :func:`table_scale` of it.  ``y`` needs at least 2 values
    (``ValueError`` otherwise: CompressAI's encoder overruns its buffer on a single symbol).
    Defined in book section *From rounding to bits → Real entropy coders*.
    """
    return _compressai_bits("gaussian", y, scales, means, scale_table)


def compressai_laplace_bits(
    y, scales, means=None, scale_table: Sequence[float] | None = None
) -> tuple[int, np.ndarray]:
    """As :func:`compressai_gaussian_bits`, with :class:`LaplaceConditional` (scale ``b``).

    Defined in book section *From rounding to bits → Real entropy coders*.
    """
    return _compressai_bits("laplace", y, scales, means, scale_table)


def constriction_bits(
    symbols, scales, means=0.0, density: str = "gaussian"
) -> tuple[int, np.ndarray]:
    """Encode integer ``symbols`` with ``constriction``'s ANS coder; return ``(nbits, decoded)``.

    A thin wrapper of the book's one exact coder, :func:`nctutor.entropy.gaussian.encode_gaussian`:
    ``constriction.stream.model.QuantizedGaussian`` or ``QuantizedLaplace`` with per-symbol
    ``means`` and ``scales`` (scalars broadcast), the exact bin masses of Eq. (17) quantized to
    24-bit probabilities, on the alphabet ``[min, max]`` of the symbols, which the stream stores.
    ``nbits`` is 8 times the length of the whole stream (that alphabet header and a CRC included);
    ``decoded`` comes from :func:`~nctutor.entropy.gaussian.decode_gaussian` and is checked
    to equal ``symbols`` (else ``RuntimeError``).
    Defined in book section *From rounding to bits → Real entropy coders*.
    """
    symbols = np.asarray(symbols)
    if symbols.ndim != 1 or not np.issubdtype(symbols.dtype, np.integer):
        raise ValueError("symbols must be a 1-D array of integers")
    scales = np.broadcast_to(_check_positive("scales", scales), symbols.shape)
    means = np.broadcast_to(np.asarray(means, np.float64), symbols.shape)
    stream = encode_gaussian(symbols, means, scales, density)
    decoded = decode_gaussian(stream, means, scales, density).numpy()
    if not np.array_equal(decoded, symbols):
        raise RuntimeError("constriction round trip failed: decoded symbols differ")
    return 8 * len(stream), decoded
