"""Files that decode on any machine (format version 4, :mod:`nctutor.entropy.integer`).

- the integer networks are exact: the same numbers in any order of summation, at any thread
  count, and close to the float networks they come from;
- the portable tables are CompressAI's up to the last bits;
- the cross-kernel matrix: every shipped model with every coder and quantizer, encoded here
  under default kernels, decoded in fresh processes under other kernels (oneDNN limited to AVX2,
  ATen's scalar kernels, numpy without AVX-512, 1 and 2 threads): the same symbols (a hash of
  every tensor the entropy decoders return) and the same 8-bit frames within ±1 level;
- files of format versions 2 and 3 (float entropy parameters) still decode on this machine.
"""

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nctutor import container, data, zoo
from nctutor.entropy import integer

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from portable_files import write_matrix  # noqa: E402

#: numpy's AVX-512 dispatch targets, switched off in some decoders (those this numpy knows).
_AVX512 = ("AVX512F", "AVX512CD", "AVX512_SKX", "AVX512_CLX", "AVX512_CNL", "AVX512_ICL",
           "AVX512_SPR")


def _numpy_without_avx512() -> dict[str, str]:
    from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    off = [f for f in _AVX512 if __cpu_features__.get(f) and f in __cpu_dispatch__]
    return {"NPY_DISABLE_CPU_FEATURES": " ".join(off)} if off else {}


#: The decoders' kernel settings: the first is the reference (what this machine does by
#: default); the others are what another CPU would do: oneDNN's AVX2 code instead of AVX-512,
#: ATen's scalar loops, numpy without its AVX-512 loops, one thread or two.
SETTINGS = {
    "default, 2 threads": {"OMP_NUM_THREADS": "2"},
    "oneDNN AVX2, ATen default, 2 threads": {"ONEDNN_MAX_CPU_ISA": "AVX2",
                                             "ATEN_CPU_CAPABILITY": "default",
                                             "OMP_NUM_THREADS": "2"},
    "all, numpy without AVX-512, 1 thread": {"ONEDNN_MAX_CPU_ISA": "AVX2",
                                             "ATEN_CPU_CAPABILITY": "default",
                                             "OMP_NUM_THREADS": "1"},
}


# --------------------------------------------------------------------------- integer networks


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(16, 24, 3, padding=1), nn.LeakyReLU(inplace=True),
                         nn.ConvTranspose2d(24, 24, 5, stride=2, padding=2, output_padding=1),
                         nn.ReLU(), nn.Conv2d(24, 32, 3, padding=1)).eval()


def test_an_integer_network_stays_close_to_its_float_network():
    net = _net()
    x = torch.randint(-8, 9, (2, 16, 6, 7)).float()
    exact = integer.integer_module(net)(x)
    assert exact.dtype == torch.float32 and exact.shape == net(x).shape
    assert (exact - net(x)).abs().max() < 2e-3  # a few units of the 2^-12 grid
    assert torch.equal(exact * 2**integer.ACT_BITS, torch.round(exact * 2**integer.ACT_BITS))


def test_an_integer_convolution_is_exact_in_any_order_of_summation():
    """The same integers whether torch convolves (any kernel, any thread count) or we sum the
    products ourselves in a shuffled order: every partial sum is an exact integer."""
    conv = integer.IntegerConv(_net()[0])
    x = torch.randint(-3000, 3000, (1, 16, 5, 5)).double() / 2**integer.ACT_BITS
    with torch.no_grad():
        ours = conv(x)
        torch.set_num_threads(1)
        one = conv(x)
        torch.set_num_threads(2)
    a = torch.round(x * 2**integer.ACT_BITS)
    cols = torch.nn.functional.unfold(a, 3, padding=1)[0]  # (16·9, 25)
    w = conv.weight.reshape(conv.weight.shape[0], -1)
    order = torch.randperm(cols.shape[0])
    acc = conv.bias[:, None].expand(-1, 25).clone()
    for i in order:  # one product at a time, in a random order
        acc += w[:, i:i + 1] * cols[i:i + 1, :]
    by_hand = torch.floor(acc * 2.0**-conv.k + 0.5).clamp(-integer.ACT_LIMIT, integer.ACT_LIMIT)
    assert torch.equal(ours, one)
    assert torch.equal(ours.reshape(24, 25) * 2**integer.ACT_BITS, by_hand)


def test_the_integer_weights_keep_every_sum_below_two_to_the_53():
    for layer in integer.integer_module(zoo.load("mbt2018-mean", 4, "cpu").h_s):
        if isinstance(layer, integer.IntegerConv):
            dims = (0, 2, 3) if layer.transposed else (1, 2, 3)
            worst = layer.weight.abs().sum(dims) * integer.ACT_LIMIT + layer.bias.abs()
            assert worst.max() < 2**53
            assert layer.weight.abs().max() <= 2**integer.WEIGHT_BITS


def test_a_layer_with_its_own_parameters_is_refused():
    with pytest.raises(TypeError, match="PReLU"):
        integer.integer_module(nn.Sequential(nn.Conv2d(3, 3, 1), nn.PReLU()))


def test_integer_entropy_swaps_the_networks_back():
    model = zoo.load("kwcc2018-hierarchical", 1, "cpu")
    h_s, predictor = model.h_s, model.predictor
    with integer.integer_entropy(model):
        assert isinstance(model.h_s[0], integer.IntegerConv)
        assert isinstance(model.predictor.ctx1, integer.IntegerConv)
    assert model.h_s is h_s and model.predictor is predictor


