"""Lattice cells of a trained codec (nctutor.quant.cells) and their coder (nctutor.entropy.cells):
keys, cell probabilities against Gauss-Legendre and Monte Carlo, escapes, determinism, and
damaged streams."""

import hashlib
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from nctutor.entropy import cells as ecells
from nctutor.entropy import framing
from nctutor.errors import BitstreamError
from nctutor.quant import cells, lattice

QUANTIZERS = list(cells.QUANTIZERS)
LATTICE_QUANTIZERS = ["hex", "oct"]


def _gauss(scale: float, mean: float = 0.0):
    return lambda t: ndtr((t - mean) / scale)


def _densities(scales, means=None):
    """CDFs and boxes (±(6.5 σ + 1) around the mean, as the codec's Gaussian tables)."""
    means = means or [0.0] * len(scales)
    cdfs = [_gauss(s, m) for s, m in zip(scales, means, strict=True)]
    bounds = [(m - 6.5 * s - 1, m + 6.5 * s + 1) for s, m in zip(scales, means, strict=True)]
    return cdfs, bounds


def _monte_carlo(table: cells.CellTable, scales, means, n: int, seed: int) -> np.ndarray:
    """Hit frequency of every table index (the last: escape) for ``n`` Gaussian points quantized
    with :func:`nctutor.quant.lattice.quantize`, independently of :mod:`nctutor.quant.cells`'s
    own nearest-point code."""
    lat, v = cells.QUANTIZERS[table.quantizer]
    g = torch.Generator().manual_seed(seed)
    x = torch.tensor(means) + torch.tensor(scales) * torch.randn(n, v, generator=g,
                                                                    dtype=torch.float64)
    points = lattice.quantize(x, lat).numpy()
    keys = cells.to_keys(points, table.quantizer)
    assert np.allclose(cells.to_points(keys, table.quantizer), points, atol=1e-9)
    return np.bincount(table.index(keys), minlength=len(table.probs)) / n


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_keys_and_points_round_trip(quantizer):
    lat, v = cells.QUANTIZERS[quantizer]
    assert cells.dimension(quantizer) == v
    rng = np.random.default_rng(0)
    r = rng.normal(0, 4, size=(5000, v))
    keys = cells.quantize_keys(r, quantizer)
    assert keys.dtype == np.int64 and keys.shape == (5000, v)
    points = cells.to_points(keys, quantizer)
    # the keys name the nearest lattice point, the one nctutor.quant.lattice finds
    expected = lattice.quantize(torch.from_numpy(r), lat).numpy()
    assert np.allclose(points, expected, atol=1e-12)
    assert np.array_equal(cells.to_keys(points, quantizer), keys)
    if v > 1:  # A2, A3*: the entries of a key have one parity
        assert np.all((keys - keys[:, :1]) % 2 == 0)
    # any key of that parity is a lattice point, and comes back from its point
    k = rng.integers(-50, 50, size=(2000, v))
    if v > 1:
        k[:, 1:] += (k[:, :1] - k[:, 1:]) % 2
    p = cells.to_points(k, quantizer)
    assert np.allclose(lattice.quantize(torch.from_numpy(p), lat).numpy(), p, atol=1e-12)
    assert np.array_equal(cells.to_keys(p, quantizer), k)


def test_unknown_quantizer_and_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="unknown quantizer 'd4'"):
        cells.dimension("d4")
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        cells.quantize_keys(np.zeros((4, 3)), "hex")
    with pytest.raises(ValueError, match="needs 3 CDFs"):
        cells.cell_probabilities(np.zeros((1, 3), np.int64), "oct", [_gauss(1.0)] * 2)


# --------------------------------------------------------------------------- probabilities


@pytest.mark.parametrize("quantizer", QUANTIZERS)
@pytest.mark.parametrize("scale", [0.11, 0.3, 1.0, 3.0])
def test_cell_probabilities_sum_to_one(quantizer, scale):
    """With every cell above 1e-14 kept (a wide box), the cells' probabilities add up to 1: the
    midpoint sum tiles the plane (space) as the cells do (measured: 1 - sum < 1e-10)."""
    v = cells.dimension(quantizer)
    scales = [scale * (1 + 0.25 * i) for i in range(v)]
    means = [0.37 * (i + 1) for i in range(v)]
    cdfs = [_gauss(s, m) for s, m in zip(scales, means, strict=True)]
    bounds = [(m - 8 * s - 2, m + 8 * s + 2) for s, m in zip(scales, means, strict=True)]
    table = cells.cell_table(quantizer, cdfs, bounds, min_prob=1e-14)
    p = table.probs[:-1]
    assert np.all(p >= 1e-14) and abs(1 - p.sum()) < 1e-9
    # the default table (min_prob 1e-7): the escape takes the mass left out, at least 2^-20
    table = cells.cell_table(quantizer, cdfs, bounds)
    assert table.probs[-1] == pytest.approx(max(1 - table.probs[:-1].sum(), 2.0 ** -20),
                                            abs=1e-12)
    assert table.probs[-1] < 1e-3


