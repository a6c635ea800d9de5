"""Start-up: ``import nctutor`` keeps CompressAI's point-cloud datasets and transforms, and the
torchvision and PyTorch Geometric imports of its transform registry, out of the import path
(seconds on a small machine), and nothing of CompressAI is lost: the stand-ins of
``nctutor/__init__.py`` import the real modules on first use. Each test runs a fresh interpreter,
since this test session has imported them all long ago."""

import json
import os
import subprocess
import sys

import pytest

from nctutor import data

# SymPy too: the derivations are for the book's pages, not for the command line
KEPT_OUT = ("torch_geometric", "torchvision", "compressai.datasets.pointcloud", "sympy")


def _python(code: str) -> str:
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "NCTUTOR_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_compress_imports_no_point_clouds(tmp_path):
    src = tmp_path / "crop.png"
    data.save_image(data.kodak(1)[0][:, :48, :64], src)
    env_profile = "import os; os.environ.pop('NCTUTOR_PROFILE', None)"  # the shipped weights
    said = _python(f"""{env_profile}
import sys
from nctutor import cli
status = cli.main(["compress", {str(src)!r}, {str(tmp_path / "a.nct")!r},
                   "--model", "bmshj2018-factorized", "--quality", "1"])
# a scan of sys.modules, as inspect and pickle do, reads the stand-ins' dunders: no import
[getattr(m, "__file__", None) for m in list(sys.modules.values())]
print(status, sorted(m for m in {KEPT_OUT!r} if m in sys.modules))""")
    assert said.splitlines()[-1] == "0 []"
    assert (tmp_path / "a.nct").stat().st_size > 0


REPORT = f"""
import json, sys
import compressai
from compressai import registry
before = sorted(m for m in {KEPT_OUT!r} if m in sys.modules)
from compressai.datasets.image import ImageFolder as same  # a submodule imports as usual
from compressai.datasets import ImageFolder  # the first use imports the real module
assert compressai.datasets.ImageFolder is ImageFolder is same
assert registry.DATASETS["ImageFolder"] is ImageFolder
import torch_geometric.transforms
assert registry.TRANSFORMS["Compose"] is torch_geometric.transforms.Compose  # as in CompressAI
from compressai.transforms import RandomSample
assert registry.TRANSFORMS["RandomSample"] is RandomSample
print(json.dumps({{"before": before, "transforms": sorted(registry.TRANSFORMS),
                  "datasets": sorted(registry.DATASETS), "models": sorted(registry.MODELS)}}))
"""


def test_compressai_datasets_and_transforms_load_on_first_use():
    deferred = json.loads(_python("import nctutor\n" + REPORT).splitlines()[-1])
    assert deferred["before"] == []
    assert {"ImageFolder", "Vimeo90kDataset", "ModelNetDataset"} <= set(deferred["datasets"])
    assert {"Compose", "RandomCrop", "NormalizeScale", "RandomSample"} <= set(
        deferred["transforms"])


@pytest.mark.slow  # two fresh interpreters import torch_geometric: 15-20 s on 2 busy cores
def test_compressai_is_whole_on_first_use():
    """The registries of CompressAI are the same with nctutor imported first (once
    ``compressai.datasets`` and the transform table are used) as without it."""
    plain = json.loads(_python(REPORT).splitlines()[-1])
    deferred = json.loads(_python("import nctutor\n" + REPORT).splitlines()[-1])
    assert plain["before"] == sorted(KEPT_OUT) and deferred["before"] == []
    for key in ("transforms", "datasets", "models"):
        assert deferred[key] == plain[key] and plain[key], key
