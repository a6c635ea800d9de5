import dataclasses
import json

import pytest

from nctutor import config


def test_profiles_differ_only_in_sizes():
    fields = {f.name for f in dataclasses.fields(config.Profile)}
    for p in config.PROFILES.values():
        assert set(p.to_dict()) == fields
    smoke, cpu, gpu = (config.PROFILES[k] for k in ("smoke", "cpu", "gpu"))
    assert smoke.steps < cpu.steps < gpu.steps
    assert (gpu.N, gpu.M, gpu.patch_size) == (128, 192, 256)  # the papers' widths


def test_profile_from_env(monkeypatch):
    monkeypatch.setenv("NCTUTOR_PROFILE", "CPU")
    assert config.get_profile().name == "cpu"
    monkeypatch.delenv("NCTUTOR_PROFILE")
    assert config.get_profile().name == "smoke"
    assert config.get_profile("gpu", steps=7).steps == 7


def test_bad_profile_names_the_variable(monkeypatch):
    monkeypatch.setenv("NCTUTOR_PROFILE", "laptop")
    with pytest.raises(ValueError, match="NCTUTOR_PROFILE"):
        config.get_profile()
    with pytest.raises(TypeError, match="no field"):
        config.get_profile("smoke", widht=3)


def test_seeding_repeats():
    import torch

    config.seed_everything(3)
    a = torch.rand(4)
    config.seed_everything(3)
    assert torch.equal(a, torch.rand(4))


def test_data_roots(monkeypatch, tmp_path):
    monkeypatch.setenv("NCTUTOR_DATA", str(tmp_path))
    assert config.data_root_candidates() == [tmp_path]
    monkeypatch.delenv("NCTUTOR_DATA")
    roots = config.data_root_candidates()
    assert roots[-1] == (config.cache_dir() / "data").resolve()
    assert config.device().type in ("cpu", "cuda")


def test_machine_info_names_the_cpu_its_kernels_and_the_versions(monkeypatch):
    import torch

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    info = config.machine_info()
    assert isinstance(info["cpu"], str) and info["cpu"]
    assert set(info["simd"]) <= set(config.SIMD_FLAGS)
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["threads"] == torch.get_num_threads() and info["torch"] == torch.__version__
    assert info["numpy"] and info["compressai"]
    assert info["env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    json.dumps(info)  # it goes into JSON records
