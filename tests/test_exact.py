"""Exact per-symbol Gaussian coding: round trips, tails, overhead vs CompressAI, damaged streams."""

import numpy as np
import pytest
import scipy.stats
import torch
from compressai.models import (
    JointAutoregressiveHierarchicalPriors,
    MeanScaleHyperprior,
    ScaleHyperprior,
)

from nctutor import codecs, data
from nctutor.codecs import exact as exact_mod
from nctutor.entropy import framing, gaussian
from nctutor.errors import BitstreamError

ARCHS = ["mbt2018-mean", "bmshj2018-hyperprior"]


def _tiny(arch: str, gain: float = 100.0) -> torch.nn.Module:
    """An untrained N=M=8 model whose analysis output is amplified: y spans dozens of integers
    (an untrained g_a gives |y| < 0.5, i.e. only zeros, which would test nothing)."""
    torch.manual_seed(0)
    model = codecs.create(arch, N=8, M=8)
    with torch.no_grad():
        model.g_a[-1].weight.mul_(gain)
        model.g_a[-1].bias.mul_(gain)
    return model.eval().requires_grad_(False)


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def crop():
    return data.center_crop(data.kodak(1)[0], 128)[None]  # (1, 3, 128, 128)


@pytest.fixture(scope="module", params=ARCHS)
def pair(request):
    """(CompressAI model, its exact twin), both updated."""
    model = _tiny(request.param)
    model.update(force=True)
    return model, exact_mod.exact(model)


# --------------------------------------------------------------------------- the coder


def test_round_trip_with_far_tails():
    rng = np.random.default_rng(0)
    n = 5000
    scales = np.exp(rng.uniform(np.log(0.11), np.log(50), n))
    means = rng.uniform(-20, 20, n)
    q = np.rint(means + scales * rng.standard_normal(n)).astype(np.int64)
    q[:3] = [-40_000, 35_000, 1]  # far outside any Gaussian tail: P ≈ 0, still coded
    scales[:3] = 0.11
    blob = gaussian.encode_gaussian(q, means, scales)
    out = gaussian.decode_gaussian(blob, means, torch.tensor(scales).reshape(50, 100))
    assert out.shape == (50, 100) and out.dtype == torch.int32
    assert np.array_equal(out.numpy().ravel(), q)


def test_bits_match_the_ideal_code_length():
    """-Σ log2 P of Eq. (17), summed with scipy, vs the real stream: within 0.2 % + 16 bytes
    (the alphabet header, the CRC and the ANS coder's final state)."""
    rng = np.random.default_rng(1)
    n = 20_000
    scales = np.exp(rng.uniform(np.log(0.2), np.log(30), n))
    means = rng.uniform(-3, 3, n)
    q = np.rint(means + scales * rng.standard_normal(n)).astype(np.int64)
    ideal = -np.log2(scipy.stats.norm.cdf((q + 0.5 - means) / scales)
                     - scipy.stats.norm.cdf((q - 0.5 - means) / scales)).sum()
    bits = 8 * len(gaussian.encode_gaussian(q, means, scales))
    assert ideal * 0.998 - 8 < bits < ideal * 1.002 + 16 * 8


def test_constant_symbols_and_float_input():
    scales = torch.full((3, 4), 0.5)
    for q in (torch.zeros(3, 4), torch.full((3, 4), 7.0)):
        blob = gaussian.encode_gaussian(q, None, scales)
        assert torch.equal(gaussian.decode_gaussian(blob, None, scales), q.int())


def test_argument_errors():
    s = np.ones(4)
    with pytest.raises(ValueError, match="integer values"):
        gaussian.encode_gaussian(np.array([0.5, 1, 2, 3]), None, s)
    with pytest.raises(ValueError, match="scales must be finite and > 0"):
        gaussian.encode_gaussian(np.arange(4), None, np.array([1, 0, 1, 1.0]))
    with pytest.raises(ValueError, match="4 entries, scales 3"):
        gaussian.encode_gaussian(np.arange(4), None, np.ones(3))
    with pytest.raises(ValueError, match="means has 2 entries"):
        gaussian.encode_gaussian(np.arange(4), np.zeros(2), s)
    with pytest.raises(ValueError, match="MAX_SPAN"):
        gaussian.encode_gaussian(np.array([0, gaussian.MAX_SPAN + 1, 0, 0]), None, s)
    with pytest.raises(TypeError, match="scales must be a tensor"):
        gaussian.encode_gaussian(np.arange(4), None, [1.0] * 4)
    with pytest.raises(TypeError, match="exact"):
        exact_mod.exact(codecs.create("bmshj2018-factorized", N=8, M=8))


