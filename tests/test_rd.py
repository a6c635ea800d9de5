"""Tests of nctutor.rd: metrics, Bjøntegaard deltas, reference curves, live anchors, learned
codec evaluation (book section "Transform coding with learned priors → Evaluation")."""

from __future__ import annotations

import math
import warnings

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from nctutor import codecs, container, data, rd  # noqa: E402

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """MS-SSIM's small convolutions run faster on one thread on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def crops() -> list[torch.Tensor]:
    """Central 256×256 crops of the first two Kodak images."""
    images = data.kodak(2)
    return [data.center_crop(images[i], 256) for i in range(len(images))]


# --------------------------------------------------------------------------- metrics


def test_psnr_known_mse_and_rounding():
    x = torch.zeros(3, 32, 32)
    x_hat = torch.full((3, 32, 32), 10 / 255)
    expected = 20 * math.log10(255 / 10)  # MSE = (10/255)², peak 1
    assert rd.psnr(x, x_hat) == pytest.approx(expected, abs=1e-9)
    # 10.4/255 is written as 10 by an 8-bit decoder: same PSNR (without rounding it would differ).
    assert rd.psnr(x, torch.full((3, 32, 32), 10.4 / 255)) == pytest.approx(expected, abs=1e-9)
    # Values outside [0, 1] are clipped as a decoder would.
    assert rd.psnr(x, torch.full((3, 32, 32), -0.3)) == math.inf
    # uint8 input is taken as 8-bit values.
    assert rd.psnr(torch.zeros(3, 8, 8, dtype=torch.uint8),
                     torch.full((3, 8, 8), 10, dtype=torch.uint8)) == pytest.approx(expected)


def test_psnr_identical_is_inf_and_batch_mean_of_per_image_psnr():
    x = torch.rand(2, 3, 16, 16)
    assert rd.psnr(x, x.clone()) == math.inf
    a = torch.zeros(2, 3, 8, 8)
    b = torch.stack([torch.full((3, 8, 8), 10 / 255), torch.full((3, 8, 8), 20 / 255)])
    per_image = [20 * math.log10(255 / 10), 20 * math.log10(255 / 20)]
    assert rd.psnr(a, b) == pytest.approx(np.mean(per_image), abs=1e-9)


def test_metric_argument_checks():
    with pytest.raises(ValueError, match="differ in shape"):
        rd.psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9))
    with pytest.raises(ValueError, match="shape"):
        rd.psnr(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8))
    with pytest.raises(TypeError):
        rd.psnr(np.zeros((3, 8, 8)), torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="at least 161"):
        rd.ms_ssim(torch.zeros(3, 160, 400), torch.zeros(3, 160, 400))


def test_ms_ssim_identical_and_degraded(crops):
    x = crops[0]
    assert rd.ms_ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    noisy = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0)))
    m = rd.ms_ssim(x, noisy)
    assert 0.5 < m < 0.999
    assert rd.ms_ssim_db(0.99) == pytest.approx(20.0)


def test_bpp():
    assert rd.bpp(1000, 512, 768) == pytest.approx(8000 / (512 * 768))
    with pytest.raises(ValueError):
        rd.bpp(10, 0, 5)
    with pytest.raises(TypeError):
        rd.bpp(10.5, 4, 4)


# --------------------------------------------------------------------------- Bjøntegaard deltas


ANCHOR = {"bpp": [0.2, 0.4, 0.7, 1.1, 1.8], "psnr": [27.0, 29.6, 31.9, 33.8, 36.1]}


@pytest.mark.parametrize("method", ["akima", "pchip", "cubic"])
def test_bd_rate_of_scaled_rates_is_exact(method):
    # Every rate × 0.8 at the same PSNR: log-rate is shifted by log10(0.8) everywhere, for any
    # interpolation, so BD-rate = (0.8 − 1)·100 = −20 % exactly.
    test = {"bpp": [0.8 * r for r in ANCHOR["bpp"]], "psnr": ANCHOR["psnr"]}
    assert rd.bd_rate(ANCHOR, test, method=method) == pytest.approx(-20.0, abs=1e-9)
    assert rd.bd_rate(test, ANCHOR, method=method) == pytest.approx(25.0, abs=1e-9)


@pytest.mark.parametrize("method", ["akima", "pchip", "cubic"])
def test_bd_psnr_of_shifted_psnr_is_exact(method):
    test = {"bpp": ANCHOR["bpp"], "psnr": [p + 1.0 for p in ANCHOR["psnr"]]}
    assert rd.bd_psnr(ANCHOR, test, method=method) == pytest.approx(1.0, abs=1e-9)


def test_bd_on_a_straight_line_by_hand():
    # PSNR = 30 + 10·log10(bpp) (collinear in log-rate: every interpolant is this line).
    rates = [0.125, 0.25, 0.5, 1.0, 2.0]
    anchor = rd.RDCurve("a", rates, [30 + 10 * math.log10(r) for r in rates])
    scaled = rd.RDCurve("b", [0.8 * r for r in rates], anchor.psnr)
    # Same PSNR at 0.8× the rate ⇒ +10·log10(1/0.8) dB at equal rate.
    assert rd.bd_psnr(anchor, scaled) == pytest.approx(10 * math.log10(1.25), abs=1e-9)
    # +1 dB at equal rate ⇒ rate × 10^(−1/10) at equal PSNR.
    shifted = rd.RDCurve("c", rates, [p + 1 for p in anchor.psnr])
    assert rd.bd_rate(anchor, shifted) == pytest.approx((10 ** -0.1 - 1) * 100, abs=1e-9)
    # +4 dB: the curves share only 8.04 of 16.04 dB, which bjontegaard warns about.
    far = rd.RDCurve("e", rates, [p + 4 for p in anchor.psnr])
    with pytest.warns(UserWarning, match="overlap"):
        assert rd.bd_rate(anchor, far) == pytest.approx((10 ** -0.4 - 1) * 100, abs=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rd.bd_rate(anchor, far, min_overlap=0) == pytest.approx((10**-0.4 - 1) * 100)
    # Order of the points does not matter.
    rev = rd.RDCurve("d", scaled.bpp[::-1], scaled.psnr[::-1])
    assert rd.bd_psnr(anchor, rev) == pytest.approx(10 * math.log10(1.25), abs=1e-9)


def test_bd_argument_checks():
    with pytest.raises(ValueError, match="at least 2"):
        rd.bd_rate({"bpp": [1.0], "psnr": [30.0]}, ANCHOR)
    with pytest.raises(ValueError, match="psnr"):
        rd.bd_rate({"bpp": [1.0, 2.0]}, ANCHOR)
    with pytest.raises(ValueError, match="metric"):
        rd.bd_rate(ANCHOR, ANCHOR, metric="ssim")
    with pytest.raises(TypeError):
        rd.bd_rate([1, 2], ANCHOR)


def test_reference_bd_rates_of_the_readme():
    """The figures of the reference README (Akima, RGB PSNR, against Pillow's JPEG)."""
    jpeg = rd.reference_curve("classic-kodak-pillow/jpeg")
    mbt = rd.reference_curve("compressai-mbt2018-mean_mse_cpu")
    avif = rd.reference_curve("classic-kodak-pillow/avif")
    assert rd.bd_rate(jpeg, mbt) == pytest.approx(-57.1, abs=0.5)
    assert rd.bd_rate(jpeg, avif) == pytest.approx(-48.9, abs=0.5)
    assert rd.bd_rate(avif, mbt) == pytest.approx(-18.6, abs=0.5)
    assert rd.bd_rate(jpeg, rd.reference_curve("classic-kodak-pillow/webp")) == \
        pytest.approx(-34.8, abs=0.5)
    # Ordering of the published learned codecs against VTM: each generation saves more bits.
    vtm = rd.reference_curve("vtm")
    savings = [rd.bd_rate(vtm, rd.reference_curve(f"compressai-{m}_mse_cpu"))
               for m in ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean",
                         "mbt2018")]
    assert savings == sorted(savings, reverse=True)


