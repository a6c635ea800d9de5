"""Tests of the P-frame coders (nctutor.codecs.conditional) and their trainer (nctutor.pframetrain).

Book chapter *Conditional coding in practice*: *Five coders on one core*, *Training*, *Switching*
and *Real bitstreams*. Fresh coders at smoke widths (N=16, M=24): the pipeline, not the quality.
"""

import itertools
import json
import math

import pytest
import torch

from nctutor import checkpoints, pframetrain
from nctutor.codecs import conditional as cc
from nctutor.errors import CheckpointError

N, M = 16, 24


pytestmark = pytest.mark.usefixtures("one_thread")


def frames(b: int = 2, h: int = 64, w: int = 128, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A frame and a prediction of it (the frame plus noise), both ``(b, 3, h, w)`` in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.rand(b, 3, h + 2, w + 2, generator=g), 3, stride=1)
    xt = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x, xt


def fresh(name: str, seed: int = 0, n: int = N, m: int = M) -> cc.PFrameCoder:
    torch.manual_seed(seed)
    net = cc.create(name, n, m).eval()
    net.update(force=True)
    return net


# --------------------------------------------------------------------------- the five coders


@pytest.mark.parametrize("name", cc.CODERS)
def test_forward_shapes(name):
    net = fresh(name)
    assert net.name == name
    x, xt = frames()
    with torch.no_grad():
        out = net(x, xt)
    assert set(out["likelihoods"]) == {"y", "z"}
    assert out["likelihoods"]["y"].shape == (2, M, 4, 8)
    assert out["likelihoods"]["z"].shape == (2, N, 1, 2)
    keys = {"x_hat", "likelihoods"} | ({"x_hat_d", "x_hat_g"} if name == "pframe-xgdc" else set())
    assert set(out) == keys
    for key in keys - {"likelihoods"}:
        assert out[key].shape == x.shape


@pytest.mark.parametrize("name", cc.CODERS)
def test_decompress_equals_forward(name):
    net = fresh(name, seed=1)
    x, xt = frames(seed=1)
    with torch.no_grad():
        out = net(x, xt)
        enc = net.compress(x, xt)
        dec = net.decompress(enc["strings"], enc["shape"], xt)
    assert len(enc["strings"]) == 2 and len(enc["strings"][0]) == len(enc["strings"][1]) == 2
    assert all(isinstance(s, bytes) and s for s in enc["strings"][0] + enc["strings"][1])
    keys = ("x_hat_d", "x_hat_g") if name == "pframe-xgdc" else ("x_hat",)
    assert set(dec) == set(keys)
    for key in keys:
        assert torch.equal(dec[key], out[key].clamp(0, 1)), key
    # the decoder never saw x: another prediction gives another frame
    other = net.decompress(enc["strings"], enc["shape"], xt.flip(-1))
    assert not torch.equal(other[keys[0]], dec[keys[0]])


@pytest.mark.parametrize("name", ["pframe-diff", "pframe-codecnet64", "pframe-xgdc"])
def test_inputs_are_checked(name):
    net = fresh(name)
    x, xt = frames()
    bad = [(x[..., :60, :], xt[..., :60, :]),  # not a multiple of 64
           (x[..., :, :96], xt[..., :, :96]),
           (x, xt[..., :, :64]),  # sizes differ
           (x, xt[:1]),  # batches differ
           (x[0], xt[0]),  # no batch dimension
           (x[:, :1], xt[:, :1])]  # one channel
    for a, b in bad:
        with pytest.raises(ValueError):
            net(a, b)
        with pytest.raises(ValueError):
            net.compress(a, b)
    with pytest.raises(ValueError):
        net.decompress("not a list", (1, 2), xt)


def test_gdc_at_init_is_the_difference_coder():
    gdc, diff = fresh("pframe-gdc", seed=2), fresh("pframe-diff", seed=3)
    diff.core.load_state_dict(gdc.core.state_dict())
    diff.update(force=True)
    x, xt = frames(seed=2)
    with torch.no_grad():
        a, b = gdc(x, xt), diff(x, xt)
        assert torch.equal(a["x_hat"], b["x_hat"])
        for key in ("y", "z"):
            assert torch.equal(a["likelihoods"][key], b["likelihoods"][key])
        ea, eb = gdc.compress(x, xt), diff.compress(x, xt)
    assert ea["strings"] == eb["strings"]
    # and its corrections are what training changes
    assert not gdc.gd[-1].weight.any() and not gdc.gs[-1].weight.any()
    assert cc.count_parameters(gdc) > cc.count_parameters(diff)


