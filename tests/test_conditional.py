"""Tests of nctutor.symbolic.conditional (Brand et al., Eq. 1-11)."""

import numpy as np
import pytest
import sympy as sp

from nctutor.symbolic import conditional as cc

RNG = np.random.default_rng(2024)


# ----------------------------------------------------------------- Eq. (4), exact


@pytest.mark.parametrize("shape", [(2, 2), (3, 3), (2, 3), (3, 2)])
def test_identity_symbolic_is_exactly_zero(shape):
    p = cc.symbolic_joint(*shape)
    assert sp.simplify(sum(p) - 1) == 0
    t = cc.entropy_terms(p)
    assert all(isinstance(v, sp.Expr) for v in t.values())
    gap = t["H_residual"] - t["H_conditional"] - t["I_prediction_residual"]
    # the raw difference is not syntactically 0: the logs must be split first
    assert gap != 0
    assert sp.simplify(sp.expand(sp.expand_log(gap, force=True))) == 0
    assert cc.identity_gap(p) == 0


def test_symbolic_terms_agree_with_numeric_at_a_point():
    p = cc.symbolic_joint(2, 3)
    vals = RNG.dirichlet(np.ones(6))
    subs = dict(zip(sorted(p.free_symbols, key=str), vals[:-1], strict=True))
    t_sym = cc.entropy_terms(p)
    t_num = cc.entropy_terms(np.array(p.subs(subs).tolist(), dtype=float))
    for key in t_num:
        assert float(t_sym[key].subs(subs)) == pytest.approx(t_num[key], abs=1e-12)


# ----------------------------------------------------------------- Eq. (4)-(5), numeric


