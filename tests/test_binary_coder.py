"""The adaptive binary arithmetic coder of the binary video codec (nctutor.entropy.binary):
lossless round trips, rates close to the model's ideal code length and to the source's
(conditional) entropy, and damaged streams refused."""

import numpy as np
import pytest

from nctutor.entropy.binary import code_length, decode_bits, encode_bits
from nctutor.errors import BitstreamError


def random_bits(shape, p1=0.5, seed=0):
    return (np.random.default_rng(seed).random(shape) < p1).astype(np.uint8)


def binary_entropy(q):
    return -(q * np.log2(q) + (1 - q) * np.log2(1 - q))


def markov_in_time(shape, flip, seed=0):
    """First frame i.i.d. p = 1/2, then each bit flips its previous-frame value with ``flip``."""
    rng = np.random.default_rng(seed)
    flips = rng.random(shape) < flip
    flips[0] = rng.random(shape[1:]) < 0.5
    return np.logical_xor.accumulate(flips, axis=0).astype(np.uint8), flips[1:].mean()


@pytest.mark.parametrize(
    "shape",
    [(3, 4, 5, 7), (1, 2, 6, 6), (2, 3, 1, 9), (2, 3, 9, 1), (1, 1, 1, 1), (4, 1, 2, 3)],
)
def test_round_trip(shape):
    bits = random_bits(shape, p1=0.3, seed=sum(shape))
    blob = encode_bits(bits)
    decoded = decode_bits(blob, shape)
    assert decoded.dtype == np.uint8 and decoded.shape == shape
    np.testing.assert_array_equal(decoded, bits)
    assert encode_bits(bits) == blob  # deterministic
    assert encode_bits(bits.astype(bool)) == blob == encode_bits(bits.astype(np.int64))


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (2, 3, 0, 4), (2, 3, 4, 0)])
def test_empty_dimensions(shape):
    bits = np.zeros(shape, dtype=np.uint8)
    assert code_length(bits) == 0.0
    assert decode_bits(encode_bits(bits), shape).shape == shape


def test_all_zero_is_nearly_free():
    bits = np.zeros((8, 2, 32, 32), dtype=np.uint8)
    blob = encode_bits(bits)
    np.testing.assert_array_equal(decode_bits(blob, bits.shape), bits)
    assert 8 * len(blob) < 0.015 * bits.size  # halved counts: a small floor


def test_alternating_in_time_costs_little_after_the_first_frame():
    # delta-sigma modulation of codes near 0: +1, -1, +1, ... in time, anything in space
    first = random_bits((1, 4, 16, 16), seed=1)
    bits = first ^ (np.arange(16) % 2).astype(np.uint8)[:, None, None, None]
    np.testing.assert_array_equal(decode_bits(encode_bits(bits), bits.shape), bits)
    # coding restarts per call, so the first frame costs the same alone and in the group
    later = code_length(bits) - code_length(bits[:1])
    assert later < 0.05 * bits[1:].size
    assert code_length(bits) < 0.15 * bits.size


def test_code_length_matches_the_stream():
    for seed, bits in enumerate([random_bits((3, 8, 10, 12), p1=0.2),
                                 markov_in_time((6, 4, 12, 12), 0.1, seed=3)[0]]):
        ideal = code_length(bits)
        actual = 8 * len(encode_bits(bits))
        assert abs(actual - ideal) < 0.01 * ideal + 8 * (4 + 8), (seed, actual, ideal)


def test_fair_coin_costs_one_bit_a_bit():
    bits = random_bits((4, 2, 64, 64), seed=2)
    rate = code_length(bits) / bits.size
    assert 0.98 < rate < 1.03
    assert 0.98 < 8 * len(encode_bits(bits)) / bits.size < 1.03


def test_bit_correlated_with_the_previous_frame_costs_the_conditional_entropy():
    bits, flip = markov_in_time((16, 2, 32, 32), 0.1, seed=4)
    later = (code_length(bits) - code_length(bits[:1])) / bits[1:].size
    assert binary_entropy(flip) - 0.02 < later < binary_entropy(flip) + 0.04


def test_damaged_streams_are_refused_or_decode_right():
    bits = random_bits((3, 4, 6, 9), p1=0.4, seed=5)
    blob = encode_bits(bits)
    rng = np.random.default_rng(6)
    refused = 0
    for position in rng.integers(0, len(blob), 100):
        damaged = bytearray(blob)
        damaged[position] ^= int(rng.integers(1, 256))
        try:
            np.testing.assert_array_equal(decode_bits(bytes(damaged), bits.shape), bits)
        except BitstreamError:
            refused += 1
    assert refused > 90
    for length in range(len(blob)):
        with pytest.raises(BitstreamError):
            decode_bits(blob[:length], bits.shape)
    for shape in ((3, 4, 9, 6), (3, 4, 6, 8), (3, 4, 6, 10)):  # another shape
        with pytest.raises(BitstreamError, match="another shape"):
            decode_bits(blob, shape)


def test_wrong_inputs_are_refused():
    with pytest.raises(ValueError, match="shape"):
        encode_bits(np.zeros((2, 3, 4), dtype=np.uint8))
    for wrong in (2, -1, 0.5):
        bits = np.zeros((1, 2, 3, 3))
        bits[0, 1, 2, 2] = wrong
        with pytest.raises(ValueError, match="0 or 1"):
            encode_bits(bits)
        with pytest.raises(ValueError, match="0 or 1"):
            code_length(bits)
    with pytest.raises(ValueError, match="dtype"):
        encode_bits(np.array([[[["0"]]]]))
    blob = encode_bits(np.zeros((1, 1, 2, 2), dtype=np.uint8))
    for shape in ((1, 1, 2), (1, 1, -2, 2), (1, 1, 2.0, 2), (1, True, 2, 2)):
        with pytest.raises(ValueError, match="four integers"):
            decode_bits(blob, shape)
