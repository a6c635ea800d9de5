"""The three forms of divisive normalization (nctutor.codecs.normalization), the factorized prior
built with each, their experiment (nctutor.rd.normalization) and MS-SSIM training."""

import json

import pytest
import torch
from compressai.layers import GDN, GDN1
from conftest import finished_run

from nctutor import checkpoints, cli, codecs, container, train
from nctutor.codecs.normalization import NORMALIZED, GeneralGDN
from nctutor.rd import normalization as RN


@pytest.mark.parametrize("inverse", [False, True])
def test_general_gdn_starts_as_gdn_and_reaches_gdn1(inverse):
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 7)
    general, gdn, gdn1 = GeneralGDN(6, inverse), GDN(6, inverse), GDN1(6, inverse)
    with torch.no_grad():
        general.beta.uniform_(1.0, 2.0)  # off their initial values, the same in all three
        general.gamma.uniform_(0.0, 0.3)
        for layer in (gdn, gdn1):
            layer.beta.copy_(general.beta)
            layer.gamma.copy_(general.gamma)
        assert torch.allclose(general(x), gdn(x), atol=1e-6)  # α = 2, ε = ½
        general.alpha.fill_(1.0)
        general.epsilon.fill_(1.0)
        assert torch.allclose(general(x), gdn1(x), atol=1e-6)  # α = 1, ε = 1
        assert not torch.allclose(gdn(x), gdn1(x), atol=1e-3)


def test_general_gdn_has_finite_gradients_at_zero_and_keeps_its_bounds():
    layer = GeneralGDN(4)
    x = torch.randn(1, 4, 3, 3)
    x[0, :, 1, 1] = 0.0  # |0|^α: the exponent's gradient must not be NaN
    x.requires_grad_(True)
    layer(x).square().sum().backward()
    for t in (x.grad, layer.alpha.grad, layer.epsilon.grad, layer.beta.grad, layer.gamma.grad):
        assert torch.isfinite(t).all()
    with torch.no_grad():
        layer.alpha.fill_(-3.0)
        layer.epsilon.fill_(-1.0)
    y = layer(x.detach())  # bounded: α ≥ 1, ε ≥ 0.1, so still a normalization
    assert torch.isfinite(y).all() and (y.abs() <= x.abs() / layer.beta_reparam(layer.beta)
                                        .reshape(1, 4, 1, 1) ** 0.1 + 1e-6).all()


@pytest.mark.parametrize("name", list(NORMALIZED))
def test_the_variants_share_the_start_and_swap_only_the_normalization(name):
    torch.manual_seed(3)
    base = codecs.create("bmshj2018-factorized", N=8, M=12)
    torch.manual_seed(3)
    model = codecs.create(name, N=8, M=12)
    kinds = {type(m) for m in model.modules() if isinstance(m, GDN)}
    assert kinds == {NORMALIZED[name].LAYER}
    assert sum(isinstance(m, GDN) for m in model.modules()) == 6  # 3 in g_a, 3 in g_s
    assert [m.inverse for m in model.modules() if isinstance(m, GDN)] == [False] * 3 + [True] * 3
    convs = {k: v for k, v in base.state_dict().items() if ".weight" in k and "g_" in k
             and v.dim() == 4 and v.shape[-1] == 5}
    for k, v in convs.items():  # one seed: the same convolutions
        assert torch.equal(model.state_dict()[k], v), k
    assert codecs.architecture_of_model(model) == name
    assert codecs.num_streams(name) == 1 and codecs.STRIDES[name] == 16


@pytest.mark.parametrize("name", list(NORMALIZED))
def test_a_variant_codes_real_files(name, kodak_png):
    from nctutor import data

    torch.manual_seed(0)
    model = codecs.create(name, N=8, M=12).eval()
    model.update(force=True)
    x = data.load_image(kodak_png)
    blob = container.encode_image(model, x, name, 3, "smoke")
    assert container.read_header(blob).model == name
    y = container.decode_image(blob, model)
    assert y.shape == x.shape
    assert torch.equal(y, container.decode_image(blob, model))