# --------------------------------------------------------------------------- reference curves


def test_reference_curves_load():
    names = rd.reference_names()
    for required in ("compressai-bmshj2018-factorized_mse_cpu",
                     "compressai-bmshj2018-hyperprior_mse_cpu", "compressai-mbt2018-mean_mse_cpu",
                     "compressai-mbt2018_mse_cpu", "jpeg", "jpeg2000", "webp", "av1",
                     "bpg_444_x265_ycbcr", "vtm", "hm", "classic-kodak-pillow/jpeg",
                     "classic-kodak-pillow/heif"):
        assert required in names
    for name in names:
        c = rd.reference_curve(name)
        assert len(c) >= 4 and len(c.bpp) == len(c.psnr)
        assert all(0.02 < b < 8 for b in c.bpp) and all(20 < p < 50 for p in c.psnr)
    mbt = rd.reference_curve("compressai-mbt2018-mean_mse_cpu")
    assert mbt.name == "mbt2018-mean" and len(mbt) == 8
    assert mbt.bpp[0] == pytest.approx(0.12392171223958336)
    assert mbt.ms_ssim is not None and len(mbt.ms_ssim) == 8
    with pytest.raises(ValueError, match="unknown reference"):
        rd.reference_curve("nope")
    with pytest.raises(ValueError, match="unknown reference"):
        rd.reference_curve("classic-kodak-pillow/nope")


