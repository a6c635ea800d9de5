"""The code-space predictor (nctutor.codecs.predictor) and its mixture coder
(nctutor.entropy.mixture): the coder's arithmetic, causality, bit-exact round trips across
thread counts and processes, damaged streams, the warm start from the mean-scale weights."""

import random
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import torch

from nctutor import checkpoints, codecs, container, data
from nctutor.codecs.predictor import anchors, hidden_width, mixture_split
from nctutor.entropy.mixture import (
    R_MAX,
    MixtureDecoder,
    MixtureEncoder,
    bin_likelihood,
    mixture_parameters,
    tables,
)
from nctutor.errors import BitstreamError

VARIANTS = ["kwcc2018-spatial", "kwcc2018-hierarchical", "kwcc2018-checkerboard"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(name: str, seed: int = 0) -> torch.nn.Module:
    """A smoke-width model whose predictor is far from its start (random weights, larger than
    at initialization), so that the context really changes the probabilities."""
    torch.manual_seed(seed)
    m = codecs.create(name, 16, 24)
    with torch.no_grad():
        for p in m.predictor.parameters():
            p.add_(0.05 * torch.randn_like(p))
    m.eval()
    m.update(force=True)
    return m


@pytest.fixture(scope="module")
def image():
    return data.kodak(3)[2][:, 100:228, 200:392]  # 128×192 of kodim03


# --------------------------------------------------------------------------- the mixture coder


def _random_mixtures(n: int, K: int, rng) -> tuple[np.ndarray, ...]:
    logits = rng.normal(size=(n, K))
    means = rng.normal(scale=5, size=(n, K))
    scales = np.exp(rng.uniform(-3, 3, size=(n, K)))
    return logits, means, scales


def test_mixture_coder_round_trips_in_groups_with_escapes():
    rng = np.random.default_rng(0)
    enc, groups = MixtureEncoder(), []
    for n in (3, 50, 300):
        p = _random_mixtures(n, 3, rng)
        s = np.round(p[1][np.arange(n), rng.integers(0, 3, n)]
                     + rng.normal(size=n) * p[2][:, 0]).astype(np.int64)
        s[:3] = [10_000, -40_000, 7]  # far outside any table: escaped
        enc.add(s, *p)
        groups.append((s, p))
    blob = enc.finish()
    dec = MixtureDecoder(blob)
    for s, p in groups:
        assert np.array_equal(dec.decode(*p), s)
    dec.finish()


def test_mixture_tables_hold_the_mass_and_cap_the_width():
    rng = np.random.default_rng(1)
    w, mu, sigma = mixture_parameters(*_random_mixtures(500, 3, rng))
    c, r = tables(w, mu, sigma)
    assert np.all(r >= 1) and np.all(r <= R_MAX) and np.all((r & (r - 1)) == 0)  # powers of 2
    inside = np.abs(mu - c[:, None]) + 4 * sigma <= r[:, None]
    assert inside[r < R_MAX].all()  # 4 scales of every component inside an uncapped table


def test_bin_likelihood_matches_the_coder_tables():
    """The training likelihood (torch) and the coder's table (float64 numpy) are one formula."""
    rng = np.random.default_rng(2)
    logits, means, scales = _random_mixtures(64, 3, rng)
    v = np.round(means[:, 0])
    t = lambda a: torch.from_numpy(a.T.copy())[None, :, :, None, None]  # noqa: E731
    lk = bin_likelihood(torch.from_numpy(v)[None, :, None, None], t(logits), t(means), t(scales))
    w, mu, sigma = mixture_parameters(logits, means, scales)
    from scipy.special import ndtr
    ref = (w * (ndtr((v[:, None] + 0.5 - mu) / sigma)
                - ndtr((v[:, None] - 0.5 - mu) / sigma))).sum(1)
    assert np.allclose(lk[0, :, 0, 0].numpy(), np.maximum(ref, 1e-9), rtol=1e-9, atol=1e-12)


def test_damaged_mixture_streams_are_refused():
    rng = np.random.default_rng(3)
    p = _random_mixtures(200, 3, rng)
    s = np.round(p[1][:, 0]).astype(np.int64)
    enc = MixtureEncoder()
    enc.add(s, *p)
    blob = enc.finish()
    refused = 0
    for _ in range(100):
        bad = bytearray(blob)
        bad[rng.integers(0, len(bad))] ^= 1 << int(rng.integers(0, 8))
        try:
            dec = MixtureDecoder(bytes(bad))
            out = dec.decode(*p)
            dec.finish()
            assert np.array_equal(out, s)  # a flip that changed nothing decodable
        except BitstreamError:
            refused += 1
    assert refused >= 95
    with pytest.raises(BitstreamError):
        MixtureDecoder(blob[:3])
    with pytest.raises(ValueError, match="finite integers"):
        MixtureEncoder().add(np.array([0.5]), *_random_mixtures(1, 3, rng))


# --------------------------------------------------------------------------- causality


@torch.no_grad()
def test_the_raster_predictor_is_causal():
    """Changing ŷ at (i, j) changes the mixtures only at positions below-right of it (i' ≥ i,
    j' ≥ j, not (i, j) itself): what lets a decoder go in raster or anti-diagonal order."""
    m = _model("kwcc2018-hierarchical")
    y = torch.randn(1, 24, 6, 7) * 3
    h = torch.randn(1, 48, 6, 7)
    base = m.predictor(y, h)
    i, j = 3, 4
    y2 = y.clone()
    y2[0, :, i, j] += 5
    changed = (m.predictor(y2, h) - base).abs().amax(1)[0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert len(rows) > 0
    assert bool(((rows >= i) & (cols >= j)).all()) and not changed[i, j]


@torch.no_grad()
def test_the_checkerboard_predictor_reads_anchors_only():
    m = _model("kwcc2018-checkerboard")
    y = torch.randn(1, 24, 6, 8) * 3
    h = torch.randn(1, 48, 6, 8)
    a = anchors(6, 8)
    base = m.predictor(y, h)
    assert torch.equal(m.predictor(y * a, h), base)  # non-anchors are never read
    at_anchors = m.predictor(y + 7 * a, h) - base  # anchors change only the non-anchors
    assert at_anchors[..., a[0, 0].bool()].abs().max() == 0
    assert at_anchors[..., ~a[0, 0].bool()].abs().max() > 0


@torch.no_grad()
def test_the_per_symbol_patches_give_the_full_map_numbers():
    """What the coder computes from 3×3 patches equals the training forward (up to float
    rounding), at every position including the borders."""
    m = _model("kwcc2018-hierarchical")
    pred = m.predictor
    H, W = 5, 6
    y = torch.round(torch.randn(1, 24, H, W) * 3)
    h = torch.randn(1, 48, H, W)
    full = pred(y, h)[0]
    grid = torch.nn.functional.pad(y, (2, 0, 2, 0))[0]
    hin = torch.nn.functional.pad(pred.hin(h), (1, 0, 1, 0))[0]
    inside = torch.ones(1, H + 1, W + 1)
    inside[:, 0], inside[:, :, 0] = 0, 0
    for i in range(H):
        for j in range(W):
            patch = grid[:, i:i + 3, j:j + 3].clone()
            patch[:, 2, 2] = 0
            p = pred.at(patch[None], hin[:, i:i + 2, j:j + 2][None],
                        inside[:, i:i + 2, j:j + 2][None], pred.skip(h)[0, :, i, j][None])
            assert torch.allclose(p[0], full[:, i, j], atol=1e-5), (i, j)


# --------------------------------------------------------------------------- the codecs


def test_widths_and_parameter_split():
    assert hidden_width(192) == 256 and hidden_width(96) == 128  # Table 1; the cpu profile
    p = torch.arange(2 * 3 * 3 * 4 * 5 * 6.0).view(2, 36, 5, 6)
    logits, means, scales = mixture_split(p, 3)
    assert logits.shape == (2, 3, 4, 5, 6) and torch.equal(means[0, 0, 0], p[0, 12])
    with pytest.raises(ValueError):
        mixture_split(p[:, :35], 3)


@pytest.mark.parametrize("name", VARIANTS)
def test_round_trip_is_bit_exact_across_thread_counts(name, image):
    """Encoded at 2 threads, decoded at 1 and 2: the same floats; the file's size is within a
    few percent of the model's estimate (−Σ log2 P)."""
    m = _model(name)
    x = image[None]
    torch.set_num_threads(2)
    c = m.compress(x)
    out2 = m.decompress(c["strings"], c["shape"])["x_hat"]
    torch.set_num_threads(1)
    out1 = m.decompress(c["strings"], c["shape"])["x_hat"]
    assert torch.equal(out1, out2)
    with torch.no_grad():
        est = m(x)
    assert torch.allclose(out1, est["x_hat"].clamp(0, 1), atol=1e-4)
    bits = sum(8 * len(s[0]) for s in c["strings"])
    ideal = sum(float(-torch.log2(lk).sum()) for lk in est["likelihoods"].values())
    assert ideal <= bits <= 1.05 * ideal + 200, (bits, ideal)


_OTHER_PROCESS = textwrap.dedent("""
    import sys, torch
    from nctutor import codecs, container
    torch.set_num_threads(int(sys.argv[1]))
    torch.manual_seed(0)
    m = codecs.create(sys.argv[2], 16, 24)
    with torch.no_grad():
        for p in m.predictor.parameters():
            p.add_(0.05 * torch.randn_like(p))
    m.eval(); m.update(force=True)
    x = container.decode_image(open(sys.argv[3], "rb").read(), m)
    torch.save(x, sys.argv[4])
""")


@pytest.mark.parametrize("name", VARIANTS)
def test_a_file_decodes_identically_in_another_process(name, image, tmp_path):
    m = _model(name)
    blob = container.encode_image(m, image, name, 3)
    here = container.decode_image(blob, m)
    (tmp_path / "f.nct").write_bytes(blob)
    run = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, "2", name,
                          str(tmp_path / "f.nct"), str(tmp_path / "x.pt")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert torch.equal(torch.load(tmp_path / "x.pt"), here)


def _refit_crc(blob: bytes, header_size: int) -> bytes:
    crc = zlib.crc32(blob[header_size:], zlib.crc32(blob[: header_size - 4]))
    return blob[: header_size - 4] + struct.pack(">I", crc) + blob[header_size:]


@pytest.mark.parametrize("name", VARIANTS)
def test_damaged_files_raise_bitstream_error(name, image):
    """100 damaged payloads with the file's CRC recomputed (a forger's file): each raises
    BitstreamError or, for a flip the coder never reads, decodes to the same image."""
    m = _model(name)
    blob = container.encode_image(m, image, name, 3)
    good = container.decode_image(blob, m)
    hs = container.read_header(blob).header_size
    rng = random.Random(zlib.crc32(name.encode()))
    refused = 0
    for k in range(100):
        bad = bytearray(blob)
        if k % 10 == 9:
            bad = bad[: rng.randrange(hs, len(bad))]
        else:
            pos = rng.randrange(hs, len(bad))
            bad[pos] ^= 1 << rng.randrange(8)
        try:
            assert torch.equal(container.decode_image(_refit_crc(bytes(bad), hs), m), good)
        except BitstreamError:
            refused += 1
    assert refused >= 90


def test_a_decoder_with_another_predictor_is_refused(image):
    blob = container.encode_image(_model("kwcc2018-hierarchical", 0), image,
                                  "kwcc2018-hierarchical", 3)
    with pytest.raises(BitstreamError, match="other weights"):
        container.decode_image(blob, _model("kwcc2018-hierarchical", 1))


# --------------------------------------------------------------------------- the warm start


@pytest.mark.parametrize("name", VARIANTS[1:])
def test_the_warm_start_begins_at_the_mean_scale_rate(name):
    """From the shipped mean-scale weights, the hierarchical predictors start (nearly) where the
    mean-scale model is: its means and scales reach every component through ``skip``."""
    src = checkpoints.WEIGHTS_DIR / "mbt2018-mean-q1.pt"
    _, state = checkpoints.read_exported(src)
    base = checkpoints.load_state("mbt2018-mean", 64, 96, state, src).eval()
    torch.manual_seed(0)
    net = codecs.create(name, 64, 96)
    fresh = checkpoints.load_matching(net, state)
    assert fresh and all(k.startswith("predictor.") for k in fresh)
    net.eval()
    x = data.kodak(1)[0][None, :, :256, :256]
    with torch.no_grad():
        y = base.g_a(x)
        params = base.h_s(base.entropy_bottleneck(base.h_a(y))[0])
        scales, means = params.chunk(2, 1)
        y_hat = torch.round(y)
        ref = base.gaussian_conditional._likelihood(y_hat, scales, means)
        ref = -torch.log2(base.gaussian_conditional.likelihood_lower_bound(ref)).sum()
        ours = -torch.log2(net(x)["likelihoods"]["y"]).sum()
    assert abs(float(ours) / float(ref) - 1) < 0.02, (float(ours), float(ref))


# --------------------------------------------------------------------------- shipped weights


def test_the_shipped_record_is_reproduced():
    """The record's first image at quality 1, re-coded with the shipped weights: the same bytes,
    and the same PSNR to within PSNR_TOLERANCE_DB (another CPU's float kernels may put a few
    pixels of the reconstruction on the neighbouring 8-bit level)."""
    from nctutor import zoo
    from nctutor.rd import predictor as RP
    from nctutor.rd.metrics import PSNR_TOLERANCE_DB, psnr

    record = RP.load_record()
    row = record["variants"]["kwcc2018-hierarchical"]["qualities"]["1"][0]
    kodak = data.kodak()
    x = kodak[kodak.names.index(row["image"])]
    model = zoo.load("kwcc2018-hierarchical", 1, "cpu", train_if_missing=False)
    blob = container.encode_image(model, x, "kwcc2018-hierarchical", 1, "cpu")
    assert len(blob) == row["bytes"]
    x_hat = container.decode_image(blob, model)
    assert abs(psnr(data.to_uint8(x), data.to_uint8(x_hat)) - row["psnr"]) < PSNR_TOLERANCE_DB


_CLI_OTHER_PROCESS = textwrap.dedent("""
    import sys, torch
    from pathlib import Path
    from nctutor import cli
    torch.set_num_threads(1)
    folder = Path(sys.argv[1])
    files = sorted(str(p) for p in folder.glob("*.nct"))
    sys.exit(cli.main(["decompress", *files, "--out-dir", str(folder / "there")]))
""")


@pytest.mark.slow  # 26 photos: an encode at 2 threads, decodes at 2 and (another process) 1
def test_every_kodak_and_clic_photo_round_trips_through_the_cli(tmp_path):
    """The acceptance of the issue: every Kodak and CLIC photo through ``nctutor compress
    --model kwcc2018-hierarchical`` (shipped weights, 2 threads) and ``nctutor decompress`` here
    (2 threads) and in another process (1 thread): byte-identical PNGs."""
    from nctutor import cli
    from nctutor.data.sources import path

    sources = [str(path(rel)) for images in (data.kodak(), data.clic()) for rel in images.rels]
    torch.set_num_threads(2)
    assert cli.main(["compress", *sources, "--out-dir", str(tmp_path), "--model",
                     "kwcc2018-hierarchical", "--quality", "2", "--profile", "cpu"]) == 0
    here = tmp_path / "here"
    here.mkdir()
    assert cli.main(["decompress", *map(str, sorted(tmp_path.glob("*.nct"))),
                     "--out-dir", str(here)]) == 0
    (tmp_path / "there").mkdir()
    run = subprocess.run([sys.executable, "-c", _CLI_OTHER_PROCESS, str(tmp_path)],
                         capture_output=True, text=True, timeout=3600)
    assert run.returncode == 0, run.stderr
    pngs = sorted(here.glob("*.png"))
    assert len(pngs) == len(sources) == 26
    for png in pngs:
        assert (tmp_path / "there" / png.name).read_bytes() == png.read_bytes(), png.name


def _part(variant: str, shift_db: float, seconds: float) -> dict:
    """A record of one variant: two images at four qualities, PSNR shifted by ``shift_db``."""
    from nctutor.rd import predictor as RP

    rows = {}
    for q in (1, 2, 3, 4):
        rows[str(q)] = [{"image": f"im{i}", "bpp": 0.1 * q * (1 + 0.1 * i),
                         "psnr": 25 + 1.5 * q + shift_db + 0.1 * i, "ms_ssim": 0.9 + 0.015 * q,
                         "encoding_time": seconds, "decoding_time": seconds, "bytes": 100}
                        for i in range(2)]
    arch, label = RP.VARIANTS[variant]
    return {"command": f"nctutor predictor-eval --variants {variant}",
            "train": {"budget": RP.TRAIN, "commands": {}, "runs": {}},
            "machine": {"cpus": 2}, "variants": {variant: {"label": label, "arch": arch,
                                                           "qualities": rows}}}


def test_merged_records_give_bd_rates_and_time_ratios(tmp_path, capsys):
    import json

    from nctutor import cli
    from nctutor.rd import predictor as RP

    files = []
    for variant, shift, seconds in (("mbt2018", 0.3, 4.0), ("shipped", 0.0, 1.0),
                                    ("kwcc2018-hierarchical", 0.2, 1.0),
                                    ("mbt2018-mean", 0.1, 1.0)):
        files.append(tmp_path / f"{variant}.json")
        files[-1].write_text(json.dumps(_part(variant, shift, seconds)))
    out = tmp_path / "all.json"
    assert cli.main(["predictor-eval", "--merge", *map(str, files), "--out", str(out)]) == 0
    record = RP.load_record(out)
    assert list(record["variants"]) == ["shipped", "mbt2018-mean", "kwcc2018-hierarchical",
                                        "mbt2018"]  # the order of VARIANTS
    t = RP.tables(record)
    hier = t["kwcc2018-hierarchical"]
    assert hier["bd_rate"]["mbt2018-mean"] < 0 < t["shipped"]["bd_rate"]["mbt2018-mean"]
    assert hier["bd_rate"]["shipped"] < hier["bd_rate"]["mbt2018-mean"]
    assert hier["decode_vs_mbt2018"] == pytest.approx(0.25)
    grown, extra = tmp_path / "grown.json", tmp_path / "extra.json"  # a record grows by a variant
    extra.write_text(json.dumps(_part("kwcc2018-checkerboard", 0.1, 1.0)))
    assert cli.main(["predictor-eval", "--merge", str(out), str(extra), "--out", str(grown)]) == 0
    assert RP.load_record(grown)["parts"] == [json.loads(f.read_text())["command"]
                                              for f in [*files, extra]]
    assert cli.main(["predictor-eval", "--merge", str(files[0]), str(files[0]), "--out",
                     str(out)]) == 2  # a variant twice
    assert "in two records" in capsys.readouterr().err
