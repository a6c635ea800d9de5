"""Tests of nctutor.entropy: rounded entropy vs high resolution, real coders vs ideal bits."""

import numpy as np
import pytest
import scipy.stats

from nctutor import entropy as E
from nctutor.errors import BitstreamError


def test_rounded_pmf_matches_scipy_and_sums_to_one():
    k = np.arange(-60, 61)
    p = E.rounded_pmf(k, 2.0, mu=0.3, step=0.5)
    ref = scipy.stats.norm(0.3, 2.0)
    expected = ref.cdf((k + 0.5) * 0.5) - ref.cdf((k - 0.5) * 0.5)
    np.testing.assert_allclose(p, expected, rtol=1e-9, atol=1e-15)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    pl = E.rounded_pmf(np.arange(-300, 301), 1.5, mu=-0.2, density="laplace")
    assert pl.sum() == pytest.approx(1.0, abs=1e-12)


def test_far_tail_keeps_relative_precision():
    # 1 - cdf would lose everything at 12 sigma; the survival function keeps it
    p = E.rounded_pmf(12, 1.0)
    expected = scipy.stats.norm.sf(11.5) - scipy.stats.norm.sf(12.5)
    assert p == pytest.approx(expected, rel=1e-9) and p > 0


@pytest.mark.parametrize("ratio", [2.5, 3.0, 5.0, 10.0, 20.0])
@pytest.mark.parametrize("step", [1.0, 0.25])
def test_high_resolution_gap_small_for_large_sigma(ratio, step):
    sigma = ratio * step
    gap = E.rounded_entropy(sigma, step) - E.high_resolution_entropy(sigma, step)
    assert 0 < gap < 0.01


@pytest.mark.parametrize("ratio", [1.0, 2.0, 4.0, 10.0])
def test_gap_is_the_entropy_of_the_added_uniform_noise(ratio):
    # H(Q) ~ h(Y + step U) - log2 step: the variance grows by step^2/12 (Eq. 18)
    gap = E.rounded_entropy(ratio) - E.high_resolution_entropy(ratio)
    assert gap == pytest.approx(0.5 * np.log2(1 + 1 / (12 * ratio**2)), rel=0.05)
    assert gap > 0.01 if ratio <= 2 else gap < 0.01


def test_entropy_nonnegative_and_approximation_fails_for_small_sigma():
    ratios = np.geomspace(0.05, 20, 40)
    H = np.array([E.rounded_entropy(s) for s in ratios])
    approx = E.high_resolution_entropy(ratios)
    assert np.all(H >= 0)
    assert H[0] < 1e-6  # almost all mass in the bin of 0
    assert approx[0] < -2  # the approximation goes negative
    # the gap shrinks monotonically once sigma is above the step
    gap = np.abs(H - approx)[ratios > 0.5]
    assert np.all(np.diff(gap) <= 1e-12)


def test_entropy_equals_discrete_entropy_of_scipy():
    p = E.rounded_pmf(np.arange(-400, 401), 3.0, density="laplace")
    assert E.rounded_entropy(3.0, density="laplace") == pytest.approx(
        scipy.stats.entropy(p, base=2), abs=1e-9
    )


def test_ideal_bits():
    assert E.ideal_bits([0, 1, 1], lambda s: np.where(s == 0, 0.5, 0.25)) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        E.ideal_bits([0, 1], lambda s: np.zeros(2))
    with pytest.raises(TypeError):
        E.ideal_bits([0, 1], 0.5)


@pytest.mark.parametrize("density", ["gaussian", "laplace"])
@pytest.mark.parametrize("sigma", [1.0, 4.0])
def test_constriction_overhead_below_one_percent(density, sigma):
    _, q = E.sample_rounded(20_000, sigma, mu=0.3, density=density, seed=3)
    nbits, decoded = E.constriction_bits(q, sigma, 0.3, density=density)
    np.testing.assert_array_equal(decoded, q)
    ideal = E.ideal_bits(q, lambda k: E.rounded_pmf(k, sigma, 0.3, density=density))
    overhead = nbits / ideal - 1
    assert 0 <= overhead < 0.01


