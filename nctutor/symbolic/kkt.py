"""KKT conditions of the rate-distortion loss and the premise of the latent shift.

Balcilar et al., *Exploiting latent properties to optimize neural codecs*, Theorem 2 (Eq. (3)-(4))
and its proof in Appendix C: at an optimum of ``R + lambda D`` the gradients of the rate and of the
distortion with respect to the latent cancel, so the rate gradient (which the decoder can compute)
could stand in for the distortion gradient (which it cannot). This module derives the conditions
with SymPy and tests the premise on a one-dimensional codec small enough to solve in closed form:

- source ``x ~ N(0, s^2)``, encoder ``y = w x`` (one gain shared by all samples: *amortised*);
- quantization modelled by its training relaxation, ``y^ = w x + u`` with ``u ~ U(-1/2, 1/2)``
  independent of x (variance 1/12);
- decoder ``x^ = g y^``, rate ``R = -log2 N(y^; 0, sigma_y^2)``, distortion ``D = (x - x^)^2``.

A second, nonlinear example (:func:`side_information_counterexample`) shows that the decoder must
be optimal given every decoded variable the rate gradient depends on: with side information ``z^``
and a decoder ``E[x | y^]`` the two gradients are correlated.

Chapter *KKT conditions and the latent shift's premise* (``book/latent/kkt.md``), part *Latent
properties*. The symbolic functions return SymPy objects (omitted arguments are positive SymPy
symbols); the Monte Carlo functions return floats.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import sympy as sp
from scipy.special import ndtr

__all__ = [
    "multiobjective_weights",
    "appendix_c_objectives",
    "stationarity_conditions",
    "toy_codec",
    "expected_loss",
    "per_sample_optimum",
    "amortised_encoder",
    "gradient_correlation",
    "amortised_correlation",
    "trained_codec",
    "mismatch_correlation",
    "latent_shift_step",
    "monte_carlo_correlation",
    "uniform_noise_decoder",
    "truncated_normal_mean",
    "side_information_counterexample",
]

#: Variance of the additive uniform noise U(-1/2, 1/2) that stands in for rounding in training.
UNIFORM_NOISE_VAR = sp.Rational(1, 12)


def _pos(value: Any, name: str) -> sp.Expr:
    """The positive symbol ``name`` if ``value`` is None, else ``value`` (checked) as SymPy."""
    if value is None:
        return sp.Symbol(name, positive=True)
    v = sp.sympify(value)
    if v.is_number and not (v.is_real and v > 0):
        raise ValueError(f"{name} must be positive, got {value!r}")
    return v


# --------------------------------------------------------------------------- Theorem 2


def multiobjective_weights(lam: Any = None) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """The weights of Appendix C: ``(1, 1, lambda) / (2 + lambda)``, nonnegative, summing to 1.

    Dividing Eq. (1) of Balcilar et al. by ``2 + lambda`` turns it into a weighted multi-objective
    problem (side rate, main rate, distortion).
    Defined in book section *KKT conditions and the latent shift's premise → Stationarity of the
    rate-distortion loss*.
    """
    lam = _pos(lam, "lambda")
    return 1 / (2 + lam), 1 / (2 + lam), lam / (2 + lam)


def appendix_c_objectives(as_printed: bool = False) -> dict[str, sp.Expr]:
    """The three objectives of Appendix C as functions of the latents ``y`` and ``z``.

    ``P_f(z)`` and ``P_h(y, z)`` are the likelihoods of the side and main latents, ``d(y)`` the
    distortion ``d(x, g_s(y))``. Corrected (default): ``L1 = -log P_f``, ``L2 = -log P_h``,
    ``L3 = d``. With ``as_printed=True`` the appendix's text: ``L2 = -log(log P_h)`` (a typo: the
    log of a negative number for a pmf below 1) and ``L3 = -d`` (a sign slip: minimising ``-d``
    maximises the distortion).
    Appendix C's objectives, discussed in the errata box of the chapter *KKT conditions and the
    latent shift's premise*; no page calls it (tested in ``tests/test_kkt.py``).
    """
    y, z = sp.symbols("y z", real=True)
    P_f, P_h, d = sp.Function("P_f"), sp.Function("P_h"), sp.Function("d")
    L1 = -sp.log(P_f(z))
    if as_printed:
        L2, L3 = -sp.log(sp.log(P_h(y, z))), -d(y)
    else:
        L2, L3 = -sp.log(P_h(y, z)), d(y)
    return {"y": y, "z": z, "L1": L1, "L2": L2, "L3": L3}


def stationarity_conditions(lam: Any = None, as_printed: bool = False) -> dict[str, Any]:
    """The stationarity (KKT) conditions of Theorem 2, Eq. (3)-(4), for one sample.

    With the weights of :func:`multiobjective_weights` and the objectives of
    :func:`appendix_c_objectives`:

    - ``"z"``: ``a1 dL1/dz + a2 dL2/dz = 0`` (L3 does not depend on z), i.e. Eq. (3);
    - ``"y"``: ``a2 dL2/dy + a3 dL3/dy = 0`` (L1 does not depend on y), i.e. Eq. (4);
    - ``"y_solved"``: Eq. (4) solved for the main rate's gradient. Corrected, it reads
      ``dR/dy = -lambda dD/dy``: the two gradients are exactly opposite at a per-sample optimum.

    Per sample, because the latents of each sample are free variables here (the decoder-side
    shift moves them one image at a time); the paper writes the conditions under an expectation.
    Defined in book section *KKT conditions and the latent shift's premise → Stationarity of the
    rate-distortion loss*.
    """
    lam = _pos(lam, "lambda")
    a1, a2, a3 = multiobjective_weights(lam)
    ob = appendix_c_objectives(as_printed)
    y, z = ob["y"], ob["z"]
    cond_z = sp.Eq(a1 * sp.diff(ob["L1"], z) + a2 * sp.diff(ob["L2"], z), 0)
    cond_y = sp.Eq(a2 * sp.diff(ob["L2"], y) + a3 * sp.diff(ob["L3"], y), 0)
    grad_rate = sp.diff(ob["L2"], y)
    g = sp.Symbol("G_R")
    solved = sp.solve(cond_y.lhs.subs(grad_rate, g), g)
    if len(solved) != 1:  # pragma: no cover - the condition is linear in the gradient
        raise RuntimeError("could not solve the stationarity condition for dR/dy")
    return {
        "z": cond_z,
        "y": cond_y,
        "y_solved": sp.Eq(grad_rate, sp.simplify(solved[0])),
    }


# --------------------------------------------------------------------------- the toy codec


def toy_codec(
    w: Any = None, g: Any = None, sigma_y: Any = None, lam: Any = None
) -> dict[str, sp.Expr]:
    """The one-dimensional codec: latent, loss and the two gradients, as SymPy expressions.

    Symbols ``x`` (source sample) and ``u`` (quantization noise) are real; ``y^ = w x + u``;
    ``R = -log2 N(y^; 0, sigma_y^2)``; ``D = (x - g y^)^2``; ``L = R + lambda D``. The gradients
    are taken with respect to the decoded latent ``y^`` (what the decoder-side shift moves):
    ``dR = y^ / (sigma_y^2 ln 2)``, ``dD = -2 g (x - g y^)``.
    Defined in book section *KKT conditions and the latent shift's premise → A codec small enough to
    solve*.
    """
    w, g = _pos(w, "w"), _pos(g, "g")
    sigma_y, lam = _pos(sigma_y, "sigma_y"), _pos(lam, "lambda")
    x, u, yh = sp.symbols("x u yhat", real=True)
    R = -sp.log(sp.exp(-(yh**2) / (2 * sigma_y**2)) / sp.sqrt(2 * sp.pi * sigma_y**2)) / sp.log(2)
    D = (x - g * yh) ** 2
    dR, dD = sp.diff(R, yh), sp.diff(D, yh)
    at = {yh: w * x + u}
    return {
        "x": x,
        "u": u,
        "yhat": yh,
        "R": R,
        "D": D,
        "L": R + lam * D,
        "dR": sp.expand(dR.subs(at)),
        "dD": sp.expand(dD.subs(at)),
    }


def per_sample_optimum(g: Any = None, sigma_y: Any = None, lam: Any = None) -> sp.Expr:
    """``y*(x) = argmin_y R(y) + lambda D(x, y)`` for each sample x (no quantization).

    Solves ``dR/dy + lambda dD/dy = 0``; the answer, ``2 lambda g x / (1/(sigma_y^2 ln 2) +
    2 lambda g^2)``, is linear in x.
    Defined in book section *KKT conditions and the latent shift's premise → A codec small enough to
    solve*.
    """
    c = toy_codec(1, g, sigma_y, lam)
    yh = c["yhat"]
    (sol,) = sp.solve(sp.diff(c["L"], yh), yh)
    return sp.simplify(sol)


def _cov(a: sp.Expr, b: sp.Expr, x: sp.Symbol, u: sp.Symbol, s: sp.Expr, q: sp.Expr) -> sp.Expr:
    """Covariance of two linear forms in independent zero-mean x (var s^2) and u (var q)."""
    a, b = sp.expand(a), sp.expand(b)
    return a.coeff(x) * b.coeff(x) * s**2 + a.coeff(u) * b.coeff(u) * q


def expected_loss(
    w: Any = None,
    g: Any = None,
    s: Any = None,
    sigma_y: Any = None,
    lam: Any = None,
    noise_var: Any = UNIFORM_NOISE_VAR,
) -> sp.Expr:
    """``E[R + lambda D]`` over x ~ N(0, s^2) and u (variance ``noise_var``), in bits.

    Belongs to book section *KKT conditions and the latent shift's premise → A codec small enough to
    solve*; no page calls it (tested in ``tests/test_kkt.py``).
    """
    w, g, s = _pos(w, "w"), _pos(g, "g"), _pos(s, "s")
    sigma_y, lam = _pos(sigma_y, "sigma_y"), _pos(lam, "lambda")
    q = sp.sympify(noise_var)
    m2 = w**2 * s**2 + q  # E[y^^2]
    rate = m2 / (2 * sigma_y**2 * sp.log(2)) + sp.log(2 * sp.pi * sigma_y**2) / (2 * sp.log(2))
    dist = (1 - g * w) ** 2 * s**2 + g**2 * q
    return rate + lam * dist


def amortised_encoder(
    g: Any = None,
    s: Any = None,
    sigma_y: Any = None,
    lam: Any = None,
    noise_var: Any = UNIFORM_NOISE_VAR,
) -> sp.Expr:
    """The shared encoder gain ``w`` that minimises the expected loss :func:`expected_loss`.

    It equals the per-sample optimum's gain (:func:`per_sample_optimum`): in this linear
    Gaussian codec the shared encoder loses nothing; what it cannot undo is the quantization
    noise.
    Defined in book section *KKT conditions and the latent shift's premise → A codec small enough to
    solve*.
    """
    w = sp.Symbol("w", positive=True)
    (sol,) = sp.solve(sp.diff(expected_loss(w, g, s, sigma_y, lam, noise_var), w), w)
    return sp.simplify(sol)


def gradient_correlation(
    w: Any = None,
    g: Any = None,
    s: Any = None,
    sigma_y: Any = None,
    lam: Any = None,
    noise_var: Any = UNIFORM_NOISE_VAR,
) -> sp.Expr:
    """Correlation of ``dR/dy^`` and ``dD/dy^`` over samples, in closed form.

    Both gradients are linear in (x, u), so the correlation only needs ``var x = s^2`` and
    ``var u = noise_var``. ``noise_var = 0`` models continuous (unquantized) latents.
    Defined in book section *KKT conditions and the latent shift's premise → A codec small enough to
    solve*; used again in its section *The trained decoder kills the correlation*.
    """
    s = _pos(s, "s")
    q = sp.sympify(noise_var)
    if q.is_number and q < 0:
        raise ValueError(f"noise_var must be nonnegative, got {noise_var!r}")
    c = toy_codec(w, g, sigma_y, lam)
    x, u, dR, dD = c["x"], c["u"], c["dR"], c["dD"]
    cov = _cov(dR, dD, x, u, s, q)
    return cov / sp.sqrt(_cov(dR, dR, x, u, s, q) * _cov(dD, dD, x, u, s, q))


def amortised_correlation(
    g: Any = None, s: Any = None, sigma_y: Any = None, lam: Any = None
) -> dict[str, sp.Expr]:
    """Gradient correlation at the amortised encoder, in the form ``-(S - b) / sqrt((S+1)(S+b^2))``.

    ``S = 12 w^2 s^2`` is the latent's signal-to-quantization-noise ratio and
    ``b = 2 lambda g^2 sigma_y^2 ln 2`` the ratio of the distortion's to the rate's curvature.
    Returns ``{"w": w, "S": S, "beta": b, "corr": corr, "corr_direct": ...}`` where
    ``corr_direct`` is :func:`gradient_correlation` at that ``w`` (the tests check they agree).
    Defined in book section *KKT conditions and the latent shift's premise → A codec small enough to
    solve*.
    """
    g, s = _pos(g, "g"), _pos(s, "s")
    sigma_y, lam = _pos(sigma_y, "sigma_y"), _pos(lam, "lambda")
    w = amortised_encoder(g, s, sigma_y, lam)
    S = 12 * w**2 * s**2
    b = 2 * lam * g**2 * sigma_y**2 * sp.log(2)
    corr = -(S - b) / sp.sqrt((S + 1) * (S + b**2))
    return {
        "w": w,
        "S": sp.simplify(S),
        "beta": b,
        "corr": corr,
        "corr_direct": gradient_correlation(w, g, s, sigma_y, lam),
    }


def trained_codec(lam: Any = None, s: Any = None) -> dict[str, sp.Expr]:
    """Encoder, decoder and prior all trained: the joint minimiser of :func:`expected_loss`.

    Setting the derivatives in ``w``, ``g`` and ``sigma_y^2`` to zero gives
    ``sigma_y^2 = lambda s^2 ln2 / 6``, ``w = sqrt(6 lambda s^2 ln2 - 3) / (6 s)`` and
    ``g = sqrt(6 lambda s^2 ln2 - 3) / (lambda s ln2)``; real only when
    ``lambda s^2 ln 2 > 1/2`` (below that the codec sends nothing). The decoder is then the
    linear MMSE estimator of x from y^, and the gradient correlation is exactly 0.
    Defined in book section *KKT conditions and the latent shift's premise → The trained decoder
    kills the correlation*.
    """
    lam, s = _pos(lam, "lambda"), _pos(s, "s")
    if (lam * s**2 * sp.log(2)).is_number and not lam * s**2 * sp.log(2) > sp.Rational(1, 2):
        raise ValueError("the trained codec sends bits only when lambda * s^2 * ln 2 > 1/2")
    lam0, s0 = sp.Symbol("lambda", positive=True), sp.Symbol("s", positive=True)
    sol = _trained_codec_symbolic()
    out = {k: v.subs({lam0: lam, s0: s}) for k, v in sol.items()}
    return {k: sp.simplify(v) if v.free_symbols else v for k, v in out.items()}


@functools.cache
def _trained_codec_symbolic() -> dict[str, sp.Expr]:
    """Solves the three stationarity equations once, with symbolic lambda and s."""
    lam, s = sp.Symbol("lambda", positive=True), sp.Symbol("s", positive=True)
    w, g, v = sp.symbols("w g v", positive=True)
    L = expected_loss(w, g, s, sp.sqrt(v), lam)
    sols = sp.solve([sp.diff(L, w), sp.diff(L, g), sp.diff(L, v)], [w, g, v], dict=True)
    if len(sols) != 1:  # pragma: no cover
        raise RuntimeError(f"expected one stationary point, got {sols}")
    sol = sols[0]
    return {"w": sol[w], "g": sol[g], "sigma_y": sp.sqrt(sol[v])}


def mismatch_correlation(lam: Any, s_train: Any, s_test: Any) -> sp.Expr:
    """Gradient correlation when a codec trained for ``N(0, s_train^2)`` codes ``N(0, s_test^2)``.

    0 when ``s_test = s_train``; negative when the test source is wider (then the decoder's gain
    is too small for the test data), positive when it is narrower.
    Defined in book section *KKT conditions and the latent shift's premise → The trained decoder
    kills the correlation*.
    """
    c = trained_codec(lam, s_train)
    return gradient_correlation(c["w"], c["g"], _pos(s_test, "s_test"), c["sigma_y"], lam)


def latent_shift_step(lam: Any, s_train: Any, s_test: Any) -> dict[str, sp.Expr]:
    """The decoder-side latent shift ``y^ <- y^ + rho dR/dy^`` with the best step ``rho*``.

    In the toy codec the rate gradient is ``y^ / (sigma_y^2 ln 2)``, so the shift rescales the
    latent: the decoder outputs ``g (1 + rho / (sigma_y^2 ln 2)) y^``. ``rho*`` (sent by the
    encoder, one number per image) makes that gain the linear MMSE gain for the test source.
    Returns ``{"rho": rho*, "mse_before": ..., "mse_after": ...}`` (per sample, squared error).
    Defined in book section *KKT conditions and the latent shift's premise → The trained decoder
    kills the correlation*.
    """
    c = trained_codec(lam, s_train)
    w, g, sy = c["w"], c["g"], c["sigma_y"]
    s = _pos(s_test, "s_test")
    q = UNIFORM_NOISE_VAR
    rho = sp.Symbol("rho", real=True)
    gain = g * (1 + rho / (sy**2 * sp.log(2)))
    mse = (1 - gain * w) ** 2 * s**2 + gain**2 * q
    (rho_star,) = sp.solve(sp.diff(mse, rho), rho)
    return {
        "rho": sp.simplify(rho_star),
        "mse_before": sp.simplify(mse.subs(rho, 0)),
        "mse_after": sp.simplify(mse.subs(rho, rho_star)),
    }


def monte_carlo_correlation(
    w: float,
    g: float,
    s: float,
    sigma_y: float,
    lam: float = 1.0,
    n: int = 200_000,
    seed: int = 0,
    rounding: bool = False,
) -> float:
    """Sample correlation of ``dR/dy^`` and ``dD/dy^`` (the numerical check of the closed forms).

    Draws ``x ~ N(0, s^2)`` and either adds ``u ~ U(-1/2, 1/2)`` (``rounding=False``, the
    relaxation the closed forms assume) or rounds ``w x`` to the nearest integer (what a codec
    does at test time). ``lam`` only scales dD and does not change the correlation.
    Defined in book section *KKT conditions and the latent shift's premise → A codec small enough to
    solve*; used again in its section *The trained decoder kills the correlation* and the
    *Exercises*.
    """
    for label, v in (("w", w), ("g", g), ("s", s), ("sigma_y", sigma_y), ("lam", lam)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{label} must be a positive finite number, got {v}")
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, s, n)
    yh = np.round(w * x) if rounding else w * x + rng.uniform(-0.5, 0.5, n)
    d_rate = yh / (sigma_y**2 * np.log(2))
    d_dist = -2.0 * g * (x - g * yh)
    return float(np.corrcoef(d_rate, lam * d_dist)[0, 1])


# --------------------------------------------------------------------------- side information


def uniform_noise_decoder() -> dict[str, sp.Expr]:
    """``E[x | y^]`` for ``x ~ N(0, 1)`` and ``y^ = x + u``, ``u ~ U(-1/2, 1/2)`` independent of x.

    Given ``y^``, x is N(0, 1) truncated to ``[y^ - 1/2, y^ + 1/2]``, so the conditional mean is
    ``(phi(y^ - 1/2) - phi(y^ + 1/2)) / (Phi(y^ + 1/2) - Phi(y^ - 1/2))`` (normal density phi and
    distribution function Phi). Returns ``{"yhat": symbol, "derived": ..., "closed_form": ...}``:
    ``derived`` is SymPy's integral ``int x phi(x) dx / int phi(x) dx`` over that interval,
    ``closed_form`` the formula above; the page and the tests check that they are equal.
    Defined in book section *KKT conditions and the latent shift's premise → The trained decoder
    kills the correlation*.
    """
    x, yh = sp.Symbol("x", real=True), sp.Symbol("yhat", real=True)
    half = sp.Rational(1, 2)

    def phi(t: sp.Expr) -> sp.Expr:
        return sp.exp(-(t**2) / 2) / sp.sqrt(2 * sp.pi)

    def Phi(t: sp.Expr) -> sp.Expr:
        return (1 + sp.erf(t / sp.sqrt(2))) / 2

    lo, hi = yh - half, yh + half
    derived = sp.integrate(x * phi(x), (x, lo, hi)) / sp.integrate(phi(x), (x, lo, hi))
    closed_form = (phi(lo) - phi(hi)) / (Phi(hi) - Phi(lo))
    return {"yhat": yh, "derived": derived, "closed_form": closed_form}


def truncated_normal_mean(
    a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean ``m`` of N(0, 1) truncated to ``[a, b]`` and its derivatives in ``a`` and ``b``.

    ``m = (phi(a) - phi(b)) / Z`` with ``Z = Phi(b) - Phi(a)``; ``dm/da = phi(a) (m - a) / Z`` and
    ``dm/db = phi(b) (b - m) / Z``, both nonnegative. Needs ``a < b`` elementwise and intervals
    that are not far in the tails (``Z`` is computed as a difference, fine for |a|, |b| < 8).
    Defined in book section *KKT conditions and the latent shift's premise → The trained decoder
    kills the correlation*.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not np.all(a < b):
        raise ValueError("truncated_normal_mean needs a < b for every interval")
    pdf_a, pdf_b = np.exp(-(a**2) / 2), np.exp(-(b**2) / 2)
    pdf_a, pdf_b = pdf_a / np.sqrt(2 * np.pi), pdf_b / np.sqrt(2 * np.pi)
    Z = ndtr(b) - ndtr(a)
    m = (pdf_a - pdf_b) / Z
    return m, pdf_a * (m - a) / Z, pdf_b * (b - m) / Z


def _correlation_with_se(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Sample correlation of a and b and its standard error (delta method, no normality assumed).

    The influence function of Pearson's r is ``a~ b~ - r (a~^2 + b~^2) / 2`` for the standardised
    samples ``a~, b~``; the standard error is its standard deviation over ``sqrt(n)``.
    """
    at, bt = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    r = float(np.mean(at * bt))
    influence = at * bt - r * (at**2 + bt**2) / 2
    return r, float(influence.std() / np.sqrt(len(a)))


