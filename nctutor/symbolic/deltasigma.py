"""Delta-sigma modulation of binary latents, derived with SymPy.

Everything here follows Appendix A and B of the supplement of Sun et al.
(``sun_deltasigma``), and belongs to the chapter *Delta-sigma modulation of
binary latents: gradients and noise shaping* (``book/deltasigma/derivations.md``).

The modulator runs along the time (frame) index ``i``:

* first order, Eq. (A.1)-(A.2)::

      y[i] = y[i-1] + c[i] - b[i-1],          b[i] = B(tanh y[i])

* second order, Eq. (B.1)::

      y[i] = c[i] + 2 (y[i-1] - b[i-1]) - (y[i-2] - b[i-2])

``B`` is the straight-through binariser: its forward pass is the sign, its
derivative is taken to be 1.  All states before the first step are zero.

Conventions of the symbols returned here:

* ``code_gradient(k, order)`` is an expression in ``y0, ..., yk`` (real), where
  ``y0 = y[m]`` is the latest step and ``yj = y[m-j]``.  The second-order loop of
  Eq. (B.1) is written in direct form, with the single state sequence ``y``, so
  its gradient needs no other symbols either.
* Transfer functions are expressions in the (complex) symbol ``z``; frequency
  responses in the real symbol ``omega``; band edges in the real symbol
  ``omega_B``.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

__all__ = [
    "SignSTE",
    "Z",
    "OMEGA",
    "OMEGA_B",
    "loop_coefficients",
    "unrolled_recursion",
    "code_gradient",
    "code_gradient_closed_form",
    "transfer_functions",
    "noise_transfer_function",
    "signal_transfer_function",
    "ntf_magnitude_squared",
    "noise_power_gain",
    "in_band_noise_gain",
]

Z = sp.Symbol("z")
OMEGA = sp.Symbol("omega", real=True)
OMEGA_B = sp.Symbol("omega_B", positive=True)

_GRADIENT_ORDERS = (1, 2)


class SignSTE(sp.Function):
    """The straight-through binariser ``B`` of Eq. (A.2): a function whose derivative is 1.

    Forward it is the sign; for differentiation SymPy is told ``B'(x) = 1``, which is
    exactly what the supplement assumes ("``B(x)`` ... has derivative 1").
    Defined in book section *Delta-sigma modulation of binary latents: gradients and noise shaping →
    Gradients*.
    """

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.S.One


def _check_order(order: object, allowed: tuple[int, ...] | None = None) -> int:
    if isinstance(order, bool) or not isinstance(order, int):
        raise TypeError(f"order must be an int, got {type(order).__name__}")
    if allowed is not None and order not in allowed:
        raise ValueError(f"order must be one of {allowed}, got {order}")
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    return order


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k < 0:
        raise ValueError(f"k must be >= 0 (the gradient looks k steps into the past), got {k}")
    return k


def loop_coefficients(order: int) -> tuple[int, ...]:
    """Coefficients ``a_l`` of the direct-form loop ``y[i] = c[i] + sum_l a_l (y[i-l] - b[i-l])``.

    ``a_l = -(-1)^l binomial(order, l)``, so that ``1 - sum_l a_l z^-l = (1 - z^-1)^order``:
    order 1 gives ``(1,)`` (Eq. (A.1)), order 2 gives ``(2, -1)`` (Eq. (B.1)).
    Used by :func:`transfer_functions` (book section *Delta-sigma modulation of binary latents:
    gradients and noise shaping → Noise shaping*) and named in that page's *Exercises*.
    """
    order = _check_order(order)
    return tuple(int(-((-1) ** l) * sp.binomial(order, l)) for l in range(1, order + 1))


def unrolled_recursion(
    k: int, order: int = 1
) -> tuple[tuple[sp.Symbol, ...], tuple[sp.Expr, ...], tuple[sp.Expr, ...]]:
    """Unroll the modulator symbolically over the steps ``m-k, ..., m``.

    The inputs are the symbols ``c0..ck`` (``cj = c[m-j]``); the states before step
    ``m-k`` are the free symbols ``yp1, yp2`` (``y[m-k-1], y[m-k-2]``) and
    ``bp1, bp2`` (``b[m-k-1], b[m-k-2]``).  Returns ``(c, y, b)`` where ``y[j]`` and
    ``b[j]`` are the nested expressions of ``y[m-j]`` and ``b[m-j]``
    (Eq. (A.1)-(A.2), or (B.1) with (A.2) for ``order=2``).
    Defined in book section *Delta-sigma modulation of binary latents: gradients and noise shaping →
    Gradients*.
    """
    k = _check_k(k)
    coeffs = loop_coefficients(_check_order(order, _GRADIENT_ORDERS))
    c = sp.symbols(f"c0:{k + 1}", real=True)
    y_hist = sp.symbols("yp1:3", real=True)
    b_hist = sp.symbols("bp1:3", real=True)
    # index j means time m - j; j = k + 1, k + 2 are the given past states
    y: dict[int, sp.Expr] = {k + 1: y_hist[0], k + 2: y_hist[1]}
    b: dict[int, sp.Expr] = {k + 1: b_hist[0], k + 2: b_hist[1]}
    for j in range(k, -1, -1):  # oldest step first
        y[j] = c[j] + sum(a * (y[j + l] - b[j + l]) for l, a in enumerate(coeffs, start=1))
        b[j] = SignSTE(sp.tanh(y[j]))
    return c, tuple(y[j] for j in range(k + 1)), tuple(b[j] for j in range(k + 1))


@cache
def code_gradient(k: int, order: int = 1) -> sp.Expr:
    """``d b[m] / d c[m-k]`` by SymPy's chain rule through the unrolled modulator.

    The recursion is built symbolically (:func:`unrolled_recursion`), ``b[m]`` is
    differentiated with respect to ``c[m-k]`` (with ``B' = 1``), and every nested
    state ``y[m-j]`` is then replaced by the symbol ``yj``.  The result is an
    expression in ``y0..yk`` only (``y0 = y[m]``).  For ``order=1`` it equals
    Eq. (A.7) (equivalently Eq. (6) of the main text); for ``order=2`` see
    :func:`code_gradient_closed_form`.
    Defined in book section *Delta-sigma modulation of binary latents: gradients and noise shaping →
    Gradients*.
    """
    c, y, b = unrolled_recursion(k, order)
    d = sp.diff(b[0], c[k])
    ys = sp.symbols(f"y0:{k + 1}", real=True)
    # outermost (latest) state first: y[m] contains y[m-1], ... as sub-expressions
    d = d.xreplace({y[j]: ys[j] for j in range(k + 1)})
    if not d.free_symbols <= set(ys):  # pragma: no cover - guards the construction
        raise RuntimeError(f"gradient still depends on {d.free_symbols - set(ys)}")
    return d


def code_gradient_closed_form(k: int, order: int = 1) -> sp.Expr:
    """The hand-derived gradient ``G_k = d b[m] / d c[m-k]`` in the symbols ``y0..yk``.

    Order 1, Eq. (A.7): ``G_k = (1 - tanh^2 y0) prod_{i=1..k} tanh^2 yi``.

    Order 2 (not in the supplement; derived in the book): with ``s = 1 - tanh^2 y0``
    and ``a_j = tanh^2 yj``, ``G_0 = s``, ``G_1 = 2 a_1 G_0`` and
    ``G_j = a_j (2 G_{j-1} - G_{j-2})`` for ``j >= 2`` (the adjoint of Eq. (B.1)).
    Defined in book section *Delta-sigma modulation of binary latents: gradients and noise shaping →
    Gradients*.
    """
    k = _check_k(k)
    coeffs = loop_coefficients(_check_order(order, _GRADIENT_ORDERS))
    ys = sp.symbols(f"y0:{k + 1}", real=True)
    if order == 1:  # Eq. (A.7), typed as printed
        return (1 - sp.tanh(ys[0]) ** 2) * sp.Mul(*[sp.tanh(ys[i]) ** 2 for i in range(1, k + 1)])
    g = [1 - sp.tanh(ys[0]) ** 2]
    for j in range(1, k + 1):
        back = sum(a * g[j - l] for l, a in enumerate(coeffs, start=1) if j - l >= 0)
        g.append(sp.tanh(ys[j]) ** 2 * back)
    return g[k]


@cache
def transfer_functions(order: int) -> tuple[sp.Expr, sp.Expr]:
    """Signal and noise transfer functions ``(STF, NTF)`` from the Z-transform of the loop.

    With the additive noise model ``b[i] = y[i] + e[i]`` (Eq. (B.2)) the loop
    ``y[i] = c[i] + sum_l a_l (y[i-l] - b[i-l])`` becomes, in the Z domain
    (``x[i-l] -> z^-l x̂(z)``), two linear equations in ``ŷ`` and ``b̂``; solving them
    gives ``b̂ = STF * ĉ + NTF * ê``. (The transforms wear hats: the book keeps ``B`` for the
    binariser.)  For order 1 and 2 this is Eq. (B.4):
    ``STF = 1`` (no delay: the integrator is delay-free) and ``NTF = (1 - z^-1)^order``.
    Any ``order >= 1`` is accepted (the binomial loop of :func:`loop_coefficients`).
    Defined in book section *Delta-sigma modulation of binary latents: gradients and noise shaping →
    Noise shaping*.
    """
    coeffs = loop_coefficients(order)
    Yz, Bz, Cz, Ez = sp.symbols("yhat bhat chat ehat")  # ŷ(z), b̂(z), ĉ(z), ê(z)
    loop = sp.Eq(Yz, Cz + sum(a * Z ** (-l) * (Yz - Bz) for l, a in enumerate(coeffs, start=1)))
    quantizer = sp.Eq(Bz, Yz + Ez)
    sol = sp.solve([loop, quantizer], [Yz, Bz], dict=True)[0]
    b_of = sp.expand(sp.simplify(sol[Bz]))
    stf = sp.simplify(b_of.coeff(Cz))
    ntf = sp.factor(sp.simplify(b_of.coeff(Ez)))
    return stf, ntf


def noise_transfer_function(order: int) -> sp.Expr:
    """NTF(z) of the order-``order`` modulator, in the symbol ``z``: ``(1 - z^-1)^order``.

    Derived, not typed: see :func:`transfer_functions` (Eq. (B.4)). A shortcut for book section
    *Delta-sigma modulation of binary latents: gradients and noise shaping → Noise shaping*; no page
    calls it (tested in ``tests/test_deltasigma.py``).
    """
    return transfer_functions(order)[1]


def signal_transfer_function(order: int) -> sp.Expr:
    """STF(z) of the order-``order`` modulator (equal to 1, Eq. (B.4)).

    A shortcut for book section *Delta-sigma modulation of binary latents: gradients and noise
    shaping → Noise shaping*; no page calls it (tested in ``tests/test_deltasigma.py``).
    """
    return transfer_functions(order)[0]


def ntf_magnitude_squared(order: int) -> sp.Expr:
    """``|NTF(e^{j omega})|^2`` as a real cosine series in ``omega``.

    Computed as ``NTF(e^{j w}) NTF(e^{-j w})``, expanded and rewritten with cosines:
    order 1 gives ``2 - 2 cos w``, order 2 ``6 - 8 cos w + 2 cos 2w``; in general it
    equals ``(2 - 2 cos w)^order = (2 sin(w/2))^(2 order)``.  The constant term is the
    white-noise power gain, the other coefficients are twice the autocorrelation of
    the NTF's impulse response (the NTF of Eq. (B.4)).
    Defined in book section *Delta-sigma modulation of binary latents: gradients and noise shaping →
    Magnitude response and noise power*.
    """
    ntf = noise_transfer_function(order)
    prod = ntf.subs(Z, sp.exp(sp.I * OMEGA)) * ntf.subs(Z, sp.exp(-sp.I * OMEGA))
    return sp.simplify(sp.expand(prod).rewrite(sp.cos))


@cache
def _band_integral(order: int, upper: sp.Expr) -> sp.Expr:
    # (1/2pi) int_{-w_B}^{w_B} |NTF|^2 dw = (1/pi) int_0^{w_B} (2 - 2 cos w)^n dw
    integrand = ntf_magnitude_squared(order)
    return sp.simplify(sp.integrate(integrand, (OMEGA, 0, upper)) / sp.pi)


def noise_power_gain(order: int) -> sp.Expr:
    """White-noise power gain ``(1/2pi) int_{-pi}^{pi} |NTF(e^{jw})|^2 dw`` (exact).

    Equals ``sum_k binomial(n, k)^2 = binomial(2n, n)``: 2 for order 1, 6 for order 2. Derived from
    the NTF of Eq. (B.4). Defined in book section *Delta-sigma modulation of binary latents:
    gradients and noise shaping → Magnitude response and noise power*.
    """
    return sp.nsimplify(_band_integral(_check_order(order), sp.pi))


def in_band_noise_gain(order: int, omega_b: sp.Expr | float | None = None) -> sp.Expr:
    """Fraction of white-noise power left in the band ``|omega| <= omega_B`` after shaping.

    ``(1/2pi) int_{-omega_B}^{omega_B} |NTF(e^{jw})|^2 dw``; with ``omega_b=None`` the
    closed form in the symbol ``omega_B`` is returned, e.g. order 1:
    ``2 (omega_B - sin omega_B) / pi``; order 2:
    ``(6 omega_B - 8 sin omega_B + sin 2 omega_B) / pi``.  ``omega_b = pi`` gives
    :func:`noise_power_gain`.
    Derived from the NTF of Eq. (B.4). Defined in book section *Delta-sigma modulation of
    binary latents: gradients and noise shaping → In-band noise*.
    """
    order = _check_order(order)
    expr = _band_integral(order, OMEGA_B)
    if omega_b is None:
        return expr
    val = sp.sympify(omega_b)
    if val.is_real is False or (val.is_number and not (0 <= float(val) <= float(sp.pi))):
        raise ValueError(f"omega_b must lie in [0, pi], got {omega_b}")
    return sp.simplify(expr.subs(OMEGA_B, val))
