"""Golden files: small ``.nct`` files of every kind and coder, written once (format version 4)
and committed in tests/golden, that must decode on whatever machine runs the tests — the same
symbols as where they were written (a hash of every tensor the entropy decoders return) and the
same 8-bit frames within ±1 level (``g_s`` is a float network). Remade, only when the format or
the shipped weights change, by ``python tests/portable_files.py tests/golden``."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from nctutor import container

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(Path(__file__).parent))
from portable_files import GOLDEN as NAMES  # noqa: E402
from portable_worker import decode  # noqa: E402

EXPECTED = json.loads((GOLDEN / "expected.json").read_text())


def test_every_golden_file_is_there():
    assert {Path(f).stem for f in EXPECTED} == set(NAMES)
    kinds = {container.read_header((GOLDEN / f).read_bytes()).kind for f in EXPECTED}
    assert kinds == {"image", "pframe", "video"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_golden_file_decodes_to_its_symbols_here(name):
    blob = (GOLDEN / name).read_bytes()
    h = container.read_header(blob)
    assert h.version == (2 if h.kind == "video" else 4)  # a video's bits use adaptive counts
    ref = EXPECTED[name]["reference"]
    latents, pixels = decode(GOLDEN / name, GOLDEN / ref if ref else None)
    assert latents == EXPECTED[name]["latents"]
    stored = np.load(GOLDEN / f"{Path(name).stem}.pixels.npz")["pixels"]
    assert pixels.shape == stored.shape
    assert np.abs(pixels.astype(np.int16) - stored.astype(np.int16)).max() <= 1