def test_damaged_streams_raise():
    rng = np.random.default_rng(2)
    scales = np.exp(rng.uniform(-1, 3, 3000))
    q = np.rint(scales * rng.standard_normal(3000)).astype(np.int64)
    blob = gaussian.encode_gaussian(q, None, scales)
    bad = [blob[:-4], blob[:-8], blob[:-1], blob[: len(blob) // 2], blob[:6], blob[:1], b"",
           blob + b"\0\0\0\0", blob + b"\x01\0\0\0"]
    for i in (0, 1, 2, 3, 10, len(blob) // 2, len(blob) - 5):  # one flipped bit anywhere
        b = bytearray(blob)
        b[i] ^= 0x10
        bad.append(bytes(b))
    for b in bad:
        with pytest.raises(BitstreamError):
            gaussian.decode_gaussian(b, None, scales)
    with pytest.raises(BitstreamError, match="CRC"):  # the decoder's scales differ slightly
        gaussian.decode_gaussian(blob, None, scales * (1 + 1e-6))


# --------------------------------------------------------------------------- the models


def test_exact_twin_is_a_drop_in(pair, crop):
    model, twin = pair
    assert type(twin) is exact_mod.EXACT_CLASSES[type(model)]
    assert isinstance(twin, ScaleHyperprior | MeanScaleHyperprior) and not twin.training
    for a, b in zip(model.state_dict().values(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert codecs.model_fingerprint(twin) == codecs.model_fingerprint(model)  # tables copied
    c, e = model.compress(crop), twin.compress(crop)
    assert e["strings"][1] == c["strings"][1] and tuple(e["shape"]) == tuple(c["shape"])
    with exact_mod.one_thread():  # the twin's decoder arithmetic: h_s and g_s on one thread
        x_c = model.decompress(c["strings"], c["shape"])["x_hat"]
    x_e = twin.decompress(e["strings"], e["shape"])["x_hat"]
    assert torch.equal(x_e, x_c)  # same y_hat, hence bit-identical reconstructions
    y = model.g_a(crop)
    q = model.gaussian_conditional.quantize(y, "symbols", None)
    assert q.max() - q.min() > 20  # the test codes real symbols, not only zeros


def test_batches_give_one_string_per_image(pair, crop):
    model, twin = pair
    x = torch.cat([crop[..., :64, :64], crop[..., 64:, 64:]])
    e, c = twin.compress(x), model.compress(x)
    assert len(e["strings"][0]) == 2 and e["strings"][0][0] != e["strings"][0][1]
    with exact_mod.one_thread():
        x_c = model.decompress(c["strings"], c["shape"])["x_hat"]
    assert torch.equal(twin.decompress(e["strings"], e["shape"])["x_hat"], x_c)
    with pytest.raises(ValueError, match="1 y strings for a batch of 2"):
        twin.decompress([e["strings"][0][:1], e["strings"][1]], e["shape"])


def test_decoding_is_bit_exact_across_thread_counts(pair, crop):
    """Encoded at 1 or 2 threads, decoded at 1 or 2: the twin computes h_s on one thread on both
    sides, so the decoder's scales are bit-identical to the encoder's (a one-bit difference would
    fail the CRC), y decodes to the same y_hat and g_s (also on one thread) to the same x_hat.
    ``tests/test_container.py`` checks the same with the shipped weights, whose convolutions do
    differ between thread counts."""
    _, twin = pair
    saved = torch.get_num_threads()
    x = data.center_crop(data.kodak(2)[1], 256)[None]
    y_hats, x_hats = {}, {}
    try:
        for enc in (1, 2):
            torch.set_num_threads(enc)
            e = twin.compress(x)
            for dec in (1, 2):
                torch.set_num_threads(dec)
                z_hat = twin.entropy_bottleneck.decompress(e["strings"][1], e["shape"])
                y_hats[enc, dec] = twin._decode_y(e["strings"][0], *twin._params(z_hat))
                x_hats[enc, dec] = twin.decompress(e["strings"], e["shape"])["x_hat"]
                assert torch.get_num_threads() == dec
    finally:
        torch.set_num_threads(saved)
    for enc in (1, 2):
        assert torch.equal(y_hats[enc, 1], y_hats[enc, 2])
        assert torch.equal(x_hats[enc, 1], x_hats[enc, 2])


def test_one_thread_restores_the_thread_count():
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(RuntimeError, match="inside"):
            with exact_mod.one_thread():
                assert torch.get_num_threads() == 1
                raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)


def test_exact_of_a_twin_and_of_foreign_models(pair):
    model, twin = pair
    again = exact_mod.exact(twin)  # found by the class hierarchy: a fresh copy of the twin
    assert type(again) is type(twin) and again is not twin
    assert codecs.model_fingerprint(again) == codecs.model_fingerprint(model)
    with pytest.raises(TypeError, match="factorized"):
        exact_mod.exact(codecs.create("bmshj2018-factorized", N=8, M=8))
    with pytest.raises(TypeError, match="JointAutoregressive"):  # another architecture
        exact_mod.exact(JointAutoregressiveHierarchicalPriors(N=8, M=8))
    with pytest.raises(TypeError, match="must be one of"):
        exact_mod.exact(torch.nn.Conv2d(3, 3, 1))


def test_overhead_below_compressai_on_the_same_latents(pair, crop):
    """Latents drawn from the model's own conditional Gaussians (what a trained model's latents
    are, ideally; small σ as in trained models), the size of a Kodak latent with M=8: the exact
    coder spends at most 0.1 % over -Σ log2 likelihood of the eval-mode forward plus 14 fixed
    bytes (2 varint bytes, the CRC, the ANS coder's 64-bit final state), and fewer bits than
    CompressAI, which rounds σ up to its scale table and uses 16-bit CDFs."""
    model, twin = pair
    gc = model.gaussian_conditional
    torch.manual_seed(3)
    scales = torch.exp(torch.empty(1, 8, 32, 48).uniform_(np.log(0.11), np.log(4)))
    means = torch.empty_like(scales).uniform_(-5, 5) if isinstance(model, MeanScaleHyperprior) \
        else None
    y = (0 if means is None else means) + scales * torch.randn_like(scales)
    _, likelihood = gc(y, scales, means)  # eval mode: round(y - μ) + μ, Eq. (17)
    ideal = -likelihood.log2().sum().item()
    compressai_bits = 8 * len(gc.compress(y, gc.build_indexes(scales), means)[0])
    exact_bits = 8 * len(twin._encode_y(y, scales, means)[0])
    y_hat = twin._decode_y(twin._encode_y(y, scales, means), scales, means)
    assert torch.equal(y_hat, gc.quantize(y, "dequantize", means))
    assert exact_bits <= ideal * 1.001 + 14 * 8
    assert exact_bits < compressai_bits


def test_corrupted_y_string_in_a_model_raises(pair, crop):
    _, twin = pair
    e = twin.compress(crop)
    y = e["strings"][0][0]
    for bad in (y[:-4], y[: len(y) // 2], y[:-1], bytes([y[0]]) + bytes(len(y) - 1)):
        with pytest.raises(BitstreamError):
            twin.decompress([[bad], e["strings"][1]], e["shape"])


# --------------------------------------------------------------------------- the stream format


def test_varints_round_trip_and_keep_their_bytes():
    """The alphabet header's zigzag LEB128 integers: every value comes back, and the bytes of a
    few are pinned (a change of the format would make old files undecodable)."""
    for v in range(-300, 301):
        blob = framing.put_varint(v) + b"\xff"  # a byte after it must not be read
        assert framing.get_varint(blob, 0, 6, "test") == (v, len(blob) - 1), v
    pinned = {0: b"\x00", -1: b"\x01", 1: b"\x02", 63: b"\x7e", -64: b"\x7f", 64: b"\x80\x01",
              -65: b"\x81\x01", 300: b"\xd8\x04"}
    for v, b in pinned.items():
        assert framing.put_varint(v) == b, v


def test_a_single_symbol_is_coded():
    blob = gaussian.encode_gaussian(np.array([5]), None, np.array([2.0]))
    assert gaussian.decode_gaussian(blob, None, np.array([2.0])).tolist() == [5]


def test_the_stream_of_a_fixed_input_is_pinned():
    """Golden bytes: alphabet [-3, 2] (two varints), the CRC of the symbols, the ANS words. A
    change of any of them (byte order, CRC, constriction's coder) shows here first."""
    q = np.array([0, -1, 2, 0, 1, -3, 0, 0])
    means = np.array([0.0, 0, 0.5, 0, 0, -1, 0, 0.2])
    scales = np.array([1.0, 0.5, 2, 1, 1, 3, 0.3, 1])
    blob = gaussian.encode_gaussian(q, means, scales)
    assert blob.hex() == "05042a27c7796f4998f5"
    assert gaussian.decode_gaussian(blob, means, scales).tolist() == q.tolist()
