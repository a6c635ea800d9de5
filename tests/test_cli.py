"""The nctutor command: bit-exact round trips, odd inputs, and errors as messages."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from nctutor import checkpoints, cli, codecs, config, container, data, maintain, train, zoo


def _finished_run(arch: str, quality: int, N: int = 8, M: int = 8, seed: int = 0):
    """A complete run in the cache, made by hand (an untrained tiny model): what zoo.load finds."""
    cfg = train.TrainConfig(model=arch, quality=quality)
    steps = config.get_profile().steps  # complete: as many steps as the profile asks
    settings = {**cfg.resolved(), "N": N, "M": M, "steps": steps}
    torch.manual_seed(seed)
    net = codecs.create(arch, N=N, M=M)
    run = train.run_dir(cfg)
    run.mkdir(parents=True)
    torch.save({"settings": settings, "model": net.state_dict(), "step": steps},
               run / checkpoints.CHECKPOINT)
    (run / checkpoints.MANIFEST).write_text(json.dumps({"steps": steps, "settings": settings}))
    return run


@pytest.fixture
def kodak_png(tmp_path):
    file = tmp_path / "crop.png"
    data.save_image(data.kodak(1)[0][:, 200:270, 300:390], file)  # 70×90
    return file


@pytest.mark.parametrize("arch", ["bmshj2018-factorized", "mbt2018-mean"])
def test_round_trip_png_is_bit_exact(tmp_path, kodak_png, capsys, arch):
    _finished_run(arch, 2)
    nct, out = tmp_path / "a.nct", tmp_path / "a.png"
    assert cli.main(["compress", str(kodak_png), str(nct), "--model", arch, "--quality", "2"]) == 0
    said = capsys.readouterr().out
    blob = nct.read_bytes()
    assert f"{len(blob)} bytes" in said and "bpp" in said and " s" in said
    assert f"{8 * len(blob) / (70 * 90):.4f} bpp" in said
    assert cli.main(["decompress", str(nct), str(out)]) == 0
    written = np.asarray(Image.open(out))
    assert written.shape == (70, 90, 3) and written.dtype == np.uint8
    # the same reconstruction, computed in memory with the model the header names
    model = zoo.load(arch, 2)
    x = data.load_image(kodak_png)
    xp = codecs.pad(x[None], codecs.STRIDES[arch])
    with torch.no_grad():
        c = model.compress(xp)
        x_hat = model.decompress(c["strings"], c["shape"])["x_hat"][0, :, :70, :90]
    expected = data.to_uint8(x_hat).permute(1, 2, 0).numpy()
    assert np.array_equal(written, expected)
    h = container.read_header(blob)
    assert (h.model, h.quality, h.profile, h.N, h.M) == (arch, 2, "smoke", 8, 8)


def _odd_image(mode: str, size=(45, 33)) -> Image.Image:
    rgb = np.asarray(Image.open(data.path("kodak/kodim05.png")).crop((0, 0) + size))
    if mode == "L":
        return Image.fromarray(rgb).convert("L")
    if mode == "RGBA":
        return Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)]), "RGBA")
    if mode == "P":
        return Image.fromarray(rgb).convert("P")
    if mode == "I;16":
        gray = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.uint16) * 257
        return Image.fromarray(gray)  # 16-bit grayscale
    raise ValueError(mode)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_non_rgb_inputs_work_with_a_warning(tmp_path, mode):
    _finished_run("mbt2018-mean", 3)
    src, nct, out = tmp_path / "in.png", tmp_path / "in.nct", tmp_path / "out.png"
    _odd_image(mode).save(src)
    mode = Image.open(src).mode  # 16-bit PNGs read back as "I;16" or "I", by Pillow version
    assert mode != "RGB"
    with pytest.warns(UserWarning, match=f"{mode} image converted to 8-bit RGB"):
        assert cli.main(["compress", str(src), str(nct)]) == 0  # default model and quality
    assert container.read_header(nct.read_bytes()).model == "mbt2018-mean"
    assert cli.main(["decompress", str(nct), str(out)]) == 0
    assert Image.open(out).size == (45, 33) and Image.open(out).mode == "RGB"


def test_missing_input_is_a_message(tmp_path, capsys):
    assert cli.main(["compress", str(tmp_path / "nope.png"), str(tmp_path / "x.nct")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nctutor: error:") and "nope.png" in err and "Traceback" not in err
    assert cli.main(["decompress", str(tmp_path / "nope.nct"), str(tmp_path / "x.png")]) == 2


def test_corrupted_and_foreign_files_are_messages(tmp_path, kodak_png, capsys):
    _finished_run("bmshj2018-factorized", 1)
    nct = tmp_path / "a.nct"
    assert cli.main(["compress", str(kodak_png), str(nct), "--model", "factorized",
                     "--quality", "1"]) == 0
    blob = bytearray(nct.read_bytes())
    blob[-5] ^= 0x40
    bad = tmp_path / "bad.nct"
    bad.write_bytes(bytes(blob))
    capsys.readouterr()
    assert cli.main(["decompress", str(bad), str(tmp_path / "o.png")]) == 2
    assert capsys.readouterr().err == "nctutor: error: corrupted file: CRC32 mismatch\n"
    assert cli.main(["decompress", str(kodak_png), str(tmp_path / "o.png")]) == 2
    assert "not an nctutor file" in capsys.readouterr().err
    not_image = tmp_path / "text.png"
    not_image.write_text("not an image")
    assert cli.main(["compress", str(not_image), str(nct)]) == 2
    assert "cannot read image" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow  # a fresh interpreter imports torch: 5-15 s on 2 busy cores
def test_console_script_prints_no_traceback(tmp_path):
    bad = tmp_path / "bad.nct"
    bad.write_bytes(b"NCT1" + bytes(40))
    run = subprocess.run([sys.executable, "-m", "nctutor.cli", "decompress", str(bad),
                          str(tmp_path / "o.png")], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NCTUTOR_OFFLINE": "1"})
    assert run.returncode == 2
    assert run.stderr.startswith("nctutor: error:") and "Traceback" not in run.stderr


def test_bad_options_exit_2(tmp_path, kodak_png, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["compress", str(kodak_png), "b.nct", "--quality", "9"])
    assert e.value.code == 2
    capsys.readouterr()
    assert cli.main(["compress", str(kodak_png), str(tmp_path / "b.nct"), "--model", "jpeg"]) == 2
    assert capsys.readouterr().err.startswith("nctutor: error: unknown model 'jpeg'")


def test_train_subcommand(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "bmshj2018-factorized", "--quality", "1", "--steps", "2",
                     "--out", str(out), "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "2 steps" in said and "bpp" in said and "PSNR" in said
    manifest = json.loads((out / checkpoints.MANIFEST).read_text())
    assert manifest["steps"] == 2 and manifest["settings"]["profile"] == "smoke"


def test_eval_subcommand_writes_compressai_json(tmp_path, capsys):
    _finished_run("bmshj2018-factorized", 1)
    _finished_run("bmshj2018-factorized", 4, seed=1)
    out = tmp_path / "rd.json"
    assert cli.main(["eval", "--model", "bmshj2018-factorized", "--quality", "1", "4",
                     "--images", "1", "--crop", "64", "--json", str(out)]) == 0
    said = capsys.readouterr().out
    assert "q1:" in said and "q4:" in said and "dB PSNR" in said
    doc = json.loads(out.read_text())
    assert len(doc["results"]["bpp"]) == len(doc["results"]["psnr-rgb"]) == 2
    # the rate is that of the real streams of the 64×64 centre crop of kodim01
    x = data.center_crop(data.kodak(1)[0], 64)[None]
    expected = []
    for q in (1, 4):
        with torch.no_grad():
            strings = zoo.load("bmshj2018-factorized", q).compress(x)["strings"]
        expected.append(8 * sum(len(s) for group in strings for s in group) / 64**2)
    assert sorted(doc["results"]["bpp"]) == pytest.approx(sorted(expected), rel=1e-12)


def test_bench_subcommand_prints_the_columns(tmp_path, capsys):
    for arch in codecs.ARCHITECTURES:
        _finished_run(arch, 3)
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--images", "1", "--crop", "64", "--repeat", "1", "--per-image",
                     "--json", str(out)]) == 0
    said = capsys.readouterr().out
    for column in ("enc ours ms", "enc CAI ms", "enc ratio", "enc exact ms", "dec ratio",
                   "ovh CAI %", "ovh exact %", "kodim01", "mean of 1", *codecs.ARCHITECTURES):
        assert column in said
    doc = json.loads(out.read_text())
    rows = {r["model"]: r for r in doc["rows"]}
    assert set(rows) == set(codecs.ARCHITECTURES) and doc["settings"]["crop"] == 64
    assert rows["bmshj2018-factorized"]["bits_exact"] is None  # no Gaussian to code exactly
    for r in rows.values():
        assert (r["height"], r["width"]) == (64, 64) and r["enc_ours_ms"] > 0
        assert r["enc_ratio"] == pytest.approx(r["enc_ours_ms"] / r["enc_compressai_ms"])
        # the .nct file = CompressAI's streams + its header
        assert 8 * r["file_bytes"] > r["bits_compressai"] > 0


def test_compress_uses_the_shipped_weights_by_default(tmp_path, kodak_png, monkeypatch, capsys):
    weights = tmp_path / "weights"
    maintain.export(_finished_run("mbt2018-mean", 2), "mbt2018-mean", 2, weights)
    man_file = weights / "mbt2018-mean-q2.json"
    man_file.write_text(json.dumps({**json.loads(man_file.read_text()), "profile": "cpu"}))
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", weights)
    monkeypatch.delenv("NCTUTOR_PROFILE")
    assert set(zoo.shipped()) == {("mbt2018-mean", 2)}
    nct, out = tmp_path / "a.nct", tmp_path / "a.png"
    assert cli.main(["compress", str(kodak_png), str(nct), "--quality", "2"]) == 0
    assert "[cpu]" in capsys.readouterr().out
    assert container.read_header(nct.read_bytes()).profile == "cpu"
    assert cli.main(["decompress", str(nct), str(out)]) == 0  # finds them again from the header
    assert cli.main(["eval", "--quality", "2", "--images", "1", "--crop", "64"]) == 0
    assert "profile cpu" in capsys.readouterr().out
    # an explicit profile wins; a quality that is not shipped is trained, with a warning
    _finished_run("mbt2018-mean", 3)
    with pytest.warns(UserWarning, match="no weights are shipped for mbt2018-mean q3"):
        assert cli.main(["compress", str(kodak_png), str(nct), "--quality", "3"]) == 0
    assert container.read_header(nct.read_bytes()).profile == "smoke"
    assert cli.main(["compress", str(kodak_png), str(nct), "--quality", "2",
                     "--profile", "smoke"]) == 0
    assert container.read_header(nct.read_bytes()).profile == "smoke"
