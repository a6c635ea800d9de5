"""The weights shipped in the package: complete, small, loadable, reported honestly, and
round-tripping real images through the command line bit for bit."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from nctutor import checkpoints, cli, codecs, container, data, maintain, zoo
from nctutor import rd as nceval
from nctutor.entropy import integer

FAMILY = ({("mbt2018-mean", q) for q in (1, 2, 3, 4)}
          | {("bmshj2018-factorized", q) for q in (1, 3)}
          | {("kwcc2018-hierarchical", q) for q in (1, 2, 3, 4)}
          | {("mbt2018", q) for q in (1, 3)})
REPORTED = ["mbt2018-mean", "bmshj2018-factorized", "kwcc2018-hierarchical", "mbt2018"]


def test_the_family_is_complete_small_and_loads():
    shipped = zoo.shipped()
    assert set(shipped) == FAMILY
    files = [zoo.WEIGHTS_DIR / f"{n}-q{q}.pt" for n, q in shipped]
    assert sum(f.stat().st_size for f in files) <= 60e6  # the house limit for all weights
    for (name, q), man in shipped.items():
        file = zoo.WEIGHTS_DIR / f"{name}-q{q}.pt"
        blob = torch.load(file, map_location="cpu", weights_only=True)
        assert blob["format"] == checkpoints.WEIGHTS_FORMAT
        assert any(v.dtype == torch.float16 for v in blob["model"].values())
        assert man["bytes"] == file.stat().st_size and man["lmbda"] == codecs.lmbda(q)
        assert man["profile"] in ("cpu", "gpu") and man["steps"] >= 1000
        assert man["settings"]["model"] == name and man["settings"]["quality"] == q
        assert man["kodak"]["images"] == 24 and man["kodak"]["report"] == f"{name}-kodak.json"
        model = zoo.load(name, q, profile=man["profile"])
        assert model.nctutor["source"] == str(file) and (model.N, model.M) == (man["N"], man["M"])


@pytest.mark.parametrize("name", REPORTED)
def test_the_report_is_what_the_weights_do(name):
    report = json.loads((zoo.WEIGHTS_DIR / f"{name}-kodak.json").read_text())
    q = min(report["results"]["quality"])
    model = zoo.load_exported(zoo.WEIGHTS_DIR / f"{name}-q{q}.pt")
    again = nceval.evaluate_model(model, data.kodak(1), quality=q).records[0]
    stored = next(r for r in report["records"] if r["image"] == "kodim01" and r["quality"] == q)
    # another CPU may round a latent or two differently (float kernels differ): near, not equal
    assert again["stream_bytes"] == pytest.approx(stored["stream_bytes"], rel=0.005)
    assert again["psnr"] == pytest.approx(stored["psnr"], abs=0.02)
    # the rate is the whole .nct file: the streams and a header whose size does not vary
    header = again["bytes"] - again["stream_bytes"]
    assert 30 < header < 100
    assert all(r["bytes"] - r["stream_bytes"] == header for r in report["records"])
    assert all(r["bpp"] == 8 * r["bytes"] / (768 * 512) for r in report["records"])


@pytest.mark.parametrize("name", REPORTED)
def test_the_report_means_and_bd_rates_are_its_records(name):
    """The curve is the mean of its records, the BD-rates are those of the curve, and every
    manifest holds its own point of the report."""
    report = json.loads((zoo.WEIGHTS_DIR / f"{name}-kodak.json").read_text())
    res = report["results"]
    family = {q: man for (n, q), man in zoo.shipped().items() if n == name}
    assert sorted(res["quality"]) == sorted(family) and len(report["records"]) == 24 * len(family)
    for q, bpp, psnr in zip(res["quality"], res["bpp"], res["psnr-rgb"], strict=True):
        rows = [r for r in report["records"] if r["quality"] == q]
        assert len(rows) == 24 and len({r["image"] for r in rows}) == 24
        assert bpp == pytest.approx(np.mean([r["bpp"] for r in rows]), rel=1e-12)
        assert psnr == pytest.approx(np.mean([r["psnr"] for r in rows]), rel=1e-12)
        kodak = family[q]["kodak"]
        assert (kodak["bpp"], kodak["psnr"]) == (bpp, psnr)
        stream_bpp = np.mean([8 * r["stream_bytes"] / (768 * 512) for r in rows])
        assert kodak["stream_bpp"] == pytest.approx(stream_bpp, rel=1e-12)
        assert kodak["family_bd_rate_psnr"] == {k: v["bd_rate"]
                                                for k, v in report["bd_rate_psnr"].items()}
    curve = nceval.RDCurve("shipped", res["bpp"], res["psnr-rgb"])
    assert maintain.family_bd_rates(curve, name) == report["bd_rate_psnr"]


def test_the_mean_scale_family_beats_jpeg_as_reported():
    report = json.loads((zoo.WEIGHTS_DIR / "mbt2018-mean-kodak.json").read_text())
    curve = nceval.RDCurve("shipped", report["results"]["bpp"], report["results"]["psnr-rgb"])
    assert len(curve) == 4 and len(report["records"]) == 4 * 24
    jpeg = nceval.reference_curve("classic-kodak-pillow/jpeg")
    value = nceval.bd_rate(jpeg, curve, min_overlap=0)
    assert value < 0
    assert value == pytest.approx(report["bd_rate_psnr"]["JPEG"]["bd_rate"], abs=0.01)
    assert set(report["bd_rate_psnr"]) == set(maintain.REPORT_ANCHORS)


def test_family_bd_rates_of_a_known_shift():
    jpeg = nceval.reference_curve("classic-kodak-pillow/jpeg")
    cheaper = nceval.RDCurve("JPEG at 90 % of the bits", [0.9 * b for b in jpeg.bpp], jpeg.psnr)
    assert maintain.family_bd_rates(cheaper, "mbt2018-mean")["JPEG"]["bd_rate"] == pytest.approx(
        -10.0, abs=0.01)


def _round_trip(tmp_path, image: torch.Tensor, stem: str, quality: int = 3) -> None:
    src, nct, out = tmp_path / f"{stem}.png", tmp_path / f"{stem}.nct", tmp_path / f"{stem}.out.png"
    data.save_image(image, src)
    assert cli.main(["compress", str(src), str(nct), "--quality", str(quality)]) == 0
    blob = nct.read_bytes()
    header = container.read_header(blob)
    assert header.profile == zoo.shipped()[("mbt2018-mean", quality)]["profile"]
    assert cli.main(["decompress", str(nct), str(out)]) == 0
    decoded = np.asarray(Image.open(out))
    model = zoo.load("mbt2018-mean", quality, profile=header.profile)
    h, w = image.shape[-2:]
    xp = codecs.pad(data.load_image(src)[None], codecs.STRIDES["mbt2018-mean"])
    assert header.version == 4  # the model's own compress/decompress in version 4's arithmetic
    with torch.no_grad(), integer.integer_entropy(integer.portable_tables(model)):
        c = model.compress(xp)
        x_hat = model.decompress(c["strings"], c["shape"])["x_hat"][0, :, :h, :w]
    assert np.array_equal(decoded, data.to_uint8(x_hat).permute(1, 2, 0).numpy()), stem


def test_cli_round_trip_with_the_shipped_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("NCTUTOR_PROFILE")  # the command line's default: the shipped weights
    _round_trip(tmp_path, data.kodak(1)[0][:, 100:300, 200:450], "kodim01-crop")


@pytest.mark.slow  # 24 Kodak images and two large CLIC photos: about a minute on 2 cores
def test_cli_round_trips_kodak_and_clic_with_the_shipped_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("NCTUTOR_PROFILE")
    for images in (data.kodak(), data.clic()):
        for i, name in enumerate(images.names):
            _round_trip(tmp_path, images[i], name)


def test_the_benchmark_record_is_of_the_shipped_weights():
    """``weights/bench-kodak-q3.json`` (``nctutor bench --profile cpu … --images 24``) measured
    these weights: its stream sizes are the report's, image by image, and it covers every Kodak
    image for both shipped architectures at quality 3."""
    record = json.loads((zoo.WEIGHTS_DIR / "bench-kodak-q3.json").read_text())
    assert record["settings"]["profile"] == "cpu" and record["settings"]["quality"] == 3
    assert set(record["means"]) == {"mbt2018-mean", "bmshj2018-factorized"}
    for name in record["means"]:
        report = json.loads((zoo.WEIGHTS_DIR / f"{name}-kodak.json").read_text())
        stored = {r["image"]: r["stream_bytes"] for r in report["records"] if r["quality"] == 3}
        rows = [r for r in record["rows"] if r["model"] == name]
        assert sorted(r["image"] for r in rows) == sorted(stored) and len(rows) == 24
        for r in rows:
            assert r["bits_compressai"] / 8 == pytest.approx(stored[r["image"]], rel=0.005)
            assert r["enc_ratio"] == pytest.approx(r["enc_ours_ms"] / r["enc_compressai_ms"])
        mean = record["means"][name]
        assert mean["overhead_compressai"] == pytest.approx(
            sum(r["bits_compressai"] for r in rows) / sum(r["ideal_bits"] for r in rows) - 1)
