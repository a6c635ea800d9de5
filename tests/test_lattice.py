"""Tests of nctutor.symbolic.lattice and nctutor.quant.lattice (latent-properties paper,
Theorem 1, Appendix B and Appendix E)."""

from __future__ import annotations

import math

import pytest
import scipy.integrate
import sympy as sp
import torch

from nctutor.quant import lattice as Q
from nctutor.symbolic import lattice as S

a, u = S.a, S.u


# --- Appendix B: exact integrals ------------------------------------------------------


def test_mse_interval_eq7():
    assert sp.simplify(S.mse_interval() - u**2 / 12) == 0
    assert S.mse_interval(1) == sp.Rational(1, 12)


def test_hexagon_eq8_pieces_and_total():
    assert sp.simplify(S.hexagon_area() - 3 * sp.sqrt(3) * a**2 / 2) == 0
    # The paper's intermediate value for the upper half.
    assert sp.simplify(S.hexagon_upper_half_integral() - 5 * sp.sqrt(3) * a**4 / 32) == 0
    assert sp.simplify(S.mse_hexagon() - 5 * a**2 / 24) == 0
    assert sp.simplify(S.hexagon_side(u**2) - sp.sqrt(2) * u / sp.sqrt(3 * sp.sqrt(3))) == 0
    at_area_u2 = S.mse_hexagon(S.hexagon_side(u**2))
    assert sp.simplify(at_area_u2 - 5 * sp.sqrt(3) * u**2 / 108) == 0


def test_truncated_octahedron_eq9():
    assert sp.simplify(S.truncated_octahedron_volume() - 8 * sp.sqrt(2) * a**3) == 0
    assert sp.simplify(S.mse_truncated_octahedron() - sp.Rational(19, 48) * a**2) == 0
    at_vol_u3 = S.mse_truncated_octahedron(S.truncated_octahedron_edge(u**3))
    assert sp.simplify(at_vol_u3 - 19 * 2 ** sp.Rational(2, 3) * u**2 / 384) == 0
    paper_form = sp.Rational(19, 48) / (8 * sp.sqrt(2)) ** sp.Rational(2, 3) * u**2
    assert sp.simplify(at_vol_u3 - paper_form) == 0


def test_ordering_of_appendix_b():
    vals = [float(S.normalized_second_moment(n)) for n in ("Z", "A2", "A3*", "D4", "E8")]
    assert vals == sorted(vals, reverse=True)
    # The paper's rounded values 0.0833, 0.0801 (truncated; 0.0802 rounded), 0.0785.
    assert abs(vals[0] - 0.0833) < 5e-5 and abs(vals[2] - 0.0785) < 5e-5
    assert 0.0801 < vals[1] < 0.0802


def test_normalized_second_moments_exact():
    G = S.normalized_second_moment
    assert G("Z") == sp.Rational(1, 12)
    assert sp.simplify(G("A2") - 5 / (36 * sp.sqrt(3))) == 0
    assert sp.simplify(G("A3*") - 19 / (192 * 2 ** sp.Rational(1, 3))) == 0
    # Conway & Sloane, SPLAG Table 2.3 (7 digits).
    assert abs(float(G("D4")) - 0.0766032) < 5e-8
    assert abs(float(G("E8")) - 0.0716821) < 5e-8
    assert sp.simplify(G("sphere") - 1 / (2 * sp.pi * sp.E)) == 0
    # The ball bound: n=1 is the interval, n=2 the disc 1/(4 pi), and it tends to 1/(2 pi e).
    assert S.sphere_normalized_second_moment(1) == sp.Rational(1, 12)
    assert sp.simplify(S.sphere_normalized_second_moment(2) - 1 / (4 * sp.pi)) == 0
    for name, n in (("A2", 2), ("A3*", 3), ("D4", 4), ("E8", 8)):
        assert float(G(name)) > float(S.sphere_normalized_second_moment(n))
    balls = [float(S.sphere_normalized_second_moment(n)) for n in (1, 2, 3, 4, 8, 24, 100)]
    assert balls == sorted(balls, reverse=True)
    assert all(b > float(G("sphere")) for b in balls)
    assert balls[-1] / float(G("sphere")) - 1 < 0.05


