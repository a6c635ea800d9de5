"""Lattice vector quantizers, written by hand, and the numerics of the lattice chapter.

- Fast nearest-point decoders of Conway & Sloane, "Fast quantizing and decoding
  algorithms for lattice quantizers and codes" (IEEE Trans. IT 28(2), 1982) for
  Z^n, A2 (hexagonal), A3* (body-centred cubic), D4 and E8, vectorised in torch
  over a batch ``(..., n)`` and scaled to unit cell volume;
- a brute-force nearest-point search from a generator matrix, to test them;
- Monte Carlo estimates of the normalized second moment G;
- the probability of a hexagonal cell under independent Gaussians, Eq. (10)-(13)
  (Appendix E) of Balcilar et al., "Exploiting Latent Properties to Optimize Neural
  Codecs", with the inner integral in closed form and the outer one by torchquad;
- the monotone map of Theorem 1 (Appendix A) that turns a non-uniform scalar
  quantizer into rounding.

The closed forms live in :mod:`nctutor.symbolic.lattice`.
Chapter *Uniform scalar and lattice vector quantization* (``book/latent/lattice.md``), part *Latent
properties*.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torchquad

__all__ = [
    "A2_SIDE",
    "A3STAR_SCALE",
    "D4_SCALE",
    "LATTICES",
    "MonotoneMap",
    "generator_matrix",
    "hexagon_cell_probability",
    "hexagon_cell_probability_mc",
    "monotone_map",
    "nearest_point_brute_force",
    "short_vectors",
    "normalized_second_moment_mc",
    "quantize",
    "quantize_a2",
    "quantize_a3star",
    "quantize_d4",
    "quantize_e8",
    "quantize_zn",
    "rounding_index",
    "rounding_pmf",
    "scalar_quantizer_index",
    "scalar_quantizer_pmf",
]

LATTICES: tuple[str, ...] = ("Z", "A2", "A3*", "D4", "E8")
"""Lattices with a decoder here; ``"Z"`` means Z^n for any n (Z^1 for the generator)."""

A2_SIDE: float = math.sqrt(2.0 / (3.0 * math.sqrt(3.0)))
"""Side ``a`` of the unit-area regular hexagon, ``3 sqrt(3) a^2 / 2 = 1`` (Appendix B)."""

A3STAR_SCALE: float = 2.0 ** (1.0 / 3.0)
"""Z^3 u (Z^3 + 1/2) has cell volume 1/2; multiplying by ``2^(1/3)`` makes it 1."""

D4_SCALE: float = 2.0 ** (-1.0 / 4.0)
"""D4 = {x in Z^4: sum(x) even} has cell volume 2; multiplying by ``2^(-1/4)`` makes it 1."""


def _check_points(x: torch.Tensor, n: int | None, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: x must be a torch.Tensor, got {type(x)!r}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: x must be a floating-point tensor, got {x.dtype}")
    if x.dim() < 1:
        raise ValueError(f"{name}: x must have shape (..., n), got a 0-d tensor")
    if n is not None and x.shape[-1] != n:
        raise ValueError(f"{name}: the last dimension of x must be {n}, got shape {tuple(x.shape)}")


def _nearer(x: torch.Tensor, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Of two candidate points per row, the one nearer to ``x`` (``p`` on ties)."""
    dp = (x - p).pow(2).sum(-1, keepdim=True)
    dq = (x - q).pow(2).sum(-1, keepdim=True)
    return torch.where(dp <= dq, p, q)


# --------------------------------------------------------------------------------------
# Fast decoders (Conway & Sloane 1982)
# --------------------------------------------------------------------------------------


def quantize_zn(x: torch.Tensor) -> torch.Tensor:
    """Nearest point of Z^n: round every coordinate (cell volume 1, scale factor 1).

    Used through :func:`quantize` in book section *Uniform scalar and lattice vector quantization →
    Fast nearest-point decoders*; no page calls it directly.
    """
    _check_points(x, None, "quantize_zn")
    return torch.round(x)


