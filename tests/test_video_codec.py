"""The binary video codec (nctutor.codecs.video) and its trainer (nctutor.videotrain)."""

import json

import pytest
import torch

from nctutor import config, data, videotrain
from nctutor.codecs import video
from nctutor.errors import CheckpointError
from nctutor.quant.deltasigma import binarize_ste, modulate


def _frames(t=5, h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(3, h, w + 2 * t, generator=g)
    return torch.stack([base[:, :, i : i + w] for i in range(t)])  # a pan to the left


@pytest.mark.parametrize("order", [0, 1, 2])
def test_binarize_is_the_modulator_of_its_order_along_time(order):
    torch.manual_seed(order)
    model = video.BinaryVideoCodec(order, N=8, C=16)
    c = torch.randn(2, 16, 6, 3, 4)
    b = model.binarize(c)
    expected = binarize_ste(torch.tanh(c)) if order == 0 else modulate(c, order, dim=2)
    assert torch.equal(b, expected)
    assert set(b.unique().tolist()) <= {-1.0, 1.0}


def test_forward_shapes_channel_dropout_and_gradients():
    torch.manual_seed(0)
    model = video.BinaryVideoCodec(1, N=8, C=16)
    x = torch.rand(3, 4, 3, 32, 48, requires_grad=True)
    out = model(x, torch.tensor([1, 4, 16]))
    assert out["x_hat"].shape == x.shape
    assert out["bits"].shape == (3, 16, 4, 2, 3)
    kept = (out["bits"] != 0).flatten(2).all(-1)  # (B, C): which channels were sent
    assert kept.sum(1).tolist() == [1, 4, 16] and kept[:, 0].all()
    out["x_hat"].square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_model_refuses_bad_shapes_and_settings():
    model = video.BinaryVideoCodec(1, N=8, C=16)
    with pytest.raises(ValueError, match="multiples of 16"):
        model(torch.rand(1, 2, 3, 30, 32))
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="channels"):
        model.compress(_frames(), 17)
    with pytest.raises(ValueError, match="order"):
        video.BinaryVideoCodec(3)
    with pytest.raises(ValueError, match="unknown video model"):
        video.create("frameconv3d-order9")


@pytest.mark.parametrize("order", [0, 2])
def test_compress_decompress_gives_the_forward_reconstruction(order):
    torch.manual_seed(1)
    model = video.BinaryVideoCodec(order, N=8, C=16).eval()
    x = _frames(t=5, h=30, w=45)  # padded to 32×48 inside
    out = model.compress(x, 4)
    assert out["shape"] == (2, 3)
    with config.one_thread():
        x_hat = model.decompress(out["strings"], out["shape"], 5, 4)
        again = model.decompress(out["strings"], out["shape"], 5, 4)
    assert torch.equal(x_hat, again)
    with torch.no_grad():
        ref = model(video.pad(x, 16)[None], 4)["x_hat"][0].clamp(0, 1)
    assert torch.allclose(x_hat, ref, atol=1e-5)
    assert len(out["strings"][0]) < 4 * 5 * 2 * 3 / 8 + 16  # CRC + words: about the raw bits


def test_fingerprint_tells_decoders_apart():
    torch.manual_seed(0)
    a = video.BinaryVideoCodec(1, N=8, C=16)
    b = video.BinaryVideoCodec(1, N=8, C=16)
    assert video.fingerprint(a) == video.fingerprint(a)
    assert video.fingerprint(a) != video.fingerprint(b)
    c = video.BinaryVideoCodec(2, N=8, C=16)
    c.load_state_dict(a.state_dict())
    assert video.fingerprint(a) != video.fingerprint(c)  # the order is part of it


def test_group_dataset_is_seeded_per_index():
    clips = [torch.randint(0, 256, (10, 3, 40, 50), dtype=torch.uint8)]
    ds = data.GroupDataset(clips, frames=4, patch_size=32, epoch_size=5, seed=3)
    assert ds[2].shape == (4, 3, 32, 32) and ds[2].dtype == torch.float32
    assert torch.equal(ds[2], data.GroupDataset(clips, 4, 32, 5, seed=3)[2])
    assert not torch.equal(ds[2], ds[3])
    with pytest.raises(ValueError, match="too small"):
        data.GroupDataset(clips, frames=11, patch_size=32, epoch_size=5)


def test_split_holds_out_the_test_clips():
    train = {name for name, *_ in data.SPLIT["train"]}
    assert not train & {name for name, *_ in data.SPLIT["test"]}
    for (name, _, stop), (vname, vfirst, _) in zip(data.SPLIT["train"], data.SPLIT["val"],
                                                   strict=True):
        assert name == vname and stop == vfirst  # validation is the segment after training


