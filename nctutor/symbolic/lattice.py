"""Uniform scalar and lattice vector quantization, derived in SymPy.

Closed forms of Appendix B (MSE of the interval, the regular hexagon and the
truncated octahedron, Eq. (7)-(9)), Appendix E (the inner integral of a
Gaussian over a hexagon, Eq. (12)) and the change of variables behind
Theorem 1 of Balcilar et al., "Exploiting Latent Properties to Optimize Neural
Codecs" (the latent-properties paper). Every function returns SymPy objects;
the numerical side (decoders, Monte Carlo, quadrature) is in
:mod:`nctutor.quant.lattice`.

Chapter *Uniform scalar and lattice vector quantization* (``book/latent/lattice.md``), part *Latent
properties*.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

__all__ = [
    "LATTICE_NAMES",
    "granular_gain_db",
    "hexagon_area",
    "hexagon_inner_integral",
    "hexagon_inner_integral_paper",
    "hexagon_side",
    "hexagon_upper_half_integral",
    "mse_hexagon",
    "mse_interval",
    "mse_truncated_octahedron",
    "normalized_second_moment",
    "pmf_change_of_variables",
    "sphere_normalized_second_moment",
    "truncated_octahedron_edge",
    "truncated_octahedron_volume",
]

a, u = sp.symbols("a u", positive=True)
x, y, z = sp.symbols("x y z", real=True)
mu = sp.Symbol("mu", real=True)
sigma = sp.Symbol("sigma", positive=True)

LATTICE_NAMES: tuple[str, ...] = ("Z", "A2", "A3*", "D4", "E8", "sphere")
"""Names accepted by :func:`normalized_second_moment` and :func:`granular_gain_db`."""

DIMENSION: dict[str, int] = {"Z": 1, "A2": 2, "A3*": 3, "D4": 4, "E8": 8}


def _as_expr(value: sp.Expr | float | int, name: str) -> sp.Expr:
    if not isinstance(value, (sp.Expr, int, float)):
        raise TypeError(f"{name} must be a SymPy expression or a number, got {type(value)!r}")
    expr = sp.sympify(value)
    if expr.is_number and not expr.is_positive:
        raise ValueError(f"{name} must be positive, got {expr}")
    return expr


# --------------------------------------------------------------------------------------
# Appendix B: mean squared error of the three cells
# --------------------------------------------------------------------------------------


@cache
def mse_interval(width: sp.Expr | float | int = u) -> sp.Expr:
    """MSE of uniform scalar quantization with step ``width``, Eq. (7).

    ``(1/u) * Integral(x**2, (x, -u/2, u/2)) = u**2/12``.
    Defined in book section *Uniform scalar and lattice vector quantization → The MSE of three cells
    (Appendix B)*.
    """
    w = _as_expr(width, "width")
    return sp.simplify(sp.integrate(x**2, (x, -w / 2, w / 2)) / w)


@cache
def hexagon_area(side: sp.Expr | float | int = a) -> sp.Expr:
    """Area of the regular hexagon of side ``side``, computed from the limits of Eq. (8).

    The hexagon has its vertices at ``(+-a, 0)`` and ``(+-a/2, +-sqrt(3) a/2)``
    (Fig. 5a of the paper); the result is ``3*sqrt(3)*a**2/2``.
    Defined in book section *Uniform scalar and lattice vector quantization → The MSE of three cells
    (Appendix B)*.
    """
    s = _as_expr(side, "side")
    h = sp.sqrt(3) * s / 2
    upper = sp.integrate(1, (x, -s + y / sp.sqrt(3), s - y / sp.sqrt(3)), (y, 0, h))
    lower = sp.integrate(1, (x, -s - y / sp.sqrt(3), s + y / sp.sqrt(3)), (y, -h, 0))
    return sp.simplify(upper + lower)


@cache
def hexagon_upper_half_integral(side: sp.Expr | float | int = a) -> sp.Expr:
    """The first integral of Eq. (8): ``(x**2 + y**2)/2`` over the upper half hexagon.

    The paper states ``5*sqrt(3)*a**4/32``.
    Defined in book section *Uniform scalar and lattice vector quantization → The MSE of three cells
    (Appendix B)*.
    """
    s = _as_expr(side, "side")
    h = sp.sqrt(3) * s / 2
    integrand = (x**2 + y**2) / 2
    return sp.simplify(
        sp.integrate(integrand, (x, -s + y / sp.sqrt(3), s - y / sp.sqrt(3)), (y, 0, h))
    )


@cache
def mse_hexagon(side: sp.Expr | float | int = a) -> sp.Expr:
    """Per-dimension MSE of the regular hexagon of side ``side``, Eq. (8): ``5*a**2/24``.

    Both halves of Eq. (8) are integrated (the lower one is not assumed equal to
    the upper one) and divided by the area. For the unit-area cell pass
    ``side=hexagon_side(1)``: ``5*sqrt(3)/108``, the normalized second moment of A2.
    Defined in book section *Uniform scalar and lattice vector quantization → The MSE of three cells
    (Appendix B)*.
    """
    s = _as_expr(side, "side")
    h = sp.sqrt(3) * s / 2
    integrand = (x**2 + y**2) / 2
    upper = sp.integrate(integrand, (x, -s + y / sp.sqrt(3), s - y / sp.sqrt(3)), (y, 0, h))
    lower = sp.integrate(integrand, (x, -s - y / sp.sqrt(3), s + y / sp.sqrt(3)), (y, -h, 0))
    return sp.radsimp(sp.simplify((upper + lower) / hexagon_area(s)))


@cache
def hexagon_side(area: sp.Expr | float | int = u**2) -> sp.Expr:
    """Side of the regular hexagon of the given area: ``a = sqrt(2*area/(3*sqrt(3)))``.

    Defined in book section *Uniform scalar and lattice vector quantization → The MSE of three cells
    (Appendix B)*.
    """
    A = _as_expr(area, "area")
    s = sp.Symbol("s", positive=True)
    (sol,) = sp.solve(sp.Eq(hexagon_area(s), A), s)
    return sp.simplify(sol)


def _octant_pieces(s: sp.Expr) -> list[tuple[sp.Expr, tuple, tuple, tuple]]:
    """Eq. (9)'s octant with its two ``min()`` limits split into plain limits.

    The octant is ``0 <= x, y, z <= s`` (``s = sqrt(2) a``, square faces) cut by
    ``x + y + z <= 3 s / 2`` (hexagonal face). ``min(s, 3s/2 - x)`` switches at
    ``x = s/2``; ``min(s, 3s/2 - x - y)`` switches at ``y = s/2 - x``, which is
    only positive for ``x < s/2``. Returns ``(z-limits, y-limits, x-limits)`` pieces.
    """
    c = 3 * s / 2
    return [
        # x in [0, s/2], y in [0, s/2 - x]: both minima are s (the cube corner).
        ((z, 0, s), (y, 0, s / 2 - x), (x, 0, s / 2)),
        # x in [0, s/2], y in [s/2 - x, s]: the hexagonal face limits z.
        ((z, 0, c - x - y), (y, s / 2 - x, s), (x, 0, s / 2)),
        # x in [s/2, s]: the face limits both y and z.
        ((z, 0, c - x - y), (y, 0, c - x), (x, s / 2, s)),
    ]


@cache
def truncated_octahedron_volume(edge: sp.Expr | float | int = a) -> sp.Expr:
    """Volume of the truncated octahedron of edge ``edge``, from Eq. (9)'s limits.

    Eight times the octant of :func:`_octant_pieces`: ``8*sqrt(2)*a**3``.
    Defined in book section *Uniform scalar and lattice vector quantization → The MSE of three cells
    (Appendix B)*.
    """
    e = _as_expr(edge, "edge")
    s = sp.sqrt(2) * e
    octant = sum(sp.integrate(1, *piece) for piece in _octant_pieces(s))
    return sp.simplify(8 * octant)


@cache
def mse_truncated_octahedron(edge: sp.Expr | float | int = a) -> sp.Expr:
    """Per-dimension MSE of the truncated octahedron of edge ``edge``, Eq. (9): ``19*a**2/48``.

    One octant is integrated (its ``min()`` limits split as in
    :func:`_octant_pieces`), multiplied by 8 and divided by the volume. For the
    unit-volume cell pass ``edge=truncated_octahedron_edge(1)``:
    ``19*2**(2/3)/384 = 19/(192*2**(1/3))``, the normalized second moment of A3*.
    Defined in book section *Uniform scalar and lattice vector quantization → The MSE of three cells
    (Appendix B)*.
    """
    e = _as_expr(edge, "edge")
    s = sp.sqrt(2) * e
    integrand = (x**2 + y**2 + z**2) / 3
    octant = sum(sp.integrate(integrand, *piece) for piece in _octant_pieces(s))
    return sp.simplify(8 * octant / truncated_octahedron_volume(e))


def truncated_octahedron_edge(volume: sp.Expr | float | int = u**3) -> sp.Expr:
    """Edge of the truncated octahedron of the given volume: ``(volume/(8*sqrt(2)))**(1/3)``.

    Defined in book section *Uniform scalar and lattice vector quantization → The MSE of three cells
    (Appendix B)*.
    """
    V = _as_expr(volume, "volume")
    return sp.simplify((V / (8 * sp.sqrt(2))) ** sp.Rational(1, 3))


# --------------------------------------------------------------------------------------
# Normalized second moments and granular gain
# --------------------------------------------------------------------------------------


def sphere_normalized_second_moment(n: int | sp.Expr) -> sp.Expr:
    """Normalized second moment of the ``n``-ball: ``Gamma(n/2+1)**(2/n) / ((n+2)*pi)``.

    No cell of volume V has a smaller second moment than the ball of volume V,
    so this is a lower bound on G for every lattice in dimension ``n`` (Conway &
    Sloane, *Sphere Packings, Lattices and Groups*, Ch. 2, Eq. (86)); it
    decreases to ``1/(2*pi*e)`` as ``n -> oo``.
    Defined in book section *Uniform scalar and lattice vector quantization → Normalized second
    moment and granular gain*.
    """
    if isinstance(n, int) and n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    n = sp.sympify(n)
    return sp.gamma(n / 2 + 1) ** (2 / n) / ((n + 2) * sp.pi)


@cache
def normalized_second_moment(name: str) -> sp.Expr:
    """Normalized second moment ``G = (1/n) E||x - Q(x)||^2 / V**(2/n)`` of a lattice.

    - ``"Z"``: ``1/12`` (:func:`mse_interval` at unit step);
    - ``"A2"``: ``5/(36*sqrt(3))`` (:func:`mse_hexagon` at unit area);
    - ``"A3*"``: ``19/(192*2**(1/3))`` (:func:`mse_truncated_octahedron` at unit volume);
    - ``"D4"``: ``13/(120*sqrt(2)) = 0.0766032...`` and
    - ``"E8"``: ``929/12960 = 0.0716821...``, both from Conway & Sloane, *Voronoi
      regions of lattices, second moments of polytopes, and quantization*, IEEE
      Trans. IT 28(2), 1982, listed in *Sphere Packings, Lattices and Groups*,
      Table 2.3 (0.0766032 and 0.0716821);
    - ``"sphere"``: ``1/(2*pi*e)``, the limit of the ball bound for ``n -> oo``.

    Defined in book section *Uniform scalar and lattice vector quantization → Normalized second
    moment and granular gain*.

    Raises:
        ValueError: for a name not in :data:`LATTICE_NAMES`.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name)!r}")
    if name == "Z":
        return mse_interval(1)
    if name == "A2":
        return sp.radsimp(mse_hexagon(hexagon_side(1)))
    if name == "A3*":
        return sp.simplify(mse_truncated_octahedron(truncated_octahedron_edge(1)))
    if name == "D4":
        return sp.Rational(13, 120) / sp.sqrt(2)
    if name == "E8":
        return sp.Rational(929, 12960)
    if name == "sphere":
        return 1 / (2 * sp.pi * sp.E)
    raise ValueError(f"unknown lattice {name!r}; valid names: {', '.join(LATTICE_NAMES)}")


