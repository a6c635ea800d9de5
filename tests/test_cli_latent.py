"""The nctutor command and the lattice codec: compress --quantizer/--latent-shift/--search,
decompress without options, bench --modes, latent-eval; refusals as one-line messages."""

import json
import shlex

import numpy as np
import pytest
import torch
from conftest import finished_run as _finished_run
from PIL import Image

from nctutor import cli, container, data, zoo
from nctutor.codecs.latent import MAIN_STEPS, SIDE_STEPS
from nctutor.rd import latent as rd_latent


def test_the_mode_names_are_those_of_rd_latent():
    assert cli.LATENT_MODES == tuple(rd_latent.MODES)


@pytest.mark.parametrize("arch", ["mbt2018-mean", "bmshj2018-factorized"])
def test_compress_with_a_lattice_and_the_shift_decompresses_without_options(tmp_path, kodak_png,
                                                                            capsys, arch):
    _finished_run(arch, 3)
    model = zoo.load(arch, 3)
    x = data.load_image(kodak_png)
    cases = [(["--quantizer", "hex"], "hex", False, "secant"),
             (["--quantizer", "oct", "--latent-shift"], "oct", True, "secant"),
             (["--latent-shift", "--search", "brute"], "scalar", True, "brute"),
             (["--coder", "lattice"], "scalar", False, "secant"),
             (["--coder", "lattice", "--quantizer", "hex", "--latent-shift"], "hex", True,
              "secant")]
    for i, (options, quantizer, shift, search) in enumerate(cases):
        nct, png = tmp_path / f"{i}.nct", tmp_path / f"{i}.png"
        assert cli.main(["compress", str(kodak_png), str(nct), "--model", arch, *options]) == 0
        said = capsys.readouterr().out
        blob = nct.read_bytes()
        h = container.read_header(blob)
        assert (h.version, h.coder, h.quantizer) == (4, "lattice", quantizer), options
        assert (h.steps == (0, 0)) or shift
        # the same bytes as the library writes with those settings
        assert blob == container.encode_image(model, x, arch, 3, "smoke", coder="lattice",
                                              quantizer=quantizer, shift=shift, search=search)
        assert f"lattice coder ({quantizer}" in said and f"{len(blob)} bytes" in said
        if h.steps != (0, 0):
            assert f"ρ_h = {MAIN_STEPS[h.steps[0]]:g}, ρ_f = {SIDE_STEPS[h.steps[1]]:g}" in said
        assert cli.main(["decompress", str(nct), str(png)]) == 0
        said = capsys.readouterr().out
        assert f"lattice coder ({quantizer}" in said
        expected = data.to_uint8(container.decode_image(blob, model)).permute(1, 2, 0).numpy()
        assert np.array_equal(np.asarray(Image.open(png)), expected)
    # --quantizer scalar alone keeps CompressAI's table coder (version 4 too, no shift steps)
    nct = tmp_path / "table.nct"
    assert cli.main(["compress", str(kodak_png), str(nct), "--model", arch,
                     "--quantizer", "scalar"]) == 0
    h = container.read_header(nct.read_bytes())
    assert (h.version, h.coder, h.quantizer, h.steps) == (4, "table", "scalar", (0, 0))
    assert "table coder" in capsys.readouterr().out


