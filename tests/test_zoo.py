"""The model zoo: train once then load from the cache, shipped weights, export, refusals."""

import json
import urllib.error
from dataclasses import replace

import pytest
import torch

from nctutor import checkpoints, codecs, config, container, data, maintain, train, zoo
from nctutor.errors import CheckpointError


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _finished_run(arch, quality, N=8, M=8, seed=0, state=None):
    """A complete run in the cache, written by hand (untrained tiny model)."""
    cfg = train.TrainConfig(model=arch, quality=quality)
    steps = config.get_profile().steps  # complete: as many steps as the profile asks
    settings = {**cfg.resolved(), "N": N, "M": M, "steps": steps}
    torch.manual_seed(seed)
    run = train.run_dir(cfg)
    run.mkdir(parents=True)
    state = state if state is not None else codecs.create(arch, N=N, M=M).state_dict()
    torch.save({"settings": settings, "model": state, "step": steps}, run / checkpoints.CHECKPOINT)
    (run / checkpoints.MANIFEST).write_text(json.dumps({"steps": steps, "settings": settings}))
    return run


@pytest.fixture
def tiny_smoke(monkeypatch):
    """The smoke profile cut to 3 steps of 2 crops of 32 pixels, widths 8: a run of ~1 s
    (factorized prior only: the hyperpriors need crops of a multiple of 64)."""
    small = replace(config.PROFILES["smoke"], steps=3, batch_size=2, patch_size=32, N=8, M=8)
    monkeypatch.setitem(config.PROFILES, "smoke", small)
    return small


def test_trains_when_missing_then_loads_the_cache(tiny_smoke):
    first = zoo.load("factorized", 2)
    assert first.nctutor["source"].startswith("trained:")
    assert first.nctutor["profile"] == "smoke" and not first.training
    run = train.run_dir(train.TrainConfig(model="bmshj2018-factorized", quality=2))
    assert json.loads((run / checkpoints.MANIFEST).read_text())["steps"] == 3
    again = zoo.load("bmshj2018-factorized", 2)
    assert again.nctutor["source"] == str(run)
    a, b = _state(first), _state(again)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the two load paths give the same entropy coder: files of one decode with the other
    x = data.kodak(1)[0][:, :40, :50]
    blob = container.encode_image(first, x, "bmshj2018-factorized", 2, profile="smoke")
    assert torch.equal(container.decode_image(blob, again), container.decode_image(blob, first))

    # export: fp16 transforms, fp32 entropy models; loads back, decodes close to fp32
    file = maintain.export(run, "bmshj2018-factorized", 2, run.parent / "ship")
    man = json.loads(file.with_suffix(".json").read_text())
    assert (man["model"], man["quality"], man["profile"], man["N"], man["M"], man["steps"]) == (
        "bmshj2018-factorized", 2, "smoke", 8, 8, 3)
    assert man["dtype"] == "float16" and man["bytes"] == file.stat().st_size
    stored = torch.load(file, weights_only=True)["model"]
    assert stored["g_a.0.weight"].dtype == torch.float16
    assert stored["entropy_bottleneck.quantiles"].dtype == torch.float32
    full = maintain.export(run, "bmshj2018-factorized", 2, run.parent / "full", half=False)
    assert file.stat().st_size < full.stat().st_size
    halved = zoo.load_exported(file)
    y16 = container.decode_image(container.encode_image(halved, x, "bmshj2018-factorized", 2),
                                 halved)
    y32 = container.decode_image(blob, first)
    mse = float(torch.mean((y16 - y32) ** 2))
    print(f"\nfp16 export: {file.stat().st_size} vs {full.stat().st_size} bytes, "
          f"reconstructions differ by {train.float_psnr(mse):.1f} dB PSNR")
    assert train.float_psnr(mse) > 40