@pytest.mark.parametrize("seed", range(20))
def test_identity_random_joints(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(2, 7, size=2)
    p = rng.dirichlet(np.full(n * m, 0.5)).reshape(n, m)
    p[rng.random(p.shape) < 0.2] = 0.0  # holes in the support
    p /= p.sum()
    t = cc.entropy_terms(p)
    assert t["H_residual"] == pytest.approx(
        t["H_conditional"] + t["I_prediction_residual"], abs=1e-12
    )
    assert t["I_prediction_residual"] >= -1e-12  # Eq. (5)


def test_residual_pmf_and_scipy_entropy():
    p = np.array([[0.1, 0.2, 0.05], [0.3, 0.15, 0.2]])  # x in {0,1}, x~ in {0,1,2}
    pr = cc.residual_pmf(p)
    assert list(pr) == [-2, -1, 0, 1]
    assert pr[-2] == pytest.approx(0.05)
    assert pr[-1] == pytest.approx(0.2 + 0.2)
    assert pr[0] == pytest.approx(0.1 + 0.15)
    assert pr[1] == pytest.approx(0.3)
    h = -sum(v * np.log2(v) for v in pr.values())
    assert cc.entropy_terms(p)["H_residual"] == pytest.approx(h, abs=1e-12)


def test_independent_residual_gives_equality():
    # x = x~ + r (mod nothing) with r independent of x~: I(x~; r) = 0, Eq. (5) with equality
    pt = np.array([0.5, 0.3, 0.2])
    pr = np.array([0.6, 0.4])  # r in {0, 1}
    p = np.zeros((4, 3))
    for j in range(3):
        for k, r in enumerate((0, 1)):
            p[j + r, j] = pt[j] * pr[k]
    t = cc.entropy_terms(p)
    assert t["I_prediction_residual"] == pytest.approx(0.0, abs=1e-12)
    assert t["H_residual"] == pytest.approx(t["H_conditional"], abs=1e-12)


# ----------------------------------------------------------------- bottleneck, Eq. (8)-(9)


def test_bottleneck_example_sign_and_eq9():
    ex = cc.bottleneck_example()
    r = ex["rates"]
    # ideal conditional coder beats the residual coder ...
    assert sp.N(r["H_residual"] - r["H_conditional"], 50) > 0
    # ... but with the bottleneck f(x~) = x~ // 2 it loses
    assert sp.N(ex["loss"], 50) > sp.Rational(1, 10)
    assert sp.simplify(ex["loss"] - (r["H_conditional_bottleneck"] - r["H_residual"])) == 0
    # Eq. (8) and (9), exactly
    eq8 = r["H_conditional"] - (r["H_conditional_bottleneck"] - r["I_lost"])
    eq9 = r["H_residual"] - (
        r["H_conditional_bottleneck"] - r["I_lost"] + r["I_prediction_residual"]
    )
    assert sp.simplify(sp.expand_log(eq8, force=True)) == 0
    assert sp.simplify(sp.expand_log(eq9, force=True)) == 0
    # closed forms of the example with q = 1/4 (worked out by hand in the book)
    h = lambda *ps: -sum(sp.Rational(v) * sp.log(sp.Rational(v), 2) for v in ps)  # noqa: E731
    assert sp.simplify(r["H_residual"] - h("3/16", "13/16")) == 0
    assert sp.simplify(r["H_conditional"] - sp.Rational(3, 4) * h("1/4", "3/4")) == 0
    hb = (h("3/8", "1/2", "1/8") + h("3/8", "5/8")) / 2
    assert sp.simplify(sp.expand_log(r["H_conditional_bottleneck"] - hb, force=True)) == 0


def test_bottleneck_is_identity_when_f_injective():
    p = RNG.dirichlet(np.ones(9)).reshape(3, 3)
    t = cc.bottleneck_terms(p, [10, 20, 30])
    assert t["I_lost"] == pytest.approx(0.0, abs=1e-12)
    t = cc.bottleneck_terms(p, lambda j: 0)  # constant f: H(x | y~) = H(x)
    hx = -np.sum(p.sum(1) * np.log2(p.sum(1)))
    assert t["H_conditional_bottleneck"] == pytest.approx(hx, abs=1e-12)


def test_x_equals_prediction_loses_H_of_xt_given_yt():
    # the paper's extreme case x = x~: H(r) = 0 and I(x; x~ | y~) = H(x~ | y~)
    pt = RNG.dirichlet(np.ones(4))
    p = np.diag(pt)
    t = cc.bottleneck_terms(p, [0, 0, 1, 1])
    assert t["H_residual"] == pytest.approx(0.0, abs=1e-12)
    h_t_given_y = -sum(
        pt[j] * np.log2(pt[j] / pt[2 * (j // 2) : 2 * (j // 2) + 2].sum()) for j in range(4)
    )
    assert t["I_lost"] == pytest.approx(h_t_given_y, abs=1e-12)
    assert t["H_conditional_bottleneck"] > t["H_residual"] + 0.5


# ----------------------------------------------------------------- Gaussian case


def test_gaussian_gain_formula():
    a, s, sn = sp.symbols("a sigma sigma_n", positive=True)
    e = cc.gaussian_entropies(a, s, sn)
    target = sp.log(1 + (1 - a) ** 2 * s**2 / sn**2, 2) / 2
    diff = e["h_residual"] - e["h_conditional"] - target
    assert sp.simplify(sp.expand_log(diff, force=True)) == 0
    assert sp.simplify(cc.gaussian_gain(a, s, sn) - target) == 0
    assert cc.gaussian_gain(1, s, sn) == 0  # x - x~ = n independent of x~
    assert sp.limit(cc.gaussian_gain(sp.Rational(1, 2), 1, sn), sn, 0) == sp.oo
    assert sp.limit(e["h_conditional"], sn, 0) == -sp.oo


@pytest.mark.parametrize("a,sigma,sigma_n", [(0.5, 1.0, 0.5), (0.9, 2.0, 1.0), (1.0, 1.0, 0.3)])
def test_gaussian_gain_vs_quantized(a, sigma, sigma_n):
    step = 0.05
    t = cc.entropy_terms(cc.quantized_gaussian_joint(a, sigma, sigma_n, step))
    exact = float(cc.gaussian_gain(a, sigma, sigma_n))
    gain = t["H_residual"] - t["H_conditional"]
    assert gain == pytest.approx(exact, abs=2e-3)
    # H ~ h - log2(step) for the conditional entropy of the fine quantization
    h_c = float(cc.gaussian_entropies(a, sigma, sigma_n)["h_conditional"])
    assert t["H_conditional"] + np.log2(step) == pytest.approx(h_c, abs=2e-3)


# ----------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.ones(4) / 4, "2-D"),
        (np.ones((2, 2, 2)) / 8, "2-D"),
        ([0.5, 0.5], "2-D"),
        (np.array([[0.6, 0.5], [-0.1, 0.0]]), "nonnegative"),
        (np.full((2, 2), 0.3), "sum to 1"),
        (np.array([[np.nan, 0.5], [0.5, 0.0]]), "finite"),
        (np.zeros((0, 3)), "non-empty"),
        (sp.Matrix([[sp.Symbol("a"), sp.Symbol("b")]]), "sum to 1"),
        (sp.Matrix([[sp.Rational(3, 2), -sp.Rational(1, 2)]]), "nonnegative"),
    ],
)
def test_bad_joints_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        cc.entropy_terms(bad)


def test_other_argument_checks():
    with pytest.raises(ValueError, match="one value per"):
        cc.bottleneck_terms(np.eye(3) / 3, [0, 1])
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        cc.bottleneck_example(2)
    with pytest.raises(ValueError, match="positive"):
        cc.gaussian_gain(0.5, -1, 1)
    with pytest.raises(ValueError, match="positive"):
        cc.quantized_gaussian_joint(0.5, 1.0, 0.0, 0.1)
    with pytest.raises(ValueError, match="positive int"):
        cc.symbolic_joint(0)


def test_rectangular_and_list_inputs():
    p = [[0.25, 0.25], [0.5, 0.0]]
    t = cc.entropy_terms(p)
    assert isinstance(t["H_residual"], float)
    exact = cc.entropy_terms([[sp.Rational(1, 4), sp.Rational(1, 4)], [sp.Rational(1, 2), 0]])
    assert all(isinstance(v, sp.Expr) for v in exact.values())
    for k in t:
        assert float(exact[k]) == pytest.approx(t[k], abs=1e-12)