def test_xgdc_at_init_has_equal_branches():
    net = fresh("pframe-xgdc", seed=4)
    x, xt = frames(seed=4)
    with torch.no_grad():
        out = net(x, xt)
        enc = net.compress(x, xt)
        dec = net.decompress(enc["strings"], enc["shape"], xt)
    assert torch.equal(out["x_hat_d"], out["x_hat_g"])
    assert torch.equal(dec["x_hat_d"], dec["x_hat_g"])
    assert net.core.g_a[0].in_channels == 3 + cc.XGDC_CHANNELS
    assert net.core.g_s[-1].out_channels == 3 + cc.XGDC_CHANNELS


def test_theta_rule_picks_by_prediction_quality():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g)
    noise = torch.randn(x.shape, generator=g)
    xt = x.clone()
    xt[0] += 0.01 * noise[0]  # about 40 dB: x̂_d
    xt[1] += 0.1 * noise[1]  # about 20 dB: x̂_g
    psnr = cc.psnr_per_sample(xt, x)
    assert psnr[0] > cc.THETA_DB > psnr[1]
    x_d, x_g = torch.zeros_like(x), torch.ones_like(x)
    out = cc.theta_rule(x, xt, x_d, x_g)
    assert torch.equal(out[0], x_d[0]) and torch.equal(out[1], x_g[1])
    assert torch.equal(cc.theta_rule(x, xt, x_d, x_g, theta=50.0), x_g)
    assert torch.equal(cc.theta_rule(x, xt, x_d, x_g, theta=10.0), x_d)


def test_xgdc_forward_uses_the_theta_rule():
    net = cc.create("pframe-xgdc", N, M).eval()
    torch.nn.init.normal_(net.gs[-1].weight, std=0.1)  # make the two branches differ
    x, _ = frames(seed=5)
    xt = x.clone()
    xt[1] = (x[1] + 0.2 * torch.randn(x[1].shape)).clamp(0, 1)  # item 1: a poor prediction
    with torch.no_grad():
        out = net(x, xt)
    assert not torch.equal(out["x_hat_d"], out["x_hat_g"])
    assert torch.equal(out["x_hat"][0], out["x_hat_d"][0])
    assert torch.equal(out["x_hat"][1], out["x_hat_g"][1])


def test_create_and_widths():
    with pytest.raises(ValueError, match="unknown P-frame coder"):
        cc.create("pframe-codecnet128", 64, 96)
    with pytest.raises(ValueError):
        cc.create("mbt2018-mean", 64, 96)
    nets = {name: cc.create(name, 64, 96) for name in cc.CODERS}
    assert nets["pframe-codecnet64"].yp == 32 and nets["pframe-codecnet192"].yp == 96
    for name in ("pframe-codecnet64", "pframe-codecnet192"):
        net = nets[name]
        assert net.name == name
        assert net.core.g_a[0].in_channels == 6
        assert net.core.g_s[0].in_channels == 96 + net.yp
        assert net.g_c[-1].out_channels == net.yp
    assert cc.create("pframe-codecnet64", 128, 192).yp == 64  # the paper's Y_p at N = 128
    counts = [cc.count_parameters(nets[name]) for name in
              ("pframe-diff", "pframe-gdc", "pframe-xgdc", "pframe-codecnet64",
               "pframe-codecnet192")]
    assert counts == sorted(set(counts))  # strictly increasing
    for net in nets.values():  # the core keeps the image codec's hyperprior layers
        assert (net.N, net.M) == (64, 96)


# --------------------------------------------------------------------------- switching


def chosen_cost(mask, bits, cost_d, cost_g) -> float:
    return float(torch.where(mask, cost_g, cost_d).double().sum()) + len(bits)


def test_frame_switch():
    assert cc.frame_switch([3.0, 1.0, 2.0]) == 1
    assert cc.frame_switch([1.0, 1.0]) == 0


