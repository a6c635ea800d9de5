"""The trainer: runs, checkpoints, resumes exactly, refuses foreign or damaged checkpoints."""

import json

import pytest
import torch

from nctutor import checkpoints, codecs, data, maintain, train

TINY = dict(model="bmshj2018-factorized", quality=2, steps=3, batch_size=2, patch_size=32,
            N=8, M=8, ckpt_every=2)


def _params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_train_writes_checkpoint_and_manifest(tmp_path):
    result = train.train(train.TrainConfig(out_dir=str(tmp_path), **TINY), progress=False)
    assert [h["step"] for h in result.history] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
    manifest = json.loads((tmp_path / checkpoints.MANIFEST).read_text())
    assert manifest["steps"] == 3 and manifest["settings"]["lmbda"] == 0.0035
    assert manifest["settings"]["profile"] == "smoke" and manifest["data"]["count"] == 200
    assert {"loss", "bpp", "psnr"} <= set(manifest["final"])
    ckpt = checkpoints.load_checkpoint(tmp_path / checkpoints.CHECKPOINT)
    assert ckpt["step"] == 3


def test_training_steps_change_the_weights_and_lower_the_loss(tmp_path):
    """Ten steps on one fixed batch: every parameter moves (both optimizers step) and the loss of
    that batch, measured deterministically (eval mode: rounding, no noise), goes down."""
    run = train.setup(train.TrainConfig(out_dir=str(tmp_path), **{**TINY, "steps": 10}))
    kodim01 = data.kodak(1)[0]
    x = torch.stack([kodim01[:, 100:132, 200:232], kodim01[:, 300:332, 400:432]])

    @torch.no_grad()
    def losses():
        run.net.eval()
        loss = run.criterion(run.net(x), x)["loss"].item()
        run.net.train()
        return loss, run.net.aux_loss().item()

    before, start = losses(), {n: p.detach().clone() for n, p in run.net.named_parameters()}
    records = [train.train_one_step(run, x) for _ in range(10)]
    after = losses()
    assert [r["step"] for r in records] == list(range(1, 11)) and run.history == records
    unchanged = [n for n, p in run.net.named_parameters() if torch.equal(p, start[n])]
    assert not unchanged, f"parameters the optimizers never changed: {unchanged}"
    assert after[0] < 0.95 * before[0], (before, after)  # the rate-distortion loss: 74.6 → 63.1
    assert after[1] < before[1], (before, after)  # the auxiliary (quantile) loss


def _interrupt_at(monkeypatch, at_index):
    original = data.PatchDataset.__getitem__

    def flaky(self, index):
        if index == at_index:
            raise KeyboardInterrupt
        return original(self, index)

    monkeypatch.setattr(data.PatchDataset, "__getitem__", flaky)


