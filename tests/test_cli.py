"""The nctutor command: bit-exact round trips, odd inputs, and errors as messages."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import finished_run as _finished_run
from PIL import Image

import nctutor
from nctutor import checkpoints, cli, codecs, config, container, data, maintain, train, zoo


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
    # the rate is that of the .nct file of the 64×64 centre crop of kodim01, header included
    x = data.center_crop(data.kodak(1)[0], 64)
    expected = []
    for q in (1, 4):
        model = zoo.load("bmshj2018-factorized", q)
        blob = container.encode_image(model, x, "bmshj2018-factorized", q, "smoke")
        expected.append(8 * len(blob) / 64**2)
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
    assert set(config.machine_info()) <= set(doc["settings"])  # the machine, with its CPU flags
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
    # a quality that is not shipped: a smoke run in the cache is not used unless asked for
    _finished_run("mbt2018-mean", 3)
    nct.unlink()
    assert cli.main(["compress", str(kodak_png), str(nct), "--quality", "3"]) == 2
    err = capsys.readouterr().err
    assert "`nctutor train mbt2018-mean --quality 3 --profile cpu`" in err and not nct.exists()
    for profile in (["--profile", "smoke"], []):  # asked for, by option or by environment
        monkeypatch.setenv("NCTUTOR_PROFILE", "smoke")
        assert cli.main(["compress", str(kodak_png), str(nct), "--quality", "3", *profile]) == 0
        assert container.read_header(nct.read_bytes()).profile == "smoke"
        monkeypatch.delenv("NCTUTOR_PROFILE")
    # an explicit profile wins over the shipped weights
    assert cli.main(["compress", str(kodak_png), str(nct), "--quality", "2",
                     "--profile", "smoke"]) == 0
    assert container.read_header(nct.read_bytes()).profile == "smoke"


# ----------------------------------------------------------------------------- python -m nctutor
def test_python_m_nctutor_is_the_command(tmp_path):
    """``python -m nctutor`` runs :func:`nctutor.cli.main` and exits with its status."""
    def run(*args):
        return subprocess.run([sys.executable, "-m", "nctutor", *args], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "NCTUTOR_OFFLINE": "1"})

    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"nctutor {nctutor.__version__}"
    missing = run("decompress", str(tmp_path / "nope.nct"), str(tmp_path / "o.png"))
    assert missing.returncode == 2, missing.stderr
    assert missing.stderr == f"nctutor: error: input file {tmp_path / 'nope.nct'} does not exist\n"


def test_the_cli_module_imports_no_torch():
    """``nctutor --version`` and ``--help`` answer at once: each command imports what it needs."""
    code = "import sys, nctutor.cli; print(sorted({'torch', 'compressai'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "[]"


# ----------------------------------------------------------------------------- models
def _shipped_family(tmp_path, monkeypatch, profile="cpu"):
    """Weights "shipped" for mbt2018-mean q2 (profile ``profile``) in a folder of their own."""
    weights = tmp_path / "weights"
    maintain.export(_finished_run("mbt2018-mean", 2), "mbt2018-mean", 2, weights)
    man_file = weights / "mbt2018-mean-q2.json"
    man_file.write_text(json.dumps({**json.loads(man_file.read_text()), "profile": profile}))
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", weights)
    return weights / "mbt2018-mean-q2.pt"


def test_models_lists_every_codec_and_where_its_weights_come_from(tmp_path, monkeypatch,
                                                                   capsys):
    shipped = _shipped_family(tmp_path, monkeypatch)  # also a smoke run of mbt2018-mean q2
    smoke_run = _finished_run("bmshj2018-factorized", 5)
    with monkeypatch.context() as m:  # a complete run at the cpu profile
        m.setenv("NCTUTOR_PROFILE", "cpu")
        cpu_run = _finished_run("bmshj2018-hyperprior", 7)
    assert cli.main(["models", "--json"]) == 0  # $NCTUTOR_PROFILE is smoke: smoke's weights
    listed = json.loads(capsys.readouterr().out)
    assert listed == zoo.models("smoke")
    assert [m["name"] for m in listed if m["kind"] == "video"] == list(cli.VIDEO_MODELS)
    assert [m["name"] for m in listed if m["kind"] == "pframe"] == list(cli.PFRAME_MODELS)
    # tests/test_video_cli.py and tests/test_pframe_cli.py check the video and P-frame codecs
    listed = [m for m in listed if m["kind"] == "image"]
    by_name = {m["name"]: m for m in listed}
    ours = set(codecs.IMAGE_MODELS) | set(codecs.PREDICTORS) | set(codecs.NORMALIZED)
    assert set(by_name) == ours | {codecs.COMPRESSAI_PREFIX + a for a in zoo.COMPRESSAI_MODELS}
    for m in listed:
        assert m["kind"] == "image" and m["qualities"] == list(range(1, 9))
        assert [w["quality"] for w in m["weights"]] == m["qualities"]
        assert m["source"] == ("compressai" if m["name"].startswith("compressai:") else "nctutor")
    fact = by_name["bmshj2018-factorized"]["weights"]
    assert fact[4] == {"quality": 5, "from": "cache", "profile": "smoke", "path": str(smoke_run)}
    assert fact[0]["from"] == "needs training" and fact[0]["profile"] == "smoke"
    assert fact[0]["command"] == "nctutor train bmshj2018-factorized --quality 1 --profile smoke"
    assert by_name["mbt2018-mean"]["weights"][1]["from"] == "cache"  # shipped ones are for cpu
    assert by_name["compressai:mbt2018-mean"]["weights"][0]["from"] == "compressai"

    # no profile asked for: the shipped weights, a gpu or cpu run; smoke runs are not offered
    monkeypatch.delenv("NCTUTOR_PROFILE")
    assert cli.main(["models"]) == 0
    said = capsys.readouterr().out
    assert "mbt2018-mean" in said and "q2 shipped [cpu]" in said and "q7 cache [cpu]" in said
    assert "bmshj2018-factorized" in said and "q1-q8 needs training [cpu]" in said
    assert "nctutor train" in said
    listed = {m["name"]: m["weights"] for m in zoo.models()}
    assert listed["mbt2018-mean"][1] == {"quality": 2, "from": "shipped", "profile": "cpu",
                                         "path": str(shipped)}
    assert listed["bmshj2018-hyperprior"][6]["path"] == str(cpu_run)
    assert listed["bmshj2018-factorized"][4]["from"] == "needs training"
    assert cli.main(["models", "--profile", "smoke", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == zoo.models("smoke")


# ------------------------------------------------------------------- never train by surprise
@pytest.fixture
def tiny_smoke(monkeypatch):
    """The smoke profile cut to 3 steps of 2 crops of 32 pixels, widths 8 (the factorized prior
    trains in about a second)."""
    small = dataclasses.replace(config.PROFILES["smoke"], steps=3, batch_size=2, patch_size=32,
                                N=8, M=8)
    monkeypatch.setitem(config.PROFILES, "smoke", small)
    return small


def test_missing_weights_are_refused_with_the_command_that_makes_them(tmp_path, kodak_png,
                                                                       capsys, tiny_smoke):
    nct = tmp_path / "a.nct"
    run = train.run_dir(train.TrainConfig(model="bmshj2018-factorized", quality=6))
    command = "`nctutor train bmshj2018-factorized --quality 6 --profile smoke`"
    for argv in (["compress", str(kodak_png), str(nct)],
                 ["eval", "--images", "1", "--crop", "64"],
                 ["bench", "--images", "1", "--crop", "64", "--repeat", "1"]):
        assert cli.main([*argv, "--model", "bmshj2018-factorized", "--quality", "6"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("nctutor: error: no trained weights for bmshj2018-factorized q6")
        assert command in err and "--profile smoke" in err
    assert not nct.exists() and not run.exists()  # nothing trained
    with pytest.raises(zoo.ZooError, match=command):
        zoo.load("bmshj2018-factorized", 6, train_if_missing=False)
    assert not run.exists()
    # an explicit profile is a deliberate choice: trained on the spot
    assert cli.main(["compress", str(kodak_png), str(nct), "--model", "bmshj2018-factorized",
                     "--quality", "6", "--profile", "smoke"]) == 0
    assert json.loads((run / checkpoints.MANIFEST).read_text())["steps"] == tiny_smoke.steps
    # decompress never trains: without the run, the file is refused with the command
    shutil.rmtree(run)
    capsys.readouterr()
    assert cli.main(["decompress", str(nct), str(tmp_path / "a.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nctutor: error: {nct}: written by bmshj2018-factorized q6 [smoke]")
    assert command in err and not run.exists() and not (tmp_path / "a.png").exists()


# -------------------------------------------------------------- errors name the user's paths
def test_input_and_output_errors_name_what_the_user_gave(tmp_path, kodak_png, capsys):
    _finished_run("bmshj2018-factorized", 1)
    fact = ["--model", "bmshj2018-factorized", "--quality", "1"]
    folder = tmp_path / "photos"
    folder.mkdir()
    nct = tmp_path / "a.nct"
    cases = [
        (["compress", str(folder), str(nct)], f"{folder} is a folder, not an image file"),
        (["decompress", str(folder), str(tmp_path / "a.png")],
         f"{folder} is a folder, not an .nct file"),
        (["compress", str(tmp_path / "nope.png"), str(nct)],
         f"input file {tmp_path / 'nope.png'} does not exist"),
        (["compress", str(kodak_png), "/proc/a.nct"], "cannot write /proc/a.nct"),
        (["compress", str(kodak_png), str(tmp_path / "no" / "a.nct")],
         f"cannot write {tmp_path / 'no' / 'a.nct'}: the folder {tmp_path / 'no'} does not exist"),
        (["compress", str(kodak_png), str(folder)], f"{folder} is a folder"),
        (["compress", str(kodak_png), "--out-dir", str(tmp_path / "no")],
         f"output folder {tmp_path / 'no'} does not exist"),
        (["decompress", str(nct), "--out-dir", str(kodak_png)],
         f"--out-dir {kodak_png} is a file, not a folder"),
    ]
    for argv, message in cases:
        assert cli.main([*argv, *fact] if argv[0] == "compress" else argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("nctutor: error: ") and message in err, (argv, err)
        assert ".part" not in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crop.png", "photos"]


# ----------------------------------------------------------------------------- many files at once
def test_many_files_at_once_one_model_load(tmp_path, kodak_png, capsys, monkeypatch):
    _finished_run("mbt2018-mean", 3)
    images = []
    for i, (top, left) in enumerate([(0, 0), (100, 200), (300, 500)]):
        images.append(tmp_path / f"img{i}.png")
        data.save_image(data.kodak(1)[0][:, top:top + 40, left:left + 70], images[-1])
    loads = []
    load = zoo.load
    monkeypatch.setattr(zoo, "load", lambda *a, **k: loads.append(a) or load(*a, **k))
    out = tmp_path / "out"
    out.mkdir()
    missing = tmp_path / "missing.png"
    assert cli.main(["compress", str(images[0]), str(missing), *map(str, images[1:]),
                     "--out-dir", str(out)]) == 2  # one failed, the others are written
    said = capsys.readouterr()
    assert said.err == f"nctutor: error: input file {missing} does not exist\n"
    assert sorted(p.name for p in out.iterdir()) == ["img0.nct", "img1.nct", "img2.nct"]
    assert all(f"{out / f'img{i}.nct'}: " in said.out for i in range(3)) and len(loads) == 1
    # decompress them all, one model load; then each PNG is the decoding of its file
    nct = sorted(out.glob("*.nct"))
    assert cli.main(["decompress", *map(str, nct), "--out-dir", str(out)]) == 0
    assert len(loads) == 2
    model = load("mbt2018-mean", 3)
    for file in nct:
        expected = data.to_uint8(container.decode_image(file.read_bytes(), model))
        written = np.asarray(Image.open(file.with_suffix(".png")))
        assert np.array_equal(written, expected.permute(1, 2, 0).numpy())
    # the two-file form is IN OUT, and nothing else
    capsys.readouterr()
    for argv, message in [
        (["compress", str(images[0]), str(images[1])], "is named like an image"),
        (["compress", *map(str, images)], "give an input and an output file (3 given)"),
        (["compress", str(images[0])], "give an input and an output file (1 given)"),
        (["decompress", str(nct[0]), str(nct[1])], "is named like an .nct file"),
        (["compress", str(images[0]), str(tmp_path / "x" / "img0.png"), "--out-dir", str(out)],
         "would both be written to"),
    ]:
        before = {p: p.read_bytes() for p in [*images, *nct]}
        assert cli.main(argv) == 2
        assert message in capsys.readouterr().err
        assert all(p.read_bytes() == b for p, b in before.items())  # nothing overwritten


def test_exact_coder_round_trip(tmp_path, kodak_png, capsys):
    _finished_run("mbt2018-mean", 3)
    nct, png = tmp_path / "a.nct", tmp_path / "a.png"
    assert cli.main(["compress", str(kodak_png), str(nct), "--coder", "exact"]) == 0
    assert "exact coder" in capsys.readouterr().out
    blob = nct.read_bytes()
    assert container.read_header(blob).coder == "exact"
    assert cli.main(["decompress", str(nct), str(png)]) == 0
    expected = data.to_uint8(container.decode_image(blob, zoo.load("mbt2018-mean", 3)))
    assert np.array_equal(np.asarray(Image.open(png)), expected.permute(1, 2, 0).numpy())
    capsys.readouterr()
    assert cli.main(["compress", str(kodak_png), str(nct), "--coder", "exact", "--model",
                     "bmshj2018-factorized"]) == 2
    assert "use --coder table" in capsys.readouterr().err


# ----------------------------------------------------------------------------- exit statuses
@pytest.mark.parametrize("raised, status, said", [
    (None, 0, ""),
    (zoo.ZooError("no weights"), 2, "nctutor: error: no weights\n"),
    (ValueError("bad value"), 2, "nctutor: error: bad value\n"),
    (FileNotFoundError("no such file"), 2, "nctutor: error: no such file\n"),
    (RuntimeError("a bug"), 1, "nctutor: internal error: RuntimeError: a bug"),
    (KeyboardInterrupt(), 130, "nctutor: interrupted\n"),
])
def test_exit_statuses(monkeypatch, capsys, raised, status, said):
    def command(args):
        if raised is not None:
            raise raised
        return 0

    monkeypatch.setattr(cli, "cmd_models", command)
    assert cli.main(["models"]) == status
    assert capsys.readouterr().err.startswith(said)
