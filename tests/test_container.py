"""The .nct container (format version 4, written with the layout of version 3 for every coder;
versions 1, 2 and 3 still read): exact round trips with the table and exact coders, determinism
across thread counts and processes, the header of the lattice coder (versions 3 and 4), and
refusal of every damaged file. Version 4 codes inside :func:`nctutor.entropy.integer.
integer_entropy` with portable tables, so a file decodes to what the model reconstructs in
memory in that arithmetic (:func:`_in_memory`); ``portable=False`` still writes the float path
of versions 2 and 3. The lattice codec's own round trips are in tests/test_latent_codec.py; the
cross-machine checks of version 4 in tests/test_portable.py."""

import contextlib
import copy
import dataclasses
import json
import random
import struct
import subprocess
import sys
import textwrap
import time
import zlib

import pytest
import torch

from nctutor import checkpoints, codecs, container, data, zoo
from nctutor.codecs.exact import exact, one_thread
from nctutor.codecs.latent import MAIN_STEPS, SIDE_STEPS, LatentCodec
from nctutor.entropy import integer
from nctutor.errors import BitstreamError

ARCHS = list(codecs.ARCHITECTURES)


def _shipped_file(quality: int):
    return checkpoints.WEIGHTS_DIR / f"mbt2018-mean-q{quality}.pt"


def _tiny(arch, seed=0, N=8, M=8):
    torch.manual_seed(seed)
    model = codecs.create(arch, N=N, M=M).eval()
    model.update(force=True)
    return model


@pytest.fixture(scope="module")
def tiny_models():
    return {arch: _tiny(arch) for arch in ARCHS}


@pytest.fixture(scope="module")
def crop():
    return data.kodak(1)[0][:, 100:164, 200:280]  # a 64×80 crop of kodim01


@pytest.fixture(scope="module")
def shipped():
    """The shipped mean-scale model at quality 3 (trained: its latents span dozens of integers)
    and its exact twin."""
    model = zoo.load_exported(_shipped_file(3))
    return model, exact(model)


@pytest.fixture(scope="module")
def photo_crop():
    return data.kodak(2)[1][:, 200:328, 300:491]  # 128×191 of kodim02: padded to 128×192


def _float_path(model):
    """A copy of ``model`` with CompressAI's float tables: what versions 1-3 were coded with."""
    legacy = copy.deepcopy(model)
    legacy.update(force=True)
    return legacy


def _in_memory(model, arch, x, portable=True):
    """What the model itself reconstructs from its own compress() output, cropped: in the
    arithmetic of format version 4 (portable tables, made in place, and the integer entropy
    networks), or with ``portable=False`` in that of versions 1-3 (a copy with CompressAI's
    float tables, the float networks)."""
    xp = codecs.pad(x[None], codecs.STRIDES[arch])
    if portable:
        integer.portable_tables(model)
        networks = integer.integer_entropy(model)
    else:
        model, networks = _float_path(model), contextlib.nullcontext()
    with torch.no_grad(), networks:
        out = model.compress(xp)
        x_hat = model.decompress(out["strings"], out["shape"])["x_hat"]
    return x_hat[0, :, : x.shape[1], : x.shape[2]].clamp(0, 1)


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_equals_in_memory_decompress(tiny_models, crop, arch):
    model = tiny_models[arch]
    blob = container.encode_image(model, crop, arch, 3, profile="smoke")
    first = container.decode_image(blob, model)
    again = container.decode_image(blob, model)
    assert first.shape == crop.shape and first.dtype == torch.float32
    assert torch.equal(first, again)
    assert torch.equal(first, _in_memory(model, arch, crop))
    h = container.read_header(blob)
    assert (h.model, h.quality, h.profile, h.height, h.width) == (arch, 3, "smoke", 64, 80)
    assert (h.version, h.kind, h.coder, h.quantizer) == (4, "image", "table", "scalar")
    assert h.steps == (0, 0) and container.VERSION == 4
    assert h.shape == codecs.latent_shape(arch, 64, 80)
    assert len(h.lengths) == codecs.num_streams(arch)
    assert h.header_size + h.payload_size == len(blob)
    assert (h.N, h.M) == (8, 8)
    # the float path of version 2 still round-trips, to the float in-memory reconstruction
    old = container.encode_image(model, crop, arch, 3, profile="smoke", portable=False)
    assert container.read_header(old).version == 2
    assert torch.equal(container.decode_image(old, model), _in_memory(model, arch, crop, False))


@pytest.mark.parametrize("arch", ["bmshj2018-factorized", "mbt2018-mean"])
def test_odd_size_round_trip(tiny_models, arch):
    x = data.kodak(2)[1][:, 5:42, 11:102]  # 37×91: padded to the stride, cropped back
    assert x.shape == (3, 37, 91)
    model = tiny_models[arch]
    blob = container.encode_image(model, x, arch, 1)
    y = container.decode_image(blob, model)
    assert y.shape == (3, 37, 91)
    assert torch.equal(y, _in_memory(model, arch, x))
    assert 0 <= float(y.min()) and float(y.max()) <= 1


def test_replicate_padding():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    p = codecs.pad(x, 4)
    assert p.shape == (1, 1, 4, 4)
    assert torch.equal(p[0, 0, :2, :3], x[0, 0])
    assert torch.equal(p[0, 0, :, 3], torch.tensor([2.0, 5.0, 5.0, 5.0]))
    assert torch.equal(p[0, 0, 3], torch.tensor([3.0, 4.0, 5.0, 5.0]))


