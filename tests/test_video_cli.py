"""The binary video codec's files and command line: bit-exact round trips, streaming, damaged and
forged files, and where the weights come from (an untrained tiny model, exported by hand)."""

import json
import random
import re
import struct
import time
import zlib

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from nctutor import checkpoints, cli, config, container, videotrain, zoo
from nctutor.codecs import video
from nctutor.errors import BitstreamError, ZooError

NAME = "frameconv3d-order1"
FRAMES, HEIGHT, WIDTH = 10, 48, 64  # groups of 4 (the smoke profile's T): 4, 4, 2


def _finished_video_run(name=NAME, seed=0, profile="smoke"):
    """A finished run of ``name`` in the cache, made by hand: an untrained tiny model (N=8, C=16,
    groups of 4 at the smoke profile), what zoo.video_model finds."""
    settings = videotrain.VideoTrainConfig(model=name, profile=profile).resolved()
    settings.update(N=8, C=16, frames=4)
    steps = config.VIDEO_SIZES[profile].steps
    torch.manual_seed(seed)
    net = video.BinaryVideoCodec(video.MODELS[name], N=8, C=16)
    run = zoo._video_run(name, profile)
    run.mkdir(parents=True)
    checkpoints.save({"settings": settings, "model": net.state_dict(), "step": steps,
                      "seconds": 0.0, "history": []}, run / checkpoints.CHECKPOINT)
    checkpoints.save({"steps": steps, "seconds": 0.0, "settings": settings, "final": {}},
                     run / checkpoints.MANIFEST)
    return run


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """The tiny model of :func:`_finished_video_run` exported as if shipped (smoke profile), in a
    weights folder of its own; the cache's run is removed, so only the shipped file serves."""
    import shutil

    run = _finished_video_run()
    folder = tmp_path / "weights"
    file = videotrain.export(run, folder)
    shutil.rmtree(run)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", folder)
    return file


def _clip() -> np.ndarray:
    """``FRAMES`` frames ``(H, W, 3)`` uint8: a smooth background and a square that moves."""
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    frames = []
    for t in range(FRAMES):
        f = np.stack([(xx * 4 + t * 3) % 256, (yy * 5) % 256, (xx + yy + 10 * t) % 256], -1)
        f[10:26, 4 + 3 * t : 20 + 3 * t] = (250, 40, 40)
        frames.append(f.astype(np.uint8))
    return np.stack(frames)


@pytest.fixture
def png_folder(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(_clip()):
        Image.fromarray(f).save(folder / f"f{i:03d}.png")
    return folder


def _write_video(file, frames, codec):
    opts = {"pix_fmt_out": "bgr0", "quality": None} if codec == "ffv1" else {}
    writer = imageio_ffmpeg.write_frames(str(file), (WIDTH, HEIGHT), codec=codec,
                                         macro_block_size=1, ffmpeg_log_level="error", **opts)
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f).tobytes())
    writer.close()
    return file


def _read_video(file) -> np.ndarray:
    reader = imageio_ffmpeg.read_frames(str(file), pix_fmt="rgb24")
    w, h = next(reader)["size"]
    return np.stack([np.frombuffer(raw, np.uint8).reshape(h, w, 3) for raw in reader])


def _read_folder(folder) -> np.ndarray:
    return np.stack([np.asarray(Image.open(f)) for f in sorted(folder.iterdir())])