def test_train_resume_export_and_load(tmp_path, monkeypatch):
    cfg = videotrain.VideoTrainConfig(model="frameconv3d-order1", steps=4, ckpt_every=2,
                                      out_dir=str(tmp_path / "run"))
    result = videotrain.train(cfg, progress=False)
    assert [r["step"] for r in result["history"]] == [1, 2, 3, 4]
    assert result["manifest"]["steps"] == 4 and result["manifest"]["settings"]["order"] == 1

    # a run interrupted (Ctrl-C) in step 3 resumes to the same history as the uninterrupted one
    cut = videotrain.VideoTrainConfig(model="frameconv3d-order1", steps=4, ckpt_every=10,
                                      out_dir=str(tmp_path / "cut"))
    calls = []

    def interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return clip(*args, **kwargs)

    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", interrupt)
    with pytest.raises(KeyboardInterrupt):
        videotrain.train(cut, progress=False)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    resumed = videotrain.train(cut, progress=False)
    assert [r["loss"] for r in resumed["history"]] == pytest.approx(
        [r["loss"] for r in result["history"]], rel=1e-5)

    with pytest.raises(CheckpointError, match="another run"):
        videotrain.train(videotrain.VideoTrainConfig(model="frameconv3d-order2", steps=4,
                                                     out_dir=str(tmp_path / "run")))

    file = videotrain.export(tmp_path / "run", tmp_path / "weights")
    model, man = videotrain.load_weights(file)
    assert man["model"] == "frameconv3d-order1" and man["dtype"] == "float16"
    for k, v in model.state_dict().items():
        assert torch.equal(v, result["model"].state_dict()[k].half().float())
    state = torch.load(file, weights_only=True)
    state["model"]["g_s.0.weight"] = state["model"]["g_s.0.weight"][:1]
    torch.save(state, file)
    with pytest.raises(CheckpointError, match="SHA-256"):
        videotrain.load_weights(file)
    man_file = file.with_suffix(".json")
    man_json = json.loads(man_file.read_text())
    from nctutor.files import sha256

    man_file.write_text(json.dumps({**man_json, "sha256": sha256(file)}))
    with pytest.raises(CheckpointError, match="does not fit"):
        videotrain.load_weights(file)


def test_warm_start_from_exported_weights(tmp_path):
    videotrain.train(videotrain.VideoTrainConfig(steps=2, out_dir=str(tmp_path / "a")),
                     progress=False)
    file = videotrain.export(tmp_path / "a", tmp_path / "w")
    result = videotrain.train(videotrain.VideoTrainConfig(
        model="frameconv3d-order2", steps=1, init_from=str(file), out_dir=str(tmp_path / "b")),
        progress=False)
    assert result["manifest"]["settings"]["init"]["model"] == "frameconv3d-order1"
    with pytest.raises(CheckpointError, match="N=8"):
        videotrain.train(videotrain.VideoTrainConfig(steps=1, N=12, init_from=str(file),
                                                     out_dir=str(tmp_path / "c")))


def test_validation_scores_every_channel_step():
    torch.manual_seed(0)
    model = video.BinaryVideoCodec(1, N=8, C=16)
    groups = [_frames(4, 32, 32, seed=s) for s in range(2)]
    scores = videotrain.validate(model, groups)
    assert list(scores) == ["1", "2", "4", "8", "16"]
    assert model.training  # the mode it found
    with torch.no_grad():
        psnrs = [-10 * torch.log10(torch.mean((model(g[None], 4)["x_hat"][0].clamp(0, 1) - g) ** 2))
                 for g in groups]
    assert scores["4"] == pytest.approx(float(sum(psnrs) / 2), rel=1e-6)  # the mean of PSNRs
    assert scores["16"] != scores["1"]


def test_codes_are_bounded_so_the_first_order_loop_never_overloads():
    torch.manual_seed(0)
    model = video.BinaryVideoCodec(1, N=8, C=16)
    with torch.no_grad():
        for p in model.g_a[-1].parameters():
            p.mul_(100)  # an encoder that would send codes far beyond ±1
        c = model.codes(torch.rand(2, 8, 3, 32, 32))
    assert c.abs().max() <= 1  # tanh (float32 rounds its tails to ±1)
    _, y = modulate(c, 1, dim=2, return_states=True)
    assert y.abs().max() <= 2  # |y[i]| <= |y[i-1] - b[i-1]| + |c[i]| < 1 + 1
