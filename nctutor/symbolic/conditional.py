"""Conditional coding versus residual coding, exactly (Brand, Seiler and Kaup, Eq. 1-11).

A residual coder sends r = x - x~ (the frame minus its prediction); a conditional coder sends x
with x~ known to both sides. For a joint pmf ``p[x, x~]`` this module computes, exactly with SymPy
(symbolic probabilities) or in floating point (numbers):

- the three terms of Eq. (4): H(x - x~) = H(x | x~) + I(x~; r);
- the bottleneck terms of Eq. (8)-(9), where the decoder only sees y~ = f(x~);
- the Gaussian case x = a x~ + n with differential entropies.

Conventions (chapter *Conditional coding versus residual coding*):

- ``p[i, j] = P(x = i, x~ = j)`` with ``i`` in ``0 .. n-1`` and ``j`` in ``0 .. m-1``. The two
  alphabets may differ (``n != m``): x~ is a prediction and need not take the same values as x.
  The residual ``r = i - j`` then takes values in ``-(m-1) .. n-1``.
- SymPy in, SymPy out: a SymPy Matrix, or a table with any SymPy entry (a symbol or an exact
  ``Rational``), gives exact SymPy expressions; a numpy array or a table of Python floats gives
  floats.
- All entropies are in bits. Entropies are sums of ``-p log2 p`` over the support: an entry that is
  exactly zero is left out (0 log 0 = 0); a symbolic entry is taken to be positive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp
from scipy.special import ndtr
from scipy.stats import entropy as _scipy_entropy

__all__ = [
    "symbolic_joint",
    "residual_pmf",
    "entropy_terms",
    "identity_gap",
    "bottleneck_terms",
    "bottleneck_example",
    "gaussian_entropies",
    "gaussian_gain",
    "quantized_gaussian_joint",
]

#: Tolerance on ``sum(p) == 1`` for numeric joints.
SUM_TOL = 1e-9


# --------------------------------------------------------------------------- validation


def _as_joint(p: Any) -> tuple[np.ndarray | sp.Matrix, bool]:
    """Checks ``p`` and returns it as a float array (numeric) or a SymPy Matrix (symbolic)."""
    if isinstance(p, sp.MatrixBase):
        mat = sp.Matrix(p)
    elif isinstance(p, np.ndarray) and p.dtype != object:
        mat = None
    else:
        try:
            rows = [list(row) for row in p]
        except TypeError as err:
            raise ValueError(
                "p must be 2-D (p[x, x~]): a numpy array, a SymPy Matrix or a list of rows"
            ) from err
        if any(isinstance(v, sp.Basic) for row in rows for v in row):
            try:
                mat = sp.Matrix(rows)
            except ValueError as err:
                raise ValueError("p must be a 2-D table (all rows of equal length)") from err
        else:
            mat = None
            try:
                p = np.array(rows, dtype=float)
            except (TypeError, ValueError) as err:
                raise ValueError(f"p must be a 2-D table of probabilities: {err}") from err

    if mat is not None:
        if mat.rows == 0 or mat.cols == 0:
            raise ValueError(f"p must be a non-empty 2-D table, got shape {mat.shape}")
        for v in mat:
            if v.is_number and (not v.is_real or v < 0):
                raise ValueError(f"probabilities must be nonnegative, got {v}")
        if sp.simplify(sum(mat) - 1) != 0:
            raise ValueError(
                "symbolic probabilities must sum to 1 identically; write the last entry as "
                f"1 - (sum of the others), e.g. with symbolic_joint(). Sum is {sum(mat)}"
            )
        return mat, True

    arr = np.asarray(p, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"p must be 2-D (p[x, x~]), got {arr.ndim}-D with shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"p must be non-empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("p must contain only finite numbers")
    if np.any(arr < 0):
        raise ValueError(f"probabilities must be nonnegative, smallest entry is {arr.min()}")
    total = float(arr.sum())
    if abs(total - 1.0) > SUM_TOL:
        raise ValueError(f"probabilities must sum to 1 (tolerance {SUM_TOL}), they sum to {total}")
    return arr, False


def symbolic_joint(n: int, m: int | None = None, name: str = "p") -> sp.Matrix:
    """An ``n x m`` joint pmf of positive symbols ``p_ij`` that sums to 1 identically.

    The last entry is ``1 - (sum of the others)``, so the constraint of a pmf is built in.
    Defined in book section *Conditional coding versus residual coding → The identity*.

    Args:
        n: size of the alphabet of x (rows).
        m: size of the alphabet of x~ (columns); ``n`` if omitted.
        name: prefix of the symbols.
    """
    m = n if m is None else m
    for label, v in (("n", n), ("m", m)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{label} must be a positive int, got {v!r}")
    if n * m < 2:
        raise ValueError("a joint pmf with a single entry has no free symbol; use n * m >= 2")
    syms = [[sp.Symbol(f"{name}_{i}{j}", positive=True) for j in range(m)] for i in range(n)]
    free = [s for row in syms for s in row][:-1]
    syms[n - 1][m - 1] = 1 - sum(free)
    return sp.Matrix(syms)


# --------------------------------------------------------------------------- entropies


def _H_sym(probs: Sequence[sp.Expr]) -> sp.Expr:
    """Entropy in bits, ``-sum p log2 p`` over the support (exact zeros left out)."""
    return sp.Add(*[-q * sp.log(q) for q in probs if q != 0]) / sp.log(2)


def _H_num(probs: np.ndarray) -> float:
    return float(_scipy_entropy(np.ravel(probs), base=2)) if np.any(probs > 0) else 0.0


def residual_pmf(p: Any) -> dict[int, Any]:
    """The pmf of the residual r = x - x~, as ``{r: P(r)}`` for every r in ``-(m-1) .. n-1``.

    ``P(r)`` is the sum of ``p[i, j]`` over the diagonal ``i - j = r``. Symbolic input gives
    SymPy expressions, numeric input gives floats. The residual of Eq. (1)-(4) of Brand et al.;
    used by :func:`entropy_terms` (book section *Conditional coding versus residual coding → The
    identity*); no page calls it.
    """
    q, symbolic = _as_joint(p)
    n, m = q.shape
    out: dict[int, Any] = {}
    for r in range(-(m - 1), n):
        if symbolic:
            out[r] = sp.Add(*[q[i, i - r] for i in range(max(r, 0), min(n, m + r))])
        else:
            out[r] = float(np.trace(q, offset=-r))
    return out


def entropy_terms(p: Any) -> dict[str, Any]:
    """The three terms of Eq. (4) of Brand et al., in bits, for a joint pmf ``p[x, x~]``.

    Returns ``{"H_residual": H(x - x~), "H_conditional": H(x | x~),
    "I_prediction_residual": I(x~; r)}``, each computed from its own definition:

    - ``H(r) = -sum_r P(r) log2 P(r)``;
    - ``H(x | x~) = -sum_{i,j} p_ij log2(p_ij / P(x~ = j))``;
    - ``I(x~; r) = sum_{j,r} P(x~=j, r) log2(P(x~=j, r) / (P(x~=j) P(r)))``, where
      ``P(x~=j, r) = p[j + r, j]``.

    SymPy input (e.g. from :func:`symbolic_joint`, or exact rationals) gives SymPy expressions,
    numeric input gives floats. Defined in book section *Conditional coding versus residual coding →
    The identity*.

    Raises:
        ValueError: ``p`` is not 2-D, has a negative entry, or does not sum to 1 (within
            :data:`SUM_TOL`; identically for symbolic input).
    """
    q, symbolic = _as_joint(p)
    n, m = q.shape
    pr = residual_pmf(q)
    if not symbolic:
        px_t = q.sum(axis=0)
        h_r = _H_num(np.array(list(pr.values())))
        h_cond = max(_H_num(q) - _H_num(px_t), 0.0)  # clip rounding below 0
        # I(x~; r) = H(x~) + H(r) - H(x~, r), and (x~, r) is a relabelling of (x, x~)
        pr_ij = np.array([[pr[i - j] for j in range(m)] for i in range(n)])
        ok = q > 0
        logs = np.log2(q[ok]) - np.log2(np.broadcast_to(px_t, q.shape)[ok]) - np.log2(pr_ij[ok])
        info = np.sum(q[ok] * logs)
        return {"H_residual": h_r, "H_conditional": h_cond, "I_prediction_residual": float(info)}

    px_t = [sp.Add(*q[:, j]) for j in range(m)]
    log2 = sp.log(2)
    h_r = _H_sym(pr.values())
    h_cond = (
        sp.Add(
            *[
                -q[i, j] * sp.log(q[i, j] / px_t[j])
                for i in range(n)
                for j in range(m)
                if q[i, j] != 0
            ]
        )
        / log2
    )
    info = (
        sp.Add(
            *[
                q[i, j] * sp.log(q[i, j] / (px_t[j] * pr[i - j]))
                for i in range(n)
                for j in range(m)
                if q[i, j] != 0
            ]
        )
        / log2
    )
    return {"H_residual": h_r, "H_conditional": h_cond, "I_prediction_residual": info}


def identity_gap(p: Any) -> Any:
    """``H(r) - H(x|x~) - I(x~; r)``, reduced: 0 for every joint pmf (Eq. (4) of Brand et al.).

    Symbolic input: the logarithms are split with ``expand_log(force=True)`` and the sum is
    expanded, which is all SymPy needs to cancel every term. Numeric input: a float near 0.
    Defined in book section *Conditional coding versus residual coding → The identity*.
    """
    t = entropy_terms(p)
    gap = t["H_residual"] - t["H_conditional"] - t["I_prediction_residual"]
    if isinstance(gap, sp.Basic):
        return sp.simplify(sp.expand(sp.expand_log(gap, force=True)))
    return gap


# --------------------------------------------------------------------------- bottleneck


def bottleneck_terms(p: Any, f: Callable[[int], int] | Sequence[int]) -> dict[str, Any]:
    """Terms of Eq. (8)-(9) of Brand et al. when the decoder only sees ``y~ = f(x~)``.

    Args:
        p: joint pmf ``p[x, x~]`` (numeric or symbolic, as in :func:`entropy_terms`).
        f: the map from the index of x~ to the value of y~, as a callable or a sequence of
            length ``m`` (any hashable values; a non-injective f is a bottleneck).

    Returns the terms of :func:`entropy_terms` plus

    - ``"H_conditional_bottleneck"``: ``H(x | y~)``, the rate of a conditional coder whose
      conditional branch is ``f``;
    - ``"I_lost"``: ``I(x; x~ | y~) = H(x | y~) - H(x | x~)`` (Eq. (8)), the information about x
      that f throws away.

    Defined in book section *Conditional coding versus residual coding → A bottleneck in the
    conditional branch*.
    """
    q, symbolic = _as_joint(p)
    n, m = q.shape
    fmap = [f(j) for j in range(m)] if callable(f) else list(f)
    if len(fmap) != m:
        raise ValueError(f"f must give one value per x~ value ({m}), got {len(fmap)}")
    labels = sorted(set(fmap), key=fmap.index)
    # joint of (x, y~): merge the columns of x~ values with the same image under f
    cols = [[j for j in range(m) if fmap[j] == lab] for lab in labels]
    terms = entropy_terms(q)
    if symbolic:
        pxy = sp.Matrix(n, len(labels), lambda i, k: sp.Add(*[q[i, j] for j in cols[k]]))
        py = [sp.Add(*pxy[:, k]) for k in range(len(labels))]
        h_xy = sp.Add(
            *[
                -pxy[i, k] * sp.log(pxy[i, k] / py[k])
                for i in range(n)
                for k in range(len(labels))
                if pxy[i, k] != 0
            ]
        ) / sp.log(2)
    else:
        pxy = np.stack([q[:, c].sum(axis=1) for c in cols], axis=1)
        h_xy = _H_num(pxy) - _H_num(pxy.sum(axis=0))
    terms["H_conditional_bottleneck"] = h_xy
    terms["I_lost"] = h_xy - terms["H_conditional"]
    return terms


def bottleneck_example(q: Any = "1/4") -> dict[str, Any]:
    """A worked example where the bottlenecked conditional coder loses to the residual coder.

    x~ is uniform on {0, 1, 2, 3}; x = min(x~ + b, 3) with b ~ Bernoulli(q) independent of x~
    (a prediction that is right with probability 1 - q, one level too low otherwise, and never
    too low at the top level). The residual r = x - x~ in {0, 1} depends on x~ (it is always 0 at
    x~ = 3), so I(x~; r) > 0 and the ideal conditional coder beats the residual coder (Eq. (4)).
    The conditional branch ``f(x~) = x~ // 2`` keeps one bit of the two: with it, H(x | y~) is
    larger than H(r) and the conditional coder loses (Eq. (9)).

    Args:
        q: probability that the prediction is one level too low, ``0 < q < 1``; converted with
            ``sympy.nsimplify`` (default 1/4), so all rates below are exact SymPy numbers.

    Returns a dict with ``"pmf"`` (SymPy Matrix ``p[x, x~]``), ``"f"`` (tuple, ``f[x~]``),
    ``"rates"`` (the dict of :func:`bottleneck_terms`) and ``"loss"`` =
    ``H(x | y~) - H(r)`` in bits (positive: the conditional coder loses).
    Defined in book section *Conditional coding versus residual coding → A bottleneck in the
    conditional branch* (Eq. (8)-(9)).
    """
    q = sp.nsimplify(q)
    if not q.is_number or not (0 < q < 1):
        raise ValueError(f"q must be a number in (0, 1), got {q}")
    pmf = sp.zeros(4, 4)
    for j in range(4):
        pmf[j, j] += (1 - q) / 4 if j < 3 else sp.Rational(1, 4)
        if j < 3:
            pmf[j + 1, j] += q / 4
    f = (0, 0, 1, 1)
    rates = bottleneck_terms(pmf, f)
    rates = {key: sp.expand_log(v, force=True) for key, v in rates.items()}
    loss = sp.expand_log(rates["H_conditional_bottleneck"] - rates["H_residual"], force=True)
    return {"pmf": pmf, "f": f, "rates": rates, "loss": loss}


# --------------------------------------------------------------------------- Gaussian case


def gaussian_entropies(a: Any = None, sigma: Any = None, sigma_n: Any = None) -> dict[str, sp.Expr]:
    """Differential entropies (bits) of the Gaussian case x = a x~ + n.

    x~ ~ N(0, sigma^2) and n ~ N(0, sigma_n^2) are independent, so r = x - x~ = (a - 1) x~ + n is
    N(0, (a-1)^2 sigma^2 + sigma_n^2) and, given x~, x is N(a x~, sigma_n^2). Returns
    ``{"h_residual": h(r), "h_conditional": h(x | x~), "gain": h(r) - h(x | x~)}`` with
    ``h(N(0, v)) = 1/2 log2(2 pi e v)``. Omitted arguments are SymPy symbols.
    Defined in book section *Conditional coding versus residual coding → The Gaussian case*.
    """
    a = sp.Symbol("a", real=True) if a is None else sp.sympify(a)
    sigma = sp.Symbol("sigma", positive=True) if sigma is None else sp.sympify(sigma)
    sigma_n = sp.Symbol("sigma_n", positive=True) if sigma_n is None else sp.sympify(sigma_n)
    for label, v in (("sigma", sigma), ("sigma_n", sigma_n)):
        if v.is_number and not v > 0:
            raise ValueError(f"{label} must be positive, got {v}")

    def h(var: sp.Expr) -> sp.Expr:
        return sp.log(2 * sp.pi * sp.E * var) / (2 * sp.log(2))

    var_r = (a - 1) ** 2 * sigma**2 + sigma_n**2
    h_r = h(var_r)
    h_c = h(sigma_n**2)
    # h_r - h_c = 1/2 log2(var_r / sigma_n^2): the 2 pi e cancels (log of a quotient);
    # tests/test_conditional.py checks the equality with SymPy
    gain = sp.log(1 + sp.factor(sp.cancel(var_r / sigma_n**2 - 1))) / (2 * sp.log(2))
    return {"h_residual": h_r, "h_conditional": h_c, "gain": gain}


def gaussian_gain(a: Any = None, sigma: Any = None, sigma_n: Any = None) -> sp.Expr:
    """Gain of conditional over residual coding for x = a x~ + n, in bits (symbolic).

    ``h(x - x~) - h(x | x~) = I(x~; r) = 1/2 log2(1 + (1 - a)^2 sigma^2 / sigma_n^2)``, zero
    exactly when a = 1 (then x - x~ = n is independent of x~). Omitted arguments are symbols.
    Defined in book section *Conditional coding versus residual coding → The Gaussian case*.
    """
    return gaussian_entropies(a, sigma, sigma_n)["gain"]


def quantized_gaussian_joint(
    a: float, sigma: float, sigma_n: float, step: float, width: float = 7.0
) -> np.ndarray:
    """The joint pmf ``p[x, x~]`` of x = a x~ + n quantized on one grid of cells of size ``step``.

    The grid covers ``+-width`` standard deviations of the wider of x and x~. P(x~ in cell j) is
    a difference of the normal CDF; given x~ at the centre of cell j, x is N(a x~_j, sigma_n^2).
    Feeding the result to :func:`entropy_terms` gives discrete entropies with
    ``H ~ h - log2(step)``, so the gain ``H(r) - H(x | x~)`` approaches :func:`gaussian_gain`
    as ``step -> 0``. Defined in book section *Conditional coding versus residual coding → The
    Gaussian case*.
    """
    for label, v in (("sigma", sigma), ("sigma_n", sigma_n), ("step", step), ("width", width)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{label} must be a positive finite number, got {v}")
    half = width * max(sigma, float(np.hypot(a * sigma, sigma_n)))
    k = int(np.ceil(half / step))
    if 2 * k + 1 > 4001:
        raise ValueError(f"grid of {2 * k + 1} cells is too fine; increase step or lower width")
    centres = step * np.arange(-k, k + 1)
    edges = np.concatenate([centres - step / 2, [centres[-1] + step / 2]])
    p_t = np.diff(ndtr(edges / sigma))  # P(x~ in cell j)
    cdf = ndtr((edges[:, None] - a * centres[None, :]) / sigma_n)  # [edge, j]
    p = np.diff(cdf, axis=0) * p_t[None, :]  # p[i, j] = P(x in cell i | x~_j) P(x~ in cell j)
    return p / p.sum()