def test_granular_gain_db():
    assert float(S.granular_gain_db("Z")) == 0.0
    assert abs(float(S.granular_gain_db("A2")) - 0.1671) < 1e-4
    assert abs(float(S.granular_gain_db("A3*")) - 0.2571) < 1e-4
    assert abs(float(S.granular_gain_db("E8")) - 0.6541) < 1e-4
    assert sp.simplify(S.granular_gain_db("sphere") - 10 * sp.log(sp.pi * sp.E / 6, 10)) == 0


def test_unknown_names_rejected():
    with pytest.raises(ValueError, match="valid names: Z, A2, A3\\*, D4, E8, sphere"):
        S.normalized_second_moment("A4")
    with pytest.raises(TypeError):
        S.normalized_second_moment(2)
    with pytest.raises(ValueError, match="valid names"):
        Q.quantize(torch.zeros(3, 2), "hex")
    with pytest.raises(ValueError, match="positive"):
        S.mse_interval(-1)
    with pytest.raises(ValueError, match="last dimension"):
        Q.quantize_e8(torch.zeros(5, 4))
    with pytest.raises(TypeError, match="floating-point"):
        Q.quantize_d4(torch.zeros(5, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="match x"):
        Q.nearest_point_brute_force(torch.zeros(3, 2), Q.generator_matrix("D4"))


# --- decoders --------------------------------------------------------------------------


@pytest.mark.parametrize("name", Q.LATTICES)
def test_decoders_agree_with_brute_force(name):
    gen = Q.generator_matrix(name)
    n = gen.shape[0]
    g = torch.Generator().manual_seed(1)
    x = 3.0 * torch.randn(300, n, generator=g, dtype=torch.float64)
    fast = Q.quantize(x, name)
    slow = Q.nearest_point_brute_force(x, gen)
    # Output is a lattice point (integer coordinates in the generator basis) ...
    k = fast @ torch.linalg.inv(gen)
    assert torch.allclose(k, k.round(), atol=1e-9)
    # ... and the same point as the brute-force search.
    torch.testing.assert_close(fast, slow, atol=1e-9, rtol=0)
    # Unit cell volume, as documented.
    assert abs(abs(torch.linalg.det(gen).item()) - 1.0) < 1e-12
    # Batch shape (..., n) is kept.
    assert Q.quantize(x.reshape(3, 100, n), name).shape == (3, 100, n)


def test_short_vectors_are_the_minimal_vectors():
    counts = {name: Q.short_vectors(Q.generator_matrix(name)).shape[0] for name in Q.LATTICES}
    assert counts == {"Z": 2, "A2": 6, "A3*": 8, "D4": 24, "E8": 240}


@pytest.mark.parametrize("name", Q.LATTICES)
def test_monte_carlo_normalized_second_moment(name):
    g_mc = Q.normalized_second_moment_mc(name, n_samples=1_000_000, seed=0)
    g_exact = float(S.normalized_second_moment(name))
    assert abs(g_mc / g_exact - 1) < 0.005


def test_monte_carlo_standard_error():
    # Z: the squared error of U(-1/2, 1/2) has relative std sqrt(E e^4 / (E e^2)^2 - 1) = sqrt(4/5)
    g_mc, se = Q.normalized_second_moment_mc("Z", n_samples=200_000, seed=1, return_se=True)
    assert abs(se / g_mc - (0.8**0.5) / 200_000**0.5) < 0.02 * se / g_mc
    assert abs(g_mc - 1 / 12) < 4 * se  # fails with probability ~1e-4 under the null
    with pytest.raises(ValueError, match="n_samples"):
        Q.normalized_second_moment_mc("Z", n_samples=1)


def test_monte_carlo_zn_is_dimension_free():
    assert abs(Q.normalized_second_moment_mc("Z", 1_000_000, dim=3) * 12 - 1) < 0.005


# --- Appendix E: hexagon probability ----------------------------------------------------


def test_inner_integral_eq12_sign():
    y, mu, sigma = S.y, S.mu, S.sigma
    correct = S.hexagon_inner_integral()
    printed = S.hexagon_inner_integral_paper()
    # Correct limits: derivative w.r.t. the upper limit is the density; the two agree at y = 0 ...
    assert sp.simplify((correct - printed).subs(y, 0)) == 0
    # ... but not above it: the printed lower limit -a - y/sqrt(3) is the wrong one.
    vals = {a: 1.0, mu: 0.1, sigma: 0.7, y: 0.5}
    assert abs(float((correct - printed).subs(vals))) > 1e-2

    def pdf(t: float) -> float:
        return math.exp(-((t - 0.1) ** 2) / (2 * 0.7**2)) / (math.sqrt(2 * math.pi) * 0.7)

    reference, _ = scipy.integrate.quad(pdf, -1.0 + 0.5 / math.sqrt(3), 1.0 - 0.5 / math.sqrt(3))
    assert abs(float(correct.subs(vals)) - reference) < 1e-12


def test_hexagon_probability_quadrature_vs_monte_carlo():
    gen = Q.generator_matrix("A2")
    centers = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 1], [2, -1]], dtype=torch.float64) @ gen
    mu, sigma = (0.3, -0.2), (0.6, 0.9)
    p_quad = Q.hexagon_cell_probability(centers, mu, sigma)
    n = 400_000
    p_mc = Q.hexagon_cell_probability_mc(centers, mu, sigma, n_samples=n, seed=3)
    # 4 standard errors of the Monte Carlo estimate (plus a hair for quadrature).
    tol = 4 * torch.sqrt(p_quad * (1 - p_quad) / n) + 1e-6
    assert (p_quad - p_mc).abs().le(tol).all(), (p_quad, p_mc)