def test_ms_ssim_training_its_ladder_its_crops_and_older_runs(tmp_path):
    assert codecs.lmbda(3, "ms-ssim") == 8.73 and codecs.lmbda(3) == 0.0067
    with pytest.raises(ValueError, match="metric"):
        codecs.lmbda(3, "ssim")
    with pytest.raises(ValueError, match="at least 161"):
        train.TrainConfig(model="bmshj2018-factorized", metric="ms-ssim").resolved()
    cfg = train.TrainConfig(model="bmshj2018-factorized", quality=2, metric="ms-ssim",
                            patch_size=192, steps=2, out_dir=str(tmp_path / "run"))
    result = train.train(cfg, progress=False)
    assert result.manifest["settings"]["lmbda"] == 4.58
    assert 0.0 <= result.history[-1]["ms_ssim"] <= 1.0 and "psnr" in result.history[-1]
    assert train.run_dir(train.TrainConfig(model="mean-scale", quality=2, metric="ms-ssim",
                                           profile="cpu")).name == "mbt2018-mean-ms-ssim-q2-cpu"
    # an MSE run stored before `metric` existed resumes as an MSE run, and only as one
    mse = train.TrainConfig(model="bmshj2018-factorized", steps=2, out_dir=str(tmp_path / "old"))
    train.train(mse, progress=False)
    ckpt_file = tmp_path / "old" / checkpoints.CHECKPOINT
    ckpt = torch.load(ckpt_file, weights_only=False)
    del ckpt["settings"]["metric"]
    torch.save(ckpt, ckpt_file)
    assert train.train(train.TrainConfig(model="bmshj2018-factorized", steps=3,
                                         out_dir=str(tmp_path / "old")), progress=False
                       ).history[-1]["step"] == 3
    from nctutor.errors import CheckpointError
    with pytest.raises(CheckpointError, match="metric"):
        train.setup(train.TrainConfig(model="bmshj2018-factorized", steps=4, metric="ms-ssim",
                                      patch_size=192, out_dir=str(tmp_path / "old")))


