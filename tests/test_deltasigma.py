"""Delta-sigma modulation: symbolic gradients, autograd, noise transfer functions, shapes.

Book page: book/deltasigma/derivations.md.  Paper: supplement of Sun et al., Appendix A/B.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch
from scipy import integrate

from nctutor.quant import deltasigma as qds
from nctutor.symbolic import deltasigma as sds

KS = range(6)


def _ys(k: int) -> tuple[sp.Symbol, ...]:
    return sp.symbols(f"y0:{k + 1}", real=True)


# ---------------------------------------------------------------- symbolic gradients


@pytest.mark.parametrize("k", KS)
def test_order1_gradient_is_eq_A7(k: int) -> None:
    ys = _ys(k)
    derived = sds.code_gradient(k, 1)
    assert derived.free_symbols <= set(ys)
    # Eq. (A.7) typed here independently of the package
    a7 = (1 - sp.tanh(ys[0]) ** 2) * sp.prod([sp.tanh(ys[i]) ** 2 for i in range(1, k + 1)])
    # both sides are polynomials in tanh(yj): expanding is a canonical, exact comparison
    assert sp.expand(derived - a7) == 0
    assert sp.expand(derived - sds.code_gradient_closed_form(k, 1)) == 0


@pytest.mark.parametrize("k", KS)
def test_order2_gradient_matches_recursion(k: int) -> None:
    derived = sds.code_gradient(k, 2)
    assert derived.free_symbols <= set(_ys(k))
    assert sp.expand(derived - sds.code_gradient_closed_form(k, 2)) == 0


def test_order2_gradient_first_terms_and_differs_from_order1() -> None:
    y0, y1, y2 = _ys(2)
    s, a1, a2 = 1 - sp.tanh(y0) ** 2, sp.tanh(y1) ** 2, sp.tanh(y2) ** 2
    assert sp.expand(sds.code_gradient(0, 2) - s) == 0
    assert sp.expand(sds.code_gradient(1, 2) - 2 * s * a1) == 0
    assert sp.expand(sds.code_gradient(2, 2) - s * a2 * (4 * a1 - 1)) == 0
    assert sp.expand(sds.code_gradient(2, 2) - sds.code_gradient(2, 1)) != 0


def test_order2_gradient_constant_state_decay() -> None:
    # all tanh^2 equal to a: G_k / G_0 solves g_k = a (2 g_{k-1} - g_{k-2}), |roots| = sqrt(a)
    a = sp.Rational(1, 4)
    vals = []
    for k in range(8):
        expr = sds.code_gradient_closed_form(k, 2) / (1 - sp.tanh(_ys(k)[0]) ** 2)
        vals.append(sp.simplify(expr.subs({sp.tanh(y): sp.sqrt(a) for y in _ys(k)[1:]})))
    # closed form for a = 1/4: roots (1 +- i sqrt 3)/4 = exp(+-i pi/3)/2
    for k, v in enumerate(vals):
        r = sp.Rational(1, 2) ** k
        expected = r * (sp.cos(sp.pi * k / 3) + sp.sin(sp.pi * k / 3) / sp.sqrt(3))
        assert sp.simplify(v - expected) == 0


# ---------------------------------------------------------------- autograd vs symbolic


@pytest.mark.parametrize("order", (1, 2))
def test_autograd_matches_symbolic(order: int) -> None:
    torch.manual_seed(order)
    batch, T, C, m = 3, 10, 4, 9
    c = (torch.rand(batch, T, C, dtype=torch.float64) - 0.5).requires_grad_()
    b, y = qds.modulate(c, order=order, dim=1, return_states=True)
    # elements are independent, so the gradient of the sum is the per-element gradient
    (grad,) = torch.autograd.grad(b[:, m].sum(), c)
    assert torch.count_nonzero(grad[:, m + 1 :]) == 0  # causality
    checked = 0
    for k in KS:
        f = sp.lambdify(_ys(k), sds.code_gradient(k, order), "numpy")
        states = [y[:, m - j].detach().numpy() for j in range(k + 1)]
        expected = f(*states)
        np.testing.assert_allclose(grad[:, m - k].numpy(), expected, rtol=1e-6, atol=1e-12)
        checked += int(np.sum(np.abs(expected) > 1e-6))
    assert checked > 40  # most entries are not trivially small


def test_straight_through_gradient_is_one() -> None:
    x = torch.tensor([-2.0, -0.3, 0.0, 0.4, 5.0], dtype=torch.float64, requires_grad=True)
    out = qds.binarize_ste(x)
    assert torch.equal(out.detach(), torch.tensor([-1.0, -1.0, 1.0, 1.0, 1.0], dtype=x.dtype))
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(g, torch.ones_like(x))


# ---------------------------------------------------------------- forward pass


def test_forward_by_hand() -> None:
    c = torch.tensor([0.5, 0.5, 0.5])
    b1, y1 = qds.modulate(c, order=1, return_states=True)
    assert torch.allclose(y1, torch.tensor([0.5, 0.0, -0.5]))  # Eq. (A.1), B(0) = +1
    assert torch.equal(b1, torch.tensor([1.0, 1.0, -1.0]))
    b2, y2 = qds.modulate(c, order=2, return_states=True)
    assert torch.allclose(y2, torch.tensor([0.5, -0.5, 2.0]))  # Eq. (B.1)
    assert torch.equal(b2, torch.tensor([1.0, -1.0, 1.0]))


@pytest.mark.parametrize("order", (1, 2))
def test_b_equals_c_plus_shaped_noise(order: int) -> None:
    # Eq. (B.3): b = c + (1 - z^-1)^n e with e = b - y (Eq. (B.2)), exact per sample
    torch.manual_seed(10 + order)
    c = 1.4 * torch.rand(50, 2, 3, dtype=torch.float64) - 0.7
    b, y = qds.modulate(c, order=order, return_states=True)
    e = qds.quantization_error(b, y)
    torch.testing.assert_close(b - c, qds.shape_noise(e, order), rtol=0, atol=1e-12)
    # the mean of the bits tracks the mean of c: sum_i (b - c) telescopes (order 1)
    if order == 1:
        torch.testing.assert_close((b - c).sum(0), e[-1], rtol=0, atol=1e-12)


def test_second_order_is_two_cascaded_integrators() -> None:
    torch.manual_seed(3)
    c = torch.rand(40, dtype=torch.float64) - 0.5
    u = y = b = torch.tensor(0.0, dtype=torch.float64)
    bs = []
    for i in range(len(c)):
        u = u + c[i] - b  # first integrator (Eq. (A.1) again)
        y = y + u - b  # second integrator
        b = torch.where(y >= 0, 1.0, -1.0).to(c.dtype)
        bs.append(b)
    assert torch.equal(torch.stack(bs), qds.modulate(c, order=2))


@pytest.mark.parametrize(
    ("shape", "dim"),
    [((7,), 0), ((1,), 0), ((5, 2, 3, 3), 0), ((2, 6, 3), 1), ((2, 6, 3), -2), ((4, 2, 9), 2)],
)
@pytest.mark.parametrize("order", (1, 2))
def test_shapes_and_batching(shape: tuple[int, ...], dim: int, order: int) -> None:
    torch.manual_seed(0)
    c = torch.rand(shape) * 1.6 - 0.8
    b, y = qds.modulate(c, order=order, dim=dim, return_states=True)
    assert b.shape == c.shape and y.shape == c.shape and b.dtype == c.dtype
    assert torch.all(b.abs() == 1)
    # batching = modulating every sequence on its own
    ct = c.movedim(dim, -1).reshape(-1, c.shape[dim])
    bt = b.movedim(dim, -1).reshape(-1, c.shape[dim])
    for row in range(ct.shape[0]):
        assert torch.equal(qds.modulate(ct[row], order=order), bt[row])


def test_empty_sequence() -> None:
    c = torch.zeros(0, 3)
    assert qds.modulate(c).shape == (0, 3)
    b, y = qds.modulate(c, order=2, return_states=True)
    assert b.shape == y.shape == (0, 3)
    assert qds.shape_noise(c, 2).shape == (0, 3)


# ---------------------------------------------------------------- transfer functions


@pytest.mark.parametrize("order", (1, 2, 3))
def test_transfer_functions(order: int) -> None:
    z = sds.Z
    assert sds.signal_transfer_function(order) == 1
    assert sp.simplify(sds.noise_transfer_function(order) - (1 - 1 / z) ** order) == 0
    mag = sds.ntf_magnitude_squared(order)
    assert sp.simplify(mag - (2 - 2 * sp.cos(sds.OMEGA)) ** order) == 0


@pytest.mark.parametrize(("order", "gain"), [(1, 2), (2, 6), (3, 20)])
def test_noise_power_gain(order: int, gain: int) -> None:
    g = sds.noise_power_gain(order)
    assert g == gain and g == sp.binomial(2 * order, order)
    # Parseval: sum of the squared impulse response of (1 - z^-1)^n
    assert sum(sp.binomial(order, j) ** 2 for j in range(order + 1)) == g
    assert sds.in_band_noise_gain(order, sp.pi) == g


def test_in_band_closed_form() -> None:
    wb = sds.OMEGA_B
    assert sp.simplify(sds.in_band_noise_gain(1) - 2 * (wb - sp.sin(wb)) / sp.pi) == 0
    expected2 = (6 * wb - 8 * sp.sin(wb) + sp.sin(2 * wb)) / sp.pi
    assert sp.simplify(sds.in_band_noise_gain(2) - expected2) == 0
    # leading term for a narrow band: omega_B^(2n+1) / ((2n+1) pi)
    for n in (1, 2):
        lead = sp.series(sds.in_band_noise_gain(n), wb, 0, 2 * n + 2).removeO()
        assert sp.simplify(lead - wb ** (2 * n + 1) / ((2 * n + 1) * sp.pi)) == 0


@pytest.mark.parametrize("order", (1, 2))
@pytest.mark.parametrize("omega_b", (0.05, math.pi / 8, 1.0, 2.5))
def test_in_band_vs_numerical_integration(order: int, omega_b: float) -> None:
    closed = float(sds.in_band_noise_gain(order, omega_b))
    num, _ = integrate.quad(lambda w: abs(1 - np.exp(-1j * w)) ** (2 * order), -omega_b, omega_b)
    assert closed == pytest.approx(num / (2 * math.pi), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize(("order", "gain"), [(1, 2.0), (2, 6.0)])
def test_shaped_white_noise_power_monte_carlo(order: int, gain: float) -> None:
    gen = torch.Generator().manual_seed(order)
    e = torch.rand(200_000, generator=gen, dtype=torch.float64) * 2 - 1  # variance 1/3
    shaped = qds.shape_noise(e, order)
    assert (shaped.var() / e.var()).item() == pytest.approx(gain, rel=0.02)
    # in-band power (|omega| <= pi/8) from the periodogram
    spec = np.abs(np.fft.rfft(shaped.numpy())) ** 2 / len(e)
    w = np.linspace(0, math.pi, len(spec))
    inband = spec[w <= math.pi / 8].sum() * 2 / len(e) / e.var().item()
    assert inband == pytest.approx(float(sds.in_band_noise_gain(order, math.pi / 8)), rel=0.1)


# ---------------------------------------------------------------- argument checks


def test_argument_checks() -> None:
    with pytest.raises(ValueError):
        sds.code_gradient(-1)
    with pytest.raises(ValueError):
        sds.code_gradient(2, order=3)
    with pytest.raises(ValueError):
        sds.code_gradient_closed_form(-2, 1)
    with pytest.raises(ValueError):
        sds.code_gradient_closed_form(1, 0)
    with pytest.raises(TypeError):
        sds.code_gradient(1.5)
    with pytest.raises(ValueError):
        sds.noise_power_gain(0)
    with pytest.raises(ValueError):
        sds.noise_transfer_function(-1)
    with pytest.raises(ValueError):
        sds.in_band_noise_gain(1, 4.0)
    c = torch.rand(5)
    with pytest.raises(ValueError):
        qds.modulate(c, order=3)
    with pytest.raises(ValueError):
        qds.modulate(c, order=0)
    with pytest.raises(ValueError):
        qds.modulate(c, dim=1)
    with pytest.raises(TypeError):
        qds.modulate(torch.arange(5))
    with pytest.raises(TypeError):
        qds.modulate([0.1, 0.2])
    with pytest.raises(ValueError):
        qds.modulate(torch.tensor(0.3))
    with pytest.raises(ValueError):
        qds.shape_noise(c, order=0)
    with pytest.raises(ValueError):
        qds.quantization_error(c, torch.rand(4))


# Mutation testing (.ci/mutmut.sh) found what the checks above never looked at: the messages,
# the defaults, dim = -ndim, orders above 2 in shape_noise, a sequence of one step.

C5 = torch.rand(5)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: qds.modulate([0.1, 0.2]), TypeError, "c must be a torch.Tensor, got list"),
        (lambda: qds.modulate(torch.arange(5)), TypeError, "c must have a floating point dtype"),
        (lambda: qds.modulate(torch.tensor(0.3)), ValueError, "c must have at least one dim"),
        (lambda: qds.modulate(C5, order=1.0), TypeError, "order must be an int, got float"),
        (lambda: qds.modulate(C5, order=True), TypeError, "order must be an int, got bool"),
        (lambda: qds.modulate(C5, order=3), ValueError, r"order must be one of \(1, 2\), got 3"),
        (lambda: qds.modulate(C5, dim=0.0), TypeError, "dim must be an int, got float"),
        (lambda: qds.modulate(C5, dim=-2), ValueError, "dim=-2 is out of range for a tensor "
                                                       "with 1 dimensions"),
        (lambda: qds.shape_noise([0.1]), TypeError, "e must be a torch.Tensor"),
        (lambda: qds.shape_noise(C5, order=0), ValueError, "order must be >= 1, got 0"),
        (lambda: qds.quantization_error([0.1], C5), TypeError, "b must be a torch.Tensor"),
        (lambda: qds.quantization_error(C5, [0.1]), TypeError, "y must be a torch.Tensor"),
        (lambda: qds.quantization_error(C5, torch.rand(4)), ValueError,
         r"b and y must have the same shape, got \(5,\) and \(4,\)"),
        (lambda: qds.binarize_ste(0.5), TypeError, "x must be a torch.Tensor, got float"),
    ],
)
def test_argument_errors_say_what_is_wrong(call, error, message) -> None:
    with pytest.raises(error, match=f"^{message}"):  # the message starts with the argument's name
        call()


def test_defaults_and_edge_cases() -> None:
    c = torch.randn(7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert not torch.equal(qds.modulate(c, order=1), qds.modulate(c, order=2))
    assert torch.equal(qds.modulate(c), qds.modulate(c, order=1))  # the default is order 1
    assert torch.equal(qds.modulate(c, dim=-2), qds.modulate(c, dim=0))  # dim = -ndim is valid
    assert torch.equal(qds.shape_noise(c), qds.shape_noise(c, order=1))
    # any order >= 1: (1 - z^-1)^3 = 1 - 3 z^-1 + 3 z^-2 - z^-3, zero before i = 0
    z = torch.cat([torch.zeros(3, 3, dtype=c.dtype), c])
    third = z[3:] - 3 * z[2:-1] + 3 * z[1:-2] - z[:-3]
    torch.testing.assert_close(qds.shape_noise(c, order=3), third, rtol=0, atol=1e-12)
    one = torch.tensor([0.7])  # a single step: nothing before it, so e[0] itself
    assert torch.equal(qds.shape_noise(one, order=2), one)
    assert qds.binarize_ste(torch.tensor(0.0)).item() == 1.0  # a scalar is accepted; B(0) = +1
