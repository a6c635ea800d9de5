"""Tests of nctutor.symbolic.rounding: bin probability == noisy density, exactly (Eq. 17-18)."""

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import sympy as sp

from nctutor.symbolic import rounding as r


def test_gaussian_bin_integral_equals_convolution_exactly():
    assert r.verify_bin_equals_noisy_density("gaussian") == {"all": True}
    assert sp.simplify(r.rounded_pmf("gaussian") - r.noisy_density("gaussian").subs(r.X, r.Q)) == 0


def test_laplace_bin_integral_equals_convolution_in_every_region():
    assert r.verify_bin_equals_noisy_density("laplace") == {
        "left": True, "right": True, "middle": True
    }


def test_gaussian_closed_form_uses_erf():
    assert r.rounded_pmf("gaussian").has(sp.erf)


@pytest.mark.parametrize(
    ("q", "mu", "sigma"), [(0, 0.0, 1.0), (2, 0.3, 0.7), (-3, 1.2, 2.5), (5, -0.4, 0.2)]
)
def test_gaussian_pmf_matches_scipy_cdf_difference(q, mu, sigma):
    exact = float(r.rounded_pmf("gaussian").subs({r.Q: q, r.MU: mu, r.SIGMA: sigma}).evalf(50))
    ref = scipy.stats.norm(mu, sigma)
    lo, hi = q - 0.5, q + 0.5  # survival functions above the mean keep the far tail exact
    expected = ref.sf(lo) - ref.sf(hi) if lo >= mu else ref.cdf(hi) - ref.cdf(lo)
    assert expected > 0
    assert exact == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    ("q", "mu", "b"),
    [(3, 0.0, 1.0), (-2, 0.0, 0.5), (0, 0.2, 1.3), (1, 0.7, 0.4), (0, -0.45, 2.0)],
)
def test_laplace_pmf_and_noisy_density_match_quadrature(q, mu, b):
    vals = {r.Q: q, r.X: q, r.MU: mu, r.B: b}
    pmf = float(r.rounded_pmf("laplace").subs(vals))
    noisy = float(r.noisy_density("laplace").subs(vals))
    # the convolution integral int p(t) U(q - t) dt, by quadrature on the box's support
    quad, _ = scipy.integrate.quad(
        lambda t: scipy.stats.laplace(mu, b).pdf(t), q - 0.5, q + 0.5, points=[mu]
    )
    ref = scipy.stats.laplace(mu, b)
    assert pmf == pytest.approx(ref.cdf(q + 0.5) - ref.cdf(q - 0.5), rel=1e-12)
    assert noisy == pytest.approx(quad, rel=1e-9)


def test_laplace_pmf_sums_to_one():
    f = sp.lambdify((r.Q, r.MU, r.B), r.rounded_pmf("laplace"), "numpy")
    k = np.arange(-200, 201)
    assert np.sum([f(int(x), 0.3, 1.7) for x in k]) == pytest.approx(1.0, abs=1e-12)


def test_differential_entropies():
    h_g = r.differential_entropy("gaussian")
    h_l = r.differential_entropy("laplace")
    assert sp.simplify(h_g - sp.log(2 * sp.pi * sp.E * r.SIGMA**2, 2) / 2) == 0
    assert sp.simplify(h_l - sp.log(2 * sp.E * r.B, 2)) == 0
    assert float(h_g.subs(r.SIGMA, 1.7)) == pytest.approx(
        scipy.stats.norm(0, 1.7).entropy() / np.log(2), rel=1e-12
    )
    assert float(h_l.subs(r.B, 0.6)) == pytest.approx(
        scipy.stats.laplace(0, 0.6).entropy() / np.log(2), rel=1e-12
    )


@pytest.mark.parametrize("bad", ["cauchy", "Gauss", ""])
def test_unknown_density_raises(bad):
    with pytest.raises(ValueError, match="unknown density"):
        r.rounded_pmf(bad)
    with pytest.raises(ValueError, match="unknown density"):
        r.noisy_density(bad)


def test_density_must_be_a_string():
    with pytest.raises(TypeError):
        r.density(3)
