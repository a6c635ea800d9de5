"""Tests of nctutor.symbolic.kkt (Balcilar et al., Theorem 2 and Appendix C)."""

import numpy as np
import pytest
import sympy as sp

from nctutor.symbolic import kkt

LAM, S, G, SY = sp.symbols("lambda s g sigma_y", positive=True)


# ----------------------------------------------------------------- Theorem 2, Appendix C


def test_weights_sum_to_one_and_ratio_is_lambda():
    a1, a2, a3 = kkt.multiobjective_weights()
    assert sp.simplify(a1 + a2 + a3 - 1) == 0
    assert sp.simplify(a3 / a2 - LAM) == 0
    assert a1 == a2
    with pytest.raises(ValueError, match="positive"):
        kkt.multiobjective_weights(-1)


def test_stationarity_gradients_are_opposite():
    sc = kkt.stationarity_conditions()
    ob = kkt.appendix_c_objectives()
    y = ob["y"]
    d = sp.Function("d")
    grad_rate = sp.diff(ob["L2"], y)
    assert sc["y_solved"].lhs == grad_rate
    assert sp.simplify(sc["y_solved"].rhs + LAM * sp.diff(d(y), y)) == 0
    # Eq. (4) times (2 + lambda) is exactly dR/dy + lambda dD/dy
    assert sp.simplify(sc["y"].lhs * (2 + LAM) - (grad_rate + LAM * sp.diff(d(y), y))) == 0
    # Eq. (3): the side-rate and main-rate gradients w.r.t. z cancel with equal weights
    z = ob["z"]
    eq3 = sp.diff(ob["L1"], z) + sp.diff(ob["L2"], z)
    assert sp.simplify(sc["z"].lhs * (2 + LAM) - eq3) == 0


def test_as_printed_appendix_gives_wrong_sign_and_factor():
    ob = kkt.appendix_c_objectives(as_printed=True)
    y, z = ob["y"], ob["z"]
    P = sp.Function("P_h")(y, z)
    assert ob["L2"] == -sp.log(sp.log(P))
    printed = kkt.stationarity_conditions(as_printed=True)["y_solved"]
    # d/dy[-log log P] = -(P'/P) / log P: off by the factor 1/log P, and the sign of L3 flips
    assert sp.simplify(printed.lhs - (-sp.diff(P, y) / P) / sp.log(P)) == 0
    assert sp.simplify(printed.rhs - LAM * sp.diff(sp.Function("d")(y), y)) == 0
    # -log(log p) is not real for a probability p < 1
    assert sp.im(sp.N(-sp.log(sp.log(sp.Rational(1, 2))))) != 0


# ----------------------------------------------------------------- the toy codec


def test_per_sample_optimum_makes_gradients_cancel():
    ystar = kkt.per_sample_optimum(G, SY, LAM)
    c = kkt.toy_codec(1, G, SY, LAM)
    total = (sp.diff(c["R"], c["yhat"]) + LAM * sp.diff(c["D"], c["yhat"])).subs(c["yhat"], ystar)
    assert sp.simplify(total) == 0
    w_star = sp.simplify(ystar / c["x"])
    assert sp.simplify(w_star - kkt.amortised_encoder(G, S, SY, LAM)) == 0
    # without quantization the gradients at y* are exactly opposite: correlation -1
    corr = kkt.gradient_correlation(w_star, G, S, SY, LAM, noise_var=0)
    assert sp.simplify(corr + 1) == 0


def test_amortised_correlation_closed_form():
    ac = kkt.amortised_correlation(G, S, SY, LAM)
    assert sp.simplify(ac["corr"] - ac["corr_direct"]) == 0
    # at the amortised encoder the sum of the gradients is (1/(sigma_y^2 ln2) + 2 lambda g^2) u
    c = kkt.toy_codec(ac["w"], G, SY, LAM)
    total = c["dR"] + LAM * c["dD"]
    assert sp.simplify(total - (1 / (SY**2 * sp.log(2)) + 2 * LAM * G**2) * c["u"]) == 0
    # a partial correlation, strictly between -1 and 1 for these numbers
    val = float(ac["corr"].subs({G: 0.5, S: 4, SY: 2, LAM: 1}))
    assert -1 < val < -0.5