# The default midpoint sums (24 slabs for the hexagon, 10 × 10 for the truncated octahedron) are
# not exact. Measured against fine sums (hexagon: 400 slabs; octahedron: 60 × 60) on zero-mean
# Gaussians of the scales of CompressAI's 64-entry table (the codec's tables; hexagon: scales up
# to 22, octahedron: up to 4.4, where the tables reach 30 000 cells): the largest absolute error
# of a cell probability is 9.4e-5 (hexagon, σ = 0.29) and 3.3e-3 (octahedron, σ = 0.26). The
# coding cost of that error (the Kullback-Leibler divergence of the table from the fine
# probabilities) is at most 1.1e-7 (hexagon) and 1.2e-4 (octahedron) bits per cell. The
# tolerances below are
# those errors with a margin, plus 4.5 Monte Carlo standard errors where Monte Carlo is the
# reference.
HEX_MIDPOINT_ERROR = 1.5e-4
OCT_MIDPOINT_ERROR = 5e-3
OCT_FINE_SLABS, OCT_FINE_ERROR = 60, 3e-4  # O(slab²): 60 slabs are 36× closer than 10

CASES = [((0.11, 0.11), (0.0, 0.0)), ((0.3, 0.5), (0.13, -0.21)), ((1.0, 2.0), (-0.4, 0.25)),
         ((3.0, 1.5), (0.0, 0.7))]


@pytest.mark.parametrize("scales, means", CASES)
def test_hexagon_agrees_with_gauss_legendre(scales, means):
    """The codec's midpoint sum against Appendix E's integral as
    :func:`nctutor.quant.lattice.hexagon_cell_probability` computes it (Gauss-Legendre, 31
    nodes per half, the corrected Eq. 12)."""
    cdfs, bounds = _densities(scales, means)
    table = cells.cell_table("hex", cdfs, bounds)
    centers = torch.from_numpy(cells.to_points(table.keys, "hex"))
    gl = lattice.hexagon_cell_probability(centers, means, scales).numpy()
    assert np.abs(table.probs[:-1] - gl).max() < HEX_MIDPOINT_ERROR
    assert table.probs[:-1].sum() == pytest.approx(gl.sum(), abs=1e-6)


@pytest.mark.parametrize("scales, means", CASES)
def test_hexagon_agrees_with_monte_carlo(scales, means):
    cdfs, bounds = _densities(scales, means)
    table = cells.cell_table("hex", cdfs, bounds)
    n = 400_000
    freq = _monte_carlo(table, scales, means, n, seed=1)
    p = table.probs
    top = np.argsort(p[:-1])[::-1][:8]  # the most probable cells
    se = np.sqrt(p[top] * (1 - p[top]) / n)
    assert np.all(np.abs(freq[top] - p[top]) <= 4.5 * se + HEX_MIDPOINT_ERROR)
    assert freq[-1] < 1e-4  # hardly any point escapes


@pytest.mark.parametrize("scales, means", [
    ((0.11, 0.11, 0.11), (0.0, 0.0, 0.0)), ((0.26, 0.26, 0.26), (0.0, 0.0, 0.0)),
    ((0.15, 0.2, 0.25), (0.1, 0.2, 0.3)), ((0.5, 0.6, 0.7), (-0.3, 0.0, 0.4)),
    ((1.2, 1.5, 2.0), (0.0, 0.5, -0.5))])
