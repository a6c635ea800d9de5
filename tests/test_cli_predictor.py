"""The nctutor command with the code-space predictor's codecs: round trips, damaged files, the
model list, and ``bench --against``.

The models are tiny untrained ones (N = M = 8) put in the test's cache as complete runs, so that
``zoo.load`` finds them and nothing trains.
"""

import json
import re
import struct
import zlib

import numpy as np
import pytest
import torch
from conftest import finished_run as _finished_run
from PIL import Image

from nctutor import bench, cli, container, data, zoo

PREDICTORS = ["kwcc2018-spatial", "kwcc2018-hierarchical", "kwcc2018-checkerboard", "mbt2018"]


@pytest.fixture(autouse=True)
def _threads_unchanged():
    """Every test leaves torch's thread count as it found it (tests/test_colab.py needs it)."""
    saved = torch.get_num_threads()
    yield
    now = torch.get_num_threads()
    torch.set_num_threads(saved)
    assert now == saved, f"the test left torch at {now} threads, not {saved}"


@pytest.fixture
def small_png(tmp_path):
    file = tmp_path / "crop.png"
    data.save_image(data.kodak(1)[0][:, :96, :128], file)  # 96×128
    return file


@pytest.mark.parametrize("arch", PREDICTORS)
def test_round_trip_and_damaged_file(tmp_path, small_png, capsys, arch):
    _finished_run(arch)
    nct, out = tmp_path / "a.nct", tmp_path / "a.png"
    assert cli.main(["compress", str(small_png), str(nct), "--model", arch, "--quality", "3",
                     "--profile", "smoke"]) == 0
    blob = nct.read_bytes()
    said = capsys.readouterr().out
    assert f"{len(blob)} bytes" in said and f"{arch} q3 [smoke]" in said
    assert cli.main(["decompress", str(nct), str(out)]) == 0
    written = np.asarray(Image.open(out))
    assert written.shape == (96, 128, 3) and written.dtype == np.uint8
    # the same image as decoding the file in this process with the model its header names
    header = container.read_header(blob)
    assert (header.model, header.quality, header.profile, header.N, header.M) == (
        arch, 3, "smoke", 8, 8)
    model = zoo.load(arch, 3, "smoke", train_if_missing=False)
    expected = data.to_uint8(container.decode_image(blob, model)).permute(1, 2, 0).numpy()
    assert np.array_equal(written, expected)

    # a flipped byte in the payload: refused with one line, no traceback, no image written
    damaged = bytearray(blob)
    damaged[header.header_size + (len(blob) - header.header_size) // 2] ^= 0x10
    bad = tmp_path / "bad.nct"
    bad.write_bytes(bytes(damaged))
    capsys.readouterr()
    assert cli.main(["decompress", str(bad), str(tmp_path / "bad.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nctutor: error:") and err.count("\n") == 1
    assert "Traceback" not in err and "corrupted" in err
    assert not (tmp_path / "bad.png").exists()

    # the same byte of y flipped, the file's CRC made right again: the predictor's coder checks
    # its own stream; CompressAI's mbt2018 decodes whatever it is given (no internal error)
    start = header.header_size  # the CRC (big-endian) is the header's last 4 bytes
    damaged = bytearray(blob)
    damaged[start] ^= 0x10  # the first byte of y's stream
    crc = zlib.crc32(bytes(damaged[start:]), zlib.crc32(bytes(damaged[:start - 4])))
    damaged[start - 4:start] = struct.pack(">I", crc)
    bad.write_bytes(bytes(damaged))
    capsys.readouterr()
    status = cli.main(["decompress", str(bad), str(tmp_path / "bad.png")])
    err = capsys.readouterr().err
    if arch == "mbt2018":
        assert status in (0, 2) and "internal error" not in err
    else:
        assert status == 2 and err.startswith("nctutor: error:") and "y stream" in err
        assert err.count("\n") == 1 and not (tmp_path / "bad.png").exists()


def test_models_lists_the_predictors(capsys):
    assert cli.main(["models", "--json"]) == 0
    names = {m["name"] for m in json.loads(capsys.readouterr().out)}
    assert set(PREDICTORS) <= names


def test_bench_against_prints_the_decode_ratio(tmp_path, capsys):
    for arch in ("kwcc2018-hierarchical", "mbt2018"):
        _finished_run(arch)
    out = tmp_path / "against.json"
    assert cli.main(["bench", "--against", "mbt2018", "--model", "kwcc2018-hierarchical",
                     "--profile", "smoke", "--images", "1", "--repeat", "1", "--crop", "64",
                     "--per-image", "--json", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.startswith("nctutor bench --against mbt2018: 1 kodak image, 64×64 centre crops")
    for column in ("dec ms", "dec ref ms", "dec ×ref", "bytes ×ref", "kodim01", "mean of 1"):
        assert column in said
    line = re.search(r"^kwcc2018-hierarchical: decode time against mbt2018: (\d+\.\d\d)× "
                     r"\(mean of per-image ratios; goal ≤ 1\.0×\)$", said, re.M)
    assert line, said
    doc = json.loads(out.read_text())
    (row,) = doc["rows"]
    assert (row["model"], row["against"], row["image"], row["pixels"]) == (
        "kwcc2018-hierarchical", "mbt2018", "kodim01", 64 * 64)
    assert row["dec_ratio"] == pytest.approx(row["dec_ms"] / row["against_dec_ms"])
    assert line.group(1) == f"{row['dec_ratio']:.2f}"
    assert doc["settings"]["against"] == "mbt2018" and doc["settings"]["profile"] == "smoke"
    # the bytes are those of the real files of the crop
    x = data.center_crop(data.kodak(1)[0], 64)
    for name, key in (("kwcc2018-hierarchical", "bytes"), ("mbt2018", "against_bytes")):
        model = zoo.load(name, 3, "smoke", train_if_missing=False)
        assert row[key] == len(container.encode_image(model, x, name, 3, "smoke"))


def test_bench_against_refuses_modes_and_devices(capsys):
    assert cli.main(["bench", "--against", "mbt2018", "--modes", "hex"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nctutor: error: --against") and "--modes" in err
    assert err.count("\n") == 1
    assert cli.main(["bench", "--against", "mbt2018", "--device", "cuda"]) == 2
    assert "CPU" in capsys.readouterr().err


def test_against_means_are_means_of_the_image_ratios():
    """The mean row's ratios (table, JSON, and the CLI's last line) weigh every image alike."""
    rows = [bench.AgainstRow(model="m", against="r", image=str(i), pixels=100, enc_ms=e,
                             dec_ms=d, bytes=b, against_enc_ms=1.0, against_dec_ms=rd,
                             against_bytes=100)
            for i, (e, d, b, rd) in enumerate([(2.0, 1.0, 50, 4.0), (4.0, 3.0, 150, 1.0)])]
    assert [r.dec_ratio for r in rows] == [0.25, 3.0]
    ratios = bench.mean_ratios(rows)
    assert ratios == {"enc_ratio": 3.0, "dec_ratio": 1.625, "bytes_ratio": 1.0}
    assert bench.mean_against_row(rows).dec_ratio == pytest.approx(2.0 / 2.5)  # ratio of means
    table = bench.against_table(rows, per_image=True)
    assert "1.625" in table and "0.250" in table and "mean of 2" in table
    with pytest.raises(ValueError, match="no rows"):
        bench.mean_ratios([])