@pytest.mark.parametrize("arch", ARCHS)
def test_same_bits_and_pixels_at_any_thread_count(tiny_models, crop, arch):
    model, threads = tiny_models[arch], torch.get_num_threads()
    blobs, images = {}, {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            blobs[n] = container.encode_image(model, crop, arch, 3)
        for n in (1, 2):
            torch.set_num_threads(n)
            images[n] = container.decode_image(blobs[2], model)
    finally:
        torch.set_num_threads(threads)
    assert blobs[1] == blobs[2]
    assert torch.equal(images[1], images[2])


def test_wrong_model_is_refused(tiny_models, crop):
    blob = container.encode_image(tiny_models["mbt2018-mean"], crop, "mbt2018-mean", 3)
    with pytest.raises(BitstreamError, match="wrong model.*mbt2018-mean"):
        container.decode_image(blob, tiny_models["bmshj2018-hyperprior"])
    with pytest.raises(BitstreamError, match="wrong model.*mbt2018-mean"):
        container.decode_image(blob, exact(tiny_models["bmshj2018-hyperprior"]))
    with pytest.raises(BitstreamError, match="N=8, M=8"):
        container.decode_image(blob, _tiny("mbt2018-mean", N=8, M=16))
    with pytest.raises(BitstreamError, match="other weights"):  # same shape, other training
        container.decode_image(blob, _tiny("mbt2018-mean", seed=1))
    with pytest.raises(BitstreamError, match="other weights"):
        container.decode_image(blob, exact(_tiny("mbt2018-mean", seed=1)))


def test_encoder_checks_its_arguments(tiny_models, crop):
    model = tiny_models["bmshj2018-factorized"]
    with pytest.raises(ValueError, match="shape"):
        container.encode_image(model, crop[:1], "bmshj2018-factorized", 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        container.encode_image(model, crop * 2, "bmshj2018-factorized", 3)
    with pytest.raises(TypeError):
        container.encode_image(model, (crop * 255).to(torch.uint8), "bmshj2018-factorized", 3)
    with pytest.raises(ValueError, match="quality"):
        container.encode_image(model, crop, "bmshj2018-factorized", 9)
    with pytest.raises(ValueError, match="not a mbt2018-mean"):
        container.encode_image(model, crop, "mbt2018-mean", 3)
    with pytest.raises(ValueError, match="coder must be one of table, exact, lattice"):
        container.encode_image(model, crop, "bmshj2018-factorized", 3, coder="rans")
    with pytest.raises(ValueError, match="quantizer must be one of scalar, hex, oct"):
        container.encode_image(model, crop, "bmshj2018-factorized", 3, quantizer="d4")
    mean_scale = tiny_models["mbt2018-mean"]
    for kwargs in ({"quantizer": "hex"}, {"shift": True}):
        with pytest.raises(ValueError, match="needs coder='lattice'"):
            container.encode_image(mean_scale, crop, "mbt2018-mean", 3, coder="exact", **kwargs)
    with pytest.raises(ValueError, match="not bmshj2018-hyperprior"):
        container.encode_image(tiny_models["bmshj2018-hyperprior"], crop, "bmshj2018-hyperprior",
                               3, quantizer="oct")
    with pytest.raises(ValueError, match="bmshj2018-factorized has none: use coder='table'"):
        container.encode_image(model, crop, "bmshj2018-factorized", 3, coder="exact")
    for arch in ("bmshj2018-factorized", "mbt2018-mean"):  # no update(): no tables to start from
        untrained = codecs.create(arch, N=8, M=8).eval()
        for portable in (True, False):
            with pytest.raises(ValueError, match="update"):
                container.encode_image(untrained, crop, arch, 3, portable=portable)


# --------------------------------------------------------------------------- the exact coder


def _encoder_side(model, x):
    """What the encoder side's (plain CompressAI) model reconstructs from its quantized latents:
    ``ŷ = round(y - μ) + μ`` with ``μ`` from ``h_s``, then ``g_s(ŷ)`` as an 8-bit image; ``h_s``
    and ``g_s`` on one thread, the exact coder's arithmetic, ``g_a`` and ``h_a`` at the
    caller's thread count, as the encoder runs them; ``z`` coded with the portable tables and
    ``h_s`` the integer network, as in a file of format version 4. Returns ``(ŷ, image)``."""
    xp = codecs.pad(x[None], codecs.STRIDES["mbt2018-mean"])
    eb = integer.portable_tables(model).entropy_bottleneck
    with torch.no_grad(), integer.integer_entropy(model):
        y = model.g_a(xp)
        z = model.h_a(y)
        z_hat = eb.decompress(eb.compress(z), z.shape[-2:])
        with one_thread():
            _, means = model.h_s(z_hat).chunk(2, 1)
        y_hat = model.gaussian_conditional.quantize(y, "dequantize", means)
        with one_thread():
            x_hat = model.g_s(y_hat).clamp(0, 1)
    return y_hat, data.to_uint8(codecs.crop(x_hat[0], x.shape[1], x.shape[2]))


def _decoded_latents(twin, blob):
    """``ŷ`` as the exact decoder of ``twin`` gets it from the file ``blob`` (version 4: portable
    tables, the integer ``h_s``)."""
    h = container.read_header(blob)
    assert h.version == 4
    y, z = blob[h.header_size:][: h.lengths[0]], blob[h.header_size + h.lengths[0]:]
    integer.portable_tables(twin)
    with torch.no_grad(), integer.integer_entropy(twin):
        z_hat = twin.entropy_bottleneck.decompress([z], h.shape)
        return twin._decode_y([y], *twin._params(z_hat))


def test_exact_and_table_files_of_the_same_image(shipped, photo_crop):
    model, twin = shipped
    table = container.encode_image(model, photo_crop, "mbt2018-mean", 3, "cpu")
    blob = container.encode_image(model, photo_crop, "mbt2018-mean", 3, "cpu", coder="exact")
    assert container.encode_image(twin, photo_crop, "mbt2018-mean", 3, "cpu",
                                  coder="exact") == blob  # a twin given is used as it is
    assert container.encode_image(twin, photo_crop, "mbt2018-mean", 3, "cpu") == table
    h, ht = container.read_header(blob), container.read_header(table)
    assert (h.coder, ht.coder) == ("exact", "table")
    assert h.fingerprint == ht.fingerprint == codecs.model_fingerprint(twin)
    # the same z stream; y in other bytes, and fewer of them (no 64-scale table, 24-bit CDFs)
    assert blob[-h.lengths[1]:] == table[-ht.lengths[1]:]
    assert h.lengths[0] < ht.lengths[0]
    # the headers differ in the coder byte and the y length (and the CRC) only: the stream table
    # ends the header with n, the lengths of y and z, then the CRC
    y_len = h.header_size - 12
    assert h.header_size == ht.header_size and (blob[6], table[6]) == (1, 0)
    assert blob[:6] + blob[7:y_len] == table[:6] + table[7:y_len]
    # either model decodes either file (the header says how): the table file to CompressAI's own
    # image (its decompress, with the integer h_s of version 4), the exact file to the encoder
    # side's (one thread for h_s and g_s); the two differ at most in the last float bits
    y_hat, expected = _encoder_side(model, photo_crop)
    cai = _in_memory(model, "mbt2018-mean", photo_crop)
    for decoder in (model, twin):
        assert torch.equal(data.to_uint8(container.decode_image(blob, decoder)), expected)
        assert torch.equal(container.decode_image(table, decoder), cai)
    assert torch.equal(_decoded_latents(twin, blob), y_hat)
    assert (data.to_uint8(cai).int() - expected.int()).abs().max() <= 1


def test_exact_files_decode_identically_at_1_and_2_threads(shipped, photo_crop):
    """Encoded at 1 and at 2 threads, each file decoded at 1 and at 2 threads: the entropy-decoded
    latents are the encoder's, and the 8-bit images are the encoder side's reconstruction."""
    model, twin = shipped
    saved = torch.get_num_threads()
    try:
        for enc in (1, 2):
            torch.set_num_threads(enc)
            blob = container.encode_image(twin, photo_crop, "mbt2018-mean", 3, "cpu",
                                          coder="exact")
            y_hat, expected = _encoder_side(model, photo_crop)
            for dec in (1, 2):
                torch.set_num_threads(dec)
                assert torch.equal(_decoded_latents(twin, blob), y_hat), (enc, dec)
                got = data.to_uint8(container.decode_image(blob, twin))
                assert torch.equal(got, expected), (enc, dec)
                assert torch.get_num_threads() == dec  # the decoder restored the caller's count
    finally:
        torch.set_num_threads(saved)


_OTHER_PROCESS = textwrap.dedent("""
    import sys, torch
    from nctutor import container, data, zoo
    weights, image, blob, out = sys.argv[1:]
    torch.set_num_threads(1)
    model = zoo.load_exported(weights)
    x = torch.load(image)
    with open(out + ".nct", "wb") as f:
        f.write(container.encode_image(model, x, "mbt2018-mean", 3, "cpu", coder="exact"))
    with open(blob, "rb") as f:
        torch.save(data.to_uint8(container.decode_image(f.read(), model)), out + ".pt")
""")


def test_exact_files_cross_processes_and_thread_counts(shipped, photo_crop, tmp_path):
    """A file written here (2 threads) decodes in another process (1 thread, the model loaded
    afresh) to the same 8-bit image, and that process writes a file that decodes here to the
    encoder side's image."""
    model, _ = shipped
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        blob = container.encode_image(model, photo_crop, "mbt2018-mean", 3, "cpu", coder="exact")
        _, expected = _encoder_side(model, photo_crop)
        here = data.to_uint8(container.decode_image(blob, model))
        torch.save(photo_crop.clone(), tmp_path / "x.pt")
        (tmp_path / "here.nct").write_bytes(blob)
        run = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, str(_shipped_file(3)),
                              str(tmp_path / "x.pt"), str(tmp_path / "here.nct"),
                              str(tmp_path / "there")], capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stderr
        there_blob = (tmp_path / "there.nct").read_bytes()
        there_image = torch.load(tmp_path / "there.pt")
        back = data.to_uint8(container.decode_image(there_blob, model))
        torch.set_num_threads(1)
        _, expected_there = _encoder_side(model, photo_crop)  # the other side's encoder
    finally:
        torch.set_num_threads(saved)
    assert container.read_header(there_blob).coder == "exact"
    assert torch.equal(here, expected) and torch.equal(there_image, expected)
    assert torch.equal(back, expected_there)


@pytest.mark.slow  # 26 photos × 2 encodes and 4 decodes: 3-5 min per quality on 2 cores
@pytest.mark.parametrize("quality", [1, 2, 3, 4])
def test_exact_coder_is_bit_exact_on_kodak_and_clic(quality):
    """Acceptance: with the shipped weights, every Kodak image and both CLIC photos coded with
    ``coder="exact"`` at 1 and at 2 threads decode, at 1 and at 2 threads, to the 8-bit image
    that the encoder side's model reconstructs from the same quantized latents."""
    model = zoo.load_exported(_shipped_file(quality))
    twin = exact(model)
    saved = torch.get_num_threads()
    same_bytes, pixels = 0, 0
    try:
        for images in (data.kodak(), data.clic()):
            for i, name in enumerate(images.names):
                x = images[i]
                blobs = {}
                for enc in (1, 2):
                    torch.set_num_threads(enc)
                    blobs[enc] = container.encode_image(twin, x, "mbt2018-mean", quality, "cpu",
                                                        coder="exact")
                    _, expected = _encoder_side(model, x)
                    for dec in (1, 2):
                        torch.set_num_threads(dec)
                        got = data.to_uint8(container.decode_image(blobs[enc], twin))
                        assert torch.equal(got, expected), (name, quality, enc, dec)
                same_bytes += blobs[1] == blobs[2]
                pixels += x.shape[1] * x.shape[2]
    finally:
        torch.set_num_threads(saved)
    print(f"\nq{quality}: 26 photos ({pixels} pixels) bit-exact, encoded and decoded at 1 and 2 "
          f"threads; {same_bytes} of 26 files byte-identical whether encoded at 1 or 2 threads")


# --------------------------------------------------------------------------- version 1


_V1_FIXED = struct.Struct(">4sBBBBIIHHHHIBB")  # the layout of version 1, written out here


def _write_v1(model, x, model_name, quality, profile=""):
    """What the first ``encode_image`` wrote (format version 1: CompressAI's float tables and
    networks), kept as a writer of the tests."""
    model = _float_path(model)
    arch = codecs.architecture_of(model_name)
    with torch.no_grad():
        out = model.compress(codecs.pad(x[None], codecs.STRIDES[arch]))
    streams = [bytes(s[0]) for s in out["strings"]]
    name, prof = model_name.encode(), profile.encode()
    head = _V1_FIXED.pack(b"NCT1", 1, 0, quality, len(streams), x.shape[1], x.shape[2],
                          *(int(v) for v in out["shape"]), model.N, model.M,
                          codecs.model_fingerprint(model), len(name), len(prof))
    head += name + prof + b"".join(struct.pack(">I", len(s)) for s in streams)
    payload = b"".join(streams)
    return head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload


@pytest.mark.parametrize("arch", ARCHS)
def test_version_1_files_still_decode(tiny_models, crop, arch):
    model = tiny_models[arch]
    old = _write_v1(model, crop, arch, 2, "smoke")
    h = container.read_header(old)
    assert (h.version, h.kind, h.coder, h.quantizer) == (1, "image", "table", "scalar")
    assert (h.model, h.quality, h.profile, h.height, h.width) == (arch, 2, "smoke", 64, 80)
    assert h.header_size + h.payload_size == len(old)
    new = container.encode_image(model, crop, arch, 2, "smoke", portable=False)  # version 2
    assert container.read_header(new).version == 2
    assert old[container.read_header(old).header_size:] == new[container.read_header(
        new).header_size:]  # the same streams, only the header changed
    assert torch.equal(container.decode_image(old, model), container.decode_image(new, model))
    assert torch.equal(container.decode_image(old, model), _in_memory(model, arch, crop, False))
    if arch != "bmshj2018-factorized":
        assert torch.equal(container.decode_image(old, exact(model)),
                           _in_memory(model, arch, crop, False))


def test_version_1_damage_is_refused(tiny_models, crop):
    old = _write_v1(tiny_models["mbt2018-mean"], crop, "mbt2018-mean", 3)
    hs = container.read_header(old).header_size
    rng = random.Random(7)
    bad = [old[:c] for c in (4, 5, 29, 30, 31, hs - 1, hs, len(old) - 1)] + [old + b"\0"]
    for _ in range(40):
        a = bytearray(old)
        a[rng.randrange(len(old))] ^= rng.randrange(1, 256)
        bad.append(bytes(a))
    forged = {7: b"\x03", 6: b"\x00", 5: b"\x01", 8: struct.pack(">I", 16385)}  # n, q, pad, H
    bad += [_refit_crc(old[:p] + raw + old[p + len(raw):], hs) for p, raw in forged.items()]
    for b in bad:
        with pytest.raises(BitstreamError):
            container.read_header(b)


# --------------------------------------------------------------------------- damaged files


def _refit_crc(blob: bytes, header_size: int) -> bytes:
    """Recompute the CRC, as a forger (or a buggy encoder) would."""
    crc = zlib.crc32(blob[header_size:], zlib.crc32(blob[: header_size - 4]))
    return blob[: header_size - 4] + struct.pack(">I", crc) + blob[header_size:]


def _set(blob: bytes, pos: int, raw: bytes, hs: int) -> bytes:
    """``blob`` with ``raw`` written at ``pos`` and the CRC recomputed."""
    return _refit_crc(blob[:pos] + raw + blob[pos + len(raw):], hs)


def _restream(blob: bytes, n: int) -> bytes:
    """``blob`` (version 2, 3 or 4) with its payload cut into ``n`` streams, the header rewritten
    to match: a well-formed file with another number of streams."""
    h = container.read_header(blob)
    table = h.header_size - 4 - 4 * (len(h.lengths) + 1)  # where the stream table starts
    cut = [h.payload_size // n] * (n - 1)
    lengths = cut + [h.payload_size - sum(cut)]
    head = blob[:table] + struct.pack(f">{n + 1}I", n, *lengths)
    payload = blob[h.header_size:]
    return head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload


def _variants(blob: bytes, h: container.Header, png: bytes) -> list[tuple[str, bytes]]:
    rng = random.Random(1234)
    out = []

    def flip(b: bytes, positions) -> bytes:
        a = bytearray(b)
        for p in positions:
            a[p] ^= rng.randrange(1, 256)
        return bytes(a)

    hs = h.header_size
    o = 1 if h.version >= 3 else 0  # versions 3, 4: one more byte (the steps) after the quantizer
    for _ in range(50):  # one byte of the payload
        p = rng.randrange(hs, len(blob))
        out.append((f"payload byte {p}", flip(blob, [p])))
    for _ in range(20):  # bursts of 2..8 bytes anywhere
        ps = rng.sample(range(len(blob)), rng.randrange(2, 9))
        out.append((f"bytes {sorted(ps)}", flip(blob, ps)))
    # truncation at every field boundary of the header, inside the payload, one byte short
    fixed = (container._FIXED_V3 if h.version >= 3 else container._FIXED).size
    name_end = fixed + len(h.model) + len(h.profile)
    cuts = {0, 1, 3, 4, 5, 6, 7, 8, 9 + o, 10 + o, 14 + o, 18 + o, 22 + o, 26 + o, 30 + o,
            31 + o, 32 + o, fixed + 1, name_end, name_end + 2, name_end + 4, name_end + 6,
            hs - 4, hs - 1, hs, hs + 1, hs + h.lengths[0], (hs + len(blob)) // 2, len(blob) - 1}
    for c in sorted(cuts):
        out.append((f"truncated at {c}", blob[:c]))
    for extra in (b"\0", b"garbage", bytes(range(256)), blob):  # appended garbage, twice over
        out.append((f"+{len(extra)} bytes", blob + extra))
    # foreign files
    out += [("png", png), ("png head", png[:64]), ("text", b"hello world\n" * 10),
            ("zeros", bytes(200)), ("jpeg magic", b"\xff\xd8\xff\xe0" + bytes(100))]
    # well-formed CRC, but fields a decoder must refuse before allocating anything
    other_coder = b"\x00" if h.coder == "lattice" else b"\x02"
    forged = {
        f"version {container.VERSION + 1}": (4, bytes([container.VERSION + 1])),
        "version 0": (4, b"\x00"), "version 1": (4, b"\x01"),
        "kind 1": (5, b"\x01"), f"coder {other_coder[0]}": (6, other_coder),
        "coder 3": (6, b"\x03"), "quantizer 3": (7, b"\x03"),
        "padding 7": (8 + o, b"\x07"), "quality 0": (9 + o, b"\x00"),
        "quality 200": (9 + o, b"\xc8"),
        "height 2^31": (10 + o, struct.pack(">I", 1 << 31)),
        "width 0": (14 + o, struct.pack(">I", 0)),
        "height 16385": (10 + o, struct.pack(">I", 16385)),
        "60000×60000": (10 + o, struct.pack(">II", 60000, 60000)),
        "shape 9999": (18 + o, struct.pack(">H", 9999)), "N 0": (22 + o, b"\0\0"),
        "name length 0": (30 + o, b"\x00"), "name length 255": (30 + o, b"\xff"),
        "profile length 200": (31 + o, b"\xc8"), "model name 'x'": (32 + o, b"x"),
        "3 streams": (name_end, struct.pack(">I", 3)),
        "2^32-1 streams": (name_end, b"\xff\xff\xff\xff"),
        "1 stream": (name_end, struct.pack(">I", 1)), "0 streams": (name_end, bytes(4)),
        "stream length 2^32-1": (name_end + 4, b"\xff\xff\xff\xff"),
        "stream length 0": (name_end + 4, b"\0\0\0\0"),
    }
    if h.coder != "lattice":  # a lattice quantizer with another coder
        forged["quantizer 1"] = (7, b"\x01")
    # the other versions: version 2 reads every field after the quantizer one byte early;
    # version 3 is the lattice coder's only (a version-4 lattice file relabelled 3 would be
    # refused by its fingerprint only where the float tables differ from the portable ones)
    for v in sorted({2, 3, 4} - {h.version}):
        if not (v == 3 and h.coder == "lattice"):
            forged[f"version {v}"] = (4, bytes([v]))
    for what, (pos, raw) in forged.items():
        out.append((f"forged {what}", _set(blob, pos, raw, hs)))
    # a file rewritten with another model name but a valid CRC: another architecture's file
    out.append(("forged model name", _refit_crc(blob.replace(b"mbt2018-mean", b"mbt2018-xxxx"),
                                                 hs)))
    while len(out) < 200:  # the rest: one byte of the header
        p = rng.randrange(hs)
        out.append((f"header byte {p}", flip(blob, [p])))
    return out


@pytest.mark.parametrize("coder", container.CODERS)
def test_200_damaged_files_raise_bitstream_error_fast(tiny_models, crop, monkeypatch, coder):
    model = tiny_models["mbt2018-mean"]
    # the lattice file with Hex-Quant: in version 4 only the coder byte tells a scalar, unshifted
    # lattice file from a table file (see tests/test_latent_codec.py), a hex one is refused
    # relabelled table by its quantizer
    mode = {"quantizer": "hex"} if coder == "lattice" else {}
    blob = container.encode_image(model, crop, "mbt2018-mean", 3, profile="smoke", coder=coder,
                                  **mode)
    h = container.read_header(blob)
    assert (h.version, h.coder) == (4, coder)
    png = data.path("kodak/kodim23.png").read_bytes()[:3000]
    variants = _variants(blob, h, png)
    assert len(variants) == 200 and len({v for _, v in variants}) == 200
    # version 4 ties no coder to the version: a table or exact file relabelled lattice (CRC
    # recomputed) passes the header's checks, and the lattice decoder's own refuse it
    late = [(w, b) for w, b in variants if w == "forged coder 2" and coder != "lattice"]
    assert len(late) == (coder != "lattice")
    calls = []
    monkeypatch.setattr(model, "decompress", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(container, "exact", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(container, "LatentCodec", lambda *a, **k: calls.append(a))
    times = []
    for what, bad in variants:
        if (what, bad) in late:
            continue
        tic = time.perf_counter()
        with pytest.raises(BitstreamError):
            container.decode_image(bad, model)
        times.append(time.perf_counter() - tic)
        assert times[-1] < 1.0, what
    assert calls == []  # refused before the entropy decoder or any tensor was touched
    monkeypatch.undo()
    for what, bad in late:
        assert container.read_header(bad).coder == "lattice"
        tic = time.perf_counter()
        with pytest.raises(BitstreamError):
            container.decode_image(bad, model)
        times.append(time.perf_counter() - tic)
        assert times[-1] < 1.0, what
    print(f"\n200 damaged {coder} files: max {1e3 * max(times):.2f} ms, "
          f"total {1e3 * sum(times):.1f} ms")


def test_forged_messages_say_what_is_wrong(tiny_models, crop):
    model = tiny_models["bmshj2018-factorized"]
    blob = container.encode_image(model, crop, "bmshj2018-factorized", 2)
    h = container.read_header(blob)
    assert h.version == 4
    hs = h.header_size
    old = container.encode_image(model, crop, "bmshj2018-factorized", 2, portable=False)
    assert container.read_header(old).version == 2
    hs_old = container.read_header(old).header_size
    newer = "written by a newer nctutor; upgrade nctutor"
    cases = {
        "bad magic": b"\x89PNG" + blob[4:],
        "truncated": blob[:-1],
        "trailing": blob + b"x",
        "CRC32": blob[:-1] + bytes([blob[-1] ^ 1]),
        "format version 5: the file was written by a newer nctutor": _set(blob, 4, b"\x05", hs),
        "unsupported format version 0": _set(blob, 4, b"\x00", hs),
        f"unknown kind 3 .*{newer}": _set(blob, 5, b"\x03", hs),
        f"unknown coder 3 \\(this nctutor knows table, exact, lattice\\).*{newer}":
            _set(blob, 6, b"\x03", hs),
        f"unknown quantizer 3 \\(this nctutor knows scalar, hex, oct\\).*{newer}":
            _set(blob, 7, b"\x03", hs),
        "quantizer hex or a latent shift with the table coder": _set(blob, 7, b"\x01", hs),
        "quantizer scalar or a latent shift with the table coder": _set(blob, 8, b"\x10", hs),
        "version 3 with the table coder": _set(blob, 4, b"\x03", hs),
        "bmshj2018-factorized has no exact coder": _set(blob, 6, b"\x01", hs),
        "implausible image size": _set(blob, 11, struct.pack(">I", 10**6), hs),
        "2 streams, bmshj2018-factorized writes 1": _restream(blob, 2),
    }
    old_cases = {  # the same in version 2's layout, one byte less
        "implausible image size": _set(old, 10, struct.pack(">I", 10**6), hs_old),
        "2 streams, bmshj2018-factorized writes 1": _restream(old, 2),
        "quantizer hex or a latent shift with the table coder": _set(old, 7, b"\x01", hs_old),
        "version 2 with the lattice coder": _set(old, 6, b"\x02", hs_old),
    }
    for message, bad in [*cases.items(), *old_cases.items()]:
        with pytest.raises(BitstreamError, match=message):
            container.read_header(bad)
    assert isinstance(BitstreamError("x"), ValueError)


# --------------------------------------------------------------------------- versions 3 and 4


def _lattice(model, x, arch, **kwargs) -> bytes:
    return container.encode_image(model, x, arch, 3, "smoke", coder="lattice", **kwargs)


@pytest.mark.parametrize("arch", ["bmshj2018-factorized", "mbt2018-mean"])
def test_version_3_header_of_the_lattice_coder(tiny_models, crop, arch):
    """Version 3 = version 2 with the steps byte after the quantizer; version 4 has that layout
    for every coder (the steps byte 0 but for the lattice coder's). The codes and the steps read
    back, every other field is the table file's byte for byte (version 2's one byte later), and
    the streams and steps are those of LatentCodec.compress: for version 4 inside the integer
    entropy path with portable tables, for version 3 (``portable=False``) with the float path
    (a copy of the model with CompressAI's float tables)."""
    model = tiny_models[arch]
    for portable, version in ((True, 4), (False, 3)):
        table = container.encode_image(model, crop, arch, 3, "smoke", portable=portable)
        ht = container.read_header(table)
        assert ht.version == (4 if portable else 2) and ht.steps == (0, 0)
        n = len(ht.lengths)
        net = integer.portable_tables(model) if portable else _float_path(model)
        networks = integer.integer_entropy if portable else contextlib.nullcontext
        for quantizer in container.QUANTIZERS:
            blob = _lattice(model, crop, arch, quantizer=quantizer, shift=True, search="brute",
                            portable=portable)
            h = container.read_header(blob)
            assert (h.version, h.kind, h.coder, h.quantizer) == (version, "image", "lattice",
                                                                 quantizer)
            assert blob[4:8] == bytes([version, 0, 2, container.QUANTIZERS.index(quantizer)])
            assert blob[8] == (h.steps[0] << 4) | h.steps[1]
            if portable:  # the table file has the steps byte too, 0
                assert h.header_size == ht.header_size and table[4:9] == bytes([4, 0, 0, 0, 0])
                assert blob[9 : h.header_size - 4 - 4 * n] == table[9 : ht.header_size - 4 - 4 * n]
            else:  # padding … names and the number of streams: version 2's bytes, one byte later
                assert h.header_size == ht.header_size + 1
                assert blob[9 : h.header_size - 4 - 4 * n] == table[8 : ht.header_size - 4 - 4 * n]
            with torch.no_grad(), networks(net):
                out = LatentCodec(net, quantizer, True, "brute", portable=portable).compress(
                    codecs.pad(crop[None], codecs.STRIDES[arch]))
                x_hat = LatentCodec(net, quantizer, portable=portable).decompress(
                    out["strings"], out["shape"], out["steps"])["x_hat"][0]
            assert h.steps == tuple(out["steps"])
            assert blob[h.header_size:] == b"".join(bytes(s[0]) for s in out["strings"])
            assert torch.equal(container.decode_image(blob, model), codecs.crop(x_hat, 64, 80))
        plain = _lattice(model, crop, arch, quantizer="hex", portable=portable)
        assert container.read_header(plain).steps == (0, 0) and plain[8] == 0


def test_version_3_steps_byte_round_trips(tiny_models, crop):
    """Every value of the steps byte reads back as (high four bits, low four bits)."""
    blob = _lattice(tiny_models["mbt2018-mean"], crop, "mbt2018-mean", quantizer="oct")
    hs = container.read_header(blob).header_size
    for b in range(256):
        h = container.read_header(_set(blob, 8, bytes([b]), hs))
        assert h.steps == (b >> 4, b & 15) and h.quantizer == "oct"
    assert len(MAIN_STEPS) == len(SIDE_STEPS) == 16  # so all 256 are valid indices today


def test_version_3_fields_out_of_range_are_refused(tiny_models, crop, monkeypatch):
    """The fields of the lattice coder's header (versions 3 and 4), the steps byte of version 4
    with another coder, and version 2's rules."""
    newer = "written by a newer nctutor; upgrade nctutor"
    for portable, version in ((False, 3), (True, 4)):
        fact = _lattice(tiny_models["bmshj2018-factorized"], crop, "bmshj2018-factorized",
                        quantizer="hex", portable=portable)
        hs = container.read_header(fact).header_size
        assert container.read_header(fact).version == version
        with pytest.raises(BitstreamError, match=f"unknown quantizer 3 .*{newer}"):
            container.read_header(_set(fact, 7, b"\x03", hs))
        with pytest.raises(BitstreamError, match=f"unknown quantizer 255 .*{newer}"):
            container.read_header(_set(fact, 7, b"\xff", hs))
        # relabelled table: version 3 is the lattice coder's; in version 4 the quantizer is
        with pytest.raises(BitstreamError, match="version 3 with the table coder" if version == 3
                           else "quantizer hex or a latent shift with the table coder"):
            container.read_header(_set(fact, 6, b"\x00", hs))
        with pytest.raises(BitstreamError, match="bmshj2018-factorized has no exact coder"):
            container.read_header(_set(fact, 6, b"\x01", hs))
        # the factorized prior has no side latents: a side step is refused by its decoder
        side = _set(fact, 8, b"\x03", hs)
        assert container.read_header(side).steps == (0, 3)
        with pytest.raises(BitstreamError, match="side shift for a model without side latents"):
            container.decode_image(side, tiny_models["bmshj2018-factorized"])
    # step indices beyond the candidate sets (none today: 16 candidates each, 4 bits each)
    main = _set(fact, 8, b"\xc0", hs)
    monkeypatch.setattr(container, "MAIN_STEPS", MAIN_STEPS[:12])
    with pytest.raises(BitstreamError, match=r"shift step indices \(12, 0\)"):
        container.read_header(main)
    monkeypatch.setattr(container, "SIDE_STEPS", SIDE_STEPS[:2])
    with pytest.raises(BitstreamError, match=r"shift step indices \(0, 3\)"):
        container.read_header(side)
    # a version 2 file: no steps byte, no lattice quantizer with the table coder
    table = container.encode_image(tiny_models["mbt2018-mean"], crop, "mbt2018-mean", 3,
                                   portable=False)
    assert container.read_header(table).version == 2
    hs2 = container.read_header(table).header_size
    for code, name in ((1, "hex"), (2, "oct")):
        with pytest.raises(BitstreamError, match=f"corrupted file: quantizer {name} or a latent "
                                                 f"shift with the table coder"):
            container.read_header(_set(table, 7, bytes([code]), hs2))
    with pytest.raises(BitstreamError, match="version 2 with the lattice coder"):
        container.read_header(_set(table, 6, b"\x02", hs2))
    # a version 4 table file: the steps byte is there, and must be 0; no lattice quantizer
    table = container.encode_image(tiny_models["mbt2018-mean"], crop, "mbt2018-mean", 3)
    h4 = container.read_header(table)
    assert (h4.version, h4.coder, table[8]) == (4, "table", 0)
    for code, name in ((1, "hex"), (2, "oct")):
        with pytest.raises(BitstreamError, match=f"corrupted file: quantizer {name} or a latent "
                                                 f"shift with the table coder"):
            container.read_header(_set(table, 7, bytes([code]), h4.header_size))
    for steps in (b"\x10", b"\x01", b"\xff"):
        with pytest.raises(BitstreamError, match="corrupted file: quantizer scalar or a latent "
                                                 "shift with the table coder"):
            container.read_header(_set(table, 8, steps, h4.header_size))


def test_lattice_coder_refuses_models_it_cannot_wrap(tiny_models, crop):
    blob = _lattice(tiny_models["mbt2018-mean"], crop, "mbt2018-mean")
    h = container.read_header(blob)
    assert (h.version, h.coder, h.quantizer, h.steps) == (4, "lattice", "scalar", (0, 0))
    head = container._pack_header(dataclasses.replace(h, model="bmshj2018-hyperprior"))
    payload = blob[h.header_size:]
    forged = head + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))) + payload
    with pytest.raises(BitstreamError, match="bmshj2018-hyperprior has no lattice coder"):
        container.read_header(forged)
    with pytest.raises(BitstreamError, match="wrong model"):
        container.decode_image(blob, tiny_models["bmshj2018-hyperprior"])


def test_wrong_coder_byte_is_caught_by_the_y_stream(shipped, photo_crop):
    """A table file relabelled exact (CRC recomputed) passes the container's checks; the exact
    decoder then reads CompressAI's bytes as its own stream, and its preamble or the CRC of the
    symbols refuses it. The other way round, CompressAI's decoder gets no such check."""
    model, _ = shipped
    table = container.encode_image(model, photo_crop, "mbt2018-mean", 3, "cpu")
    hs = container.read_header(table).header_size
    relabelled = _set(table, 6, b"\x01", hs)
    assert container.read_header(relabelled).coder == "exact"
    with pytest.raises(BitstreamError, match="y stream"):
        container.decode_image(relabelled, model)


def test_large_clic_image_memory(tmp_path):
    """The 2048×1363 CLIC photo through a smoke-size mean-scale model, in a fresh process so that
    its peak RSS (ru_maxrss) measures this alone."""
    script = textwrap.dedent("""
        import json, resource, time, torch
        from nctutor import codecs, container, data
        x = data.clic()[0]
        torch.manual_seed(0)
        m = codecs.create("mbt2018-mean", N=16, M=24).eval(); m.update(force=True)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        blob = container.encode_image(m, x, "mbt2018-mean", 3)
        t1 = time.perf_counter()
        y = container.decode_image(blob, m)
        t2 = time.perf_counter()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"shape": list(y.shape), "in": list(x.shape), "bytes": len(blob),
                          "before_mb": before / 1024, "after_mb": after / 1024,
                          "enc_s": t1 - t0, "dec_s": t2 - t1}))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    r = json.loads(run.stdout.strip().splitlines()[-1])
    assert r["shape"] == r["in"] == [3, 1363, 2048]
    print(f"\nCLIC 2048×1363: peak RSS {r['after_mb']:.0f} MB ({r['after_mb'] - r['before_mb']:.0f}"
          f" MB above the loaded interpreter), encode {r['enc_s']:.2f} s, decode "
          f"{r['dec_s']:.2f} s, {8 * r['bytes'] / (2048 * 1363):.3f} bpp (untrained)")
    assert r["after_mb"] - r["before_mb"] < 2048


def test_architecture_of_model_knows_our_twins_not_other_libraries_subclasses():
    from compressai.models import JointAutoregressiveHierarchicalPriors, MeanScaleHyperprior

    from nctutor.codecs.exact import ExactMeanScaleHyperprior

    assert codecs.architecture_of_model(ExactMeanScaleHyperprior(N=8, M=8)) == "mbt2018-mean"
    assert codecs.architecture_of_model(codecs.create("mbt2018-mean", N=8, M=8)) == "mbt2018-mean"
    # CompressAI's context model extends MeanScaleHyperprior and is another architecture of
    # the registry (the baseline of the code-space predictor's chapter), not mbt2018-mean
    joint = JointAutoregressiveHierarchicalPriors(N=8, M=8)
    assert codecs.architecture_of_model(joint) == "mbt2018"

    class Foreign(MeanScaleHyperprior):  # another library's subclass
        pass

    with pytest.raises(TypeError, match="Foreign"):
        codecs.architecture_of_model(Foreign(N=8, M=8))
