"""The ``gpu`` profile, run on the CPU: every trainable model at the papers' widths.

Book chapter *How to run this book → Profiles*. For each model family of ``nctutor models``
(image codecs, binary video codecs, P-frame coders): two optimizer steps through its real
trainer at ``NCTUTOR_PROFILE=gpu`` (N=128, M=192; video N=128, C=256), the weights exported as
a maintainer ships them (fp16 + manifest) and loaded back, one small image (or group of frames,
or P-frame) coded to a ``.nct`` file and decoded. What it proves: shapes, export and coding
work at those widths, and memory stays sane, before the first Colab user finds out. What it
does not: anything about the quality of two steps.

Steps, batch and crop come from the trainers' config fields (2 steps, batches of 2, 64×64
crops; video 32×32). What has no config field is made small in the profile itself: the
validation that ends every run (one 128×128 Kodak crop, not 24 at 512×512; video: the first 12
frames of each clip, for training and validation), and the P-frame pairs (two pairs made by the
real :func:`nctutor.pframetrain.make_pair`, not the whole training set). Nothing trains on a GPU
here unless the machine has one: the trainers then use it, as they would on Colab.

Slow (4 to 5 minutes on 2 cores, peak memory 2.9 GB): ``make test`` skips it; run it with
``python -m pytest -m slow tests/test_gpu_profile.py``.
"""

import functools
import resource
from dataclasses import replace

import pytest
import torch

from nctutor import codecs, config, container, data, maintain, pframetrain, train, videotrain, zoo
from nctutor.codecs import conditional as cc
from nctutor.codecs import video
from nctutor.codecs.exact import has_exact_coder
from nctutor.codecs.latent import has_latent_codec

pytestmark = pytest.mark.slow

GPU = config.PROFILES["gpu"]
VIDEO_GPU = config.VIDEO_SIZES["gpu"]
#: Every image codec nctutor trains (``nctutor models``, kind image, source nctutor).
IMAGE_MODELS = codecs.IMAGE_MODELS + tuple(codecs.PREDICTORS) + tuple(codecs.NORMALIZED)
#: The most memory the test process may have held (its peak resident set), in MiB.
PEAK_MIB = 4096


@pytest.fixture(autouse=True)
def gpu_profile(monkeypatch):
    """``NCTUTOR_PROFILE=gpu`` (widths, schedules, mixed precision) with light validations."""
    monkeypatch.setenv("NCTUTOR_PROFILE", "gpu")
    monkeypatch.setitem(config.PROFILES, "gpu", replace(GPU, eval_images=1, val_crop=128))
    monkeypatch.setitem(config.VIDEO_SIZES, "gpu", replace(VIDEO_GPU, limit=12, val_crop=64))


def kodak_crop(size: int = 128, top: int = 200, left: int = 300) -> torch.Tensor:
    """A ``size × size`` crop of the first Kodak image, ``(3, size, size)`` in [0, 1]."""
    return data.kodak(1)[0][:, top : top + size, left : left + size]


def assert_memory_sane() -> None:
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    assert peak_mib < PEAK_MIB, f"peak memory {peak_mib:.0f} MiB"


def roundtrip(tmp_path, blob: bytes, name: str = "coded.nct") -> bytes:
    """``blob`` written to a real file and read back."""
    file = tmp_path / name
    file.write_bytes(blob)
    return file.read_bytes()


def test_every_trainable_family_is_here():
    listed = {m["name"] for m in zoo.models("gpu") if m["source"] == "nctutor"}
    assert listed == set(IMAGE_MODELS) | set(video.MODELS) | set(cc.CODERS)