def test_block_cost_is_the_lagrangian_share():
    g = torch.Generator().manual_seed(0)
    x, x_hat = torch.rand(3, 8, 8, generator=g), torch.rand(3, 8, 8, generator=g)
    lmbda = 0.01
    cost = cc.block_cost(x, x_hat, lmbda)
    assert cost.shape == (8, 8)
    mse = (x - x_hat).pow(2).mean()
    assert float(cost.sum()) == pytest.approx(float(lmbda * 255**2 * mse * 64), rel=1e-5)


def test_quadtree_all_g_needs_no_split():
    h, w = 240, 416
    cost_d = torch.full((h, w), 2.0)
    cost_g = torch.full((h, w), 1.0)
    mask, bits = cc.quadtree(cost_d, cost_g)
    assert mask.shape == (h, w) and mask.dtype == torch.bool and mask.all()
    assert bits == [0, 1] * 2  # two 256-tiles: "no split", "x̂_g"
    mask, bits = cc.quadtree(cost_g, cost_d)
    assert not mask.any() and bits == [0, 0] * 2


def test_quadtree_splits_a_half_and_half_map():
    cost_d = torch.zeros(256, 256)
    cost_d[:, :128] = 5.0  # x̂_g is better on the left half
    cost_g = 5.0 - cost_d
    mask, bits = cc.quadtree(cost_d, cost_g)
    want = torch.zeros(256, 256, dtype=torch.bool)
    want[:, :128] = True
    assert torch.equal(mask, want)
    assert bits == [1, 0, 1, 0, 0, 0, 1, 0, 0]  # split; four 128-leaves: g, d, g, d


@pytest.mark.parametrize("h, w", [(240, 416), (144, 176), (70, 90)])
def test_quadtree_bits_decode_to_the_mask(h, w):
    g = torch.Generator().manual_seed(h + w)
    # costs that vary at several scales, so that the tree splits at several depths
    coarse = torch.nn.functional.interpolate(torch.randn(1, 1, 4, 6, generator=g), size=(h, w))
    cost_d = torch.rand(h, w, generator=g) * 4
    cost_g = cost_d + 3 * coarse[0, 0] + torch.randn(h, w, generator=g)
    mask, bits = cc.quadtree(cost_d, cost_g)
    assert set(bits) <= {0, 1} and 0 < mask.sum() < h * w
    assert torch.equal(cc.decode_quadtree(bits, h, w), mask)
    tiles = math.ceil(h / 256) * math.ceil(w / 256)
    total = chosen_cost(mask, bits, cost_d, cost_g)
    assert total <= float(cost_d.double().sum()) + 2 * tiles + 1e-6
    assert total <= float(cost_g.double().sum()) + 2 * tiles + 1e-6
    with pytest.raises(ValueError):
        cc.decode_quadtree(bits[:-1], h, w)
    with pytest.raises(ValueError):
        cc.decode_quadtree(bits + [0], h, w)
    with pytest.raises(ValueError):
        cc.decode_quadtree([], h, w)


def all_trees(top, left, level, h, w, sizes):
    """Every (mask pixels as a set of (top, left, side) g-leaves, bits count) of one block."""
    last = level == len(sizes) - 1
    leaves = [([(top, left, sizes[level])] if g else [], (0 if last else 1) + 1) for g in (0, 1)]
    if last:
        return leaves
    half = sizes[level + 1]
    kids = [all_trees(t, lft, level + 1, h, w, sizes)
            for t, lft in ((top, left), (top, left + half), (top + half, left),
                           (top + half, left + half)) if t < h and lft < w]
    splits = [(sum((c[0] for c in combo), []), 1 + sum(c[1] for c in combo))
              for combo in itertools.product(*kids)]
    return leaves + splits


@pytest.mark.parametrize("h, w, sizes", [(8, 8, (8, 4)), (8, 12, (8, 4)), (10, 14, (8, 4)),
                                         (16, 8, (8, 4)), (3, 3, (4, 2, 1)), (2, 6, (4, 2, 1))])