@pytest.mark.parametrize("density", ["gaussian", "laplace"])
def test_constriction_bits_is_the_exact_coder(density):
    """One coder, one alphabet rule: constriction_bits counts the very stream of encode_gaussian
    (alphabet [min, max] of the data, stored), and the density is part of the model: decoding
    with the other one fails its CRC instead of returning other symbols."""
    rng = np.random.default_rng(4)
    scales = np.exp(rng.uniform(np.log(0.3), np.log(6.0), 5000))
    means = rng.normal(0, 4, 5000)
    _, q = E.sample_rounded(5000, scales, means, density=density, seed=8)
    q[0] = 400  # far in the tail of every model: still in the stored alphabet
    nbits, decoded = E.constriction_bits(q, scales, means, density=density)
    stream = E.encode_gaussian(q, means, scales, density)
    assert nbits == 8 * len(stream)
    np.testing.assert_array_equal(decoded, q)
    np.testing.assert_array_equal(E.decode_gaussian(stream, means, scales, density).numpy(), q)
    other = "laplace" if density == "gaussian" else "gaussian"
    with pytest.raises(BitstreamError, match="CRC"):
        E.decode_gaussian(stream, means, scales, other)


@pytest.mark.parametrize("density", ["gaussian", "laplace"])
def test_compressai_round_trip_and_overhead(density):
    rng = np.random.default_rng(5)
    scales = np.exp(rng.uniform(np.log(0.5), np.log(8.0), 20_000))
    means = rng.normal(0, 3, 20_000)
    y, _ = E.sample_rounded(20_000, scales, means, density=density, seed=6)
    coder = E.compressai_gaussian_bits if density == "gaussian" else E.compressai_laplace_bits
    nbytes, decoded = coder(y, scales, means)
    symbols = np.rint(y - means)  # CompressAI rounds the residual
    # decoded = symbols + means, computed by CompressAI in float32
    np.testing.assert_array_equal(np.rint(decoded - means), symbols)
    np.testing.assert_allclose(decoded, symbols + means, atol=1e-5)
    ideal = E.ideal_bits(symbols, lambda k: E.rounded_pmf(k, scales, density=density))
    # the model mismatch of the 64-entry scale table costs a few per cent at most
    assert 0 < 8 * nbytes / ideal - 1 < 0.05
    # with the exact scale in the table, the overhead shrinks to the 16-bit CDF precision
    sigma = 2.0
    y, _ = E.sample_rounded(20_000, sigma, density=density, seed=7)
    nbytes, decoded = coder(y, sigma, scale_table=[sigma])
    np.testing.assert_array_equal(decoded, np.rint(y))
    ideal = E.ideal_bits(np.rint(y), lambda k: E.rounded_pmf(k, sigma, density=density))
    assert 0 < 8 * nbytes / ideal - 1 < 0.01


def test_table_scale_rounds_up():
    table = E.default_scale_table()
    assert len(table) == 64 and table[0] == pytest.approx(0.11) and table[-1] == pytest.approx(256)
    s = np.array([0.05, 0.11, 1.0, 300.0])
    t = E.table_scale(s)
    assert t[0] == pytest.approx(0.11) and t[1] == pytest.approx(0.11)
    assert 1.0 <= t[2] < 1.0 * (256 / 0.11) ** (1 / 63) + 1e-6
    assert t[3] == pytest.approx(256)


def test_argument_checks():
    with pytest.raises(ValueError, match="unknown density"):
        E.rounded_entropy(1.0, density="cauchy")
    with pytest.raises(ValueError, match="> 0"):
        E.rounded_entropy(0.0)
    with pytest.raises(ValueError, match="> 0"):
        E.rounded_pmf(0, -1.0)
    with pytest.raises(ValueError, match="> 0"):
        E.high_resolution_entropy(1.0, step=0)
    with pytest.raises(ValueError, match="> 0"):
        E.compressai_gaussian_bits(np.zeros(4), -1.0)
    with pytest.raises(ValueError, match="> 0"):
        E.constriction_bits(np.zeros(4, dtype=int), 0.0)
    with pytest.raises(ValueError, match="integers"):
        E.constriction_bits(np.zeros(4), 1.0)
    with pytest.raises(ValueError, match="MAX_SPAN"):
        E.constriction_bits(np.array([0, E.MAX_SPAN + 1]), 1.0)
    with pytest.raises(ValueError, match="unknown density"):
        E.constriction_bits(np.zeros(4, dtype=int), 1.0, density="cauchy")
    with pytest.raises(ValueError, match="positive integer"):
        E.sample_rounded(0, 1.0)


def test_compressai_needs_two_values():
    # CompressAI's rANS flush writes two words; with one symbol its buffer overflows (a crash),
    # so the wrapper refuses it with a message instead.
    with pytest.raises(ValueError, match="at least 2 values"):
        E.compressai_gaussian_bits(np.array([1.0]), np.array([1.0]))
