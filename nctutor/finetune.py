"""Fine-tuning a trained decoder for the error of a lattice quantizer (beyond the paper).

Defined in book section *Lattices and the latent shift on a trained codec → Fine-tuning the
decoder for the lattice*. The paper applies Hex-Quant and Oct-Quant to codecs trained with
additive noise uniform over the unit *cube* (rounding's relaxation) and names the mismatch as
future work (Section 6): the decoder never saw the error of a lattice quantizer, which is uniform
over the lattice's cell (a hexagon, a truncated octahedron), with larger maximum errors. Here only
the synthesis transform ``g_s`` is fine-tuned, with the encoder, the entropy models and hence
every bit of every file unchanged, so the rate cannot move and the comparison is of distortion
alone: ``D = MSE(x, g_s(y + u))`` with ``u`` uniform over the cell of ``noise``.

For a fair comparison every variant gets the same start (the shipped weights), the same steps,
crops (:class:`nctutor.data.PatchDataset`, seeded), batch size and learning rate; ``"scalar"``
fine-tunes with the unit-cube noise, so any gain of ``"hex"`` over it is the cell's, not the
extra training's.
"""

from __future__ import annotations

import copy

import torch
from tqdm.auto import tqdm

from . import data
from .quant.cells import QUANTIZERS
from .quant.lattice import generator_matrix, quantize

__all__ = ["cell_noise", "finetune_decoder"]


def cell_noise(shape: tuple[int, ...], quantizer: str, generator: torch.Generator
               ) -> torch.Tensor:
    """Noise uniform over the unit-volume cell of ``quantizer``, one cell per ``v`` consecutive
    elements of the flattened tensor (``shape``'s element count must be a multiple of ``v``).

    A point uniform in the fundamental parallelepiped of the lattice (``U B``, ``U`` uniform in
    ``[0, 1)^v``, ``B`` the generator matrix) minus its nearest lattice point is exactly uniform
    over the Voronoi cell. ``"scalar"`` gives ``U(-1/2, 1/2)``.
    Defined in book section *Lattices and the latent shift on a trained codec → Fine-tuning the
    decoder for the lattice*.
    """
    if quantizer not in QUANTIZERS:
        raise ValueError(f"quantizer must be one of {', '.join(QUANTIZERS)}, got {quantizer!r}")
    lattice, v = QUANTIZERS[quantizer]
    n = 1
    for s in shape:
        n *= s
    if n % v:
        raise ValueError(f"{n} elements do not split into groups of {v}")
    u = torch.rand(n // v, v, generator=generator, dtype=torch.float64)
    p = u @ generator_matrix(lattice)
    return (p - quantize(p, lattice)).reshape(shape).float()


def finetune_decoder(model: torch.nn.Module, quantizer: str = "hex", steps: int = 400,
                     batch_size: int = 8, patch_size: int = 128, lr: float = 1e-5,
                     seed: int = 0, progress: bool = True) -> tuple[torch.nn.Module, list]:
    """A copy of ``model`` whose ``g_s`` is fine-tuned on ``MSE(x, g_s(y + u))``, ``u`` from
    :func:`cell_noise` (``y = g_a(x)`` of the frozen encoder), on BSDS500 training crops.
    Returns the model (eval mode) and the loss of every step.
    Defined in book section *Lattices and the latent shift on a trained codec → Fine-tuning the
    decoder for the lattice*.
    """
    tuned = copy.deepcopy(model).train()
    for p in tuned.parameters():
        p.requires_grad_(False)
    params = list(tuned.g_s.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    crops = data.PatchDataset(patch_size=patch_size, epoch_size=steps * batch_size, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for step in tqdm(range(steps), desc=f"fine-tune g_s ({quantizer})", disable=not progress):
        x = torch.stack([crops[step * batch_size + i] for i in range(batch_size)])
        with torch.no_grad():
            y = tuned.g_a(x)
        loss = (tuned.g_s(y + cell_noise(tuple(y.shape), quantizer, gen)) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return tuned.eval(), losses
