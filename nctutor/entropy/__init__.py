"""Entropy models and coders: what a symbol costs, and the bytes that carry it.

- :mod:`nctutor.entropy.rounded`: rounded densities, their entropies and CompressAI's table coder
  (book chapter *From rounding to bits*);
- :mod:`nctutor.entropy.gaussian`: the exact per-symbol Gaussian coder (book section *Transform
  coding with learned priors → Exact Gaussian coding*).

The names of :mod:`~nctutor.entropy.rounded` are also available here (``entropy.rounded_pmf``).
"""

from .gaussian import MAX_SPAN, decode_gaussian, encode_gaussian
from .rounded import (
    DENSITIES,
    LaplaceConditional,
    compressai_gaussian_bits,
    compressai_laplace_bits,
    constriction_bits,
    default_scale_table,
    high_resolution_entropy,
    ideal_bits,
    rounded_entropy,
    rounded_pmf,
    sample_rounded,
    table_scale,
)

__all__ = [
    "DENSITIES", "LaplaceConditional", "MAX_SPAN", "compressai_gaussian_bits",
    "compressai_laplace_bits", "constriction_bits", "decode_gaussian", "default_scale_table",
    "encode_gaussian", "high_resolution_entropy", "ideal_bits", "rounded_entropy", "rounded_pmf",
    "sample_rounded", "table_scale",
]