def _nearest_dn(x: torch.Tensor) -> torch.Tensor:
    """Nearest point of D_n = {v in Z^n : sum(v) even} (Conway & Sloane 1982, Sec. III).

    ``f(x)`` rounds every coordinate; ``g(x)`` is ``f(x)`` with the coordinate
    that is worst rounded (largest ``|x_i - f(x_i)|``) rounded the other way.
    Exactly one of them has an even coordinate sum: that is the nearest point.
    """
    f = torch.round(x)
    delta = x - f
    worst = delta.abs().argmax(dim=-1, keepdim=True)
    step = torch.where(delta.gather(-1, worst) >= 0, 1.0, -1.0).to(x.dtype)
    g = f.scatter_add(-1, worst, step)
    f_is_even = torch.remainder(f.sum(-1, keepdim=True), 2) == 0
    return torch.where(f_is_even, f, g)


def quantize_d4(x: torch.Tensor) -> torch.Tensor:
    """Nearest point of D4 scaled to unit cell volume (points ``D4_SCALE * D4``).

    D4's Voronoi cell is the 24-cell; ``G = 0.0766032`` (Conway & Sloane).
    Used through :func:`quantize` in book section *Uniform scalar and lattice vector quantization →
    Fast nearest-point decoders*; no page calls it directly.
    """
    _check_points(x, 4, "quantize_d4")
    return D4_SCALE * _nearest_dn(x / D4_SCALE)


def quantize_e8(x: torch.Tensor) -> torch.Tensor:
    """Nearest point of E8 = D8 u (D8 + 1/2) (cell volume 1, scale factor 1).

    Decode in both cosets of D8 and keep the nearer point (Conway & Sloane 1982,
    Sec. IV: a lattice that is a union of cosets is decoded coset by coset).
    Used through :func:`quantize` in book section *Uniform scalar and lattice vector quantization →
    Fast nearest-point decoders*; no page calls it directly.
    """
    _check_points(x, 8, "quantize_e8")
    half = torch.full_like(x, 0.5)
    return _nearer(x, _nearest_dn(x), _nearest_dn(x - half) + half)


def quantize_a3star(x: torch.Tensor) -> torch.Tensor:
    """Nearest point of A3* (body-centred cubic) scaled to unit cell volume.

    A3* is similar to Z^3 u (Z^3 + 1/2) (cell volume 1/2): decode each cubic coset by
    rounding and keep the nearer point, then scale by ``A3STAR_SCALE = 2^(1/3)``.
    The cell is the truncated octahedron of Fig. 5b with its square faces normal to
    the axes (edge ``2^(-7/6)``).
    Used through :func:`quantize` in book section *Uniform scalar and lattice vector quantization →
    Fast nearest-point decoders*; no page calls it directly.
    """
    _check_points(x, 3, "quantize_a3star")
    v = x / A3STAR_SCALE
    p = torch.round(v)
    q = torch.round(v - 0.5) + 0.5
    return A3STAR_SCALE * _nearer(v, p, q)


def quantize_a2(x: torch.Tensor) -> torch.Tensor:
    """Nearest point of the hexagonal lattice A2 scaled to unit cell area.

    The cells are the paper's regular hexagons (Fig. 5a): side ``a = A2_SIDE``,
    vertices at ``(+-a, 0)`` and ``(+-a/2, +-sqrt(3) a/2)`` around each lattice point.
    The lattice is the union of two cosets of the rectangular lattice
    ``3a Z x sqrt(3)a Z``: itself and its shift by ``(3a/2, sqrt(3)a/2)``. Each coset
    is decoded by rounding, and the nearer point is kept.
    Defined in book section *Uniform scalar and lattice vector quantization → Fast nearest-point
    decoders*.
    """
    _check_points(x, 2, "quantize_a2")
    a = A2_SIDE
    step = x.new_tensor([3.0 * a, math.sqrt(3.0) * a])
    shift = step / 2
    p = torch.round(x / step) * step
    q = torch.round((x - shift) / step) * step + shift
    return _nearer(x, p, q)


_DECODERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Z": quantize_zn,
    "A2": quantize_a2,
    "A3*": quantize_a3star,
    "D4": quantize_d4,
    "E8": quantize_e8,
}


def _check_name(name: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name)!r}")
    if name not in _DECODERS:
        raise ValueError(f"unknown lattice {name!r}; valid names: {', '.join(LATTICES)}")


def quantize(x: torch.Tensor, name: str) -> torch.Tensor:
    """Nearest point of the unit-volume lattice ``name`` (one of :data:`LATTICES`).

    Defined in book section *Uniform scalar and lattice vector quantization → Fast nearest-point
    decoders*.
    """
    _check_name(name)
    return _DECODERS[name](x)