def test_truncated_octahedron_agrees_with_monte_carlo(scales, means):
    """Monte Carlo hits of the A3* cells (points quantized by nctutor.quant.lattice) against the
    fine midpoint sum (within 4.5 standard errors and its own small error) and against the
    default one (within its measured error): the geometry is right, and what is left is the
    midpoint rule's O(slab²) error."""
    cdfs, bounds = _densities(scales, means)
    table = cells.cell_table("oct", cdfs, bounds)
    n = 400_000
    freq = _monte_carlo(table, scales, means, n, seed=2)
    top = np.argsort(table.probs[:-1])[::-1][:12]
    fine = cells.cell_probabilities(table.keys[top], "oct", cdfs, slabs=OCT_FINE_SLABS)
    se = np.sqrt(fine * (1 - fine) / n)
    assert np.all(np.abs(freq[top] - fine) <= 4.5 * se + OCT_FINE_ERROR)
    assert np.all(np.abs(freq[top] - table.probs[top]) <= 4.5 * se + OCT_MIDPOINT_ERROR)
    assert np.abs(table.probs[top] - fine).max() <= OCT_MIDPOINT_ERROR
    assert freq[-1] < 1e-4


def test_midpoint_error_shrinks_like_the_square_of_the_slab():
    """Halving the slab divides the octahedron's midpoint error by about 4 (O(slab²))."""
    cdfs, bounds = _densities((0.3, 0.3, 0.3))
    keys = cells.cell_table("oct", cdfs, bounds).keys
    ref = cells.cell_probabilities(keys, "oct", cdfs, slabs=120)
    errors = [np.abs(cells.cell_probabilities(keys, "oct", cdfs, slabs=n) - ref).max()
              for n in (10, 20, 40)]
    assert 2.5 < errors[0] / errors[1] < 6 and 2.5 < errors[1] / errors[2] < 6


def test_scalar_cells_are_exact_intervals():
    cdfs, bounds = _densities((0.7,), (0.2,))
    table = cells.cell_table("scalar", cdfs, bounds)
    k = table.keys[:, 0].astype(float)
    assert np.array_equal(table.probs[:-1], ndtr((k + 0.5 - 0.2) / 0.7) - ndtr((k - 0.5 - 0.2)
                                                                              / 0.7))


# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_keys_outside_the_table_map_to_the_escape(quantizer):
    v = cells.dimension(quantizer)
    cdfs, bounds = _densities([0.6] * v)
    table = cells.cell_table(quantizer, cdfs, bounds)
    n = len(table.keys)
    assert np.array_equal(table.index(table.keys), np.arange(n))
    far = np.full((1, v), 1000)  # far outside the lookup box: the escape
    below = np.full((1, v), -1000)
    assert table.index(far).tolist() == [n] and table.index(below).tolist() == [n]
    if v > 1:
        # inside the lookup box but not a kept cell: the box's corner (a cell of probability
        # far below 1e-7; for scalar the box holds only kept cells)
        corner = (table.lo + np.array(table.lut.shape) - 1)[None]
        assert not (table.keys == corner).all(1).any()
        assert table.index(corner).tolist() == [n]
        # a key of mixed parity is no lattice point: never in the table
        assert table.index(np.array([[0] + [1] * (v - 1)])).tolist() == [n]
    mixed = np.concatenate([table.keys[:3], far, table.keys[-2:]])
    assert table.index(mixed).tolist() == [0, 1, 2, n, n - 2, n - 1]


_TABLES = textwrap.dedent("""
    import hashlib, sys
    import numpy as np
    from scipy.special import ndtr
    from nctutor.quant import cells
    h = hashlib.sha256()
    for quantizer, scales in (("hex", (0.7, 1.3)), ("oct", (0.4, 0.5, 0.6)),
                              ("scalar", (2.5,))):
        cdfs = [(lambda t, s=s: ndtr(t / s)) for s in scales]
        table = cells.cell_table(quantizer, cdfs, [(-6.5 * s - 1, 6.5 * s + 1) for s in scales])
        for a in (table.keys, table.probs, table.lo, table.lut):
            h.update(np.ascontiguousarray(a).tobytes())
    print(h.hexdigest())
""")


def test_tables_are_bit_identical_twice_and_in_another_process():
    """Encoder and decoder must compute the same tables: twice here, and in a fresh process
    (with another thread count), the same bytes."""
    run = {}
    for threads in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", _TABLES], capture_output=True, text=True,
                             timeout=300, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": threads})
        run[threads] = out.stdout.strip()
    here = {}
    for i in range(2):
        ns: dict = {}
        script = _TABLES.replace("print(h.hexdigest())", "result = h.hexdigest()")
        exec(compile(script, "<tables>", "exec"), ns)
        here[i] = ns["result"]
    assert here[0] == here[1] == run["1"] == run["2"]
    assert len(here[0]) == 64 and hashlib.sha256(b"").hexdigest() != here[0]


# --------------------------------------------------------------------------- entropy coding