def _expected(model, frames: np.ndarray, channels: int, group: int = 4) -> np.ndarray:
    """What the encoder's own model reconstructs, group by group, in 8 bits (decoded on one
    thread, as the decoder does)."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255.0)
    out = []
    for first in range(0, len(x), group):
        c = model.compress(x[first : first + group], channels)
        with config.one_thread():
            x_hat = model.decompress(c["strings"], c["shape"], len(x[first : first + group]),
                                     channels)
        out.append(x_hat[..., : x.shape[-2], : x.shape[-1]])
    return torch.cat(out).clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_video_models_agree_with_the_codec():
    assert cli.VIDEO_MODELS == tuple(video.MODELS)


# ----------------------------------------------------------------------------- round trips
def test_png_folder_round_trip_is_bit_exact(tmp_path, weights, png_folder, capsys):
    nct, out = tmp_path / "clip.nct", tmp_path / "decoded"
    tic = time.perf_counter()
    assert cli.main(["compress", str(png_folder), str(nct), "--model", NAME]) == 0
    said = capsys.readouterr().out
    blob = nct.read_bytes()
    h = container.read_header(blob)
    assert (h.kind, h.model, h.profile, h.order, h.N, h.C) == ("video", NAME, "smoke", 1, 8, 16)
    assert (h.channels, h.group, h.frames, h.height, h.width) == (4, 4, FRAMES, HEIGHT, WIDTH)
    assert h.group_sizes == [4, 4, 2] and len(h.lengths) == 3  # the last group is shorter
    bpp = 8 * len(blob) / (FRAMES * HEIGHT * WIDTH)
    assert f"{FRAMES} frames" in said and f"{len(blob)} bytes" in said and f"{bpp:.4f} bpp" in said
    assert cli.main(["decompress", str(nct), str(out)]) == 0
    said = capsys.readouterr().out
    seconds = time.perf_counter() - tic
    names = sorted(f.name for f in out.iterdir())
    assert names == [f"frame_{i:04d}.png" for i in range(1, FRAMES + 1)]
    decoded = _read_folder(out)
    model, _ = videotrain.load_weights(weights)
    assert np.array_equal(decoded, _expected(model, _clip(), 4))
    assert f"{bpp:.4f} bpp" in said and f"{FRAMES} frames" in said
    assert not list(tmp_path.glob(".*partial*"))  # the hidden folder was renamed
    print(f"\n{FRAMES} frames {WIDTH}×{HEIGHT}, K=4 of 16: {len(blob)} bytes, {bpp:.4f} bpp, "
          f"compress + decompress {seconds:.2f} s")


def test_threads_do_not_change_the_frames(weights, png_folder, tmp_path):
    model, _ = videotrain.load_weights(weights)
    x = torch.from_numpy(_clip()).permute(0, 3, 1, 2).float().div(255.0)
    blob = container.encode_video(model, x, NAME, "smoke", 16, 4)
    saved = torch.get_num_threads()
    try:
        decoded = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            decoded.append(torch.cat(list(container.decode_video(blob, model))))
            assert torch.get_num_threads() == threads  # restored after each group
    finally:
        torch.set_num_threads(saved)
    assert torch.equal(decoded[0], decoded[1])


def test_sizes_off_the_stride_are_padded_and_cropped(weights):
    model, _ = videotrain.load_weights(weights)
    x = torch.rand(5, 3, 37, 50)
    blob = container.encode_video(model, x, NAME, "smoke", 8, 4)
    h = container.read_header(blob)
    assert (h.height, h.width, h.shape, h.group_sizes) == (37, 50, (3, 4), [4, 1])
    decoded = list(container.decode_video(blob, model))
    expected = []
    for first in (0, 4):
        c = model.compress(x[first : first + 4], 8)
        with config.one_thread():
            expected.append(model.decompress(c["strings"], c["shape"], len(x[first : first + 4]),
                                             8)[..., :37, :50])
    assert [tuple(g.shape) for g in decoded] == [(4, 3, 37, 50), (1, 3, 37, 50)]
    assert all(torch.equal(a, b) for a, b in zip(decoded, expected, strict=True))


def test_mp4_input_frames_limit_and_lossless_mkv_output(tmp_path, weights, capsys):
    mp4 = _write_video(tmp_path / "clip.mp4", _clip(), "libx264")
    nct, mkv = tmp_path / "clip.nct", tmp_path / "out.mkv"
    assert cli.main(["compress", str(mp4), str(nct), "--model", NAME, "--frames", "6",
                     "--channels", "16"]) == 0
    h = container.read_header(nct.read_bytes())
    assert (h.frames, h.channels, h.group_sizes) == (6, 16, [4, 2])
    assert cli.main(["decompress", str(nct), str(mkv)]) == 0
    assert "6 frames" in capsys.readouterr().out
    model, _ = videotrain.load_weights(weights)
    source = _read_video(mp4)[:6]  # what ffmpeg gives the encoder: H.264, not the clip itself
    assert np.array_equal(_read_video(mkv), _expected(model, source, 16))
    # the .mkv is lossless: it holds exactly the PNG frames a folder gets
    folder = tmp_path / "folder"
    assert cli.main(["decompress", str(nct), str(folder)]) == 0
    assert np.array_equal(_read_video(mkv), _read_folder(folder))


def test_a_lossless_video_and_its_png_frames_give_the_same_file(tmp_path, weights, png_folder):
    mkv = _write_video(tmp_path / "clip.mkv", _clip(), "ffv1")
    assert np.array_equal(_read_video(mkv), _clip())  # FFV1 round trip: bit-exact
    a, b = tmp_path / "a.nct", tmp_path / "b.nct"
    assert cli.main(["compress", str(mkv), str(a), "--model", NAME, "--channels", "8"]) == 0
    assert cli.main(["compress", str(png_folder), str(b), "--model", NAME, "--channels", "8"]) == 0
    assert a.read_bytes() == b.read_bytes()


def test_out_dir_writes_a_folder_per_video(tmp_path, weights, png_folder, capsys):
    nct_dir, png_dir = tmp_path / "nct", tmp_path / "png"
    nct_dir.mkdir()
    png_dir.mkdir()
    assert cli.main(["compress", str(png_folder), "--out-dir", str(nct_dir), "--model", NAME,
                     "--frames", "3"]) == 0
    assert cli.main(["decompress", str(nct_dir / "frames.nct"), "--out-dir", str(png_dir)]) == 0
    assert sorted(f.name for f in (png_dir / "frames").iterdir()) == [
        "frame_0001.png", "frame_0002.png", "frame_0003.png"]


def test_encoding_streams_one_group_at_a_time(weights, monkeypatch):
    model, _ = videotrain.load_weights(weights)
    pulled, seen = [], []

    def frames():
        for f in torch.from_numpy(_clip()).permute(0, 3, 1, 2).float().div(255.0):
            pulled.append(1)
            yield f

    compress = model.compress
    monkeypatch.setattr(model, "compress",
                        lambda x, k: (seen.append((len(pulled), len(x))), compress(x, k))[1])
    container.encode_video(model, frames(), NAME, "smoke", 4, 4)
    assert seen == [(4, 4), (8, 4), (10, 2)]  # each group coded as soon as it is read


# ----------------------------------------------------------------------------- user errors
def test_png_frames_of_different_sizes_are_refused(tmp_path, weights, png_folder, capsys):
    Image.fromarray(np.zeros((HEIGHT, WIDTH + 16, 3), np.uint8)).save(png_folder / "f005.png")
    nct = tmp_path / "clip.nct"
    assert cli.main(["compress", str(png_folder), str(nct), "--model", NAME]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nctutor: error: ") and "same size" in err and "f005.png" in err
    assert "80×48" in err and not nct.exists()
    # but the frames before it can be coded
    assert cli.main(["compress", str(png_folder), str(nct), "--model", NAME, "--frames",
                     "5"]) == 0


@pytest.mark.parametrize("case", ["empty folder", "not a video", "missing", "frames 0",
                                  "channels 17", "quality", "coder", "frames on an image",
                                  "output .mp4"])
def test_bad_inputs_and_options_are_one_line_errors(tmp_path, weights, png_folder, case, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    text = tmp_path / "x.mp4"
    text.write_text("not a video\n")
    nct = str(tmp_path / "o.nct")
    argv = {"empty folder": [str(empty), nct, "--model", NAME],
            "not a video": [str(text), nct, "--model", NAME],
            "missing": [str(tmp_path / "nothing.mp4"), nct, "--model", NAME],
            "frames 0": [str(png_folder), nct, "--model", NAME, "--frames", "0"],
            "channels 17": [str(png_folder), nct, "--model", NAME, "--channels", "17"],
            "quality": [str(png_folder), nct, "--model", NAME, "--quality", "3"],
            "coder": [str(png_folder), nct, "--model", NAME, "--coder", "exact"],
            "frames on an image": [str(png_folder), nct, "--frames", "3"],
            "output .mp4": [str(png_folder), str(tmp_path / "o.mp4"), "--model", NAME]}[case]
    assert cli.main(["compress", *argv]) == 2
    err = capsys.readouterr().err
    expected = {"empty folder": "no PNG frames", "not a video": "cannot read the video",
                "missing": "does not exist", "frames 0": "--frames must be at least 1",
                "channels 17": "--channels must be in 1..16", "quality": "--quality is for",
                "coder": "--coder is for", "frames on an image": "--frames is for the video",
                "output .mp4": "named like a video"}[case]
    assert err.startswith("nctutor: error: ") and expected in err and err.count("\n") == 1
    assert not (tmp_path / "o.nct").exists()


def test_decompress_outputs_that_are_refused(tmp_path, weights, png_folder, capsys):
    nct = tmp_path / "clip.nct"
    assert cli.main(["compress", str(png_folder), str(nct), "--model", NAME, "--frames",
                     "2"]) == 0
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    for out, message in ((tmp_path / "a.png", "not a .png file"),
                         (tmp_path / "a.mp4", "not a .mp4 file"),
                         (full, "is not empty"), (tmp_path / "no" / "dir", "does not exist")):
        assert cli.main(["decompress", str(nct), str(out)]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in full.iterdir()) == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["decompress", str(nct), str(empty)]) == 0  # an empty folder is fine
    assert len(list(empty.iterdir())) == 2


def test_wrong_model_is_refused(tmp_path, weights, png_folder, capsys, monkeypatch):
    nct = tmp_path / "clip.nct"
    assert cli.main(["compress", str(png_folder), str(nct), "--model", NAME, "--frames",
                     "4"]) == 0
    blob = nct.read_bytes()
    other = video.BinaryVideoCodec(1, N=8, C=16).eval()  # other weights, same widths
    with pytest.raises(BitstreamError, match="wrong model: .*fingerprints of g_s differ"):
        container.decode_video(blob, other)
    for net, message in ((video.BinaryVideoCodec(2, N=8, C=16).eval(), "order 2"),
                         (video.BinaryVideoCodec(1, N=8, C=32).eval(), "C=32")):
        with pytest.raises(BitstreamError, match=message):
            container.decode_video(blob, net)
    # the command line: the shipped weights replaced by others of the same name
    folder = tmp_path / "other"
    run = _finished_video_run(seed=1)
    videotrain.export(run, folder)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", folder)
    out = tmp_path / "out"
    assert cli.main(["decompress", str(nct), str(out)]) == 2
    assert "nctutor: error: wrong model" in capsys.readouterr().err and not out.exists()


def test_missing_weights_name_the_train_command(tmp_path, png_folder, monkeypatch, capsys):
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "none")
    nct = tmp_path / "clip.nct"
    assert cli.main(["compress", str(png_folder), str(nct), "--model", NAME]) == 2
    err = capsys.readouterr().err
    assert f"`nctutor train {NAME} --profile smoke`" in err and not nct.exists()
    with pytest.raises(ZooError, match=f"nctutor train {NAME} --profile cpu"):
        zoo.video_model(NAME)  # no profile: shipped, gpu or cpu weights; cpu ones to train


def test_image_and_video_files_are_not_confused(weights, tmp_path):
    model, _ = videotrain.load_weights(weights)
    blob = container.encode_video(model, torch.rand(2, 3, 16, 16), NAME, "smoke", 4, 4)
    with pytest.raises(BitstreamError, match="holds a video"):
        container.decode_image(blob, torch.nn.Identity())
    from nctutor import codecs

    net = codecs.create("bmshj2018-factorized", N=8, M=8).eval()
    net.update(force=True)
    image = container.encode_image(net, torch.rand(3, 16, 16), "bmshj2018-factorized", 1)
    with pytest.raises(BitstreamError, match="not a video"):
        container.decode_video(image, model)


# ----------------------------------------------------------------------------- damaged files
def _refit(blob: bytes, pos: int, raw: bytes) -> bytes:
    """``blob`` with ``raw`` at ``pos`` and the CRC made valid again (a forged file)."""
    out = bytearray(blob)
    out[pos : pos + len(raw)] = raw
    hs = container.read_header(blob).header_size
    crc = zlib.crc32(bytes(out[hs:]), zlib.crc32(bytes(out[: hs - 4])))
    out[hs - 4 : hs] = struct.pack(">I", crc)
    return bytes(out)


def test_100_damaged_files_raise_bitstream_error(weights):
    model, _ = videotrain.load_weights(weights)
    x = torch.from_numpy(_clip()).permute(0, 3, 1, 2).float().div(255.0)
    blob = container.encode_video(model, x, NAME, "smoke", 8, 4)
    rng = random.Random(14)
    variants = []
    for _ in range(60):  # one to eight bytes flipped anywhere
        bad = bytearray(blob)
        for p in rng.sample(range(len(blob)), rng.randrange(1, 9)):
            bad[p] ^= rng.randrange(1, 256)
        variants.append(bytes(bad))
    for _ in range(30):  # truncated anywhere
        variants.append(blob[: rng.randrange(len(blob))])
    for extra in (b"\0", b"x" * 7, blob, bytes(range(256))):  # trailing bytes
        variants.append(blob + extra)
    variants += [b"", b"NCT1", b"NCT1\x02\x02", blob[:34], bytes(len(blob)), b"NCT2" + blob[4:]]
    assert len(variants) == 100 and blob not in variants
    times = []
    for bad in variants:
        tic = time.perf_counter()
        with pytest.raises(BitstreamError):
            for _ in container.decode_video(bad, model):
                pass
        times.append(time.perf_counter() - tic)
    assert max(times) < 1.0
    print(f"\n100 damaged video files: max {1e3 * max(times):.2f} ms")


def test_forged_fields_are_refused_before_decoding(weights, monkeypatch):
    model, _ = videotrain.load_weights(weights)
    blob = container.encode_video(model, torch.rand(6, 3, 32, 48), NAME, "smoke", 4, 4)
    h = container.read_header(blob)
    names = 34 + len(h.model) + len(h.profile)
    u16, u32 = struct.Struct(">H").pack, struct.Struct(">I").pack
    forged = {
        "implausible video: groups of 0": (14, u16(0)),  # T = 0
        "groups of 65": (14, u16(65)),
        "groups of 4 frames, 4294967295 frames": (16, u32(2**32 - 1)),  # F huge
        "100001 frames": (16, u32(100_001)),
        "0 frames": (16, u32(0)),
        "implausible video size: groups of 4 frames of 0×48": (20, u32(0)),
        "of 16385×48": (20, u32(16385)),
        "pixels a group": (20, u32(8000) + u32(8000)),
        "0 kept channels": (12, u16(0)), "17 kept channels": (12, u16(17)),
        "N=0": (8, u16(0)), "C=24": (10, u16(24)),
        "order 2, frameconv3d-order1 is of order 1": (6, b"\x02"),
        "unknown padding mode 1": (7, b"\x01"),
        "a video in format version 3": (4, b"\x03"),
        "unknown video model 'frameconv3d-order9'": (34 + len(NAME) - 1, b"9"),
        "2 streams, 6 frames in groups of 4 make 2": (names, u32(2)),  # a valid count: control
        "2 streams, 9 frames in groups of 4 make 3": (16, u32(9)),
        "implausible model or profile name length": (32, bytes([0, names - 34])),
        "unknown kind 3": (5, b"\x03"),
    }
    calls = []
    monkeypatch.setattr(model, "decompress", lambda *a, **k: calls.append(a))
    for message, (pos, raw) in forged.items():
        bad = _refit(blob, pos, raw) if message != "unknown kind 3" else blob[:5] + raw + blob[6:]
        if message.startswith("2 streams, 6 frames"):
            assert bad == blob
            continue
        tic = time.perf_counter()
        with pytest.raises(BitstreamError, match=message.replace("(", r"\(")):
            container.decode_video(bad, model)
        assert time.perf_counter() - tic < 0.1, message
    assert calls == []  # refused before any group was decoded


def test_a_forged_frame_count_fails_at_its_group(weights):
    model, _ = videotrain.load_weights(weights)
    blob = container.encode_video(model, torch.rand(6, 3, 32, 48), NAME, "smoke", 4, 4)
    bad = _refit(blob, 16, struct.pack(">I", 7))  # 7 frames: still 2 streams, the last of 3
    groups = container.decode_video(bad, model)
    assert next(groups).shape == (4, 3, 32, 48)
    with pytest.raises(BitstreamError, match="binary stream"):
        next(groups)


def test_damaged_file_on_the_command_line(tmp_path, weights, png_folder, capsys):
    nct = tmp_path / "clip.nct"
    assert cli.main(["compress", str(png_folder), str(nct), "--model", NAME]) == 0
    blob = bytearray(nct.read_bytes())
    blob[-3] ^= 0x10  # in the last group's stream
    nct.write_bytes(bytes(blob))
    out = tmp_path / "out"
    assert cli.main(["decompress", str(nct), str(out)]) == 2
    err = capsys.readouterr().err
    assert err == "nctutor: error: corrupted file: CRC32 mismatch\n" and not out.exists()


# ----------------------------------------------------------------------------- weights
def test_video_model_finds_shipped_then_cached_weights(tmp_path, weights, monkeypatch):
    net = zoo.video_model(NAME, "smoke")
    assert net.nctutor == {"name": NAME, "profile": "smoke", "frames": 4,
                           "source": str(weights)}
    assert zoo.video_locate(NAME) == {"from": "shipped", "profile": "smoke",
                                      "path": str(weights)}
    assert zoo.video_locate(NAME, "cpu")["from"] == "needs training"
    with pytest.raises(ZooError, match="ships frameconv3d-order1 for the smoke profile only"):
        zoo.video_model(NAME, "cpu")
    assert zoo.shipped() == {}  # the image codecs' list skips the video weights
    run = _finished_video_run("frameconv3d-order2")
    net = zoo.video_model("frameconv3d-order2", "smoke")
    assert net.nctutor["source"] == str(run) and net.order == 2 and not net.training
    assert zoo.video_locate("frameconv3d-order2", "smoke") == {
        "from": "cache", "profile": "smoke", "path": str(run)}
    # an unfinished run is not used
    man = json.loads((run / checkpoints.MANIFEST).read_text())
    (run / checkpoints.MANIFEST).write_text(json.dumps({**man, "steps": 3}))
    assert zoo.video_locate("frameconv3d-order2", "smoke")["from"] == "needs training"
    # train_if_missing trains at the profile asked for (here: faked)
    asked = []

    def train(cfg, progress=True):
        asked.append(cfg)
        return {"model": video.BinaryVideoCodec(2, 8, 16),
                "manifest": {"settings": {"frames": 4}}}

    monkeypatch.setattr(videotrain, "train", train)
    net = zoo.video_model("frameconv3d-order2", "smoke", train_if_missing=True)
    assert [(c.model, c.profile) for c in asked] == [("frameconv3d-order2", "smoke")]
    assert net.nctutor["source"].startswith("trained: ") and not net.training
    with pytest.raises(ZooError, match="unknown video model"):
        zoo.video_model("frameconv3d-order7")


def test_models_lists_the_video_codecs(tmp_path, weights, capsys):
    assert cli.main(["models"]) == 0
    said = capsys.readouterr().out
    assert re.search(rf"^{NAME} +video  shipped \[smoke\]$", said, re.M)
    assert "nctutor train frameconv3d-order0 --profile smoke" in said
    assert cli.main(["models", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed[NAME]["kind"] == "video" and listed[NAME]["qualities"] == []
    assert listed[NAME]["weights"] == [{"from": "shipped", "profile": "smoke",
                                        "path": str(weights)}]


def test_train_dispatches_video_models(tmp_path, monkeypatch, capsys):
    asked = []

    def train(cfg, progress=True):
        asked.append((cfg, progress))
        return {"manifest": {"settings": {"run_dir": "RUN", "profile": "smoke"}, "steps": 3,
                             "seconds": 1.5, "final": {"loss": 0.01, "psnr": 20.0,
                                                       "val_psnr": {"1": 15.0, "16": 21.0}}}}

    monkeypatch.setattr(videotrain, "train", train)
    assert cli.main(["train", "frameconv3d-order2", "--profile", "smoke", "--steps", "3", "--lr",
                     "1e-4", "--out", str(tmp_path / "run"), "--init", "W.pt", "--seed", "2",
                     "--patch-size", "32", "--quiet"]) == 0
    [(cfg, progress)] = asked
    assert (cfg.model, cfg.profile, cfg.steps, cfg.lr, cfg.out_dir, cfg.init_from, cfg.seed,
            cfg.patch_size, progress) == ("frameconv3d-order2", "smoke", 3, 1e-4,
                                          str(tmp_path / "run"), "W.pt", 2, 32, False)
    said = capsys.readouterr().out
    assert "RUN: frameconv3d-order2 [smoke], 3 steps" in said and "K=16: 21.00 dB" in said
    assert cli.main(["train", NAME, "--quality", "3"]) == 2
    assert "has none" in capsys.readouterr().err
    assert cli.main(["train", NAME, "--metric", "ms-ssim"]) == 2
    with pytest.raises(SystemExit) as e:  # an image codec still needs its quality
        cli.main(["train", "mbt2018-mean"])
    assert e.value.code == 2
    assert "the following arguments are required: --quality" in capsys.readouterr().err