def test_resume_continues_exactly(tmp_path, monkeypatch):
    cfg = {**TINY, "steps": 4, "ckpt_every": 100}
    straight = train.train(train.TrainConfig(out_dir=str(tmp_path / "a"), **cfg), progress=False)
    with monkeypatch.context() as m:
        _interrupt_at(m, 4)  # the first crop of step 3 (batch 2)
        with pytest.raises(KeyboardInterrupt):
            train.train(train.TrainConfig(out_dir=str(tmp_path / "b"), **cfg), progress=False)
    resumed = train.train(train.TrainConfig(out_dir=str(tmp_path / "b"), **cfg), progress=False)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    a, b = _params(straight.model), _params(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_finished_run_just_loads(tmp_path):
    cfg = train.TrainConfig(out_dir=str(tmp_path), **TINY)
    first = train.train(cfg, progress=False)
    again = train.train(cfg, progress=False)
    assert len(again.history) == 3
    a, b = _params(first.model), _params(again.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mismatched_checkpoint_is_refused(tmp_path):
    train.train(train.TrainConfig(out_dir=str(tmp_path), **TINY), progress=False)
    with pytest.raises(train.CheckpointError, match="another run"):
        train.train(train.TrainConfig(out_dir=str(tmp_path), **{**TINY, "quality": 5}),
                    progress=False)


def test_corrupted_checkpoint_is_refused(tmp_path):
    train.train(train.TrainConfig(out_dir=str(tmp_path), **TINY), progress=False)
    file = tmp_path / checkpoints.CHECKPOINT
    blob = bytearray(file.read_bytes())
    file.write_bytes(bytes(blob[: len(blob) // 2]))
    with pytest.raises(train.CheckpointError, match="Delete it"):
        train.train(train.TrainConfig(out_dir=str(tmp_path), **TINY), progress=False)


def test_interrupt_saves_the_work(tmp_path, monkeypatch):
    _interrupt_at(monkeypatch, 5)  # the second crop of step 3 (batch 2)
    with pytest.raises(KeyboardInterrupt):
        train.train(train.TrainConfig(out_dir=str(tmp_path), **{**TINY, "ckpt_every": 100}),
                    progress=False)
    assert checkpoints.load_checkpoint(tmp_path / checkpoints.CHECKPOINT)["step"] == 2


def test_patch_size_must_fit_the_stride(tmp_path):
    with pytest.raises(ValueError, match="multiple of 64"):
        train.train(train.TrainConfig(out_dir=str(tmp_path), **{**TINY, "model": "mbt2018-mean"}),
                    progress=False)


def test_validate_on_kodak_crops():

    net = codecs.create("bmshj2018-factorized", N=8, M=8)
    metrics = train.validate(net, data.kodak(1), crop=64, device="cpu", stride=16)
    assert metrics["bpp"] > 0 and 0 < metrics["psnr"] < 60
    assert net.training  # validate puts the model back in training mode
    # a crop smaller than the stride is padded by the one stride rule, as compress does
    small = train.validate(net, data.kodak(1), crop=32, device="cpu", stride=64)
    assert small["bpp"] > 0 and 0 < small["psnr"] < 60


def test_warm_start_from_a_neighbouring_quality(tmp_path):
    # the q2 run has another seed, hence other initial weights than a fresh seed-0 run of q3
    base = train.train(train.TrainConfig(out_dir=str(tmp_path / "q2"), **{**TINY, "seed": 1}),
                       progress=False)
    cfg = train.TrainConfig(out_dir=str(tmp_path / "q3"), init_from=str(tmp_path / "q2"),
                            **{**TINY, "quality": 3, "steps": 1})
    tuned = train.train(cfg, progress=False)
    fresh = train.train(train.TrainConfig(out_dir=str(tmp_path / "fresh"),
                                          **{**TINY, "quality": 3, "steps": 1}), progress=False)

    def distance(m1, m2):
        s1, s2 = m1.state_dict(), m2.state_dict()
        return max(float((s1[k] - s2[k]).abs().max()) for k in s1 if s1[k].is_floating_point()
                   and not k.startswith("entropy_bottleneck._"))

    assert distance(tuned.model, base.model) < distance(tuned.model, fresh.model) / 5
    manifest = json.loads((tmp_path / "q3" / checkpoints.MANIFEST).read_text())
    init = manifest["settings"]["init"]
    assert init == {"from": str(tmp_path / "q2"), "quality": 2, "steps": 3}
    # resuming keeps the record; asking for another start is refused
    assert train.train(cfg, progress=False).manifest["settings"]["init"] == init
    with pytest.raises(train.CheckpointError, match="another run"):
        train.train(train.TrainConfig(out_dir=str(tmp_path / "q3"), **{**TINY, "quality": 3,
                                                                        "steps": 1}),
                    progress=False)


def test_warm_start_from_exported_weights(tmp_path):
    """A later session can train shipped weights further: ``init_from`` an exported file."""
    from nctutor import zoo

    base = train.train(train.TrainConfig(out_dir=str(tmp_path / "q2"), **{**TINY, "seed": 1}),
                       progress=False)
    file = maintain.export(base, "bmshj2018-factorized", 2, tmp_path / "weights")
    cfg = train.TrainConfig(out_dir=str(tmp_path / "more"), init_from=str(file),
                            **{**TINY, "steps": 1})
    more = train.train(cfg, progress=False)
    exported = zoo.load_exported(file).state_dict()
    start = codecs.create("bmshj2018-factorized", N=8, M=8)
    state, _ = checkpoints.warm_start(str(file), cfg.resolved(), "cpu")
    start.load_state_dict(state)
    for k, v in start.state_dict().items():  # the exported (fp16-rounded) weights, widened
        if v.is_floating_point() and not k.startswith("entropy_bottleneck._"):
            assert v.dtype == torch.float32 and torch.equal(v, exported[k]), k
    init = more.manifest["settings"]["init"]
    man = json.loads(file.with_suffix(".json").read_text())
    assert init == {"from": str(file), "quality": 2, "steps": 3, "sha256": man["sha256"]}
    # training it further again keeps the whole line of starts
    again = maintain.export(more, "bmshj2018-factorized", 2, tmp_path / "weights2")
    cfg2 = train.TrainConfig(out_dir=str(tmp_path / "again"), init_from=str(again),
                             **{**TINY, "steps": 1})
    line = train.train(cfg2, progress=False).manifest["settings"]["init"]
    assert line["from"] == str(again) and line["steps"] == 1 and line["init"] == init
    file.write_bytes(file.read_bytes()[:-10])  # damaged: refused before any training
    with pytest.raises(train.CheckpointError):
        train.train(train.TrainConfig(out_dir=str(tmp_path / "bad"), init_from=str(file),
                                      **{**TINY, "steps": 1}), progress=False)
    assert not (tmp_path / "bad" / checkpoints.CHECKPOINT).exists()


def test_lineage_follows_the_family_beside_a_weights_file():
    q3 = {"from": "/runs/q3", "quality": 3, "steps": 6000}
    siblings = {"/fam/q2": {"settings": {"init": q3}}, "/runs/q3": {"settings": {}}}
    q2 = {"from": "/fam/q2", "quality": 2, "steps": 2500}
    assert checkpoints.lineage(q2, siblings) == {**q2, "init": q3}
    nested = {"from": "/w/q1.pt", "quality": 1, "steps": 2500, "init": q2}
    assert checkpoints.lineage(nested, siblings) == {**nested, "init": {**q2, "init": q3}}
    assert checkpoints.lineage(q3, siblings) == q3 and checkpoints.lineage(None, siblings) is None


def test_warm_start_refuses_other_architectures(tmp_path):
    train.train(train.TrainConfig(out_dir=str(tmp_path / "f"), **TINY), progress=False)
    other = {**TINY, "model": "mbt2018-mean", "patch_size": 64}
    with pytest.raises(train.CheckpointError, match="holds bmshj2018-factorized"):
        train.train(train.TrainConfig(out_dir=str(tmp_path / "m"), init_from=str(tmp_path / "f"),
                                      **other), progress=False)
    with pytest.raises(train.CheckpointError, match="no run folder"):
        train.train(train.TrainConfig(out_dir=str(tmp_path / "m"),
                                      init_from=str(tmp_path / "nothing"), **other),
                    progress=False)
    assert not (tmp_path / "m" / checkpoints.CHECKPOINT).exists()


def test_mixed_precision_touches_only_the_transforms(tmp_path):
    # bfloat16 autocast exists on the CPU too, so the CUDA code path is exercised here
    result = train.train(train.TrainConfig(out_dir=str(tmp_path), amp=True,
                                           **{**TINY, "model": "mbt2018-mean", "patch_size": 64}),
                         progress=False)
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
    assert json.loads((tmp_path / checkpoints.MANIFEST).read_text())["settings"]["amp"] is True
    net = train.mixed_precision(codecs.create("mbt2018-mean", N=8, M=8))
    seen = {}
    for name in ("g_a", "h_s"):
        getattr(net, name)[0].register_forward_hook(
            lambda m, i, o, name=name: seen.update({name: o.dtype}))
    out = net(torch.rand(1, 3, 64, 64))
    assert seen == {"g_a": torch.bfloat16, "h_s": torch.bfloat16}  # inside: bfloat16
    assert out["x_hat"].dtype == torch.float32  # what leaves a transform is float32 again
    assert all(lk.dtype == torch.float32 for lk in out["likelihoods"].values())
    # the returned model is a plain float32 one (no autocast left in it)
    assert "autocast_forward" not in repr(result.model.g_a.forward)
    assert train.TrainConfig(profile="gpu", device="cpu").resolved()["amp"] is False