def side_information_counterexample(
    n: int = 1_000_000, seed: int = 0, decoder: str = "yhat"
) -> dict[str, float]:
    """Correlation of a rate gradient that depends on side information with the distortion gradient.

    The source is ``x ~ N(0, 1)``, the latent ``y^ = x + u`` with ``u ~ U(-1/2, 1/2)`` independent
    of x, the side information ``z^ = round(2 x) / 2`` (so ``x`` lies in ``[z^ - 1/4, z^ + 1/4)``).
    The rate gradient is ``y^ - z^``: up to the positive factor ``1 / (sigma^2 ln 2)`` the gradient
    of ``R = -log2 N(y^; z^, sigma^2)``, an entropy model whose mean is decoded from ``z^``. The
    distortion gradient is ``dD/dy^ = -2 (dx^/dy^) (x - x^)`` for the decoder ``x^``:

    - ``decoder="yhat"``: ``x^ = E[x | y^]`` (:func:`uniform_noise_decoder`, N(0, 1) truncated to
      ``[y^ - 1/2, y^ + 1/2]``), optimal for y^ alone; the correlation is far from 0;
    - ``decoder="yhat_zhat"``: ``x^ = E[x | y^, z^]``, N(0, 1) truncated to the intersection of
      that interval with ``[z^ - 1/4, z^ + 1/4)``; the correlation is 0 up to Monte Carlo error.

    Returns ``{"corr": r, "se": its standard error, "mse": E[(x - x^)^2], "mean_dD": E[dD/dy^]}``
    over ``n`` samples drawn with ``seed``.
    Defined in book section *KKT conditions and the latent shift's premise → The trained decoder
    kills the correlation*.
    """
    if decoder not in ("yhat", "yhat_zhat"):
        raise ValueError(f"decoder must be 'yhat' or 'yhat_zhat', got {decoder!r}")
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    yh = x + rng.uniform(-0.5, 0.5, n)
    zh = np.round(2 * x) / 2
    lo, hi = yh - 0.5, yh + 0.5
    if decoder == "yhat_zhat":
        # y^ enters the decoder only through the bounds of the interval that it sets
        lo_y, hi_y = lo, hi
        lo, hi = np.maximum(lo_y, zh - 0.25), np.minimum(hi_y, zh + 0.25)
        x_hat, dm_dlo, dm_dhi = truncated_normal_mean(lo, hi)
        slope = np.where(lo == lo_y, dm_dlo, 0.0) + np.where(hi == hi_y, dm_dhi, 0.0)
    else:
        x_hat, dm_dlo, dm_dhi = truncated_normal_mean(lo, hi)
        slope = dm_dlo + dm_dhi
    d_rate = yh - zh
    d_dist = -2.0 * slope * (x - x_hat)
    r, se = _correlation_with_se(d_rate, d_dist)
    return {
        "corr": r,
        "se": se,
        "mse": float(np.mean((x - x_hat) ** 2)),
        "mean_dD": float(np.mean(d_dist)),
    }
