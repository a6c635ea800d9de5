"""The Colab cell on a machine like Colab's: a fresh virtual environment that already holds
numpy 2, torch and the rest of what Colab ships, then the cell itself, run as on Colab (the
repository's package in place of the git URL). pip must leave numpy alone, and nctutor must write
there the same .nct bytes as here."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_book import COLAB_CELL, ROOT

from nctutor import data

GIT_SPEC = '"nctutor @ git+https://github.com/nctutor/nctutor"'
# What Colab's runtime ships that nctutor or the cell use (Colab has them at numpy 2); the cell
# installs the rest. torch 2.13.0 is the CPU wheel on this machine's disk (torchvision is not
# needed: nctutor defers the CompressAI modules that import it).
COLAB_SHIPS = ["numpy>=2,<2.3", "torch==2.13.0", "scipy", "pandas", "matplotlib", "pillow",
               "sympy", "tqdm", "ipywidgets", "requests"]

# The shipped q3 models on a 128×192 crop of kodim01: per model, the .nct file (hex) and the
# SHA-256 of its decoded 8-bit image. Run here and, after the cell, in the new environment.
ENCODE = """
import hashlib
from nctutor import container, data, zoo

def encode_crop():
    x = data.kodak(1)[0][:, 128:256, 256:448]
    codes = {}
    for name in ("mbt2018-mean", "bmshj2018-factorized"):
        model = zoo.load_exported(zoo.WEIGHTS_DIR / f"{name}-q3.pt")
        blob = container.encode_image(model, x, name, 3)
        x_hat = data.to_uint8(container.decode_image(blob, model))
        codes[name] = [blob.hex(), hashlib.sha256(x_hat.numpy().tobytes()).hexdigest()]
    return codes
"""
# After the cell: what a page imports first, then the crop; prints JSON.
CHECK = """
import json
import numpy
import nctutor.container, nctutor.zoo
from compressai.entropy_models import GaussianConditional  # as book pages import them
from compressai.layers import GDN
""" + ENCODE + """
print(json.dumps({"numpy": numpy.__version__, "codes": encode_crop()}))
"""


def encode_crop() -> dict[str, list[str]]:
    """ENCODE's ``encode_crop`` in this process: the reference."""
    space: dict = {}
    exec(ENCODE, space)
    return space["encode_crop"]()


def _run(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


def _tail(proc: subprocess.CompletedProcess) -> str:
    return "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])


def test_the_colab_cell_keeps_numpy_2_and_the_bytes(tmp_path):
    # the data the cell fetches and the checks read: this checkout's, no download
    kodak = data.path("kodak/kodim01.png")
    env = {**os.environ, "NCTUTOR_DATA": str(kodak.parents[1]), "NCTUTOR_OFFLINE": "1"}
    env.pop("VIRTUAL_ENV", None)

    # the machine as Colab starts it
    made = _run([sys.executable, "-m", "venv", str(tmp_path / "venv")], env, tmp_path)
    if made.returncode:
        pytest.skip(f"cannot create a virtual environment here:\n{_tail(made)}")
    python = str(tmp_path / "venv" / "bin" / "python")
    shipped = _run([python, "-m", "pip", "install", "-q", *COLAB_SHIPS], env, tmp_path)
    if shipped.returncode:
        pytest.skip(f"cannot install Colab's packages (numpy 2, torch 2.13.0 CPU, …) offline "
                    f"from the local mirror and wheels:\n{_tail(shipped)}")
    numpy_version = [python, "-c", "import numpy; print(numpy.__version__)"]
    before = _run(numpy_version, env, tmp_path).stdout.strip()
    assert before.startswith("2."), before

    # the cell, as on Colab, with a clean copy of the package in place of the repository
    source = tmp_path / "nctutor-src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "nctutor", source / "nctutor",
                    ignore=shutil.ignore_patterns("__pycache__"))
    assert COLAB_CELL.count(GIT_SPEC) == 1
    cell = COLAB_CELL.replace(GIT_SPEC, repr(str(source)))
    colab = 'import sys, types\nsys.modules["google.colab"] = types.ModuleType("google.colab")\n'
    ran = _run([python, "-c", colab + cell], env, tmp_path)
    if ran.returncode:
        # compressai, constriction… come from PyPI, not the local mirror: offline, they can't
        reach = _run([python, "-m", "pip", "download", "-q", "--no-deps", "-d",
                      str(tmp_path / "probe"), "compressai==1.2.8"], env, tmp_path)
        if reach.returncode:
            pytest.skip(f"PyPI is out of reach (the cell installs CompressAI from it):\n"
                        f"{_tail(reach)}")
    assert ran.returncode == 0, f"the Colab cell failed:\n{_tail(ran)}"

    checked = _run([python, "-c", CHECK], env, tmp_path)
    assert checked.returncode == 0, f"nctutor does not work after the cell:\n{_tail(checked)}"
    there = json.loads(checked.stdout.strip().splitlines()[-1])
    assert there["numpy"] == before, f"the cell changed numpy from {before} to {there['numpy']}"
    assert there["codes"] == encode_crop()  # same .nct bytes and decoded image as in this venv