def _streams(seed: int = 0):
    """Three tables (hex, oct, scalar), indices drawn from their probabilities plus some forced
    escapes, the escaped keys, and one empty index array."""
    rng = np.random.default_rng(seed)
    tables, indices, escapes = [], [], []
    for quantizer, scales in (("hex", (0.8, 0.8)), ("oct", (0.3, 0.4, 0.5)), ("scalar", (2.0,)),
                              ("hex", (0.2, 0.2))):
        cdfs, bounds = _densities(scales)
        table = cells.cell_table(quantizer, cdfs, bounds)
        keys = cells.quantize_keys(rng.normal(0, scales, size=(300, len(scales))), quantizer)
        keys[::37] += 40 * (1 + (len(scales) > 1))  # far cells (even shift keeps the parity)
        ix = table.index(keys)
        tables.append(table.probs)
        indices.append(ix)
        escapes.append(keys[ix == len(table.keys)].reshape(-1))
    tables.append(tables[0])
    indices.append(np.zeros(0, np.int64))
    return tables, indices, np.concatenate(escapes)


def test_cells_round_trip_with_escapes():
    tables, indices, escapes = _streams()
    n_escaped = sum(int((ix == len(t) - 1).sum()) for t, ix in zip(tables, indices, strict=True))
    assert n_escaped >= 20 and len(escapes) > n_escaped  # keys of v entries per escape
    assert escapes.min() < -20 or escapes.max() > 20
    blob = ecells.encode_cells(tables, indices, escapes)
    out, esc = ecells.decode_cells(blob, tables, [len(ix) for ix in indices])
    assert all(np.array_equal(a, b) for a, b in zip(out, indices, strict=True))
    assert np.array_equal(esc, escapes)
    assert ecells.encode_cells(tables, indices, escapes) == blob  # deterministic
    # extreme keys still round-trip
    big = np.array([2**40, -(2**40), 0, -1, 1], np.int64)
    blob = ecells.encode_cells(tables[:1], indices[:1], big)
    assert np.array_equal(ecells.decode_cells(blob, tables[:1], [len(indices[0])])[1], big)


def test_cells_with_other_tables_or_counts_are_refused():
    tables, indices, escapes = _streams()
    blob = ecells.encode_cells(tables, indices, escapes)
    counts = [len(ix) for ix in indices]
    swapped = [tables[1], tables[0], *tables[2:]]
    with pytest.raises(BitstreamError, match="CRC mismatch"):
        ecells.decode_cells(blob, [tables[3], *tables[1:3], tables[0], tables[4]], counts)
    with pytest.raises(BitstreamError):
        ecells.decode_cells(blob, swapped, counts)
    with pytest.raises(BitstreamError):
        ecells.decode_cells(blob, tables, [counts[0] - 1, *counts[1:]])
    with pytest.raises(ValueError, match="out of range"):
        ecells.encode_cells(tables[:1], [np.array([len(tables[0])])], np.zeros(0))


def test_damaged_cell_streams_raise_bitstream_error():
    """500 damaged streams (byte flips, bursts, truncations, appended bytes), seeded: each raises
    BitstreamError, never another exception, never decodes."""
    tables, indices, escapes = _streams(seed=3)
    counts = [len(ix) for ix in indices]
    blob = ecells.encode_cells(tables, indices, escapes)
    rng = random.Random(11)
    bad = [blob[:c] for c in range(0, len(blob), max(1, len(blob) // 60))]
    bad += [blob + extra for extra in (b"\0", b"\0\0\0\0", b"\x01\0\0\0", blob[-8:])]
    while len(bad) < 500:
        a = bytearray(blob)
        for p in rng.sample(range(len(a)), rng.choice((1, 1, 1, 2, 5))):
            a[p] ^= rng.randrange(1, 256)
        bad.append(bytes(a))
    for b in bad:
        assert b != blob
        with pytest.raises(BitstreamError):
            ecells.decode_cells(b, tables, counts)


def test_an_escaped_key_beyond_int64_is_a_bitstream_error():
    tables, indices, escapes = _streams()
    blob = ecells.encode_cells(tables, indices, escapes)
    n, pos = framing.get_uvarint(blob, 0, 9, "test")
    huge = framing.put_uvarint(1) + b"\xff" * 9 + b"\x7f"  # one escaped key, zigzag value ~2^70
    with pytest.raises(BitstreamError):
        ecells.decode_cells(huge + blob[pos:], tables, [len(ix) for ix in indices])