# --------------------------------------------------------------------------- classic anchors


def test_live_jpeg_and_webp_on_kodak_crops(crops):
    jpeg = rd.classic_anchor("jpeg", crops)
    webp = rd.classic_anchor("webp", crops)
    for c, codec in ((jpeg, "jpeg"), (webp, "webp")):
        assert c.qualities == list(rd.DEFAULT_QUALITIES[codec])
        assert len(c.records) == 2 * len(c)
        # Rate and quality both grow with the quality setting.
        assert np.all(np.diff(c.bpp) > 0) and np.all(np.diff(c.psnr) > 0)
        assert np.all(np.diff(c.ms_ssim) > 0)
        # The curve is the mean of the per-image records, and bpp is from the real bytes.
        for k, q in enumerate(c.qualities):
            rows = [r for r in c.records if r["quality"] == q]
            assert c.bpp[k] == pytest.approx(np.mean([r["bpp"] for r in rows]))
            assert c.psnr[k] == pytest.approx(np.mean([r["psnr"] for r in rows]))
            assert all(r["bpp"] == 8 * r["bytes"] / 256**2 for r in rows)
        assert 0.15 < c.bpp[0] < 0.8 and 2 < c.bpp[-1] < 5
    # WebP beats JPEG (the reference measures −35 % on all of Kodak).
    assert rd.bd_rate(jpeg, webp) < -10


def test_live_jpeg_matches_classic_reference():
    """Live JPEG on 2 whole Kodak images vs the 24-image means of classic-kodak-pillow.json."""
    live = rd.classic_anchor("jpeg", data.kodak(2), with_ms_ssim=False)
    ref = rd.reference_curve("classic-kodak-pillow/jpeg")
    assert live.ms_ssim is None and "ms_ssim" not in live.records[0]
    assert len(live) == len(ref)  # same settings, one point each
    assert np.all(np.diff(live.bpp) > 0) and np.all(np.diff(ref.bpp) > 0)
    # kodim01 (detailed) and kodim02 (smooth) are not the Kodak average: settle for "close".
    assert max(abs(a - b) for a, b in zip(live.psnr, ref.psnr, strict=True)) < 1.5
    assert max(abs(a / b - 1) for a, b in zip(live.bpp, ref.bpp, strict=True)) < 0.15


@pytest.mark.parametrize("codec", ["jpeg2000", "avif", "heic"])
def test_other_classic_codecs_round_trip(codec, crops):
    if not rd.available_codecs()[codec]:
        pytest.skip(f"{codec} encoder not available")
    q = {"jpeg2000": [40, 12], "avif": [40, 80], "heic": [20, 60]}[codec]
    c = rd.classic_anchor(codec, crops[:1], qualities=q)
    assert len(c) == 2 and c.bpp[0] < c.bpp[1] and c.psnr[0] < c.psnr[1]
    assert 25 < c.psnr[0] < 50 and 0.05 < c.bpp[0] < 3
    if codec == "jpeg2000":  # the rate is the requested compression ratio (24 bits / ratio)
        assert c.bpp[0] == pytest.approx(24 / 40, rel=0.1)


def test_classic_anchor_argument_checks(crops):
    with pytest.raises(ValueError, match="unknown codec"):
        rd.classic_anchor("gif", crops)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        rd.classic_anchor("jpeg", [torch.zeros(1, 8, 8)])


def test_live_jpeg_reproduces_classic_reference_on_all_kodak():
    live = rd.classic_anchor("jpeg", data.kodak(), with_ms_ssim=False)
    ref = rd.reference_curve("classic-kodak-pillow/jpeg")
    np.testing.assert_allclose(live.bpp, ref.bpp, rtol=1e-9)
    np.testing.assert_allclose(live.psnr, ref.psnr, atol=rd.PSNR_TOLERANCE_DB)


# --------------------------------------------------------------------------- learned codecs