# --------------------------------------------------------------------------- image codecs


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_image_codec(name, tmp_path):
    cfg = train.TrainConfig(model=name, quality=3, profile="gpu", steps=2, batch_size=2,
                            patch_size=64, out_dir=str(tmp_path / "run"),
                            amp=True)  # as on CUDA: the transforms under bfloat16 autocast
    result = train.train(cfg, progress=False)
    assert result.manifest["steps"] == 2 and len(result.history) == 2
    assert "val_psnr" in result.history[-1]  # the last step validates
    assert (result.manifest["settings"]["N"], result.manifest["settings"]["M"]) == (GPU.N, GPU.M)

    file = maintain.export(result, name, 3, tmp_path / "weights")
    assert next(p for k, p in torch.load(file)["model"].items() if "g_a" in k).dtype \
        == torch.float16
    model = zoo.load_exported(file)
    assert (model.N, model.M) == (GPU.N, GPU.M) and not model.training

    x = kodak_crop()
    coders = ["table"] + ["exact"] * has_exact_coder(name) + ["lattice"] * has_latent_codec(name)
    for coder in coders:
        quantizer = "hex" if coder == "lattice" else "scalar"
        blob = container.encode_image(model, x, name, 3, profile="gpu", coder=coder,
                                      quantizer=quantizer)
        header = container.read_header(blob)
        assert (header.N, header.M, header.profile) == (GPU.N, GPU.M, "gpu")
        x_hat = container.decode_image(roundtrip(tmp_path, blob), model)
        assert x_hat.shape == x.shape and torch.isfinite(x_hat).all(), coder
    assert_memory_sane()


# --------------------------------------------------------------------------- video codecs


@pytest.mark.parametrize("name", video.MODELS)
def test_video_codec(name, tmp_path):
    cfg = videotrain.VideoTrainConfig(model=name, profile="gpu", steps=2, batch_size=2,
                                      patch_size=32, out_dir=str(tmp_path / "run"))
    result = videotrain.train(cfg, progress=False)
    assert result["manifest"]["steps"] == 2
    assert "val_psnr" in result["history"][-1]

    file = videotrain.export(tmp_path / "run", tmp_path / "weights")
    net, man = videotrain.load_weights(file)
    assert (net.N, net.C, man["frames"]) == (VIDEO_GPU.N, VIDEO_GPU.C, VIDEO_GPU.frames)

    # a pan across a Kodak image, one group and a shorter one; 72×88: not multiples of 16
    frames = torch.stack([kodak_crop(88, left=300 + 3 * t)[:, :72] for t in range(11)])
    blob = container.encode_video(net, frames, name, "gpu", channels=net.C, group=man["frames"])
    decoded = torch.cat(list(container.decode_video(roundtrip(tmp_path, blob), net)))
    assert decoded.shape == frames.shape and torch.isfinite(decoded).all()
    assert_memory_sane()


# --------------------------------------------------------------------------- P-frame coders


@functools.cache
def small_pairs() -> tuple[dict, ...]:
    """Two training pairs of the real pair maker (a JPEG 2000 reference, block motion): a
    Kodak crop and the same crop moved by a few pixels."""
    return tuple({"clip": "kodak", "frame": i,
                  **pframetrain.make_pair(kodak_crop(96, left=300 + i), kodak_crop(96, left=305))}
                 for i in range(2))


@pytest.mark.parametrize("name", cc.CODERS)
def test_pframe_coder(name, tmp_path, monkeypatch):
    monkeypatch.setattr(pframetrain, "pairs", lambda split, profile=None: list(small_pairs()))
    cfg = pframetrain.PFrameTrainConfig(model=name, quality=2, profile="gpu", steps=2,
                                        batch_size=2, patch_size=64,
                                        out_dir=str(tmp_path / "run"))
    result = pframetrain.train(cfg, progress=False)
    assert result["manifest"]["steps"] == 2

    file = pframetrain.export(tmp_path / "run", tmp_path / "weights")
    net, man = pframetrain.load_weights(file)
    assert (net.N, net.M, man["profile"]) == (GPU.N, GPU.M, "gpu")

    ref, x = kodak_crop(96, left=300), kodak_crop(96, left=304)
    blob = container.encode_pframe(net, x, ref, name, 2, profile="gpu")
    x_hat = container.decode_pframe(roundtrip(tmp_path, blob), net, ref)
    assert x_hat.shape == x.shape and torch.isfinite(x_hat).all()
    assert_memory_sane()