def test_portable_tables_are_compressai_tables_up_to_the_last_bits():
    model = zoo.load("mbt2018-mean", 2, "cpu")
    float_tables = {n: b.clone() for n, b in model.named_buffers() if "quantized_cdf" in n}
    model.update(force=True)  # CompressAI's float tables
    ref = {n: b.clone() for n, b in model.named_buffers() if "quantized_cdf" in n}
    integer.portable_tables(model)
    for name, table in ref.items():
        ours = dict(model.named_buffers())[name]
        assert ours.shape == table.shape
        assert (ours.long() - table.long()).abs().max() <= 2  # 16-bit CDFs, a unit or two
        assert torch.equal(ours, float_tables[name])  # what the zoo loaded
    assert (integer.scale_table() - model.gaussian_conditional.scale_table).abs().max() == 0


# --------------------------------------------------------------------------- the matrix


def _decode(files: list[str], out: Path, env: dict) -> dict[str, dict]:
    proc = subprocess.run([sys.executable, str(HERE / "portable_worker.py"), str(out), *files],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {r["file"]: r for r in rows}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """Every file of the matrix, decoded under every setting of :data:`SETTINGS`."""
    root = tmp_path_factory.mktemp("matrix")
    files = write_matrix(root)
    results = {}
    for label, env in SETTINGS.items():
        out = root / label.replace(" ", "_").replace(",", "")
        out.mkdir()
        if label.startswith("all"):
            env = {**env, **_numpy_without_avx512()}
        results[label] = (out, _decode(files, out, env))
    return files, results


def test_the_matrix_covers_every_shipped_model_and_coder(matrix):
    files, _ = matrix
    names = {Path(f.partition("@")[0]).stem for f in files}
    for arch, quality in zoo.shipped():
        if arch == "mbt2018":
            continue
        assert f"{arch}-q{quality}-table" in names
    assert "mbt2018-mean-q3-exact" in names and "mbt2018-mean-q3-lattice-oct-shift" in names
    assert "bmshj2018-factorized-q1-lattice-hex-shift" in names
    assert {"pframe-diff-q2-none", "pframe-xgdc-q2-quadtree", "frameconv3d-order1"} <= names
    assert len(names) >= 50


def test_every_file_decodes_to_the_same_symbols_under_other_kernels(matrix):
    files, results = matrix
    (ref_dir, ref), *others = results.values()
    assert all(r["error"] is None for r in ref.values()), [r for r in ref.values() if r["error"]]
    for label, (out, rows) in zip(list(SETTINGS)[1:], others, strict=True):
        for name, row in rows.items():
            assert row["error"] is None, (label, name, row["error"])
            assert row["latents"] == ref[name]["latents"], (label, name)
            a = np.load(out / f"{Path(name).stem}.npy").astype(np.int16)
            b = np.load(ref_dir / f"{Path(name).stem}.npy").astype(np.int16)
            assert np.abs(a - b).max() <= 1, (label, name)  # g_s is float: ±1 level at most
        assert len(rows) == len(files)


# --------------------------------------------------------------------------- older versions


def _legacy_file(model, x, coder: str) -> bytes:
    """A file as nctutor wrote it before version 4: float tables and float networks."""
    mode = dict(quantizer="hex", shift=True) if coder == "lattice" else {}
    return container.encode_image(model, x, "mbt2018-mean", 1, "cpu", coder=coder,
                                  portable=False, **mode)


@pytest.mark.parametrize("coder", ["table", "lattice"])
def test_files_of_versions_2_and_3_still_decode_where_they_were_written(coder):
    model = zoo.load("mbt2018-mean", 1, "cpu")
    x = data.kodak(2)[1][:, 200:328, 300:428]
    blob = _legacy_file(model, x, coder)
    assert container.read_header(blob).version == (3 if coder == "lattice" else 2)
    x_hat = container.decode_image(blob, model)
    assert x_hat.shape == x.shape
    assert float(((x_hat - x) ** 2).mean()) < 0.01
    portable = container.decode_image(container.encode_image(model, x, "mbt2018-mean", 1, "cpu",
                                                             coder=coder), model)
    assert (portable - x_hat).abs().max() < 0.2  # the same codec, other entropy parameters


def test_an_old_file_with_other_tables_says_it_may_come_from_another_machine():
    model = zoo.load("mbt2018-mean", 1, "cpu")
    x = data.kodak(2)[1][:, 200:328, 300:428]
    blob = bytearray(_legacy_file(model, x, "table"))
    blob[26] ^= 1  # the fingerprint, as other float tables would give it; the CRC made anew
    h = container.read_header(bytes(_legacy_file(model, x, "table")))
    end = h.header_size - 4
    blob[end:end + 4] = container._U32.pack(zlib.crc32(bytes(blob[h.header_size:]),
                                                       zlib.crc32(bytes(blob[:end]))))
    with pytest.raises(Exception, match="another kind of machine"):
        container.decode_image(bytes(blob), model)


def test_mbt2018_keeps_the_float_path():
    model = zoo.load("mbt2018", 1, "cpu")
    x = data.kodak(1)[0][:, :64, :64]
    assert container.read_header(container.encode_image(model, x, "mbt2018", 1)).version == 2
    with pytest.raises(ValueError, match="no portable entropy path"):
        container.encode_image(model, x, "mbt2018", 1, portable=True)


def test_new_files_are_version_4():
    model = zoo.load("bmshj2018-factorized", 1, "cpu")
    blob = container.encode_image(model, data.kodak(1)[0][:, :64, :64], "bmshj2018-factorized",
                                  1, "cpu")
    assert container.read_header(blob).version == container.VERSION == 4