def test_a_shorter_run_is_resumed_not_served(tiny_smoke):
    cfg = train.TrainConfig(model="bmshj2018-factorized", quality=1, steps=1)
    train.train(cfg, progress=False)  # `nctutor train bmshj2018-factorized --quality 1 --steps 1`
    run = train.run_dir(cfg)
    assert json.loads((run / checkpoints.MANIFEST).read_text())["steps"] == 1
    model = zoo.load("bmshj2018-factorized", 1)
    assert model.nctutor["source"].startswith("trained:")
    assert json.loads((run / checkpoints.MANIFEST).read_text())["steps"] == tiny_smoke.steps == 3


def test_shipped_weights_come_first_for_their_profile(tmp_path, monkeypatch):
    run = _finished_run("mbt2018-mean", 5, seed=3)
    shipped = tmp_path / "weights"
    maintain.export(run, "mbt2018-mean", 5, shipped)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", shipped)
    model = zoo.load("mbt2018-mean", 5)
    assert model.nctutor["source"] == str(shipped / "mbt2018-mean-q5.pt")
    assert (model.N, model.M) == (8, 8)
    # another profile is not served by weights made for smoke (it would train a cpu-size model)
    man_file = shipped / "mbt2018-mean-q5.json"
    man = json.loads(man_file.read_text())
    man_file.write_text(json.dumps({**man, "profile": "gpu"}))
    assert zoo.load("mbt2018-mean", 5).nctutor["source"] == str(run)


def test_damaged_exported_weights_are_refused(tmp_path):
    run = _finished_run("bmshj2018-hyperprior", 1)
    file = maintain.export(run, "bmshj2018-hyperprior", 1, tmp_path)
    raw = bytearray(file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    file.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="SHA-256"):
        zoo.load_exported(file)
    with pytest.raises(ValueError, match="not mbt2018-mean"):
        maintain.export(run, "mbt2018-mean", 1, tmp_path)


def test_checkpoint_for_other_widths_is_refused():
    wrong = codecs.create("bmshj2018-factorized", N=16, M=8).state_dict()
    _finished_run("bmshj2018-factorized", 3, N=8, M=8, state=wrong)
    with pytest.raises(CheckpointError, match="does not fit bmshj2018-factorized with N=8, M=8"):
        zoo.load("bmshj2018-factorized", 3)


def test_checkpoint_of_other_architecture_is_refused():
    other = codecs.create("bmshj2018-hyperprior", N=8, M=8).state_dict()
    _finished_run("mbt2018-mean", 3, state=other)
    with pytest.raises(CheckpointError, match="does not fit mbt2018-mean"):
        zoo.load("mbt2018-mean", 3)


def test_corrupted_checkpoint_is_refused():
    run = _finished_run("bmshj2018-factorized", 4)
    ckpt = run / checkpoints.CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        zoo.load("bmshj2018-factorized", 4)


def test_compressai_pretrained_offline_says_so(monkeypatch):
    import compressai.zoo.image

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(compressai.zoo.image, "load_state_dict_from_url", offline)
    with pytest.raises(zoo.ZooError, match="network seems closed"):
        zoo.load("compressai:mbt2018-mean", 3)


def test_compressai_pretrained_is_wrapped(monkeypatch):
    """Without the network, stand in CompressAI's download by a state dict of the right shapes:
    what is tested is the wrapping (eval mode, update, header name, decodable bitstreams)."""
    import compressai.zoo.image

    fake = codecs.create("mbt2018-mean", N=128, M=192).state_dict()
    monkeypatch.setattr(compressai.zoo.image, "load_state_dict_from_url", lambda *a, **k: fake)
    model = zoo.load("compressai:mbt2018-mean", 1)  # CompressAI's q1 has N=128, M=192
    assert model.nctutor["name"] == "compressai:mbt2018-mean" and not model.training
    x = data.kodak(1)[0][:, :64, :64]
    blob = container.encode_image(model, x, model.nctutor["name"], 1)
    assert container.read_header(blob).model == "compressai:mbt2018-mean"
    assert container.decode_image(blob, model).shape == (3, 64, 64)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="quality"):
        zoo.load("mbt2018-mean", 0)
    with pytest.raises(ValueError, match="unknown model"):
        zoo.load("jpeg", 3)
    with pytest.raises(ValueError, match="unknown profile"):
        zoo.load("mbt2018-mean", 3, profile="tpu")


