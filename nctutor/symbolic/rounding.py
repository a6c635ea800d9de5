"""From rounding to bits: the probability of a rounded latent, derived with SymPy.

Everything here follows Sec. 8.1 of the supplement of Klopp et al. (``klopp2018``),
Eq. (14)-(18), and belongs to the chapter *From rounding to bits*
(``book/foundations/rounding.md``), section *The probability of a rounded value*.

A latent ``y`` with density ``p`` is rounded, ``q = round(y)`` (Eq. 14).  The probability
of the integer ``q`` is the mass of ``p`` in the bin around it (Eq. 17)::

    P(q) = integral of p(t) over [q - 1/2, q + 1/2]

and that number equals the density of the *noisy* latent ``y + u``, ``u ~ U(-1/2, 1/2)``,
evaluated at ``q`` (Eq. 18)::

    (p * U(-1/2, 1/2))(x) = integral of p(t) U(x - t) dt,   taken at x = q.

Conventions of the symbols returned here: ``Q`` (the rounded value), ``X`` (the noisy
value), ``T`` (integration variable) and ``MU`` are real; ``SIGMA`` (Gaussian standard
deviation) and ``B`` (Laplacian scale) are positive.  ``density`` names are
``"gaussian"`` and ``"laplace"``.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

__all__ = [
    "Q",
    "X",
    "T",
    "MU",
    "SIGMA",
    "B",
    "DENSITIES",
    "density",
    "uniform_box",
    "rounded_pmf",
    "noisy_density",
    "laplace_regions",
    "verify_bin_equals_noisy_density",
    "differential_entropy",
]

Q = sp.Symbol("q", real=True)
X = sp.Symbol("x", real=True)
T = sp.Symbol("t", real=True)
MU = sp.Symbol("mu", real=True)
SIGMA = sp.Symbol("sigma", positive=True)
B = sp.Symbol("b", positive=True)

DENSITIES = ("gaussian", "laplace")

_HALF = sp.Rational(1, 2)
_D = sp.Symbol("d", positive=True)  # distance parameter of the three Laplacian regions


def _check_density(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"density must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in DENSITIES:
        raise ValueError(f"unknown density {name!r}: expected one of {', '.join(DENSITIES)}")
    return key


def density(name: str, var: sp.Symbol = T) -> sp.Expr:
    """The density ``p(var)`` of the latent: ``N(mu, sigma^2)`` or ``Laplace(mu, b)``.

    The Laplacian is written as a ``Piecewise`` (left and right of ``mu``) rather than with
    ``Abs``, so that SymPy integrates it branch by branch.
    Defined in book section *From rounding to bits → The probability of a rounded value*.
    """
    key = _check_density(name)
    if key == "gaussian":
        return sp.exp(-((var - MU) ** 2) / (2 * SIGMA**2)) / sp.sqrt(2 * sp.pi * SIGMA**2)
    return sp.Piecewise(
        (sp.exp((var - MU) / B) / (2 * B), var < MU),
        (sp.exp(-(var - MU) / B) / (2 * B), True),
    )


def uniform_box(s: sp.Expr) -> sp.Piecewise:
    """The density of ``U(-1/2, 1/2)`` at ``s``: 1 on ``[-1/2, 1/2]``, else 0 (Eq. 18).

    Eq. (18) of the code-space predictor supplement. The box of :func:`noisy_density`, book
    section *From rounding to bits → The probability of a rounded value*; no page calls it.
    """
    return sp.Piecewise((1, (s >= -_HALF) & (s <= _HALF)), (0, True))


@cache
def _bin_integral(key: str) -> sp.Expr:
    """``P(q)`` as SymPy returns the integral of Eq. (17) (Min/Max form for the Laplacian)."""
    return sp.integrate(density(key), (T, Q - _HALF, Q + _HALF))


@cache
def _convolution(key: str) -> sp.Expr:
    """``(p * U)(x)`` as SymPy returns the convolution integral over the real line."""
    return sp.integrate(density(key) * uniform_box(X - T), (T, -sp.oo, sp.oo))


# The three regions of a Laplacian bin: q wholly right of mu, wholly left, or around it.
# Each is parametrized by one positive symbol d, so that SymPy can decide every Min/Max
# by itself; ``back`` solves the parametrization for d.
def _equal(a: sp.Expr, b: sp.Expr) -> bool:
    """Exact equality: both sides simplified on their own first, then their difference."""
    return sp.simplify(sp.simplify(a) - sp.simplify(b)) == 0


def _regions(var: sp.Symbol) -> list[tuple[str, sp.Expr, sp.Expr, sp.Basic]]:
    return [
        ("left", MU - _HALF - _D, MU - _HALF - var, var <= MU - _HALF),
        ("right", MU + _HALF + _D, var - MU - _HALF, var >= MU + _HALF),
        ("middle", MU - _HALF + 1 / (1 + _D), 1 / (var - MU + _HALF) - 1, True),
    ]


def laplace_regions(expr: sp.Expr, var: sp.Symbol = Q) -> sp.Piecewise:
    """Rewrite a Laplacian bin expression (with ``Min``/``Max``) as a 3-branch ``Piecewise``.

    The branches are: the bin ``[var - 1/2, var + 1/2]`` lies left of ``mu``
    (``var = mu - 1/2 - d``), right of it (``var = mu + 1/2 + d``), or contains it
    (``var = mu - 1/2 + 1/(1 + d)``), each with ``d > 0``.
    Defined in book section *From rounding to bits → The Laplacian*.
    """
    pieces = []
    for _, param, back, cond in _regions(var):
        branch = sp.simplify(expr.subs(var, param))
        pieces.append((sp.simplify(branch.subs(_D, back)), cond))
    return sp.Piecewise(*pieces)


@cache
def rounded_pmf(name: str) -> sp.Expr:
    """``P(q) = int_{q-1/2}^{q+1/2} p(t) dt``, Eq. (17) of the code-space predictor supplement.

    Gaussian: a difference of two ``erf``.  Laplacian: a 3-branch ``Piecewise`` in ``q``
    (bin left of ``mu``, right of it, or containing it), see :func:`laplace_regions`.
    Defined in book section *From rounding to bits → The probability of a rounded value*.
    """
    key = _check_density(name)
    expr = _bin_integral(key)
    if key == "gaussian":
        return expr
    return laplace_regions(expr, Q)


@cache
def noisy_density(name: str) -> sp.Expr:
    """``(p * U(-1/2, 1/2))(x)``: the density of ``y + u`` (Eq. 18), in the symbol ``X``.

    Computed by SymPy as the convolution integral ``int p(t) U(x - t) dt`` over the whole
    real line, the box ``U`` written as a ``Piecewise``.  The Laplacian result is brought
    to the same 3-branch form as :func:`rounded_pmf` with :func:`laplace_regions`.
    Defined in book section *From rounding to bits → The probability of a rounded value*.
    """
    key = _check_density(name)
    expr = _convolution(key)
    if key == "gaussian":
        return expr
    return laplace_regions(expr, X)


def verify_bin_equals_noisy_density(name: str) -> dict[str, bool]:
    """Check exactly that ``P(q) == (p * U)(q)`` (Eq. 17 = Eq. 18 at ``x = q``).

    Returns ``{region: simplify(P - conv) == 0}``: one entry ``"all"`` for the Gaussian, and
    ``"left"``, ``"right"``, ``"middle"`` for the Laplacian, where SymPy's raw Min/Max
    results of both integrals are compared in each region (``d > 0``).  Also checks that the
    displayed branches of :func:`rounded_pmf` agree with the raw integral.
    Defined in book section *From rounding to bits → The probability of a rounded value*.
    """
    key = _check_density(name)
    conv_at_q = _convolution(key).subs(X, Q)
    if key == "gaussian":
        return {"all": _equal(rounded_pmf(key), conv_at_q)}
    raw = _bin_integral(key)
    shown = rounded_pmf(key)
    out = {}
    for (region, param, _, _), (branch, _) in zip(_regions(Q), shown.args, strict=True):
        at = {Q: param}
        out[region] = _equal(raw.subs(at), conv_at_q.subs(at)) and _equal(
            raw.subs(at), branch.subs(at)
        )
    return out


@cache
def differential_entropy(name: str) -> sp.Expr:
    """``h(Y) = -int p log2 p`` in bits: ``log2(2 pi e sigma^2)/2`` or ``log2(2 e b)``.

    The high-resolution approximation of the entropy of ``round(y / step)`` is
    ``h(Y) - log2(step)`` (book section *From rounding to bits → Entropy of a rounded
    Gaussian*; Cover & Thomas, Thm. 8.3.1).
    Defined in book section *From rounding to bits → Entropy of a rounded Gaussian*.
    """
    key = _check_density(name)
    p = density(key)
    if key == "gaussian":
        integrand = sp.expand_log(-p * sp.log(p), force=True)
        h = sp.integrate(integrand, (T, -sp.oo, sp.oo))
    else:  # symmetric about mu: twice the right half
        right = sp.exp(-(T - MU) / B) / (2 * B)
        h = 2 * sp.integrate(sp.expand_log(-right * sp.log(right), force=True), (T, MU, sp.oo))
    return sp.simplify(sp.expand_log(h / sp.log(2), force=True))