def granular_gain_db(name: str) -> sp.Expr:
    """Granular gain over scalar quantization in dB: ``10*log10(G(Z)/G(name))``.

    At the same cell volume (so the same rate under a uniform source, Appendix B)
    the lattice reduces the MSE by this many dB; the ``"sphere"`` entry,
    ``10*log10(pi*e/6) = 1.53 dB``, is the most any lattice can give.
    Defined in book section *Uniform scalar and lattice vector quantization → Normalized second
    moment and granular gain*.
    """
    ratio = normalized_second_moment("Z") / normalized_second_moment(name)
    return 10 * sp.log(sp.simplify(ratio), 10)


# --------------------------------------------------------------------------------------
# Appendix E: inner integral of a Gaussian over a horizontal slice of the hexagon
# --------------------------------------------------------------------------------------


def _gaussian_pdf(t: sp.Expr, m: sp.Expr, s: sp.Expr) -> sp.Expr:
    return sp.exp(-((t - m) ** 2) / (2 * s**2)) / (sp.sqrt(2 * sp.pi) * s)


@cache
def hexagon_inner_integral(side: sp.Expr = a) -> sp.Expr:
    """Inner integral of Eq. (11)-(12), upper half, with the *correct* limits.

    ``Integral(N(x; mu, sigma), (x, -a + y/sqrt(3), a - y/sqrt(3)))`` evaluated by
    SymPy: ``erf((a - y/sqrt(3) - mu)/(sqrt(2) sigma))/2``
    ``- erf((-a + y/sqrt(3) - mu)/(sqrt(2) sigma))/2``.
    For the lower half replace ``y`` by ``-y``.
    Defined in book section *Uniform scalar and lattice vector quantization → The probability of a
    hexagonal cell (Appendix E)*.
    """
    s = _as_expr(side, "side")
    lo, hi = -s + y / sp.sqrt(3), s - y / sp.sqrt(3)
    return sp.simplify(sp.integrate(_gaussian_pdf(x, mu, sigma), (x, lo, hi)))