def test_the_experiment_from_runs_to_table(tmp_path, capsys):
    runs = tmp_path / "runs"
    history = [{"step": s, "loss": 3.0 - s / 100} for s in (25, 50, 75)]
    for variant, (arch, _) in RN.VARIANTS.items():
        for q in (1, 3):
            finished_run(arch, q, seed=q, out_dir=runs / f"{variant}-q{q}", history=history)
    out = tmp_path / "norm.json"
    assert cli.main(["predictor-eval", "--experiment", "sgdn", "--runs", str(runs),
                     "--qualities", "1", "3", "--images", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    record = RN.load(out)
    assert list(record["variants"]) == list(RN.VARIANTS)
    for variant, (arch, _) in RN.VARIANTS.items():
        entry = record["variants"][variant]
        assert entry["arch"] == arch and set(entry["qualities"]) == {"1", "3"}
        assert entry["parameters"] > 0
        assert ("exponents" in entry) == (variant == "gdn-general")
        assert record["train"]["runs"][f"{variant}-q1"]["history"] == history
        assert f"{variant}-q3" in record["train"]["commands"]
    layers = record["variants"]["gdn-general"]["exponents"]["3"]
    assert list(layers) == ["g_a.1", "g_a.3", "g_a.5", "g_s.1", "g_s.3", "g_s.5"]
    assert layers["g_s.3"]["alpha"] == [2.0] * 8 and layers["g_a.1"]["epsilon"] == [0.5] * 8
    t = RN.tables(record)  # untrained: BD-rates may be undefined, the rest is there
    assert set(t["gdn-general"]["final_loss"]) == {1, 3}
    for variant in RN.VARIANTS:
        assert printed.count(f"\n{variant} ") == 2  # one line per quality
    assert RN.train_command("gdn1", 3).startswith(
        "OMP_NUM_THREADS=1 nctutor train bmshj2018-factorized-gdn1 --quality 3 --profile cpu")
    json.loads(out.read_text())  # a plain JSON file


def test_the_table_compares_with_sgdn():
    record = {"train": {"runs": {"gdn1-q1": {"history": [{"step": s, "loss": 2.0 + s / 3000}
                                                          for s in range(0, 3001, 25)]}}},
              "variants": {}}
    for variant, shift in (("sgdn", 0.0), ("gdn1", -0.3), ("gdn-general", 0.2)):
        rows = {str(q): [{"bpp": 0.1 * q * (1 + 0.1 * i), "psnr": 25 + 1.5 * q + shift + 0.1 * i,
                          "ms_ssim": 0.9 + 0.015 * q + shift / 100, "encoding_time": 1.0,
                          "decoding_time": 1.0} for i in range(2)] for q in (1, 3)}
        record["variants"][variant] = {"label": variant, "arch": RN.VARIANTS[variant][0],
                                       "qualities": rows, "parameters": 10}
    t = RN.tables(record)
    assert t["sgdn"]["bd_rate"] is None
    assert t["gdn1"]["bd_rate"] > 0 > t["gdn-general"]["bd_rate"]  # worse PSNR: more bits
    assert t["gdn1"]["bd_rate_ms_ssim"] > 0 > t["gdn-general"]["bd_rate_ms_ssim"]
    # the last 10 % of the steps (2700 < step ≤ 3000): 12 records, steps 2725 … 3000
    assert t["gdn1"]["final_loss"][1] == pytest.approx(2.0 + 2862.5 / 3000, abs=1e-9)
    assert t["gdn1"]["final_loss"][3] is None


def test_the_stored_record_is_consistent():
    """The record behind the section (its models are not shipped): every variant trained with
    the stated budget, its training ended, its curve the mean of its files' bytes."""
    import numpy as np

    record = RN.load()
    assert list(record["variants"]) == list(RN.VARIANTS)
    assert record["train"]["budget"] == RN.TRAIN
    qualities = set(record["variants"]["sgdn"]["qualities"])
    assert len(qualities) >= 2  # a BD-rate needs two points
    for variant, entry in record["variants"].items():
        assert entry["arch"] == RN.VARIANTS[variant][0]
        assert set(entry["qualities"]) == qualities
        for q, rows in entry["qualities"].items():
            assert len(rows) == 24 and all(r["bpp"] == 8 * r["bytes"] / (768 * 512) for r in rows)
            run = record["train"]["runs"][f"{variant}-q{q}"]
            assert run["steps"] == RN.TRAIN["steps"] and run["init"] is None
            assert run["history"][-1]["step"] == RN.TRAIN["steps"]
            c = RN.curve(record, variant)
            assert c["bpp"][c["quality"].index(int(q))] == pytest.approx(
                np.mean([r["bpp"] for r in rows]))
    t = RN.tables(record)
    assert all(t[v]["bd_rate"] is not None for v in RN.VARIANTS if v != RN.BASELINE)
    hashes = {r["sha256"] for r in record["train"]["runs"].values()}
    assert len(hashes) == len(qualities) * len(RN.VARIANTS)  # every run its own weights


def test_the_ms_ssim_variant_of_the_predictor_record():
    """The hierarchical predictor trained for MS-SSIM: its command, and its point in the record."""
    import numpy as np

    from nctutor.rd import predictor as RP

    cmd = RP.train_command("kwcc2018-hierarchical-ms-ssim", 3)
    assert "kwcc2018-hierarchical --quality 3" in cmd and "--metric ms-ssim --patch-size 192" in cmd
    assert cmd.endswith("--out RUNS/kwcc2018-hierarchical-ms-ssim-q3")
    record = RP.load_record()
    assert record["train"]["commands"]["kwcc2018-hierarchical-ms-ssim-q3"] == cmd
    run = record["train"]["runs"]["kwcc2018-hierarchical-ms-ssim-q3"]
    assert run["init"].endswith("mbt2018-mean-q3.pt") and run["steps"] == RP.TRAIN["steps"]
    assert "ms_ssim" in run["history"][-1]  # trained on MS-SSIM: its history says so
    ms, mse = RP.curve(record, "kwcc2018-hierarchical-ms-ssim"), RP.curve(
        record, "kwcc2018-hierarchical")
    # better MS-SSIM than the MSE-trained model at its own rate (log-bpp interpolation)
    assert ms["ms_ssim"][0] > np.interp(np.log(ms["bpp"][0]), np.log(mse["bpp"]), mse["ms_ssim"])