@pytest.mark.parametrize("pars", [(0.5, 4.0, 2.0, 1.0), (1.0, 1.0, 1.0, 3.0), (0.3, 8, 3, 0.5)])
def test_amortised_correlation_vs_monte_carlo(pars):
    g, s, sy, lam = pars
    ac = kkt.amortised_correlation(g, s, sy, lam)
    exact = float(ac["corr"])
    w = float(ac["w"])
    mc = kkt.monte_carlo_correlation(w, g, s, sy, lam, n=200_000, seed=1)
    assert mc == pytest.approx(exact, abs=0.01)  # standard error < 0.003 at n = 2e5


def test_gradient_correlation_general_w_vs_monte_carlo():
    corr = kkt.gradient_correlation(0.7, 0.8, 2.0, 1.5, 2.0)
    mc = kkt.monte_carlo_correlation(0.7, 0.8, 2.0, 1.5, 2.0, n=200_000, seed=2)
    assert mc == pytest.approx(float(corr), abs=0.01)


def test_trained_codec_is_stationary_and_uncorrelated():
    tc = kkt.trained_codec(LAM, S)
    w, g, v = sp.symbols("w g v", positive=True)
    L = kkt.expected_loss(w, g, S, sp.sqrt(v), LAM)
    at = {w: tc["w"], g: tc["g"], v: tc["sigma_y"] ** 2}
    for var in (w, g, v):
        assert sp.simplify(sp.diff(L, var).subs(at)) == 0
    assert sp.simplify(tc["sigma_y"] ** 2 - LAM * S**2 * sp.log(2) / 6) == 0
    # the trained decoder is the linear MMSE gain of x from y^ = w x + u ...
    q = kkt.UNIFORM_NOISE_VAR
    assert sp.simplify(tc["g"] - tc["w"] * S**2 / (tc["w"] ** 2 * S**2 + q)) == 0
    # ... so the rate gradient (linear in y^) is orthogonal to the distortion gradient
    corr = kkt.gradient_correlation(tc["w"], tc["g"], S, tc["sigma_y"], LAM)
    assert sp.simplify(corr) == 0
    with pytest.raises(ValueError, match="1/2"):
        kkt.trained_codec(sp.Rational(1, 2), 1)


def test_mismatch_sign_and_latent_shift():
    lam = 2
    assert sp.simplify(kkt.mismatch_correlation(lam, 1, 1)) == 0
    wide = kkt.mismatch_correlation(lam, 1, sp.Rational(3, 2))
    narrow = kkt.mismatch_correlation(lam, 1, sp.Rational(1, 2))
    assert sp.N(wide) < -0.1 and sp.N(narrow) > 0.1
    ls = kkt.latent_shift_step(lam, 1, sp.Rational(3, 2))
    assert sp.N(ls["rho"]) > 0  # negative correlation: step along +dR/dy^
    assert sp.N(ls["mse_after"]) < sp.N(ls["mse_before"])
    assert sp.simplify(kkt.latent_shift_step(lam, 1, 1)["rho"]) == 0
    # the mismatch correlation agrees with Monte Carlo, and rounding is close to the relaxation
    tc = {k: float(v) for k, v in kkt.trained_codec(lam, 1).items()}
    mc = kkt.monte_carlo_correlation(tc["w"], tc["g"], 1.5, tc["sigma_y"], lam, seed=3)
    assert mc == pytest.approx(float(wide), abs=0.01)


def test_rounding_close_to_noise_at_fine_quantization():
    # with S = 12 w^2 s^2 large, rounding error is nearly uniform and independent of x
    ac = kkt.amortised_correlation(0.25, 8.0, 4.0, 1.0)
    w = float(ac["w"])
    mc = kkt.monte_carlo_correlation(w, 0.25, 8.0, 4.0, 1.0, seed=4, rounding=True)
    assert mc == pytest.approx(float(ac["corr"]), abs=0.02)


def test_argument_checks():
    with pytest.raises(ValueError, match="g must be positive"):
        kkt.gradient_correlation(1, -1, 1, 1, 1)
    with pytest.raises(ValueError, match="noise_var"):
        kkt.gradient_correlation(1, 1, 1, 1, 1, noise_var=-1)
    with pytest.raises(ValueError, match="sigma_y"):
        kkt.monte_carlo_correlation(1.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="n must"):
        kkt.monte_carlo_correlation(1.0, 1.0, 1.0, 1.0, n=1)
    assert np.isfinite(kkt.monte_carlo_correlation(1.0, 1.0, 1.0, 1.0, n=1000))


# ----------------------------------------------------------------- side information