def test_hexagon_probabilities_sum_to_one_and_paper_eq12_does_not():
    gen = Q.generator_matrix("A2")
    r = torch.arange(-12, 13, dtype=torch.float64)
    k = torch.stack(torch.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2)
    centers = k @ gen
    p = Q.hexagon_cell_probability(centers, (0.1, 0.2), (1.0, 1.5))
    assert abs(p.sum().item() - 1.0) < 1e-9
    assert (p >= 0).all()
    # The printed Eq. (12) integrates over a region of area 7/6 of the hexagon:
    # the probabilities then sum to 7/6 for a wide Gaussian.
    p_paper = Q.hexagon_cell_probability(centers, (0.1, 0.2), (1.0, 1.5), paper_eq12=True)
    assert abs(p_paper.sum().item() - 7 / 6) < 1e-6


def test_hexagon_probability_argument_checks():
    with pytest.raises(ValueError, match="sigma must be positive"):
        Q.hexagon_cell_probability(torch.zeros(1, 2, dtype=torch.float64), (0, 0), (1, -1))
    with pytest.raises(ValueError, match="last dimension"):
        Q.hexagon_cell_probability(torch.zeros(1, 3, dtype=torch.float64))


# --- Theorem 1 -------------------------------------------------------------------------

THRESHOLDS = [-math.inf, -1.7, -0.6, 0.1, 0.5, 1.4, 2.8, math.inf]
LEVELS = [-2.3, -1.0, -0.2, 0.3, 0.9, 2.0, 3.5]


def test_pmf_change_of_variables_symbolic():
    p_z, F_z, p_uniform, p_nonuniform = S.pmf_change_of_variables()
    assert sp.simplify(sp.diff(F_z, sp.Symbol("z", real=True)) - p_z) == 0
    assert sp.simplify(p_uniform - p_nonuniform) == 0


@pytest.mark.parametrize("levels", [None, LEVELS])
def test_theorem1_monotone_map(levels):
    normal = torch.distributions.Normal(torch.tensor(0.3, dtype=torch.float64), 1.2)
    f = Q.monotone_map(THRESHOLDS, levels)
    # f maps every finite threshold t_i to i - 1/2.
    t_inner = torch.tensor(THRESHOLDS[1:-1], dtype=torch.float64)
    torch.testing.assert_close(f(t_inner), torch.arange(1, 7, dtype=torch.float64) - 0.5)
    # Exact PMF equality through the CDF (the rounding PMF is computed from f^-1 only).
    p_sq = Q.scalar_quantizer_pmf(THRESHOLDS, normal.cdf)
    p_round = Q.rounding_pmf(f, normal.cdf)
    torch.testing.assert_close(p_round, p_sq, atol=1e-12, rtol=0)
    assert abs(p_sq.sum().item() - 1) < 1e-12
    # By sampling: every sample gets the same index from both quantizers.
    y = normal.sample((200_000,))
    assert torch.equal(Q.scalar_quantizer_index(y, THRESHOLDS), Q.rounding_index(f(y)))
    # f is increasing and invertible.
    ys = torch.sort(y[:5000]).values
    assert (f(ys)[1:] >= f(ys)[:-1]).all()
    torch.testing.assert_close(f.inverse(f(ys)), ys, atol=1e-9, rtol=0)
    if levels is not None:  # the decoder's f^-1(i) is the reconstruction level c_i
        torch.testing.assert_close(
            f.inverse(torch.arange(7, dtype=torch.float64)),
            torch.tensor(LEVELS, dtype=torch.float64),
        )