def hexagon_inner_integral_paper(side: sp.Expr = a) -> sp.Expr:
    """Eq. (12) exactly as printed: the erf antiderivative evaluated between
    ``x = -a - y/sqrt(3)`` and ``x = a - y/sqrt(3)``.

    The printed lower limit has the wrong sign of ``y/sqrt(3)`` (the integral's
    own lower limit is ``-a + y/sqrt(3)``); kept to show the error in the book.
    Defined in book section *Uniform scalar and lattice vector quantization → The probability of a
    hexagonal cell (Appendix E)* (its errata box).
    """
    s = _as_expr(side, "side")
    antiderivative = sp.erf(sp.sqrt(2) * (-mu + x) / (2 * sigma)) / 2
    return antiderivative.subs(x, s - y / sp.sqrt(3)) - antiderivative.subs(x, -s - y / sp.sqrt(3))


# --------------------------------------------------------------------------------------
# Theorem 1: the PMF is invariant under the monotone map
# --------------------------------------------------------------------------------------


@cache
def pmf_change_of_variables() -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]:
    """The PMF identity in the proof of Theorem 1 (Appendix A), for one cell.

    A cell ``[t0, t1)`` of a non-uniform scalar quantizer is mapped by the
    increasing affine piece ``f(y) = i - 1/2 + (y - t0)/(t1 - t0)`` onto
    ``[i - 1/2, i + 1/2)``. With ``y ~ N(mu, sigma)`` the density of ``z = f(y)`` is
    ``p_z(z) = p_y(f^-1(z)) * (f^-1)'(z)`` (the Jacobian factor that the paper's
    notation ``p(f^-1(z)) df^-1(z)`` carries implicitly). Its antiderivative is the
    CDF of ``y`` at ``f^-1(z)``, ``F_z(z) = (1 + erf((f^-1(z) - mu)/(sqrt(2) sigma)))/2``.

    Defined in book section *Uniform scalar and lattice vector quantization → Theorem 1: a
    non-uniform scalar quantizer is rounding after a monotone map*.

    Returns:
        ``(p_z, F_z, P_uniform, P_nonuniform)`` where ``P_uniform = F_z(i + 1/2) -
        F_z(i - 1/2)`` is the rounding PMF in the new space and ``P_nonuniform`` is
        SymPy's integral of ``p_y`` over ``[t0, t1]``. ``diff(F_z, z) - p_z`` and
        ``P_uniform - P_nonuniform`` both simplify to 0.
    """
    t0, t1 = sp.symbols("t0 t1", real=True)
    i = sp.Symbol("i", integer=True)
    zz = sp.Symbol("z", real=True)
    half = sp.Rational(1, 2)
    f_inv = t0 + (zz - (i - half)) * (t1 - t0)
    p_z = _gaussian_pdf(f_inv, mu, sigma) * sp.diff(f_inv, zz)
    F_z = (1 + sp.erf((f_inv - mu) / (sp.sqrt(2) * sigma))) / 2
    p_uniform = F_z.subs(zz, i + half) - F_z.subs(zz, i - half)
    p_nonuniform = sp.integrate(_gaussian_pdf(y, mu, sigma), (y, t0, t1))
    return p_z, F_z, sp.simplify(p_uniform), sp.simplify(p_nonuniform)