def test_quadtree_is_optimal_by_brute_force(h, w, sizes):
    seed = h * 100 + w
    g = torch.Generator().manual_seed(seed)
    cost_d, cost_g = torch.rand(h, w, generator=g) * 3, torch.rand(h, w, generator=g) * 3
    mask, bits = cc.quadtree(cost_d, cost_g, sizes)
    assert torch.equal(cc.decode_quadtree(bits, h, w, sizes), mask)
    per_tile = []
    for top in range(0, h, sizes[0]):
        for left in range(0, w, sizes[0]):
            best = math.inf
            for g_leaves, nbits in all_trees(top, left, 0, h, w, sizes):
                m = torch.zeros(h, w, dtype=torch.bool)
                for t, lft, s in g_leaves:
                    m[t : t + s, lft : lft + s] = True
                tile = (slice(top, top + sizes[0]), slice(left, left + sizes[0]))
                c = float(torch.where(m, cost_g, cost_d)[tile].double().sum()) + nbits
                best = min(best, c)
            per_tile.append(best)
    assert chosen_cost(mask, bits, cost_d, cost_g) == pytest.approx(sum(per_tile), abs=1e-9)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 100])
def test_pack_bits_round_trip(n):
    g = torch.Generator().manual_seed(n)
    bits = torch.randint(0, 2, (n,), generator=g).tolist()
    blob = cc.pack_bits(bits)
    assert len(blob) == (n + 7) // 8
    assert cc.unpack_bits(blob, n) == bits
    if n:
        with pytest.raises(ValueError):
            cc.unpack_bits(blob[:-1], n)
    assert cc.pack_bits([1, 0, 0, 0, 0, 0, 0, 1, 1]) == bytes([0b10000001, 0b10000000])


# --------------------------------------------------------------------------- training


def synthetic_pairs(split: str = "train", profile=None) -> list[dict]:
    out = []
    for i in range(3):
        x, xt = frames(b=1, h=96, w=128, seed=10 + i)
        out.append({"x": pframetrain._u8(x[0]), "xt": pframetrain._u8(xt[0]), "clip": "fake",
                    "frame": i})
    return out


@pytest.fixture
def no_data(monkeypatch):
    monkeypatch.setattr(pframetrain, "pairs", synthetic_pairs)


def config(tmp_path, steps: int, **kw) -> pframetrain.PFrameTrainConfig:
    base = {"model": "pframe-xgdc", "quality": 2, "profile": "smoke", "steps": steps,
            "out_dir": str(tmp_path / "run"), "init_from": "none"}
    return pframetrain.PFrameTrainConfig(**{**base, **kw})


def test_config_resolves_the_profile(tmp_path):
    s = config(tmp_path, 3).resolved()
    assert (s["N"], s["M"], s["patch_size"]) == (16, 24, 64)
    assert s["profile"] == "smoke" and s["run_dir"] == str(tmp_path / "run")
    with pytest.raises(ValueError, match="unknown P-frame coder"):
        config(tmp_path, 3, model="pframe-foo").resolved()
    with pytest.raises(ValueError, match="multiple of 64"):
        config(tmp_path, 3, patch_size=96).resolved()


