"""The .nct container: exact round trips, determinism, and refusal of every damaged file."""

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

from nctutor import codecs, container, data
from nctutor.errors import BitstreamError

ARCHS = list(codecs.ARCHITECTURES)


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


def _in_memory(model, arch, x):
    """What the model itself reconstructs from its own compress() output, cropped."""
    xp = codecs.pad(x[None], codecs.STRIDES[arch])
    with torch.no_grad():
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
    assert h.shape == codecs.latent_shape(arch, 64, 80)
    assert len(h.lengths) == codecs.num_streams(arch)
    assert h.header_size + h.payload_size == len(blob)
    assert (h.N, h.M) == (8, 8)


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
    with pytest.raises(BitstreamError, match="N=8, M=8"):
        container.decode_image(blob, _tiny("mbt2018-mean", N=8, M=16))
    with pytest.raises(BitstreamError, match="other weights"):  # same shape, other training
        container.decode_image(blob, _tiny("mbt2018-mean", seed=1))


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
    untrained = codecs.create("bmshj2018-factorized", N=8, M=8).eval()
    with pytest.raises(ValueError, match="update"):
        container.encode_image(untrained, crop, "bmshj2018-factorized", 3)


def _refit_crc(blob: bytes, header_size: int) -> bytes:
    """Recompute the CRC, as a forger (or a buggy encoder) would."""
    crc = zlib.crc32(blob[header_size:], zlib.crc32(blob[: header_size - 4]))
    return blob[: header_size - 4] + struct.pack(">I", crc) + blob[header_size:]


def _variants(blob: bytes, h: container.Header, png: bytes) -> list[tuple[str, bytes]]:
    rng = random.Random(1234)
    out = []

    def flip(b: bytes, positions) -> bytes:
        a = bytearray(b)
        for p in positions:
            a[p] ^= rng.randrange(1, 256)
        return bytes(a)

    hs = h.header_size
    for _ in range(50):  # one byte of the payload
        p = rng.randrange(hs, len(blob))
        out.append((f"payload byte {p}", flip(blob, [p])))
    for _ in range(20):  # bursts of 2..8 bytes anywhere
        ps = rng.sample(range(len(blob)), rng.randrange(2, 9))
        out.append((f"bytes {sorted(ps)}", flip(blob, ps)))
    # truncation at every field boundary of the header, inside the payload, one byte short
    name_end = container._FIXED.size + len(h.model) + len(h.profile)
    cuts = {0, 1, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 28, 29, 30, container._FIXED.size + 1,
            name_end, name_end + 2, hs - 4, hs - 1, hs, hs + 1, hs + h.lengths[0],
            (hs + len(blob)) // 2, len(blob) - 1}
    for c in sorted(cuts):
        out.append((f"truncated at {c}", blob[:c]))
    for extra in (b"\0", b"garbage", bytes(range(256)), blob):  # appended garbage, twice over
        out.append((f"+{len(extra)} bytes", blob + extra))
    # foreign files
    out += [("png", png), ("png head", png[:64]), ("text", b"hello world\n" * 10),
            ("zeros", bytes(200)), ("jpeg magic", b"\xff\xd8\xff\xe0" + bytes(100))]
    # well-formed CRC, but fields a decoder must refuse before allocating anything
    forged = {
        "version 2": (4, b"\x02"), "padding 7": (5, b"\x07"), "quality 0": (6, b"\x00"),
        "quality 200": (6, b"\xc8"), "3 streams": (7, b"\x03"),
        "height 2^31": (8, struct.pack(">I", 1 << 31)), "width 0": (12, struct.pack(">I", 0)),
        "height 16385": (8, struct.pack(">I", 16385)),
        "60000×60000": (8, struct.pack(">II", 60000, 60000)),
        "shape 9999": (16, struct.pack(">H", 9999)), "N 0": (20, b"\0\0"),
        "name length 0": (28, b"\x00"), "name length 255": (28, b"\xff"),
        "profile length 200": (29, b"\xc8"), "model name 'x'": (30, b"x"),
        "stream length 2^32-1": (name_end, b"\xff\xff\xff\xff"),
        "stream length 0": (name_end, b"\0\0\0\0"),
    }
    for what, (pos, raw) in forged.items():
        b = blob[:pos] + raw + blob[pos + len(raw):]
        out.append((f"forged {what}", _refit_crc(b, hs)))
    # a file rewritten with another model name but a valid CRC: another architecture's file
    out.append(("forged model name", _refit_crc(blob.replace(b"mbt2018-mean", b"mbt2018-xxxx"),
                                                 hs)))
    while len(out) < 200:  # the rest: one byte of the header
        p = rng.randrange(hs)
        out.append((f"header byte {p}", flip(blob, [p])))
    return out


def test_200_damaged_files_raise_bitstream_error_fast(tiny_models, crop, monkeypatch):
    model = tiny_models["mbt2018-mean"]
    blob = container.encode_image(model, crop, "mbt2018-mean", 3, profile="smoke")
    h = container.read_header(blob)
    png = data.path("kodak/kodim23.png").read_bytes()[:3000]
    variants = _variants(blob, h, png)
    assert len(variants) == 200 and len({v for _, v in variants}) == 200
    calls = []
    monkeypatch.setattr(model, "decompress", lambda *a, **k: calls.append(a))
    times = []
    for what, bad in variants:
        tic = time.perf_counter()
        with pytest.raises(BitstreamError):
            container.decode_image(bad, model)
        times.append(time.perf_counter() - tic)
        assert times[-1] < 1.0, what
    assert calls == []  # refused before the entropy decoder or any tensor was touched
    print(f"\n200 damaged files: max {1e3 * max(times):.2f} ms, "
          f"total {1e3 * sum(times):.1f} ms")


def test_forged_messages_say_what_is_wrong(tiny_models, crop):
    blob = container.encode_image(tiny_models["bmshj2018-factorized"], crop,
                                  "bmshj2018-factorized", 2)
    hs = container.read_header(blob).header_size
    cases = {
        "bad magic": b"\x89PNG" + blob[4:],
        "truncated": blob[:-1],
        "trailing": blob + b"x",
        "CRC32": blob[:-1] + bytes([blob[-1] ^ 1]),
        "unsupported format version 2": _refit_crc(blob[:4] + b"\x02" + blob[5:], hs),
        "implausible image size": _refit_crc(blob[:8] + struct.pack(">I", 10**6) + blob[12:], hs),
    }
    for message, bad in cases.items():
        with pytest.raises(BitstreamError, match=message):
            container.read_header(bad)
    assert isinstance(BitstreamError("x"), ValueError)


@pytest.mark.slow
def test_large_clic_image_memory(tmp_path):
    """The 2048×1363 CLIC photo through a smoke-size mean-scale model, in a fresh process so that
    its peak RSS (ru_maxrss) measures this alone."""
    script = textwrap.dedent("""
        import json, resource, time, torch
        from nctutor import bitstream, data, models
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