def generator_matrix(name: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Generator matrix (rows are basis vectors) of the unit-volume lattice ``name``.

    The same lattices, with the same scale, as the decoders; the bases are reduced
    (short, nearly orthogonal vectors) so that the brute-force search can use a small
    neighbourhood. ``"Z"`` gives Z^1; E8 uses its simple roots (all of norm 2).
    Defined in book section *Uniform scalar and lattice vector quantization → Fast nearest-point
    decoders*. Used again in its section *The probability of a hexagonal cell (Appendix E)*.
    """
    _check_name(name)
    if name == "Z":
        rows = [[1.0]]
    elif name == "A2":
        a = A2_SIDE
        rows = [[1.5 * a, math.sqrt(3.0) / 2 * a], [0.0, math.sqrt(3.0) * a]]
    elif name == "A3*":
        s = A3STAR_SCALE / 2
        rows = [[-s, s, s], [s, -s, s], [s, s, -s]]
    elif name == "D4":
        s = D4_SCALE
        rows = [[s, s, 0, 0], [s, -s, 0, 0], [0, s, -s, 0], [0, 0, s, -s]]
    else:  # E8, simple roots in the coordinates of D8 u (D8 + 1/2)
        rows = [[0.5, -0.5, -0.5, -0.5, -0.5, -0.5, -0.5, 0.5], [1, 1, 0, 0, 0, 0, 0, 0]]
        for k in range(6):
            row = [0.0] * 8
            row[k], row[k + 1] = -1.0, 1.0
            rows.append(row)
    return torch.tensor(rows, dtype=dtype)


def short_vectors(generator: torch.Tensor, max_norm: float | None = None) -> torch.Tensor:
    """Integer coordinates ``k`` of the nonzero lattice vectors ``k @ generator`` with
    norm ``<= max_norm`` that are reachable from the basis by adding short vectors.

    Starts from all ``k in {-1, 0, 1}^n`` and adds pairwise sums, keeping those no
    longer than ``max_norm`` (default: the longest basis vector), until nothing new
    appears. For the reduced generators of :func:`generator_matrix` this finds all
    minimal vectors: 2 for Z, 6 for A2, 24 for D4 and 240 for E8 (the tests count them).
    Used by :func:`nearest_point_brute_force` (book section *Uniform scalar and lattice vector
    quantization → Fast nearest-point decoders*); no page calls it (tested in
    ``tests/test_lattice.py``).
    """
    gen = generator.to(torch.float64)
    n = gen.shape[0]
    if max_norm is None:
        max_norm = float(gen.norm(dim=1).max())
    limit = max_norm**2 * (1 + 1e-9)
    box = torch.tensor(list(itertools.product((-1, 0, 1), repeat=n)), dtype=torch.float64)
    found = box[((box @ gen).pow(2).sum(-1) <= limit) & (box.abs().sum(-1) > 0)]
    while True:
        sums = (found[:, None, :] + found[None, :, :]).reshape(-1, n)
        keep = ((sums @ gen).pow(2).sum(-1) <= limit) & (sums.abs().sum(-1) > 0)
        grown = torch.unique(torch.cat([found, sums[keep]]), dim=0)
        if grown.shape[0] == found.shape[0]:
            return found
        found = grown


def nearest_point_brute_force(
    x: torch.Tensor, generator: torch.Tensor, radius: int = 1, max_rounds: int = 50
) -> torch.Tensor:
    """Nearest lattice point by exhaustive search over neighbourhoods (for testing).

    The lattice is ``{k @ generator : k integer}``. Starting from the rounded
    coordinates ``k = round(x @ inverse(generator))``, every point ``(k + d) @ generator``
    with ``d`` in the box ``{-radius..radius}^n`` or among the :func:`short_vectors` is
    compared, and the nearest becomes the new centre; this repeats until the centre is
    the nearest point of its own neighbourhood. The end point is the nearest lattice
    point as soon as the moves contain every Voronoi-relevant vector (the vectors
    whose bisecting hyperplanes bound the cell): no move improving means ``x`` lies in
    the cell of the centre. Nothing here uses the lattice's structure, which is what
    makes it an independent check of the fast decoders.
    Defined in book section *Uniform scalar and lattice vector quantization → Fast nearest-point
    decoders*.
    """
    _check_points(x, None, "nearest_point_brute_force")
    if not isinstance(generator, torch.Tensor) or generator.dim() != 2:
        raise TypeError("generator must be a 2-D torch.Tensor (rows are basis vectors)")
    n = generator.shape[0]
    if generator.shape != (n, n) or x.shape[-1] != n:
        raise ValueError(
            f"generator must be square and match x's last dimension, "
            f"got generator {tuple(generator.shape)} and x {tuple(x.shape)}"
        )
    if not isinstance(radius, int) or radius < 1:
        raise ValueError(f"radius must be a positive int, got {radius!r}")
    box = torch.tensor(list(itertools.product(range(-radius, radius + 1), repeat=n)))
    moves = torch.unique(torch.cat([box.double(), short_vectors(generator)]), dim=0)
    moves = moves.to(x.dtype)  # (m, n) integer coordinates, the zero move included
    stay = int((moves.abs().sum(-1) == 0).nonzero()[0, 0])
    gen = generator.to(x.dtype)
    steps = moves @ gen  # (m, n) the candidate displacements in space
    flat = x.reshape(-1, n)
    k = torch.round(flat @ torch.linalg.inv(gen))
    for _ in range(max_rounds):
        r = flat - k @ gen  # residual to the current centre
        # ||r - step||^2 = ||r||^2 - 2 r.step + ||step||^2; ||r||^2 is common to all.
        dist = steps.pow(2).sum(-1) - 2 * r @ steps.T  # (b, m)
        best = dist.argmin(dim=1)
        improved = dist.gather(1, best[:, None])[:, 0] < dist[:, stay] - 1e-12
        if not improved.any():
            break
        k = k + torch.where(improved[:, None], moves[best], torch.zeros_like(k))
    return (k @ gen).reshape(x.shape)


def normalized_second_moment_mc(
    name: str,
    n_samples: int = 1_000_000,
    seed: int = 0,
    dim: int = 1,
    dtype: torch.dtype = torch.float32,
    return_se: bool = False,
) -> float | tuple[float, float]:
    """Monte Carlo estimate of ``G = (1/n) E||x - Q(x)||^2 / V^(2/n)``.

    ``x = u @ generator`` with ``u`` uniform on ``[0, 1)^n`` is uniform on a fundamental
    parallelepiped; modulo the lattice that is uniform on the Voronoi cell, so the
    error ``x - Q(x)`` is uniform on the cell. ``dim`` is used for ``"Z"`` only.
    float32 is the default (twice as fast); its rounding is far below the Monte
    Carlo error (below ``0.1 %`` at 10^6 samples, see ``return_se``).
    With ``return_se=True`` returns ``(G, se)``, ``se`` the standard error of the estimate
    (sample standard deviation of the per-point values over ``sqrt(n_samples)``).
    Defined in book section *Uniform scalar and lattice vector quantization → Normalized second
    moment and granular gain*.
    """
    _check_name(name)
    if not isinstance(n_samples, int) or n_samples < 2:
        raise ValueError(f"n_samples must be an int >= 2, got {n_samples!r}")
    gen = torch.eye(dim, dtype=dtype) if name == "Z" else generator_matrix(name, dtype)
    n = gen.shape[0]
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_samples, n, generator=g, dtype=dtype) @ gen
    err = x - quantize(x, name)
    volume = torch.linalg.det(gen).abs()
    per_point = err.pow(2).sum(-1) / n / volume ** (2.0 / n)
    estimate = float(per_point.mean())
    if return_se:
        return estimate, float(per_point.double().std() / math.sqrt(n_samples))
    return estimate


# --------------------------------------------------------------------------------------
# Appendix E: probability of a hexagonal cell under independent Gaussians
# --------------------------------------------------------------------------------------


def _normal_cdf(t: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(t / math.sqrt(2.0)))


def hexagon_cell_probability(
    centers: torch.Tensor,
    mu: torch.Tensor | Sequence[float] = (0.0, 0.0),
    sigma: torch.Tensor | Sequence[float] = (1.0, 1.0),
    side: float = A2_SIDE,
    n_points: int = 31,
    paper_eq12: bool = False,
) -> torch.Tensor:
    """Probability of the hexagonal cells around ``centers`` under ``N(mu1, s1) x N(mu2, s2)``.

    Eq. (11): the hexagon of side ``a`` around ``(cx, cy)`` is split into its upper
    and lower halves. For each the inner ``x``-integral is closed form (Eq. (12)):
    ``Phi((cx + a - |t|/sqrt(3) - mu1)/s1) - Phi((cx - a + |t|/sqrt(3) - mu1)/s1)`` at
    height ``t`` above the centre, and the outer integral over ``t`` in ``[0, sqrt(3)a/2]``
    (upper) or ``[-sqrt(3)a/2, 0]`` (lower), Eq. (13), is done with torchquad's
    Gauss-Legendre rule (``n_points`` nodes per half), as the paper's footnote 4 does.

    Defined in book section *Uniform scalar and lattice vector quantization → The probability of a
    hexagonal cell (Appendix E)*.

    Args:
        centers: cell centres, shape ``(..., 2)``.
        mu, sigma: means and standard deviations of the two coordinates, shape ``(2,)``
            or broadcastable to ``centers``.
        side: hexagon side (default: the unit-area hexagon of :func:`quantize_a2`).
        n_points: Gauss-Legendre nodes per half.
        paper_eq12: evaluate the inner integral as printed in Eq. (12), with lower
            limit ``-a - t/sqrt(3)`` (wrong sign), to show the erratum.

    Returns:
        Probabilities of shape ``centers.shape[:-1]``.
    """
    _check_points(centers, 2, "hexagon_cell_probability")
    mu = torch.as_tensor(mu, dtype=centers.dtype)
    sigma = torch.as_tensor(sigma, dtype=centers.dtype)
    if mu.shape[-1:] != (2,) or sigma.shape[-1:] != (2,):
        raise ValueError("mu and sigma must have a last dimension of size 2")
    if (sigma <= 0).any():
        raise ValueError("sigma must be positive")
    if not side > 0:
        raise ValueError(f"side must be positive, got {side}")
    if not isinstance(n_points, int) or n_points < 2:
        raise ValueError(f"n_points must be an int >= 2, got {n_points!r}")
    shape = torch.broadcast_shapes(centers.shape, mu.shape, sigma.shape)[:-1]
    c = centers.expand(*shape, 2).reshape(-1, 2)
    m = mu.expand(*shape, 2).reshape(-1, 2)
    s = sigma.expand(*shape, 2).reshape(-1, 2)
    a, h = side, math.sqrt(3.0) * side / 2

    def integrand(t: torch.Tensor) -> torch.Tensor:  # t: (N, 1) heights -> (N, cells)
        t = t[:, :1]
        half_width = a - t.abs() / math.sqrt(3.0)
        upper_x = c[:, 0] + half_width
        lower_x = c[:, 0] - half_width
        if paper_eq12:  # printed lower limit -a - t/sqrt(3) instead of -a + |t|/sqrt(3)
            lower_x = c[:, 0] - a - t / math.sqrt(3.0)
        inner = _normal_cdf((upper_x - m[:, 0]) / s[:, 0]) - _normal_cdf(
            (lower_x - m[:, 0]) / s[:, 0]
        )
        y = c[:, 1] + t
        density_y = torch.exp(-0.5 * ((y - m[:, 1]) / s[:, 1]) ** 2) / (
            s[:, 1] * math.sqrt(2.0 * math.pi)
        )
        return inner * density_y

    gauss_legendre = torchquad.GaussLegendre()
    total = torch.zeros(c.shape[0], dtype=centers.dtype)
    with warnings.catch_warnings():  # torchquad copies the domain tensor; harmless
        warnings.filterwarnings("ignore", message="To copy construct from a tensor")
        for lo, hi in ((0.0, h), (-h, 0.0)):
            domain = torch.tensor([[lo, hi]], dtype=centers.dtype)
            total = total + gauss_legendre.integrate(
                integrand, dim=1, N=n_points, integration_domain=domain, backend="torch"
            )
    return total.reshape(shape)


def hexagon_cell_probability_mc(
    centers: torch.Tensor,
    mu: torch.Tensor | Sequence[float] = (0.0, 0.0),
    sigma: torch.Tensor | Sequence[float] = (1.0, 1.0),
    side: float = A2_SIDE,
    n_samples: int = 1_000_000,
    seed: int = 0,
) -> torch.Tensor:
    """Monte Carlo version of :func:`hexagon_cell_probability` (one shared mu, sigma).

    Draws ``n_samples`` Gaussian points, quantizes them with the hexagonal lattice of
    the given side (``s * quantize_a2(x / s)``) and counts the hits of each centre.
    The standard error of each estimate is ``sqrt(P (1 - P) / n_samples)``.
    Defined in book section *Uniform scalar and lattice vector quantization → The probability of a
    hexagonal cell (Appendix E)*.
    """
    _check_points(centers, 2, "hexagon_cell_probability_mc")
    mu = torch.as_tensor(mu, dtype=torch.float64)
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    if mu.shape != (2,) or sigma.shape != (2,) or (sigma <= 0).any():
        raise ValueError("mu must have shape (2,) and sigma shape (2,) with positive entries")
    g = torch.Generator().manual_seed(seed)
    pts = mu + sigma * torch.randn(n_samples, 2, generator=g, dtype=torch.float64)
    scale = side / A2_SIDE
    q = scale * quantize_a2(pts / scale)
    flat = centers.reshape(-1, 2).to(torch.float64)
    hits = (q[:, None, :] - flat[None]).abs().amax(-1) < 1e-6 * scale
    return (hits.double().mean(0)).reshape(centers.shape[:-1])


# --------------------------------------------------------------------------------------
# Theorem 1: the monotone map that turns a scalar quantizer into rounding
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonotoneMap:
    """Increasing bijection ``f`` with ``f([t_i, t_(i+1))) = [i - 1/2, i + 1/2)`` (Theorem 1).

    Piecewise linear between the finite knots ``knots_y -> knots_z``. An infinite first
    (last) threshold gets an exponential tail that maps ``(-inf, knots_y[0]]`` onto
    ``(-1/2, knots_z[0]]`` (``[knots_y[-1], inf)`` onto ``[knots_z[-1], K - 1/2)``), so
    that the outer cells stay bounded after the map.
    Returned by :func:`monotone_map`, book section *Uniform scalar and lattice vector quantization →
    Theorem 1: a non-uniform scalar quantizer is rounding after a monotone map*.
    """

    knots_y: torch.Tensor
    knots_z: torch.Tensor
    n_cells: int
    left_tail: bool
    right_tail: bool

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        ky, kz = self.knots_y.to(y.dtype), self.knots_z.to(y.dtype)
        z = _interp(y, ky, kz)
        if self.left_tail:
            left = -0.5 + (kz[0] + 0.5) * torch.exp(torch.clamp(y - ky[0], max=0.0))
            z = torch.where(y < ky[0], left, z)
        if self.right_tail:
            top = self.n_cells - 0.5
            right = top - (top - kz[-1]) * torch.exp(-torch.clamp(y - ky[-1], min=0.0))
            z = torch.where(y > ky[-1], right, z)
        return z

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``f^-1``; maps ``-1/2`` to ``-inf`` and ``K - 1/2`` to ``+inf`` with tails."""
        ky, kz = self.knots_y.to(z.dtype), self.knots_z.to(z.dtype)
        y = _interp(z, kz, ky)
        if self.left_tail:
            left = ky[0] + torch.log(torch.clamp((z + 0.5) / (kz[0] + 0.5), 0.0, 1.0))
            y = torch.where(z < kz[0], left, y)
        if self.right_tail:
            top = self.n_cells - 0.5
            right = ky[-1] - torch.log(torch.clamp((top - z) / (top - kz[-1]), 0.0, 1.0))
            y = torch.where(z > kz[-1], right, y)
        return y


def _interp(v: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation through ``(xs, ys)``, extended linearly outside."""
    if xs.numel() == 1:
        return v - xs[0] + ys[0]
    idx = torch.clamp(torch.searchsorted(xs, v.contiguous(), right=True) - 1, 0, xs.numel() - 2)
    x0, x1, y0, y1 = xs[idx], xs[idx + 1], ys[idx], ys[idx + 1]
    return y0 + (v - x0) * (y1 - y0) / (x1 - x0)


def monotone_map(
    thresholds: Sequence[float] | torch.Tensor,
    levels: Sequence[float] | torch.Tensor | None = None,
) -> MonotoneMap:
    """The map ``f`` of Theorem 1 for the scalar quantizer with these thresholds.

    Defined in book section *Uniform scalar and lattice vector quantization → Theorem 1: a
    non-uniform scalar quantizer is rounding after a monotone map*.

    Args:
        thresholds: ``t_0 < t_1 < ... < t_K`` (``K >= 1`` cells; ``t_0`` may be
            ``-inf`` and ``t_K`` may be ``+inf``). Cell ``i`` is ``[t_i, t_(i+1))``.
        levels: optional reconstruction levels ``c_0 < ... < c_(K-1)`` with
            ``t_i < c_i < t_(i+1)``. Then ``f(c_i) = i`` too (the proof's ordered set
            ``b_0 < c_1 < b_1 < ...`` mapped onto ``1/2, 1, 3/2, ...``), so the decoder's
            ``f^-1(i)`` returns ``c_i``.

    Returns:
        A :class:`MonotoneMap` with ``f(t_i) = i - 1/2`` for every finite ``t_i``.
    """
    t = torch.as_tensor(thresholds, dtype=torch.float64).flatten()
    if t.numel() < 2:
        raise ValueError("thresholds needs at least two entries (one cell)")
    if torch.isnan(t).any():
        raise ValueError("thresholds must not be NaN")
    if not (t[1:] > t[:-1]).all():  # so only t_0 and t_K can be infinite
        raise ValueError("thresholds must be strictly increasing")
    n_cells = t.numel() - 1
    z_of_t = torch.arange(n_cells + 1, dtype=torch.float64) - 0.5
    ys, zs = [t], [z_of_t]
    if levels is not None:
        c = torch.as_tensor(levels, dtype=torch.float64).flatten()
        if c.numel() != n_cells:
            raise ValueError(f"need {n_cells} levels for {n_cells} cells, got {c.numel()}")
        if not ((c > t[:-1]) & (c < t[1:])).all():
            raise ValueError("every level c_i must lie strictly inside its cell (t_i, t_(i+1))")
        ys.append(c)
        zs.append(torch.arange(n_cells, dtype=torch.float64))
    ky, kz = torch.cat(ys), torch.cat(zs)
    finite = torch.isfinite(ky)
    if not finite.any():
        raise ValueError("need at least one finite threshold or level")
    order = torch.argsort(ky[finite])
    return MonotoneMap(
        knots_y=ky[finite][order],
        knots_z=kz[finite][order],
        n_cells=n_cells,
        left_tail=bool(torch.isinf(t[0])),
        right_tail=bool(torch.isinf(t[-1])),
    )


def scalar_quantizer_index(
    y: torch.Tensor, thresholds: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """Index ``i`` of the cell ``[t_i, t_(i+1))`` holding each ``y`` (the non-uniform SQ).

    Defined in book section *Uniform scalar and lattice vector quantization → Theorem 1: a
    non-uniform scalar quantizer is rounding after a monotone map*.
    """
    t = torch.as_tensor(thresholds, dtype=y.dtype).flatten()
    return torch.searchsorted(t[1:-1].contiguous(), y.contiguous(), right=True)


def rounding_index(z: torch.Tensor) -> torch.Tensor:
    """``floor(z + 1/2)``: rounding with the cells ``[i - 1/2, i + 1/2)`` half-open like
    the thresholds' (``torch.round`` rounds half to even, which differs on the boundaries).
    Defined in book section *Uniform scalar and lattice vector quantization → Theorem 1: a
    non-uniform scalar quantizer is rounding after a monotone map*.
    """
    return torch.floor(z + 0.5).long()


def scalar_quantizer_pmf(
    thresholds: Sequence[float] | torch.Tensor, cdf: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """PMF of the non-uniform SQ's indices: ``cdf(t_(i+1)) - cdf(t_i)`` (Appendix A's P(i)).

    Defined in book section *Uniform scalar and lattice vector quantization → Theorem 1: a
    non-uniform scalar quantizer is rounding after a monotone map*.
    """
    t = torch.as_tensor(thresholds, dtype=torch.float64).flatten()
    return cdf(t[1:]) - cdf(t[:-1])


def rounding_pmf(fmap: MonotoneMap, cdf: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """PMF of ``round(f(y))`` for ``y`` with CDF ``cdf`` (Appendix A's P^(u)(i)).

    ``P(round(f(y)) = i) = P(i - 1/2 <= f(y) < i + 1/2) = cdf(f^-1(i + 1/2)) - cdf(f^-1(i - 1/2))``,
    computed through the inverse map only (no thresholds involved).
    Defined in book section *Uniform scalar and lattice vector quantization → Theorem 1: a
    non-uniform scalar quantizer is rounding after a monotone map*.
    """
    edges = torch.arange(fmap.n_cells + 1, dtype=torch.float64) - 0.5
    y = fmap.inverse(edges)
    return cdf(y[1:]) - cdf(y[:-1])
