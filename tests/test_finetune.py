"""Fine-tuning the decoder with lattice-cell noise (nctutor.finetune)."""

import math

import pytest
import torch

from nctutor import codecs
from nctutor.finetune import cell_noise, finetune_decoder
from nctutor.quant.lattice import quantize


@pytest.mark.parametrize("quantizer, lattice, second_moment", [
    ("scalar", "Z", 1 / 12),
    ("hex", "A2", 5 * math.sqrt(3) / 108),  # Appendix B, per coordinate
    ("oct", "A3*", 19 / (48 * (8 * math.sqrt(2)) ** (2 / 3))),
])
def test_cell_noise_is_uniform_over_the_cell(quantizer, lattice, second_moment):
    g = torch.Generator().manual_seed(0)
    v = {"scalar": 1, "hex": 2, "oct": 3}[quantizer]
    u = cell_noise((60_000, v), quantizer, g).double()
    assert torch.allclose(quantize(u, lattice), torch.zeros_like(u), atol=1e-6)  # inside the cell
    assert abs(float(u.pow(2).mean()) - second_moment) < 3e-3 * second_moment * 3
    assert abs(float(u.mean())) < 5e-3


def test_cell_noise_rejects_bad_arguments():
    g = torch.Generator()
    with pytest.raises(ValueError, match="quantizer"):
        cell_noise((4,), "square", g)
    with pytest.raises(ValueError, match="groups of 2"):
        cell_noise((3,), "hex", g)


def test_finetune_changes_only_the_synthesis_transform():
    model = codecs.create("mbt2018-mean", N=8, M=12).eval()
    model.update(force=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tuned, losses = finetune_decoder(model, "hex", steps=2, batch_size=2, patch_size=64,
                                     progress=False)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert not tuned.training
    after = tuned.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("g_s.") for k in changed)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # a copy
    assert codecs.model_fingerprint(tuned) == codecs.model_fingerprint(model)
