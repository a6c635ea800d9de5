"""P-frame files and command line: bit-exact round trips of the five conditional coders, the
reference check, damaged and forged files, where the weights come from, and the commands.

Fresh coders at smoke widths (N=16, M=24) serve: the pipeline, not the training, is tested. xGDC's
synthesis correction starts at zero (``x̂_g = x̂_d``); the tests give it random weights so that
the switching has two different reconstructions to choose from."""

import copy
import json
import random
import struct
import time
import zlib

import pytest
import torch
from conftest import finished_run

from nctutor import checkpoints, cli, config, container, data, pframetrain, zoo
from nctutor.codecs import conditional as cc
from nctutor.codecs import lmbda
from nctutor.entropy import integer
from nctutor.errors import BitstreamError, DataError, NctutorError, ZooError

XGDC = "pframe-xgdc"
#: Every coder with every switch it makes.
CASES = [(name, "none") for name in cc.CODERS if name != XGDC] + [
    (XGDC, s) for s in ("d", "g", "frame", "quadtree")]
HEIGHT, WIDTH = 70, 100  # not multiples of 64 (padding) nor of 16 (edge blocks of the motion)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the smoke-size coders are too small to gain from more (and a busy
    machine makes threads wait)."""
    with config.one_thread():
        yield


def _coder(name: str, seed: int = 0) -> cc.PFrameCoder:
    """A fresh coder ``name`` at smoke widths, eval mode, tables built; xGDC's ``GS`` with random
    last-layer weights (``x̂_g ≠ x̂_d``)."""
    torch.manual_seed(seed)
    net = cc.create(name, 16, 24)
    if isinstance(net, cc.XGDC):
        torch.nn.init.normal_(net.gs[-1].weight, std=0.05)
    net.eval().update(force=True)
    return net


def _pair(height: int = HEIGHT, width: int = WIDTH) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, ref)``: a smooth frame with a square, and the same moved (8-bit values)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width),
                            indexing="ij")
    base = torch.stack([0.5 + 0.4 * torch.sin(6 * xx + 2 * yy), 0.3 + 0.5 * yy * xx,
                        0.5 + 0.3 * torch.cos(5 * yy)])
    x, ref = base.clone(), base.roll((2, -3), (1, 2))
    x[:, 20:40, 30:50] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)
    ref[:, 18:38, 34:54] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)
    return x.mul(255).round().div(255), ref.mul(255).round().div(255)


@pytest.fixture(scope="module")
def pair():
    return _pair()


@pytest.fixture(scope="module")
def coders():
    return {name: _coder(name) for name in cc.CODERS}


def _u8(x: torch.Tensor) -> torch.Tensor:
    return data.to_uint8(x)


def test_the_cli_names_the_coders():
    assert cli.PFRAME_MODELS == cc.CODERS
    assert container.SWITCHES == ("none", "d", "g", "frame", "quadtree")


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize(("name", "switch"), CASES)
def test_round_trip_is_bit_exact_and_deterministic(coders, pair, name, switch):
    net, (x, ref) = coders[name], pair
    blob, x_hat = container.pframe_reconstruction(net, x, ref, 2, switch, profile="smoke")
    assert container.encode_pframe(net, x, ref, name, 2, "smoke", switch) == blob  # same bytes
    out = container.decode_pframe(blob, net, ref)
    assert out.shape == (3, HEIGHT, WIDTH) and out.dtype == torch.float32
    assert torch.equal(_u8(out), _u8(x_hat))
    assert 0 <= out.min() and out.max() <= 1
    h = container.read_header(blob)
    assert (h.kind, h.model, h.profile, h.quality, h.switch, h.height, h.width, h.N, h.M) == (
        "pframe", name, "smoke", 2, switch, HEIGHT, WIDTH, 16, 24)
    assert h.shape == (2, 2) and h.header_size + h.payload_size == len(blob)
    assert h.reference == container.reference_fingerprint(ref)
    if switch == "quadtree":
        assert h.side_bits >= 2  # at least a leaf (two bits) for the one top block
    else:
        assert h.side_bits == (1 if switch == "frame" else 0)
    assert h.lengths[3] == -(-h.side_bits // 8)
    assert sum(h.split.values()) == len(blob)


def test_the_switch_modes_choose_as_promised(coders, pair):
    """``d`` and ``g`` are xGDC's two reconstructions, ``frame`` the better of them, and the
    quad-tree costs no more than either plus the bits of one leaf a top block."""
    net, (x, ref) = coders[XGDC], pair
    recon = {s: container.pframe_reconstruction(net, x, ref, 2, s) for s in
             ("d", "g", "frame", "quadtree")}
    assert not torch.equal(recon["d"][1], recon["g"][1])  # two different reconstructions
    cost = {s: float(cc.block_cost(x, r[1], lmbda(2)).double().sum()) for s, r in recon.items()}
    assert recon["frame"][1].equal(recon["d" if cost["d"] <= cost["g"] else "g"][1])
    bits = container.read_header(recon["quadtree"][0]).side_bits
    tiles = -(-HEIGHT // 256) * -(-WIDTH // 256)
    assert cost["quadtree"] + bits <= min(cost["d"], cost["g"]) + 2 * tiles + 1e-6
    # the latents are the same whatever the switch: only the side stream differs
    streams = {s: container.read_header(r[0]).lengths[:3] for s, r in recon.items()}
    assert len(set(streams.values())) == 1


def test_a_quadtree_that_splits_round_trips():
    """A frame of 130×260 (two top blocks, the second cut by the edge) where x̂_g is better on
    one half: the tree splits, and the decoder rebuilds the same mask."""
    net = _coder(XGDC, seed=3)
    x, ref = _pair(130, 260)
    blob, x_hat = container.pframe_reconstruction(net, x, ref, 4, "quadtree")
    h = container.read_header(blob)
    assert h.side_bits > 4  # more than one leaf a top block
    assert torch.equal(_u8(container.decode_pframe(blob, net, ref)), _u8(x_hat))


def test_round_trip_on_basketballpass(coders):
    """Two frames of BasketballPass cropped to 96×128 (skipped without the data)."""
    try:
        frames = data.basketball_pass(2)[:, :, :96, :128]
    except DataError as e:
        pytest.skip(f"BasketballPass is not here: {e}")
    ref, x = frames[0], frames[1]
    for name in cc.CODERS:
        blob, x_hat = container.pframe_reconstruction(coders[name], x, ref, 3)
        assert container.read_header(blob).switch == ("quadtree" if name == XGDC else "none")
        out = container.decode_pframe(blob, coders[name], ref)
        assert torch.equal(_u8(out), _u8(x_hat)), name


def test_the_reference_is_taken_as_its_8_bit_values(coders, pair):
    """A reference a little off the 8-bit grid codes and decodes as its PNG would."""
    net, (x, ref) = coders["pframe-diff"], pair
    off = (ref + 1e-4).clamp(0, 1)
    blob, x_hat = container.pframe_reconstruction(net, x, off, 2)
    assert blob == container.pframe_reconstruction(net, x, ref, 2)[0]
    assert torch.equal(_u8(container.decode_pframe(blob, net, ref)), _u8(x_hat))


# ----------------------------------------------------------------------------- refusals
def test_another_reference_is_refused(coders, pair):
    net, (x, ref) = coders[XGDC], pair
    blob = container.encode_pframe(net, x, ref, XGDC, 2, "smoke")
    one_pixel = ref.clone()
    one_pixel[1, 33, 44] += 1 / 255 if one_pixel[1, 33, 44] < 1 else -1 / 255
    for other, said in ((one_pixel, "coded against another reference frame"),
                        (ref[:, :64], "coded against a 100×70 reference, the one given is "
                                      "100×64"),
                        (x, "coded against another reference frame")):
        with pytest.raises(container.ReferenceMismatchError, match=said) as e:
            container.decode_pframe(blob, net, other)
        assert "the exact decoded reference frame (the same PNG, 8-bit) must be given" in str(
            e.value)
        assert isinstance(e.value, BitstreamError) and isinstance(e.value, NctutorError)
    with pytest.raises(TypeError, match="ref must be"):
        container.decode_pframe(blob, net, ref[0])


def test_another_coder_is_refused(coders, pair):
    x, ref = pair
    blob = container.encode_pframe(coders[XGDC], x, ref, XGDC, 2, "smoke")
    with pytest.raises(BitstreamError, match="written by pframe-xgdc q2 \\[smoke\\], the decoder "
                                             "is pframe-gdc"):
        container.decode_pframe(blob, coders["pframe-gdc"], ref)
    other = _coder(XGDC)
    other.core.entropy_bottleneck.quantiles.data += 0.5  # other tables
    other.update(force=True)
    with pytest.raises(BitstreamError, match="other weights.*decode it with pframe-xgdc q2"):
        container.decode_pframe(blob, other, ref)
    wider = cc.create(XGDC, 16, 32).eval()
    wider.update(force=True)
    with pytest.raises(BitstreamError, match="N=16, M=24"):
        container.decode_pframe(blob, wider, ref)


def test_the_kinds_are_not_mixed(coders, pair):
    x, ref = pair
    blob = container.encode_pframe(coders["pframe-diff"], x, ref, "pframe-diff", 2)
    with pytest.raises(BitstreamError, match="holds a pframe.*decode_pframe"):
        container.decode_image(blob, coders["pframe-diff"])
    with pytest.raises(BitstreamError, match="holds a pframe.*decode_pframe"):
        list(container.decode_video(blob, coders["pframe-diff"]))


def test_the_encoder_refuses_what_the_format_cannot_hold(coders, pair):
    x, ref = pair
    diff, xgdc = coders["pframe-diff"], coders[XGDC]
    cases = {
        "switch must be one of none for pframe-diff": lambda: container.encode_pframe(
            diff, x, ref, "pframe-diff", 2, switch="quadtree"),
        "switch must be one of d, g, frame, quadtree": lambda: container.encode_pframe(
            xgdc, x, ref, XGDC, 2, switch="none"),
        "model_name must name the coder": lambda: container.encode_pframe(
            diff, x, ref, XGDC, 2),
        "quality must be": lambda: container.encode_pframe(diff, x, ref, "pframe-diff", 9),
        "the same size": lambda: container.encode_pframe(diff, x, ref[:, :64], "pframe-diff", 2),
        "values in \\[0, 1\\]": lambda: container.encode_pframe(diff, x * 2, ref, "pframe-diff",
                                                                  2),
        "profile must be": lambda: container.encode_pframe(diff, x, ref, "pframe-diff", 2,
                                                            "a b"),
    }
    for message, call in cases.items():
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(TypeError, match="P-frame coder"):
        container.encode_pframe(torch.nn.Conv2d(3, 3, 1), x, ref, "pframe-diff", 2)
    diff.train()
    try:
        with pytest.raises(ValueError, match="eval mode"):
            container.encode_pframe(diff, x, ref, "pframe-diff", 2)
    finally:
        diff.eval()


# ----------------------------------------------------------------------------- damaged files
def _refit_crc(blob: bytes, header_size: int) -> bytes:
    crc = zlib.crc32(blob[header_size:], zlib.crc32(blob[: header_size - 4]))
    return blob[: header_size - 4] + struct.pack(">I", crc) + blob[header_size:]


def _set(blob: bytes, pos: int, raw: bytes) -> bytes:
    """``blob`` (a valid file) with ``raw`` at ``pos`` and the CRC recomputed (a forger's file
    of the same header size)."""
    hs = container.read_header(blob).header_size
    return _refit_crc(blob[:pos] + raw + blob[pos + len(raw):], hs)


def test_100_damaged_files_give_nctutor_errors(coders, pair):
    net, (x, ref) = coders[XGDC], pair
    blob = container.encode_pframe(net, x, ref, XGDC, 2, "smoke")
    hs = container.read_header(blob).header_size
    rng = random.Random(13)
    variants = [blob[:n] for n in sorted(rng.sample(range(len(blob)), 20))]  # truncations
    for _ in range(50):  # one to three bytes anywhere: the CRC catches them
        a = bytearray(blob)
        for p in rng.sample(range(len(blob)), rng.randrange(1, 4)):
            a[p] ^= rng.randrange(1, 256)
        variants.append(bytes(a))
    for _ in range(30):  # payload bytes with the CRC refitted: the stream decoders must cope
        a = bytearray(blob)
        a[rng.randrange(hs, len(blob))] ^= rng.randrange(1, 256)
        variants.append(_refit_crc(bytes(a), hs))
    decoded = refused = 0
    tic = time.perf_counter()
    for bad in variants:
        try:
            out = container.decode_pframe(bad, net, ref)
        except NctutorError:
            refused += 1
        else:
            assert out.shape == (3, HEIGHT, WIDTH) and 0 <= out.min() and out.max() <= 1
            decoded += 1
    assert len(variants) == 100 and refused >= 70
    print(f"\n100 damaged P-frame files: {refused} refused, {decoded} decoded, "
          f"{time.perf_counter() - tic:.2f} s")


def test_forged_header_fields_are_refused_before_decoding(coders, pair, monkeypatch):
    x, ref = pair
    net = coders[XGDC]
    blob = container.encode_pframe(net, x, ref, XGDC, 2, "smoke")
    diff = container.encode_pframe(coders["pframe-diff"], x, ref, "pframe-diff", 2, "smoke")
    h = container.read_header(blob)
    names = 39 + len(XGDC) + len("smoke")  # the stream count
    u16, u32 = struct.Struct(">H").pack, struct.Struct(">I").pack
    # the quad-tree's most bits for 70×100: two a block of 256…8 (1, 1, 2·2, 3·4, 5·7, 9·13
    # positions), one a block of 4 (18·25)
    most = 2 * (1 + 1 + 4 + 12 + 35 + 117) + 18 * 25
    forged = {
        "a P-frame in format version 3": _set(blob, 4, b"\x03"),
        "unknown switch mode 5 .*newer nctutor": _set(blob, 6, b"\x05"),
        "switch 'none' with pframe-xgdc": _set(blob, 6, b"\x00"),
        "switch 'quadtree' with pframe-diff": _set(diff, 6, b"\x04"),
        "unknown padding mode 1": _set(blob, 7, b"\x01"),
        "quality 0 is not in 1..8": _set(blob, 8, b"\x00"),
        "quality 9 is not in 1..8": _set(blob, 8, b"\x09"),
        "zero channel width": _set(blob, 9, u16(0)),
        "implausible frame size 0×100": _set(blob, 13, u32(0)),
        "implausible frame size 16385×100": _set(blob, 13, u32(16385)),
        "implausible frame size 10000×10000": _set(blob, 13, u32(10000) + u32(10000)),
        "latent shape \\(2, 2\\) does not fit a 200×100 frame": _set(blob, 13, u32(200)),
        "latent shape \\(2, 2\\) does not fit a 70×300 frame": _set(blob, 17, u32(300)),
        "latent shape \\(9, 2\\)": _set(blob, 21, u16(9)),
        "0 switching bits with switch 'quadtree'": _set(blob, 25, u32(0)),
        f"{most + 1} switching bits .*writes 2 to {most}\\)": _set(blob, 25, u32(most + 1)),
        "4294967295 switching bits": _set(blob, 25, u32(2**32 - 1)),
        "1 switching bits with switch 'none'": _set(diff, 25, u32(1)),
        f"a side stream of {h.lengths[3]} bytes for {8 * h.lengths[3] + 1} bits":
            _set(blob, 25, u32(8 * h.lengths[3] + 1)),
        "unknown P-frame model 'pframe-xgdd'": _set(blob, 39 + len(XGDC) - 1, b"d"),
        "implausible model or profile name length": _set(blob, 37, bytes([0, names - 39])),
        "truncated file: the streams should take": _set(blob, names + 4, u32(h.lengths[0] + 1)),
    }
    table = names + 4  # the stream lengths: motion, y, z, side
    # a well-formed file of 3 streams (motion and y joined), and one with no motion stream
    joined = (blob[:names] + u32(3) + u32(h.lengths[0] + h.lengths[1])
              + blob[table + 8 : h.header_size] + blob[h.header_size:])
    forged["3 streams, a P-frame has 4"] = _refit_crc(joined, h.header_size - 4)
    empty = blob[:table] + u32(0) + u32(h.lengths[1] + h.lengths[0]) + blob[table + 8:]
    forged["an empty motion, y or z stream"] = _refit_crc(empty, h.header_size)
    calls = []
    with monkeypatch.context() as m:
        m.setattr(net, "decompress", lambda *a, **k: calls.append(a))
        for message, bad in forged.items():
            with pytest.raises(BitstreamError, match=message):
                container.decode_pframe(bad, net, ref)
        # within range, but not what the encoder wrote: refused when the fields are used
        with pytest.raises(container.ReferenceMismatchError):  # H other, the same latent shape
            container.decode_pframe(_set(blob, 13, u32(69)), net, ref)
    assert calls == []  # nothing above reached the decoder
    more = h.side_bits + 1  # one bit more than the tree reads (or than the side stream holds)
    with pytest.raises(BitstreamError, match="quad-tree" if more % 8 != 1 else "side stream"):
        container.decode_pframe(_set(blob, 25, u32(more)), net, ref)
    assert torch.equal(_u8(container.decode_pframe(_set(blob, 8, b"\x03"), net, ref)),
                       _u8(container.decode_pframe(blob, net, ref)))  # quality: a label only


# ----------------------------------------------------------------------------- weights
def _finished_pframe_run(name: str, quality: int = 2, seed: int = 0, profile: str = "smoke"):
    """A finished run of ``name`` in the cache, made by hand: a fresh coder at smoke widths,
    what :func:`nctutor.zoo.pframe_model` finds."""
    run = zoo._pframe_run(name, quality, profile)
    settings = {"model": name, "quality": quality, "profile": profile, "N": 16, "M": 24,
                "steps": 4, "seed": 7, "run_dir": str(run), "lmbda": 0.0035}
    net = _coder(name, seed)
    state = {k: v for k, v in net.state_dict().items() if not k.endswith(pframetrain.TABLES)}
    run.mkdir(parents=True)
    checkpoints.save({"settings": settings, "model": state, "step": 4, "seconds": 0.0,
                      "history": [{"step": 4, "loss": 1.0, "bpp": 0.2, "psnr": 30.0}]},
                     run / checkpoints.CHECKPOINT)
    checkpoints.save({"steps": 4, "seconds": 0.0, "settings": settings,
                      "parameters": cc.count_parameters(net), "final": {}},
                     run / checkpoints.MANIFEST)
    return run, net


def test_pframe_model_finds_shipped_then_cached_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "none")  # whatever the package ships
    run, fresh = _finished_pframe_run(XGDC, 2)
    net = zoo.pframe_model(XGDC, 2, "smoke")
    assert net.nctutor == {"name": XGDC, "quality": 2, "profile": "smoke", "source": str(run)}
    assert not net.training and isinstance(net, cc.XGDC)
    # every entry, the tables included: the zoo's are the portable ones of the same weights
    expected = integer.portable_tables(copy.deepcopy(fresh)).state_dict()
    assert net.state_dict().keys() == expected.keys()
    assert all(torch.equal(v, expected[k]) for k, v in net.state_dict().items())
    assert zoo.pframe_locate(XGDC, 2, "smoke") == {"quality": 2, "from": "cache",
                                                   "profile": "smoke", "path": str(run)}
    assert zoo.pframe_locate(XGDC, 2)["from"] == "needs training"  # smoke is never offered
    # an unfinished run is not used; the error names the command that makes the weights
    man = json.loads((run / checkpoints.MANIFEST).read_text())
    (run / checkpoints.MANIFEST).write_text(json.dumps({**man, "steps": 3}))
    with pytest.raises(ZooError, match="`nctutor train pframe-xgdc -q 2 --profile smoke`"):
        zoo.pframe_model(XGDC, 2, "smoke")
    (run / checkpoints.MANIFEST).write_text(json.dumps(man))
    # shipped weights (exported by pframetrain.export) come first
    folder = tmp_path / "weights"
    file = pframetrain.export(run, folder)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", folder)
    net = zoo.pframe_model(XGDC, 2, "smoke")
    assert net.nctutor["source"] == str(file)
    assert zoo.pframe_locate(XGDC, 2) == {"quality": 2, "from": "shipped", "profile": "smoke",
                                          "path": str(file)}
    assert zoo.shipped() == {}  # the image codecs' list leaves them out
    with pytest.raises(ZooError, match="ships pframe-xgdc q2 for the smoke profile only"):
        zoo.pframe_model(XGDC, 2, "cpu")
    with pytest.raises(ZooError, match="unknown P-frame model"):
        zoo.pframe_model("pframe-foo", 2)
    with pytest.raises(ValueError, match="quality"):
        zoo.pframe_model(XGDC, 0)
    # a run of another coder in the folder is refused
    other, _ = _finished_pframe_run("pframe-gdc", 3)
    (other / checkpoints.CHECKPOINT).write_bytes((run / checkpoints.CHECKPOINT).read_bytes())
    with pytest.raises(NctutorError, match="is for pframe-xgdc q2, not pframe-gdc q3"):
        zoo.pframe_model("pframe-gdc", 3, "smoke")


def test_models_lists_the_pframe_coders(capsys):
    run, _ = _finished_pframe_run("pframe-gdc", 3)
    assert cli.main(["models", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    for name in cc.CODERS:
        assert listed[name]["kind"] == "pframe" and listed[name]["source"] == "nctutor"
        assert listed[name]["qualities"] == list(zoo.PFRAME_QUALITIES)
    assert listed["pframe-gdc"]["weights"][2] == {"quality": 3, "from": "cache",
                                                  "profile": "smoke", "path": str(run)}
    assert listed["pframe-gdc"]["weights"][0]["command"] == (
        "nctutor train pframe-gdc -q 1 --profile smoke")
    assert cli.main(["models"]) == 0
    said = capsys.readouterr().out
    assert "pframe-gdc" in said and "q3 cache [smoke]" in said
    assert "`nctutor train NAME -q Q --profile P` makes them" in said


# ----------------------------------------------------------------------------- command line
@pytest.fixture
def frames(tmp_path):
    """The pair as PNG files: ``(frame, reference)``."""
    x, ref = _pair()
    files = tmp_path / "frame.png", tmp_path / "ref.png"
    data.save_image(x, files[0])
    data.save_image(ref, files[1])
    return files


def test_compress_and_decompress_a_pframe(tmp_path, frames, capsys):
    _finished_pframe_run(XGDC, 2)
    frame, ref = frames
    nct, png = tmp_path / "f.nct", tmp_path / "f.png"
    assert cli.main(["compress", str(frame), str(nct), "--model", XGDC, "-q", "2",
                     "--reference", str(ref)]) == 0
    said = capsys.readouterr().out
    h = container.read_header(nct.read_bytes())
    assert said.startswith(f"{nct}: {h.header_size + h.payload_size} bytes, ")
    assert f"(motion {h.lengths[0]}, latents {h.lengths[1] + h.lengths[2]}, switching " in said
    assert f"{WIDTH}×{HEIGHT}, {XGDC} q2 [smoke], switch quadtree" in said
    assert cli.main(["decompress", str(nct), str(png), "--reference", str(ref)]) == 0
    assert f"{png}: {WIDTH}×{HEIGHT}, {XGDC} q2 [smoke], switch quadtree" in capsys.readouterr().out
    net = zoo.pframe_model(XGDC, 2, "smoke")
    blob, x_hat = container.pframe_reconstruction(net, data.load_image(frame),
                                                  data.load_image(ref), 2)
    assert blob == nct.read_bytes()
    assert torch.equal(_u8(data.load_image(png)), _u8(x_hat))
    # the other switches, and the other coders' default
    assert cli.main(["compress", str(frame), str(nct), "--model", XGDC, "--quality", "2",
                     "--reference", str(ref), "--switch", "frame"]) == 0
    assert "switch frame" in capsys.readouterr().out
    _finished_pframe_run("pframe-diff", 2)
    assert cli.main(["compress", str(frame), str(nct), "--model", "pframe-diff",
                     "--reference", str(ref)]) == 0  # quality 2 by default
    assert "pframe-diff q2 [smoke], switch none" in capsys.readouterr().out
    assert cli.main(["decompress", str(nct), str(png), "--reference", str(ref)]) == 0


def test_pframe_command_line_errors(tmp_path, frames, capsys):
    _finished_pframe_run(XGDC, 2)
    frame, ref = frames
    nct, png = tmp_path / "f.nct", tmp_path / "f.png"
    assert cli.main(["compress", str(frame), str(nct), "--model", XGDC, "-q", "2",
                     "--reference", str(ref)]) == 0
    capsys.readouterr()
    other = tmp_path / "other.png"
    x = data.load_image(ref)
    x[0, 5, 5] = 1 - x[0, 5, 5]
    data.save_image(x, other)
    small = tmp_path / "small.png"
    data.save_image(x[:, :64, :64], small)
    image_nct = tmp_path / "image.nct"
    cases = {
        "compress without --reference": (
            ["compress", str(frame), str(nct), "--model", XGDC],
            "codes a frame given its reference frame: pass --reference REF.png"),
        "decompress without --reference": (
            ["decompress", str(nct), str(png)],
            "is a P-frame of pframe-xgdc: it decodes given the frame it was coded against; "
            "pass --reference REF.png"),
        "another reference": (
            ["decompress", str(nct), str(png), "--reference", str(other)],
            "coded against another reference frame"),
        "a reference of another size": (
            ["decompress", str(nct), str(png), "--reference", str(small)],
            "coded against a 100×70 reference"),
        "compress against another size": (
            ["compress", str(frame), str(nct), "--model", XGDC, "--reference", str(small)],
            "must have the same size"),
        "--switch of another coder": (
            ["compress", str(frame), str(nct), "--model", "pframe-gdc", "--reference", str(ref),
             "--switch", "d"], "pframe-gdc has one"),
        "--reference of an image codec": (
            ["compress", str(frame), str(tmp_path / "k.nct"), "--reference", str(ref)],
            "--reference is for the P-frame models"),
        "--coder of a P-frame": (
            ["compress", str(frame), str(nct), "--model", XGDC, "--reference", str(ref),
             "--coder", "exact"], "--coder is for the image or video codecs"),
        "missing weights": (
            ["compress", str(frame), str(nct), "--model", "pframe-gdc", "-q", "3",
             "--reference", str(ref)], "`nctutor train pframe-gdc -q 3 --profile smoke`"),
        "missing reference file": (
            ["compress", str(frame), str(nct), "--model", XGDC, "--reference",
             str(tmp_path / "nope.png")], "does not exist"),
    }
    for what, (argv, said) in cases.items():
        assert cli.main(argv) == 2, what
        err = capsys.readouterr().err
        assert err.startswith("nctutor: error: ") and said in err, (what, err)
        assert err.count("\n") == 1, what
    assert not png.exists()
    # --reference given for an image file
    finished_run("bmshj2018-factorized", 1)
    assert cli.main(["compress", str(frame), str(image_nct), "--model",
                     "bmshj2018-factorized", "--quality", "1"]) == 0
    capsys.readouterr()
    assert cli.main(["decompress", str(image_nct), str(png), "--reference", str(ref)]) == 2
    assert "--reference is for P-frame files; " in capsys.readouterr().err
    # a decoder without the weights says which
    (zoo._pframe_run(XGDC, 2, "smoke") / checkpoints.MANIFEST).unlink()
    assert cli.main(["decompress", str(nct), str(png), "--reference", str(ref)]) == 2
    err = capsys.readouterr().err
    assert "written by pframe-xgdc q2 [smoke], whose weights are not here" in err


def test_train_dispatches_pframe_models(tmp_path, monkeypatch, capsys):
    asked = []

    def train(cfg, progress=True):
        asked.append((cfg, progress))
        return {"manifest": {"settings": {"run_dir": "RUN", "profile": "smoke"}, "steps": 3,
                             "seconds": 1.5, "final": {"loss": 0.5, "bpp": 0.25, "psnr": 31.0}}}

    monkeypatch.setattr(pframetrain, "train", train)
    assert cli.main(["train", XGDC, "-q", "2", "--profile", "smoke", "--steps", "3", "--init",
                     "W.pt", "--quiet"]) == 0
    [(cfg, progress)] = asked
    assert (cfg.model, cfg.quality, cfg.profile, cfg.steps, cfg.init_from, cfg.seed,
            progress) == (XGDC, 2, "smoke", 3, "W.pt", pframetrain.PFrameTrainConfig.seed, False)
    said = capsys.readouterr().out
    assert "RUN: pframe-xgdc q2 [smoke], 3 steps in 1.5 s, loss 0.5000, bpp 0.2500" in said
    assert cli.main(["train", "pframe-gdc", "-q", "1", "--seed", "3", "--lr", "1e-4",
                     "--out", str(tmp_path / "run"), "--patch-size", "64"]) == 0
    cfg = asked[-1][0]
    assert (cfg.seed, cfg.lr, cfg.out_dir, cfg.patch_size) == (3, 1e-4, str(tmp_path / "run"), 64)
    assert cli.main(["train", XGDC, "-q", "2", "--metric", "ms-ssim"]) == 2
    assert "MSE only" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # a P-frame model needs its quality
        cli.main(["train", XGDC])
    assert e.value.code == 2
    assert "the following arguments are required: --quality" in capsys.readouterr().err