def test_monotone_map_argument_checks():
    with pytest.raises(ValueError, match="strictly increasing"):
        Q.monotone_map([0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="inside its cell"):
        Q.monotone_map([0.0, 1.0, 2.0], levels=[0.5, 2.5])
    with pytest.raises(ValueError, match="need 2 levels"):
        Q.monotone_map([0.0, 1.0, 2.0], levels=[0.5])
    with pytest.raises(ValueError, match="NaN"):
        Q.monotone_map([0.0, math.nan, 2.0])


# --- found by mutation testing (.ci/mutmut.sh): what the tests above never looked at -----

DECODER_NAMES = {"Z": "quantize_zn", "A2": "quantize_a2", "A3*": "quantize_a3star",
                 "D4": "quantize_d4", "E8": "quantize_e8"}


@pytest.mark.parametrize("name", Q.LATTICES)
def test_decoders_work_point_by_point_whatever_the_batch_shape(name):
    n = Q.generator_matrix(name).shape[0]
    g = torch.Generator().manual_seed(2)
    x = 3.0 * torch.randn(4, 50, n, generator=g, dtype=torch.float64)
    flat = Q.quantize(x.reshape(200, n), name)
    assert torch.equal(Q.quantize(x, name), flat.reshape(4, 50, n))  # (B, N, n) as (B·N, n)
    assert torch.equal(Q.quantize(x[0, 0], name), flat[0])  # a single point of shape (n,)
    decoder = DECODER_NAMES[name]
    not_a_tensor = rf"^{decoder}: x must be a torch.Tensor, got <class 'list'>"
    with pytest.raises(TypeError, match=not_a_tensor):
        Q.quantize([0.5] * n, name)
    with pytest.raises(ValueError, match=rf"^{decoder}: x must have shape \(\.\.\., n\)"):
        Q.quantize(torch.tensor(0.5, dtype=torch.float64), name)
    if n > 1:  # Z^n takes any n; the others only their own
        with pytest.raises(ValueError, match=rf"^{decoder}: the last dimension of x must be {n}, "
                                             rf"got shape \(5, {n + 1}\)"):
            Q.quantize(torch.zeros(5, n + 1), name)


def test_lattice_names_are_checked_with_a_clear_message():
    with pytest.raises(TypeError, match="^name must be a str, got <class 'int'>"):
        Q.quantize(torch.zeros(3, 2), 2)
    with pytest.raises(ValueError, match=r"^unknown lattice 'hex'; valid names: Z, A2, A3\*, D4, "
                                         r"E8$"):
        Q.quantize(torch.zeros(3, 2), "hex")


def test_ties_between_cosets_keep_the_first():
    """A point halfway between the two cosets' candidates gets the first one (``_nearer``'s
    documented rule), so that a decoder is a function of its input alone."""
    x = torch.full((3,), 0.25, dtype=torch.float64) * Q.A3STAR_SCALE  # exact: 0.25 is 2^-2
    assert torch.equal(Q.quantize(x, "A3*"), torch.zeros(3, dtype=torch.float64))  # not (½,½,½)·s
    e8 = torch.full((8,), 0.25, dtype=torch.float64)  # as near to 0 as to (½, …, ½)
    assert torch.equal(Q.quantize(e8, "E8"), torch.zeros(8, dtype=torch.float64))


def test_scalar_quantizer_cells_are_half_open_in_the_input_precision():
    """A value equal to a threshold ``t_i`` lies in the cell ``[t_i, t_(i+1))`` above it, also
    when the thresholds are Python floats that float32 could not hold (0.1)."""
    y = torch.tensor(THRESHOLDS[1:-1], dtype=torch.float64)
    assert Q.scalar_quantizer_index(y, THRESHOLDS).tolist() == [1, 2, 3, 4, 5, 6]
    assert Q.scalar_quantizer_index(y - 1e-12, THRESHOLDS).tolist() == [0, 1, 2, 3, 4, 5]