def test_evaluate_model_real_bitstreams(crops):
    torch.manual_seed(0)
    model = codecs.create("bmshj2018-factorized", N=8, M=8)
    model.update(force=True)
    images = [crops[0][:, :200, :180], crops[1]]  # 200×180 needs padding to 208×192
    curve = rd.evaluate_model(model, images, name="tiny", quality=1)
    assert len(curve) == 1 and curve.qualities == [1] and len(curve.records) == 2
    # Bytes recounted independently on the padded image; decode equals the eval-mode forward.
    x = images[0][None]
    x_pad = torch.nn.functional.pad(x, (0, 12, 0, 8), mode="replicate")  # bottom/right
    with torch.no_grad():
        enc = model.compress(x_pad)
        ref = model(x_pad)["x_hat"][..., :200, :180]
    rec = curve.records[0]
    assert rec["stream_bytes"] == sum(len(s) for g in enc["strings"] for s in g)
    # The rate is the whole file: the .nct file of the same image, model and quality.
    blob = container.encode_image(model, images[0], "bmshj2018-factorized", 1)
    assert rec["bytes"] == len(blob) == rec["stream_bytes"] + container.read_header(
        blob).header_size
    assert rec["bpp"] == pytest.approx(8 * rec["bytes"] / (200 * 180))
    assert rec["psnr"] == pytest.approx(rd.psnr(x[0], ref[0]), abs=rd.PSNR_TOLERANCE_DB)
    assert curve.bpp[0] == pytest.approx(np.mean([r["bpp"] for r in curve.records]))
    assert 0 < rec["ms_ssim"] <= 1 and rec["encoding_time"] > 0 and rec["decoding_time"] > 0


def test_evaluate_model_writes_the_header_of_the_zoo_model(crops):
    """A model that says who it is (``model.nctutor``, as :func:`nctutor.zoo.load` sets it) is
    written under that name, quality and profile; its quality may be left out."""
    torch.manual_seed(0)
    model = codecs.create("bmshj2018-factorized", N=8, M=8)
    model.update(force=True)
    model.nctutor = {"name": "factorized", "quality": 2, "profile": "smoke"}
    rec = rd.evaluate_model(model, crops[:1]).records[0]
    blob = container.encode_image(model, crops[0], "factorized", 2, "smoke")
    assert rec["quality"] == 2 and rec["bytes"] == len(blob)
    assert rec["bytes"] - rec["stream_bytes"] == container.read_header(blob).header_size


def test_evaluate_model_argument_checks(crops):
    model = codecs.create("bmshj2018-factorized", N=8, M=8)
    model.update(force=True)
    with pytest.raises(ValueError, match="pass quality"):
        rd.evaluate_model(model, crops[:1])  # a bare model must be told its quality
    with pytest.raises(ValueError, match="leave stride out"):
        rd.evaluate_model(model, crops[:1], stride=64, quality=1)  # the format's stride is 16
    model.nctutor = {"name": "bmshj2018-factorized", "quality": 1, "profile": ""}
    with pytest.raises(ValueError, match="q1"):
        rd.evaluate_model(model, crops[:1], quality=3)
    with pytest.raises(TypeError, match="registry"):
        rd.evaluate_model(torch.nn.Conv2d(3, 3, 1), crops[:1], quality=1)


def test_join_json_round_trip_and_plot(tmp_path, crops):
    a = rd.RDCurve("m", [0.5], [30.0], ms_ssim=[0.95], qualities=[2],
                     encoding_time=[0.1], decoding_time=[0.2])
    b = rd.RDCurve("m", [0.25], [28.0], ms_ssim=[0.92], qualities=[1],
                     encoding_time=[0.1], decoding_time=[0.2])
    curve = rd.join([a, b], "mine", description="test")
    assert curve.bpp == [0.25, 0.5] and curve.qualities == [1, 2]
    doc = rd.to_compressai_json(curve, tmp_path / "mine.json")
    assert set(doc["results"]) == {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time",
                                   "decoding_time"}
    back = rd.load_json(tmp_path / "mine.json")
    assert back.name == "mine" and back.description == "test"
    assert back.bpp == curve.bpp and back.psnr == curve.psnr and back.ms_ssim == curve.ms_ssim
    # A written file reads like a packaged reference (same format).
    ref_doc = rd.to_compressai_json(rd.reference_curve("vtm"))
    assert ref_doc["results"]["bpp"] == rd.reference_curve("vtm").bpp
    ax = rd.rd_plot([rd.reference_curve("jpeg"), back, ANCHOR])
    assert len(ax.get_lines()) == 3 and ax.get_xlabel() == "bits per pixel"
    ax2 = rd.rd_plot([rd.reference_curve("jpeg")], metric="ms_ssim")
    assert ax2.get_lines()[0].get_ydata()[0] == pytest.approx(
        rd.ms_ssim_db(rd.reference_curve("jpeg").ms_ssim[0]))
    with pytest.raises(ValueError):
        rd.rd_plot([ANCHOR], metric="ms_ssim")  # no MS-SSIM values
