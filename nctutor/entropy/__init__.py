"""Entropy models and coders: what a symbol costs, and the bytes that carry it.

- :mod:`nctutor.entropy.rounded`: rounded densities, their entropies and CompressAI's table coder
  (book chapter *From rounding to bits*);
- :mod:`nctutor.entropy.gaussian`: the book's one exact per-symbol coder of quantized Gaussians
  and Laplacians with ``constriction`` (book section *Transform coding with learned priors →
  Exact Gaussian coding*); :func:`~nctutor.entropy.rounded.constriction_bits` of the rounding
  chapter is a thin wrapper of it;
- :mod:`nctutor.entropy.binary`: the adaptive binary context coder of the binary video codec
  (book section *A binary video codec with delta-sigma modulation → Coding the bits*).

The names of :mod:`~nctutor.entropy.rounded` are also available here (``entropy.rounded_pmf``).
"""

from importlib import import_module

from .gaussian import MAX_SPAN, decode_gaussian, encode_gaussian

#: The names of :mod:`~nctutor.entropy.rounded`, loaded on first use (it imports SymPy, which
#: the command line does not need).
_ROUNDED = (
    "DENSITIES", "LaplaceConditional", "compressai_gaussian_bits", "compressai_laplace_bits",
    "constriction_bits", "default_scale_table", "high_resolution_entropy", "ideal_bits",
    "rounded_entropy", "rounded_pmf", "sample_rounded", "table_scale",
)

__all__ = ["MAX_SPAN", "decode_gaussian", "encode_gaussian", *_ROUNDED]


def __getattr__(name: str):
    if name in _ROUNDED:
        return getattr(import_module(".rounded", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