def test_train_resumes_and_exports(tmp_path, no_data):
    first = pframetrain.train(config(tmp_path, 2), progress=False)
    assert [r["step"] for r in first["history"]] == [1, 2]
    assert {"loss", "bpp", "psnr", "psnr_d", "psnr_g"} <= set(first["history"][0])
    second = pframetrain.train(config(tmp_path, 3), progress=False)
    assert [r["step"] for r in second["history"]] == [1, 2, 3]
    assert second["history"][:2] == first["history"]  # resumed at step 2, not restarted
    assert second["manifest"]["steps"] == 3
    assert all(math.isfinite(r["loss"]) for r in second["history"])
    again = pframetrain.train(config(tmp_path, 3), progress=False)  # finished: loaded
    assert again["history"] == second["history"]
    with pytest.raises(CheckpointError, match="another run"):
        pframetrain.train(config(tmp_path, 3, seed=8), progress=False)
    with pytest.raises(CheckpointError):
        pframetrain.train(config(tmp_path, 3, quality=3), progress=False)

    # export → load_weights: the checkpoint's weights rounded to fp16, nothing else
    file = pframetrain.export(tmp_path / "run", tmp_path / "weights")
    assert file.name == "pframe-xgdc-q2.pt"
    man = json.loads(file.with_suffix(".json").read_text())
    assert (man["model"], man["N"], man["M"], man["steps"]) == ("pframe-xgdc", N, M, 3)
    net, man2 = pframetrain.load_weights(file)
    assert man2 == man and not net.training
    state = checkpoints.load_checkpoint(tmp_path / "run" / checkpoints.CHECKPOINT)["model"]
    stored = torch.load(file, weights_only=True)["model"]
    assert stored["core.g_a.0.weight"].dtype == torch.float16
    assert set(stored) == set(state)
    ref = cc.create("pframe-xgdc", N, M)  # the checkpoint rounded to the stored dtypes
    ref.load_state_dict({k: v.to(stored[k].dtype).to(v.dtype) for k, v in state.items()},
                        strict=False)
    ref.eval().update(force=True)
    x, xt = frames(seed=9)
    with torch.no_grad():
        a, b = net(x, xt), ref(x, xt)
        for key in ("x_hat", "x_hat_d", "x_hat_g"):
            assert torch.equal(a[key], b[key])
        trained = second["model"](x, xt)["x_hat"]  # fp32 weights: close to the fp16 ones
        assert (trained - a["x_hat"]).abs().max() < 0.05
        enc = net.compress(x, xt)
        net2, _ = pframetrain.load_weights(file)
        dec = net2.decompress(enc["strings"], enc["shape"], xt)
    assert torch.equal(dec["x_hat_g"], a["x_hat_g"].clamp(0, 1))

    # a damaged weights file is refused
    bad = tmp_path / "weights" / "copy.pt"
    bad.write_bytes(file.read_bytes()[:-10])
    bad.with_suffix(".json").write_text(file.with_suffix(".json").read_text())
    with pytest.raises(CheckpointError):
        pframetrain.load_weights(bad)

    # warm start from the export: other widths refused, the first conv's slice copied
    with pytest.raises(CheckpointError, match="same widths"):
        pframetrain.warm_start(cc.create("pframe-diff", 8, 16), str(file))
    torch.manual_seed(0)
    target = cc.create("pframe-codecnet64", N, M)  # first conv: 6 inputs where xGDC has 19
    before = target.core.g_a[0].weight.detach().clone()
    record = pframetrain.warm_start(target, str(file))
    assert record["tensors_copied"] > 0 and record["sha256"] == man["sha256"]
    w_src = stored["core.g_a.0.weight"].float()  # (N, 19, 5, 5)
    w = target.core.g_a[0].weight.detach()  # (N, 6, 5, 5)
    assert torch.equal(w, w_src[:, :6])
    assert not torch.equal(w, before)
    # the last synthesis conv: 3 of the 19 outputs; the hyperprior: whole
    assert torch.equal(target.core.g_s[-1].weight.detach(),
                       stored["core.g_s.6.weight"].float()[:, :3])
    assert torch.equal(target.core.h_s[0].weight.detach(),
                       stored["core.h_s.0.weight"].float())
    with pytest.raises(CheckpointError):
        pframetrain.warm_start(target, str(tmp_path / "nothing.pt"))


def test_warm_start_from_a_run_folder(tmp_path, no_data):
    pframetrain.train(config(tmp_path, 1, model="pframe-diff"), progress=False)
    state = checkpoints.load_checkpoint(tmp_path / "run" / checkpoints.CHECKPOINT)["model"]
    target = cc.create("pframe-gdc", N, M)
    pframetrain.warm_start(target, str(tmp_path / "run"))
    for key, value in target.core.state_dict().items():
        if not key.endswith(pframetrain.TABLES):
            assert torch.equal(value, state[f"core.{key}"]), key
    assert not target.gd[-1].weight.any()  # the new layers keep their start


def test_warm_start_from_the_shipped_image_codec():
    from nctutor.checkpoints import WEIGHTS_DIR

    file = WEIGHTS_DIR / "mbt2018-mean-q2.pt"
    if not file.is_file():
        pytest.skip("no shipped mbt2018-mean-q2 weights")
    man, state = checkpoints.read_exported(file)
    net = cc.create("pframe-codecnet64", man["N"], man["M"])
    record = pframetrain.warm_start(net, str(file))
    assert record["from"] == file.name
    assert torch.equal(net.core.g_a[0].weight.detach()[:, :3], state["g_a.0.weight"].float())
    assert torch.equal(net.core.g_s[0].weight.detach()[: man["M"]], state["g_s.0.weight"].float())
    assert torch.equal(net.core.h_a[0].weight.detach(), state["h_a.0.weight"].float())
