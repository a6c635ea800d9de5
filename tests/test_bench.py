"""``nctutor bench``'s figures against independent values: ideal bits, stream bits, overheads."""

import math

import pytest
import torch

from nctutor import bench, codecs, data


def _tiny(arch: str) -> torch.nn.Module:
    """A tiny untrained model (N = M = 8), updated; its analysis transform's last layer is scaled
    up so that the latents ``y`` stay away from 0 and cost real bits (about 130 for a 64² crop)."""
    torch.manual_seed(0)
    model = codecs.create(arch, N=8, M=8)
    with torch.no_grad():
        model.g_a[-1].weight.mul_(5)
    model.eval()
    model.update(force=True)
    return model


@pytest.fixture(scope="module")
def crops():
    kodim01 = data.kodak(1)[0]
    return [data.center_crop(kodim01, 64), kodim01[:, :64, :64]]


@pytest.mark.parametrize("arch", ["bmshj2018-factorized", "mbt2018-mean"])
def test_ideal_bits_and_overheads_match_the_model(arch, crops):
    model, x = _tiny(arch), crops[0]
    row = bench.bench_image(model, x, arch, "kodim01", repeat=1)
    padded = codecs.pad(x[None], codecs.STRIDES[arch])
    with torch.no_grad():
        likelihoods = model(padded)["likelihoods"]  # eval mode: y rounded as the coders round it
        strings = model.compress(padded)["strings"]
    # -Σ log2 p, computed another way: natural logs in float64, divided by ln 2
    ideal = {k: -torch.log(v.double()).sum().item() / math.log(2) for k, v in likelihoods.items()}
    assert ideal["y"] > 50  # the y stream is not empty
    assert row.ideal_bits == pytest.approx(sum(ideal.values()), rel=1e-5)
    assert row.ideal_y_bits == pytest.approx(ideal["y"], rel=1e-5)
    bits = [8 * sum(len(s) for s in group) for group in strings]  # y first, then z if any
    assert len(bits) == len(likelihoods)
    assert row.bits_compressai == sum(bits) and row.bits_y_compressai == bits[0]
    assert row.overhead_compressai == pytest.approx(sum(bits) / sum(ideal.values()) - 1, rel=1e-4)
    assert row.overhead_y_compressai == pytest.approx(bits[0] / ideal["y"] - 1, rel=1e-4)
    if not math.isnan(row.bits_exact):  # the exact coder's overheads follow the same formula
        assert row.overhead_exact == pytest.approx(row.bits_exact / row.ideal_bits - 1)
        assert row.overhead_y_exact == pytest.approx(row.bits_y_exact / row.ideal_y_bits - 1)
    assert (row.height, row.width, row.pixels) == (64, 64, 64 * 64)
    assert row.bpp == 8 * row.file_bytes / (64 * 64) and row.file_bytes > sum(bits) / 8


def test_mean_row_overheads_are_ratios_of_means(crops):
    model = _tiny("mbt2018-mean")
    rows = [bench.bench_image(model, x, "mbt2018-mean", str(i), repeat=1)
            for i, x in enumerate(crops)]
    assert rows[0].ideal_bits != pytest.approx(rows[1].ideal_bits, rel=1e-3)
    mean = bench.mean_row(rows)
    bits = sum(r.bits_compressai for r in rows)
    ideal = sum(r.ideal_bits for r in rows)
    assert mean.overhead_compressai == pytest.approx(bits / ideal - 1)  # bits-weighted
    assert mean.image == "mean of 2" and mean.pixels == 64 * 64
    with pytest.raises(ValueError, match="repeat"):
        bench.bench_image(model, crops[0], "mbt2018-mean", repeat=0)


# --------------------------------------------------------------------------- lattice modes


def test_bench_modes_rows_are_the_files_and_their_ratios(crops):
    """``bench_modes``: one row per mode asked for, its bytes and PSNR those of the real file, the
    ratios those of the times (scalar and CompressAI timed in the same rounds); no timing is
    asserted."""
    from nctutor import container
    from nctutor.rd.metrics import PSNR_TOLERANCE_DB, psnr

    model, x = _tiny("mbt2018-mean"), crops[0]
    modes = ["compressai", "hex", "oct+shift"]
    rows = bench.bench_modes(model, x, "mbt2018-mean", modes, "kodim01", repeat=1, quality=3,
                             profile="smoke")
    assert [r.mode for r in rows] == modes  # scalar timed, but not a row unless asked
    for r, (coder, quantizer, shift) in zip(rows, [("table", "scalar", False),
                                                   ("lattice", "hex", False),
                                                   ("lattice", "oct", True)], strict=True):
        blob = container.encode_image(model, x, "mbt2018-mean", 3, "smoke", coder=coder,
                                      quantizer=quantizer, shift=shift)
        assert r.file_bytes == len(blob) and r.bpp == 8 * len(blob) / (64 * 64)
        assert r.psnr == pytest.approx(psnr(x, container.decode_image(blob, model)),
                                       abs=PSNR_TOLERANCE_DB)
        assert r.enc_vs_scalar == r.enc_ms / r.enc_scalar_ms
        assert r.dec_vs_compressai == r.dec_ms / r.dec_compressai_ms
        assert (r.model, r.image, r.pixels) == ("mbt2018-mean", "kodim01", 64 * 64)
        assert min(r.enc_ms, r.dec_ms, r.enc_compressai_ms, r.dec_scalar_ms) > 0
    assert len({r.enc_scalar_ms for r in rows}) == 1  # one reference per image
    rows2 = bench.bench_modes(model, crops[1], "mbt2018-mean", ["hex"], "b", repeat=1)
    mean = bench.mean_mode_row([rows[1], rows2[0]])
    assert mean.image == "mean of 2" and mean.mode == "hex"
    assert mean.enc_vs_scalar == pytest.approx((rows[1].enc_ms + rows2[0].enc_ms)
                                               / (rows[1].enc_scalar_ms + rows2[0].enc_scalar_ms))
    table = bench.modes_table(rows + rows2, per_image=True)
    assert "enc ×scalar" in table and "mean of 1" in table and "oct+shift" in table
    with pytest.raises(ValueError, match="unknown mode 'd4'"):
        bench.bench_modes(model, x, "mbt2018-mean", ["d4"])
    with pytest.raises(ValueError, match="not bmshj2018-hyperprior"):
        bench.bench_modes(_tiny("bmshj2018-hyperprior"), x, "bmshj2018-hyperprior", ["hex"])