def test_uniform_noise_decoder_closed_form():
    dec = kkt.uniform_noise_decoder()
    assert sp.simplify(dec["derived"] - dec["closed_form"]) == 0
    # the same numbers from the numpy helper, and a direct quadrature of the truncated normal
    f = sp.lambdify(dec["yhat"], dec["closed_form"], ["scipy", "numpy"])
    ys = np.array([-2.3, -0.4, 0.0, 0.7, 3.1])
    m, _, _ = kkt.truncated_normal_mean(ys - 0.5, ys + 0.5)
    np.testing.assert_allclose(m, f(ys), rtol=1e-12, atol=1e-14)
    grid = (np.arange(20_000) + 0.5) / 20_000 - 0.5  # midpoints of a uniform grid on [-1/2, 1/2]
    for y in ys:
        xs = y + grid
        pdf = np.exp(-(xs**2) / 2)
        assert np.sum(xs * pdf) / np.sum(pdf) == pytest.approx(f(y), abs=1e-7)


def test_truncated_normal_mean_slopes():
    a, b = np.array([-1.0, 0.2, 1.5]), np.array([-0.3, 0.25, 2.5])
    m, dm_da, dm_db = kkt.truncated_normal_mean(a, b)
    h, mean = 1e-6, lambda lo, hi: kkt.truncated_normal_mean(lo, hi)[0]
    fd_a = (mean(a + h, b) - mean(a - h, b)) / (2 * h)
    fd_b = (mean(a, b + h) - mean(a, b - h)) / (2 * h)
    np.testing.assert_allclose(dm_da, fd_a, rtol=1e-5)
    np.testing.assert_allclose(dm_db, fd_b, rtol=1e-5)
    assert np.all((a < m) & (m < b)) and np.all(dm_da >= 0) and np.all(dm_db >= 0)
    with pytest.raises(ValueError, match="a < b"):
        kkt.truncated_normal_mean(np.array([1.0]), np.array([1.0]))


def test_two_decoders_are_the_conditional_means():
    # bin the samples and compare the bin means of x with the closed forms (a numerical E[x | .])
    rng = np.random.default_rng(5)
    x = rng.normal(size=2_000_000)
    yh = x + rng.uniform(-0.5, 0.5, x.size)
    zh = np.round(2 * x) / 2
    for z in (None, 0.5):
        sel = np.ones(x.size, bool) if z is None else zh == z
        lo, hi = yh[sel] - 0.5, yh[sel] + 0.5
        if z is not None:
            lo, hi = np.maximum(lo, z - 0.25), np.minimum(hi, z + 0.25)
        m, _, _ = kkt.truncated_normal_mean(lo, hi)
        bins = np.digitize(yh[sel], np.linspace(-1.5, 1.5, 31))
        for k in np.unique(bins):
            in_bin = bins == k
            if in_bin.sum() > 5000:
                # within one bin of width 0.1 the decoder varies little: compare the bin averages
                assert x[sel][in_bin].mean() == pytest.approx(m[in_bin].mean(), abs=0.01)


def test_side_information_counterexample():
    cx = kkt.side_information_counterexample(400_000, seed=6, decoder="yhat")
    fx = kkt.side_information_counterexample(400_000, seed=6, decoder="yhat_zhat")
    # E[x | y^] with a rate gradient y^ - z^: strongly correlated (positive with dD = -2 g'(x - g))
    assert cx["corr"] > 0.7 and cx["se"] < 0.01
    # E[x | y^, z^]: uncorrelated within Monte Carlo error, and a better decoder
    assert abs(fx["corr"]) < 4 * fx["se"] and fx["se"] < 0.01
    assert fx["mse"] < cx["mse"]
    # both are conditional means: the distortion gradient has mean 0
    for res in (cx, fx):
        assert abs(res["mean_dD"]) < 0.01
    with pytest.raises(ValueError, match="decoder"):
        kkt.side_information_counterexample(10, decoder="zhat")
    with pytest.raises(ValueError, match="n must"):
        kkt.side_information_counterexample(1)


def test_correlation_standard_error():
    # normal samples: the standard error of r is (1 - r^2) / sqrt(n), 1 / sqrt(n) when independent
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(2, 100_000))
    r, se = kkt._correlation_with_se(a, b)
    assert se == pytest.approx(1 / np.sqrt(a.size), rel=0.05)
    r, se = kkt._correlation_with_se(a, 0.6 * a + 0.8 * b)
    assert r == pytest.approx(0.6, abs=0.01)
    assert se == pytest.approx((1 - 0.36) / np.sqrt(a.size), rel=0.05)
