"""Lattice cells of a trained codec's latents: integer keys and cell probabilities.

Written by hand: the lesson of book section *Lattices and the latent shift on a trained codec →
Coding lattice points*. A codec quantizes groups of ``v`` latents (centred on their predicted
means) to the nearest point of a unit-volume lattice (:func:`nctutor.quant.lattice.quantize`)
and entropy-codes *which cell* was hit. That needs two things, both here:

- **keys**: every lattice point as ``v`` integers, so that points can be looked up and stored
  (:func:`to_keys`, :func:`to_points`);
- **cell probabilities** ``P(c) = ∫_{cell(c)} p_1(u_1) ⋯ p_v(u_v) du``, Eq. (2) of Balcilar et al.
  (``balcilar2023``), for independent coordinates each with its own 1-D CDF ``F_i``
  (:func:`cell_probabilities`, :func:`cell_table`).

The quantizers (name → lattice, dimension ``v``):

=========  ======  ===  ====================================================================
name       lattice  v   cell
=========  ======  ===  ====================================================================
scalar     Z        1   the interval ``[k - 1/2, k + 1/2)``: rounding
hex        A2       2   the regular hexagon of unit area (Fig. 5a; side ``A2_SIDE``)
oct        A3*      3   the truncated octahedron of unit volume (Fig. 5b)
=========  ======  ===  ====================================================================

*Keys.* ``Z``: the integer itself. ``A2`` = two cosets of ``3a Z × √3 a Z``: the point
``(1.5 a u, (√3/2) a w)`` with ``u ≡ w (mod 2)``. ``A3*`` = ``s (Z^3 ∪ (Z^3 + 1/2))`` with
``s = A3STAR_SCALE``: the point ``(s/2) n`` with the three entries of ``n`` of equal parity.

*Cell probabilities.* Appendix E integrates the hexagon with the inner (``x``) integral in closed
form and the outer one numerically. Here the outer integral is a Riemann–Stieltjes midpoint
sum that needs only the CDFs, so the same code serves a Gaussian (mean-scale hyperprior) and the
factorized prior's learned CDF: split the cell into ``slabs`` along ``u_2`` (and ``u_3``), weigh
each slab by ``F_2(t_{k+1}) - F_2(t_k)`` and take the closed-form inner integral
``F_1(c_1 + h) - F_1(c_1 - h)`` at the slab's mid-height half-width ``h``. The error is
``O(slab²)`` (checked against Monte Carlo in ``tests/test_cells.py``); the numbers are a
deterministic function of the CDFs (float64 numpy, no threads), so encoder and decoder compute
identical tables, which is all an entropy coder needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .lattice import A2_SIDE, A3STAR_SCALE, quantize

__all__ = ["QUANTIZERS", "CellTable", "cell_probabilities", "cell_table", "dimension",
           "estimated_cells", "quantize_keys", "to_keys", "to_points"]

#: quantizer name → (lattice name of :mod:`nctutor.quant.lattice`, dimension v).
QUANTIZERS: dict[str, tuple[str, int]] = {"scalar": ("Z", 1), "hex": ("A2", 2), "oct": ("A3*", 3)}

#: Key → point scale of each coordinate (see *Keys* in the module docstring).
_KEY_STEP = {
    "scalar": (1.0,),
    "hex": (1.5 * A2_SIDE, math.sqrt(3.0) / 2 * A2_SIDE),
    "oct": (A3STAR_SCALE / 2,) * 3,
}

#: Half-extents of each cell's bounding box, per coordinate.
_HALF_EXTENT = {
    "scalar": (0.5,),
    "hex": (A2_SIDE, math.sqrt(3.0) / 2 * A2_SIDE),
    "oct": (A3STAR_SCALE / 2,) * 3,
}

#: Cells per batch of :func:`cell_probabilities` (memory: about 2 KB per cell for ``oct``).
_CHUNK = 1 << 16

#: Slabs per axis of the midpoint sum (hexagon: along u_2; truncated octahedron: u_2 × u_3).
SLABS = {"hex": 24, "oct": 10}


def _check(quantizer: str) -> None:
    if quantizer not in QUANTIZERS:
        raise ValueError(f"unknown quantizer {quantizer!r}; valid: {', '.join(QUANTIZERS)}")


def dimension(quantizer: str) -> int:
    """``v``, the number of latents a cell of ``quantizer`` holds (1, 2 or 3).

    A helper of book section *Lattices and the latent shift on a trained codec → Coding lattice
    points*; no page calls it.
    """
    _check(quantizer)
    return QUANTIZERS[quantizer][1]


def to_points(keys: np.ndarray, quantizer: str) -> np.ndarray:
    """The lattice points (float64, shape ``(..., v)``) of integer ``keys`` (same shape).

    Defined in book section *Lattices and the latent shift on a trained codec → Coding lattice
    points*.
    """
    _check(quantizer)
    return np.asarray(keys, dtype=np.float64) * np.array(_KEY_STEP[quantizer])


def to_keys(points: np.ndarray, quantizer: str) -> np.ndarray:
    """The integer keys (int64, shape ``(..., v)``) of lattice ``points``; inverse of
    :func:`to_points` (points must be lattice points up to rounding error).

    Defined in book section *Lattices and the latent shift on a trained codec → Coding lattice
    points*.
    """
    _check(quantizer)
    return np.rint(np.asarray(points, dtype=np.float64) / np.array(_KEY_STEP[quantizer])
                   ).astype(np.int64)


def quantize_keys(r: np.ndarray, quantizer: str) -> np.ndarray:
    """Keys of the nearest lattice points of the rows of ``r`` (shape ``(n, v)``, float).

    The nearest-point decoders of :func:`nctutor.quant.lattice.quantize` in float64.
    Defined in book section *Lattices and the latent shift on a trained codec → Coding lattice
    points*.
    """
    lattice, v = QUANTIZERS[quantizer] if quantizer in QUANTIZERS else (None, 0)
    _check(quantizer)
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != v:
        raise ValueError(f"r must have shape (n, {v}) for {quantizer!r}, got {r.shape}")
    if quantizer == "scalar":
        return np.rint(r).astype(np.int64)
    return to_keys(quantize(torch.from_numpy(r), lattice).numpy(), quantizer)


CDF = Callable[[np.ndarray], np.ndarray]


def cell_probabilities(keys: np.ndarray, quantizer: str, cdfs: Sequence[CDF],
                       slabs: int | None = None) -> np.ndarray:
    """``P(c)`` of Eq. (2) for the cells of ``keys`` (shape ``(K, v)``) under independent
    coordinates with CDFs ``cdfs`` (``v`` vectorized float64 functions).

    ``scalar``: ``F(k + 1/2) - F(k - 1/2)`` exactly. ``hex``, ``oct``: the midpoint sum of the
    module docstring with ``slabs`` slabs per axis (default :data:`SLABS`). Negative round-off
    is clipped to 0.
    Defined in book section *Lattices and the latent shift on a trained codec → Coding lattice
    points*.
    """
    v = dimension(quantizer)
    if len(cdfs) != v:
        raise ValueError(f"{quantizer!r} needs {v} CDFs, got {len(cdfs)}")
    c = to_points(keys, quantizer)
    if c.ndim != 2 or c.shape[1] != v:
        raise ValueError(f"keys must have shape (K, {v}), got {np.shape(keys)}")
    if len(c) > _CHUNK:  # bounded memory; every cell's number is computed alone, so the same
        return np.concatenate([cell_probabilities(keys[i : i + _CHUNK], quantizer, cdfs, slabs)
                               for i in range(0, len(c), _CHUNK)])
    f1 = cdfs[0]
    if quantizer == "scalar":
        return np.clip(f1(c[:, 0] + 0.5) - f1(c[:, 0] - 0.5), 0.0, None)
    n = slabs or SLABS[quantizer]
    if quantizer == "hex":
        h = math.sqrt(3.0) / 2 * A2_SIDE                   # half-height of the hexagon
        edges = np.linspace(-h, h, n + 1)
        mid = (edges[:-1] + edges[1:]) / 2
        half = A2_SIDE - np.abs(mid) / math.sqrt(3.0)      # half-width at mid-height (Eq. 11)
        f2 = cdfs[1]
        mass = np.diff(f2(c[:, 1:2] + edges), axis=1)      # (K, n): F_2 over each slab
        inner = f1(c[:, 0:1] + half) - f1(c[:, 0:1] - half)
        return np.clip((mass * inner).sum(1), 0.0, None)
    half_side = A3STAR_SCALE / 2                           # the cube |u_i| <= s/2 ...
    edges = np.linspace(-half_side, half_side, n + 1)
    mid = np.abs(edges[:-1] + edges[1:]) / 2
    # ... cut by the octahedron |u_1| + |u_2| + |u_3| <= 3s/4: half-width along u_1 per (u_2, u_3)
    half = np.clip(np.minimum(half_side, 1.5 * half_side - mid[:, None] - mid[None, :]), 0, None)
    widths, cls = np.unique(half.reshape(-1), return_inverse=True)  # few distinct half-widths
    m2 = np.diff(cdfs[1](c[:, 1:2] + edges), axis=1)       # (K, n)
    m3 = np.diff(cdfs[2](c[:, 2:3] + edges), axis=1)
    mass = (m2[:, :, None] * m3[:, None, :]).reshape(len(c), -1)
    inner = f1(c[:, 0:1] + widths) - f1(c[:, 0:1] - widths)   # (K, distinct widths)
    total = np.zeros(len(c))
    for u in range(len(widths)):  # plain sums (no BLAS): the same numbers at any thread count
        total += mass[:, cls == u].sum(1) * inner[:, u]
    return np.clip(total, 0.0, None)


def estimated_cells(scales: Sequence[float], min_prob: float = 1e-7) -> float:
    """About how many cells of unit volume a table of independent Gaussians of ``scales`` keeps
    (those of probability >= ``min_prob``): the ellipsoid where the density exceeds ``min_prob``,
    ``Σ (u_i/σ_i)² <= 2 ln(min_prob⁻¹ / Π √(2π) σ_i)``, has volume ``V_v R^v Π σ_i``; plus one
    (infinite when even the peak cell falls below ``min_prob``).
    Lets a codec refuse or avoid a table too large to build before building it.
    A helper of book section *Lattices and the latent shift on a trained codec → Coding lattice
    points*; no page calls it.
    """
    v = len(scales)
    prod = math.prod(math.sqrt(2 * math.pi) * s for s in scales)
    if min_prob * prod >= 1:  # no cell reaches min_prob: such a table cannot be built
        return math.inf
    r2 = 2 * math.log(1 / (min_prob * prod))
    ball = math.pi ** (v / 2) / math.gamma(v / 2 + 1)
    return ball * r2 ** (v / 2) * math.prod(scales) + 1


@dataclass(frozen=True)
class CellTable:
    """The coded alphabet of one group of ``v`` coordinates: the likely cells and an escape.

    Attributes:
        quantizer: ``"scalar"``, ``"hex"`` or ``"oct"``.
        keys: ``(K, v)`` int64 keys of the cells in the alphabet.
        probs: ``(K + 1,)`` float64 probabilities; the last is the escape (every other cell).
        lo: ``(v,)`` smallest key of the lookup box; ``lut``: key − lo → index (int32),
            ``K`` = escape.

    Defined in book section *Lattices and the latent shift on a trained codec → Coding lattice
    points*.
    """

    quantizer: str
    keys: np.ndarray
    probs: np.ndarray
    lo: np.ndarray
    lut: np.ndarray

    def index(self, keys: np.ndarray) -> np.ndarray:
        """Alphabet index of each row of ``keys`` (``K`` = escape for cells outside the table)."""
        keys = np.asarray(keys, dtype=np.int64)
        rel = keys - self.lo
        inside = np.all((rel >= 0) & (rel < np.array(self.lut.shape)), axis=1)
        out = np.full(len(keys), len(self.keys), dtype=np.int64)
        out[inside] = self.lut[tuple(rel[inside].T)]  # int32 → int64
        return out


def cell_table(quantizer: str, cdfs: Sequence[CDF], bounds: Sequence[tuple[float, float]],
               min_prob: float = 1e-7, escape_floor: float = 2.0 ** -20) -> CellTable:
    """The alphabet of one group: every cell of probability at least ``min_prob`` whose lattice
    point lies in the box ``bounds`` (one ``(lo, hi)`` per coordinate, where the CDFs are
    essentially 0 and 1), plus an escape symbol.

    As Appendix D.3 of the paper: an arithmetic coder cannot give rare cells their tiny
    probabilities, so cells below ``min_prob`` (the paper's 1e-7) leave the alphabet. Unlike the
    paper, which moves such latents to a kept cell, they are coded through the escape (whose
    probability is the mass left out, at least ``escape_floor``) followed by their keys, so every
    latent keeps its nearest point. Defined in book section *Lattices and the latent shift on a
    trained codec → Coding lattice points*.
    """
    v = dimension(quantizer)
    if len(bounds) != v:
        raise ValueError(f"{quantizer!r} needs {v} bounds, got {len(bounds)}")
    step = np.array(_KEY_STEP[quantizer])
    # Enumerate only cells whose bounding box has probability >= min_prob (a product of 1-D
    # probabilities, an upper bound of the cell's): a ball of cells, not the whole box.
    grid = np.zeros((1, 0), np.int64)
    bound = np.ones(1)
    for i, ((b_lo, b_hi), s_i) in enumerate(zip(bounds, step, strict=True)):
        ks = np.arange(math.floor(b_lo / s_i) - 1, math.ceil(b_hi / s_i) + 2)
        box = cdfs[i](ks * s_i + _HALF_EXTENT[quantizer][i]) - cdfs[i](
            ks * s_i - _HALF_EXTENT[quantizer][i])
        step_rows = max(1, (1 << 22) // len(ks))  # bounded memory, the same order as at once
        parts, bounds_next = [], []
        for r0 in range(0, len(grid), step_rows):
            prod = bound[r0 : r0 + step_rows, None] * box[None, :]
            rows, cols = np.nonzero(prod >= min_prob)
            parts.append(np.concatenate([grid[r0 + rows], ks[cols, None]], axis=1))
            bounds_next.append(prod[rows, cols])
        grid, bound = np.concatenate(parts), np.concatenate(bounds_next)
    if v > 1:  # A2 and A3*: all coordinates of a key have the same parity
        grid = grid[np.all((grid - grid[:, :1]) % 2 == 0, axis=1)]
    if len(grid) == 0:
        raise ValueError("no cell has probability >= min_prob: are the CDFs and bounds right?")
    p = cell_probabilities(grid, quantizer, cdfs)
    keep = p >= min_prob
    keys, p = grid[keep], p[keep]
    if len(keys) == 0:
        raise ValueError("no cell has probability >= min_prob: are the CDFs and bounds right?")
    lo, hi = keys.min(0), keys.max(0)
    escape = max(1.0 - float(p.sum()), escape_floor)
    lut = np.full(tuple(hi - lo + 1), len(keys), dtype=np.int32)  # half the memory of int64
    lut[tuple((keys - lo).T)] = np.arange(len(keys))
    return CellTable(quantizer=quantizer, keys=keys, probs=np.append(p, escape), lo=lo, lut=lut)