@pytest.mark.parametrize("options, message", [
    (["--coder", "exact", "--quantizer", "hex"],
     "--quantizer hex needs the lattice coder, not --coder exact: leave --coder out"),
    (["--coder", "table", "--latent-shift"],
     "--latent-shift needs the lattice coder, not --coder table"),
    (["--coder", "exact", "--quantizer", "oct", "--latent-shift"],
     "--quantizer oct and --latent-shift needs the lattice coder"),
    (["--search", "brute"], "--search chooses the step of the latent shift: give --latent-shift"),
    (["--quantizer", "oct", "--model", "bmshj2018-hyperprior"],
     "--quantizer oct: the lattice coder wraps bmshj2018-factorized and mbt2018-mean only; "
     "bmshj2018-hyperprior is a bmshj2018-hyperprior"),
    (["--latent-shift", "--model", "hyperprior"],
     "--latent-shift: the lattice coder wraps bmshj2018-factorized and mbt2018-mean only"),
    (["--coder", "lattice", "--model", "compressai:bmshj2018-hyperprior"],
     "--coder lattice: the lattice coder wraps"),
])
def test_compress_refuses_options_that_do_not_go_together(tmp_path, kodak_png, capsys, options,
                                                          message):
    nct = tmp_path / "a.nct"
    assert cli.main(["compress", str(kodak_png), str(nct), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nctutor: error: ") and message in err, err
    assert "Traceback" not in err and not nct.exists()


def test_compress_rejects_an_unknown_quantizer(kodak_png, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["compress", str(kodak_png), str(tmp_path / "a.nct"), "--quantizer", "d4"])
    assert e.value.code == 2
    assert "invalid choice: 'd4'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- bench --modes


def test_bench_modes_prints_ratios_per_mode(tmp_path, capsys):
    for arch in ("bmshj2018-factorized", "mbt2018-mean"):
        _finished_run(arch, 3)
    out = tmp_path / "modes.json"
    assert cli.main(["bench", "--modes", "compressai,scalar", "hex", "shift", "--images", "1",
                     "--crop", "64", "--repeat", "1", "--json", str(out)]) == 0
    said = capsys.readouterr().out
    for column in ("enc ms", "dec ms", "enc ×scalar", "dec ×scalar", "enc ×CAI", "dec ×CAI",
                   "PSNR dB", "mean of 1", "compressai", "hex", "shift", "bmshj2018-factorized",
                   "mbt2018-mean"):
        assert column in said, column
    doc = json.loads(out.read_text())
    assert doc["settings"]["modes"] == ["compressai", "scalar", "hex", "shift"]
    rows = {(r["model"], r["mode"]): r for r in doc["rows"]}
    assert set(rows) == {(m, mode) for m in ("bmshj2018-factorized", "mbt2018-mean")
                         for mode in ("compressai", "scalar", "hex", "shift")}
    for r in rows.values():
        assert r["enc_vs_scalar"] == pytest.approx(r["enc_ms"] / r["enc_scalar_ms"])
        assert r["dec_vs_compressai"] == pytest.approx(r["dec_ms"] / r["dec_compressai_ms"])
        assert r["pixels"] == 64 * 64 and r["file_bytes"] > 0
    for m in ("bmshj2018-factorized", "mbt2018-mean"):
        assert rows[(m, "scalar")]["enc_vs_scalar"] == 1.0
        # the compressai mode is the table coder's file: CompressAI's streams and a header
        x = data.center_crop(data.kodak(1)[0], 64)
        blob = container.encode_image(zoo.load(m, 3), x, m, 3, "smoke")
        assert rows[(m, "compressai")]["file_bytes"] == len(blob)
    assert len(doc["means"]) == 8


def test_bench_modes_refusals(capsys):
    for argv, message in [
        (["--modes", "hex", "--model", "bmshj2018-hyperprior"],
         "--modes times the lattice coder, which wraps bmshj2018-factorized and mbt2018-mean"),
        (["--modes", "hex,d4"], "--modes: unknown mode 'd4'; modes: compressai, scalar"),
        (["--modes", ","], "--modes: no mode given"),
        (["--modes", "hex", "--device", "cuda"], "the lattice codec runs on the CPU"),
    ]:
        assert cli.main(["bench", "--images", "1", "--crop", "64", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("nctutor: error: ") and message in err, err


# ----------------------------------------------------------------------------- latent-eval


def test_latent_eval_one_image_one_model_two_modes(tmp_path, capsys, monkeypatch):
    """A small run with the shipped weights: the record rd.latent.run writes, the exact command
    line in it, the bytes of real files; a rerun resumes, other settings are refused."""
    png = tmp_path / "kodim01-part.png"
    x8 = data.kodak(1).uint8(0)[:, 160:288, 256:448]  # 128×192
    data.save_image(x8.float() / 255, png)
    out = tmp_path / "rec.json"
    argv = ["latent-eval", "--out", str(out), "--images", str(png), "--models",
            "mbt2018-mean:1", "--modes", "scalar", "hex", "--threads", "1"]
    saved = torch.get_num_threads()
    try:
        assert cli.main(argv) == 0
    finally:
        torch.set_num_threads(saved)
    said = capsys.readouterr().out
    assert f"wrote {out}: 1 image, 1 model, 2 modes, 1 thread(s), profile cpu" in said
    assert "mbt2018-mean q1" in said and "PSNR dB" in said
    record = json.loads(out.read_text())
    assert record["command"] == "nctutor " + shlex.join(argv)
    assert record["profile"] == "cpu" and record["modes"] == ["scalar", "hex"]
    assert record["images"] == ["kodim01-part"] and record["threads"] == 1
    assert record["cpu"] and record["cpu_capability"] and "simd" in record  # the machine
    entry = record["families"]["mbt2018-mean"]["1"]["kodim01-part"]
    assert set(entry["modes"]) == {"scalar", "hex"} and "corr_main" in entry["analysis"]
    model = zoo.load("mbt2018-mean", 1, "cpu", train_if_missing=False)
    x = data.load_image(png)
    for mode, quantizer in (("scalar", "scalar"), ("hex", "hex")):
        blob = container.encode_image(model, x, "mbt2018-mean", 1, "cpu", coder="lattice",
                                      quantizer=quantizer)
        assert entry["modes"][mode]["bytes"] == len(blob)
    # the same settings again: resumed, nothing recomputed
    before = out.read_text()
    assert cli.main(argv) == 0
    assert "resuming" in capsys.readouterr().out
    assert json.loads(out.read_text())["families"] == json.loads(before)["families"]
    # other modes into the same record: refused, the record untouched
    assert cli.main(argv[:-5] + ["--modes", "scalar", "oct"]) == 2
    assert "holds a record of other modes" in capsys.readouterr().err
    assert out.read_text() == before


@pytest.mark.parametrize("argv, message", [
    (["--models", "bmshj2018-hyperprior:1"],
     "--models bmshj2018-hyperprior:1: the lattice coder wraps bmshj2018-factorized and "
     "mbt2018-mean only"),
    (["--models", "mbt2018-mean:one"], "give NAME or NAME:Q[,Q…]"),
    (["--models", "mbt2018-mean:9"], "quality must be an integer in 1..8, got 9"),
    (["--models", "mbt2018-mean:1,1"], "names mbt2018-mean q1 twice"),
    (["--models", "mbt2018-mean:5"],
     "no trained weights for mbt2018-mean q5 at the cpu profile"),
    (["--models", "bmshj2018-factorized", "--profile", "gpu"],
     "no trained weights of bmshj2018-factorized at profile gpu"),
    (["--modes", "hex", "oct"], "--modes must include scalar"),
    (["--modes", "scalar", "d4"], "unknown mode 'd4'"),
    (["--threads", "0"], "--threads must be at least 1"),
])
def test_latent_eval_refusals(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    png = tmp_path / "a.png"
    data.save_image(data.kodak(1)[0][:, :64, :64], png)
    assert cli.main(["latent-eval", "--images", str(png), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nctutor: error: ") and message in err, err
    assert list(tmp_path.iterdir()) == [png]  # nothing written


def test_latent_eval_default_output_is_in_the_current_folder(tmp_path, capsys, monkeypatch):
    """Without --out, the record goes to ./latent-kodak.json (./latent-images.json for image
    files), never to the shipped record: shown by a folder of that name, refused at once."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "latent-kodak.json").mkdir()
    assert cli.main(["latent-eval", "--models", "mbt2018-mean:1", "--modes", "scalar"]) == 2
    assert "--out latent-kodak.json is a folder" in capsys.readouterr().err
    png = tmp_path / "a.png"
    data.save_image(data.kodak(1)[0][:, :64, :64], png)
    (tmp_path / "latent-images.json").mkdir()
    assert cli.main(["latent-eval", "--images", str(png), "--models", "mbt2018-mean:1",
                     "--modes", "scalar"]) == 2
    assert "--out latent-images.json is a folder" in capsys.readouterr().err
    assert cli.build_parser().parse_args(["latent-eval"]).out is None
