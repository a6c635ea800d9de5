"""Shared fixtures. Tests run at the smoke profile and never touch the user's cache."""

import pytest


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("NCTUTOR_PROFILE", "smoke")
    monkeypatch.setenv("NCTUTOR_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("NCTUTOR_MIRROR", raising=False)
    monkeypatch.delenv("NCTUTOR_OFFLINE", raising=False)


def finished_run(arch: str, quality: int = 3, N: int = 8, M: int = 8, seed: int = 0,
                 out_dir=None, history=()):
    """A complete run in the cache (or in ``out_dir``), made by hand (an untrained tiny model,
    the training ``history`` given): what zoo.load finds. Shared by the command-line tests
    (``from conftest import finished_run``)."""
    import json

    import torch

    from nctutor import checkpoints, codecs, config, train

    cfg = train.TrainConfig(model=arch, quality=quality, out_dir=out_dir and str(out_dir))
    steps = config.get_profile().steps  # complete: as many steps as the profile asks
    settings = {**cfg.resolved(), "N": N, "M": M, "steps": steps}
    torch.manual_seed(seed)
    net = codecs.create(arch, N=N, M=M)
    run = train.run_dir(cfg)
    run.mkdir(parents=True)
    torch.save({"settings": settings, "model": net.state_dict(), "step": steps,
                "history": list(history)},
               run / checkpoints.CHECKPOINT)
    (run / checkpoints.MANIFEST).write_text(json.dumps({"steps": steps, "settings": settings}))
    return run


@pytest.fixture
def one_thread():
    """Torch on one thread for the test, restored afterwards (use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture
def kodak_png(tmp_path):
    """A 70×90 crop of the first Kodak image as a PNG file."""
    from nctutor import data

    file = tmp_path / "crop.png"
    data.save_image(data.kodak(1)[0][:, 200:270, 300:390], file)  # 70×90
    return file