def test_locate_says_where_weights_come_from_without_loading(tmp_path, monkeypatch):
    """Asked for a profile: that profile's shipped weights, else its complete run. Asked for none
    (the command line's default): the shipped weights, else a gpu, then a cpu run; smoke runs
    only when asked for; else the ``nctutor train`` command, at cpu."""
    smoke_run = _finished_run("mbt2018-mean", 6)
    assert zoo.locate("mbt2018-mean", 6, "smoke") == {
        "quality": 6, "from": "cache", "profile": "smoke", "path": str(smoke_run)}
    missing = zoo.locate("mean-scale", 6)
    assert missing["from"] == "needs training" and missing["profile"] == "cpu"
    assert missing["command"] == "nctutor train mbt2018-mean --quality 6 --profile cpu"
    with pytest.raises(zoo.ZooError, match="`nctutor train mbt2018-mean --quality 6 --profile "
                                           "cpu`"):
        zoo.require("mbt2018-mean", 6)
    monkeypatch.setenv("NCTUTOR_PROFILE", "cpu")  # where _finished_run writes
    cpu_run = _finished_run("mbt2018-mean", 6)
    assert zoo.locate("mbt2018-mean", 6)["path"] == str(cpu_run)
    monkeypatch.setenv("NCTUTOR_PROFILE", "gpu")
    gpu_run = _finished_run("mbt2018-mean", 6)
    monkeypatch.setenv("NCTUTOR_PROFILE", "smoke")
    assert zoo.locate("mbt2018-mean", 6) == {"quality": 6, "from": "cache", "profile": "gpu",
                                              "path": str(gpu_run)}
    assert zoo.require("mbt2018-mean", 6, "cpu")["path"] == str(cpu_run)
    # shipped weights come first, at their profile, whatever is in the cache
    shipped = tmp_path / "weights"
    maintain.export(smoke_run, "mbt2018-mean", 6, shipped)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", shipped)
    assert zoo.locate("mbt2018-mean", 6) == {"quality": 6, "from": "shipped", "profile": "smoke",
                                              "path": str(shipped / "mbt2018-mean-q6.pt")}
    assert zoo.locate("mbt2018-mean", 6, "cpu")["path"] == str(cpu_run)
    pretrained = zoo.locate("compressai:mbt2018-mean", 2)
    assert pretrained["from"] == "compressai" and pretrained["path"].endswith(".pth.tar")


def test_load_without_training_refuses(tiny_smoke):
    run = train.run_dir(train.TrainConfig(model="bmshj2018-factorized", quality=2))
    with pytest.raises(zoo.ZooError, match="--quality 2 --profile smoke`") as e:
        zoo.load("bmshj2018-factorized", 2, train_if_missing=False)
    assert "at the smoke profile" in str(e.value) and str(run) in str(e.value)
    assert not run.exists()
    train.train(train.TrainConfig(model="bmshj2018-factorized", quality=2, steps=1),
                progress=False)  # a run shorter than the profile's is not complete: refused too
    with pytest.raises(zoo.ZooError):
        zoo.load("bmshj2018-factorized", 2, train_if_missing=False)
    assert zoo.locate("bmshj2018-factorized", 2, "smoke")["from"] == "needs training"
    model = zoo.load("bmshj2018-factorized", 2)  # the default trains, as the notebooks need
    assert model.nctutor["source"].startswith("trained:")
    assert zoo.load("bmshj2018-factorized", 2, train_if_missing=False).nctutor["source"] == str(run)
