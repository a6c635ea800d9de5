"""Entropy parameters that every machine computes alike: integer networks and portable tables.

Defined in book section *Transform coding with learned priors → Decoding on another machine*.

An arithmetic decoder must be given *bit-identical* probabilities to the encoder's: one unit of
difference in one quantized CDF, and every symbol after it decodes to something else. In a
learned codec the probabilities come from networks (the hyperprior's ``h_s``, a context model),
and a float convolution is not the same function on every machine: its sums are split and
ordered by the kernel (oneDNN's AVX-512 or AVX2 code, a thread count, a GPU's algorithm), and
float addition is not associative. Ballé, Johnston and Minnen (2019, "Integer networks for data
compression with latent-variable models") make those networks integer. Here, after training
(post-training quantization, with no fine-tuning):

* :func:`integer_module` copies a network of convolutions, transposed convolutions, ReLU and
  LeakyReLU into fixed point. Activations are integers in units of ``2^-ACT_BITS``; each
  layer's weights are integers in units of ``2^-k`` (``k`` per layer: the largest that keeps
  ``|w|`` below ``2^WEIGHT_BITS`` and every output's sum below ``2^53``); a convolution runs in
  float64 on these integers, which is *exact in any order of summation* (every partial sum is
  an integer below ``2^53``), so oneDNN, OpenBLAS, one thread or sixteen give the same numbers;
  each output is then divided by ``2^k`` with rounding and clamped to ``±ACT_LIMIT``. The
  nonlinearities are exact too (ReLU; LeakyReLU's slope is one IEEE multiplication, then a
  rounding). Inputs and outputs stay ordinary float tensors, on the ``2^-12`` grid.
* :func:`integer_entropy` runs a model's entropy-parameter networks (:data:`ENTROPY_NETS`:
  ``h_s`` and the code-space predictor) as such integer copies for the length of a ``with``
  block, where a file is encoded or decoded; ``g_s`` (the picture) stays float.
* :func:`portable_tables` remakes CompressAI's CDF tables (``EntropyBottleneck``,
  ``GaussianConditional``), which ``update()`` computes with torch's vectorized ``softplus``,
  ``tanh`` and ``erfc``, whose last bits depend on the CPU's instruction set
  (``ATEN_CPU_CAPABILITY``): here in float64 with element-by-element IEEE arithmetic and
  scalar special functions (SciPy's ``ndtr`` and ``expit``), then quantized by CompressAI's own
  ``pmf_to_quantized_cdf``.

What is left machine-dependent, and why it is harmless: the special functions are scalar C
code, the same on every x86-64 CPU that runs the same wheels; SIMD-dispatched ``numpy.exp`` and
``numpy.log`` (which differ with and without AVX-512, measured) are not used on these paths.
Writing the same file with another version of SciPy or CompressAI's C++ extension could, in
principle, change a table; the file's fingerprint then refuses the model with a clear message
rather than decoding garbage.
"""

from __future__ import annotations

import copy
import math
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit, ndtr
from torch import nn

__all__ = ["ACT_BITS", "ACT_LIMIT", "WEIGHT_BITS", "ENTROPY_NETS", "IntegerConv",
           "IntegerLeakyReLU", "integer_module", "integer_entropy", "portable_tables",
           "eb_logits", "eb_likelihood", "eb_parameters", "scale_table", "tanh"]

#: Fractional bits of every activation: values live on the grid ``k · 2^-12``.
ACT_BITS = 12
#: Largest activation, in grid units (``2^24 - 1``: about ±4096, and exact in float32).
ACT_LIMIT = 2**24 - 1
#: Largest magnitude of an integer weight, in bits.
WEIGHT_BITS = 15
#: Exact integers of float64 (sums must stay below it).
_EXACT = 2**53
_SCALE = float(2**ACT_BITS)
#: The submodules, by attribute name, whose outputs set probabilities: the hyperprior's
#: synthesis and the code-space predictor (:mod:`nctutor.codecs.predictor`).
ENTROPY_NETS = ("h_s", "predictor")


def _to_grid(x: torch.Tensor) -> torch.Tensor:
    """``x`` in grid units as float64 integers (CPU), clamped to ``±ACT_LIMIT`` like every
    activation, so that the bound on the sums holds for any input (a damaged stream's too)."""
    return torch.round(x.detach().to("cpu", torch.float64) * _SCALE).clamp_(-ACT_LIMIT, ACT_LIMIT)


class IntegerConv(nn.Module):
    """A ``Conv2d`` or ``ConvTranspose2d`` in fixed point (see the module docstring).

    ``weight`` and ``bias`` are float64 tensors of integers: ``round(w · 2^k)`` and
    ``round(b · 2^(k + ACT_BITS))``. A convolution that declares a ``mask`` (a causal one) has it
    multiplied into the weights, and one that declares ``pad`` (``F.pad`` before the convolution,
    as :class:`nctutor.codecs.predictor.CausalConv2x2`) keeps it for :meth:`forward`; :meth:`valid`
    convolves without it. Defined in book section *Transform coding with learned priors →
    Decoding on another machine*.
    """

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d) -> None:
        super().__init__()
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        w = conv.weight.detach().to("cpu", torch.float64)
        mask = getattr(conv, "mask", None)
        if mask is not None:
            w = w * mask.to("cpu", torch.float64)
        b = (conv.bias.detach().to("cpu", torch.float64) if conv.bias is not None
             else torch.zeros(w.shape[1] if self.transposed else w.shape[0], dtype=torch.float64))
        if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
            raise ValueError(f"{type(conv).__name__} has non-finite weights")
        largest = float(w.abs().max())
        k = WEIGHT_BITS - (math.frexp(largest)[1] if largest > 0 else 0)
        per_output = (0, 2, 3) if self.transposed else (1, 2, 3)
        while True:  # the largest k whose worst-case sums stay exact
            wq = torch.round(w * 2.0**k)
            bq = torch.round(b * 2.0 ** (k + ACT_BITS))
            l1 = wq.abs().sum(per_output).to(torch.int64)
            worst = max(int(a) * ACT_LIMIT + abs(int(c)) for a, c in zip(l1, bq.to(torch.int64),
                                                                          strict=True))
            if worst < _EXACT:
                break
            k -= 1
        self.k = k
        self.register_buffer("weight", wq)
        self.register_buffer("bias", bq)
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.groups = conv.groups
        self.output_padding = getattr(conv, "output_padding", 0)
        self.pad = getattr(conv, "pad", None)

    def valid(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution of ``x`` (float, any device) without ``pad``; float64, on the grid."""
        a = _to_grid(x)
        if self.transposed:
            acc = F.conv_transpose2d(a, self.weight, self.bias, self.stride, self.padding,
                                     self.output_padding, self.groups, self.dilation)
        else:
            acc = F.conv2d(a, self.weight, self.bias, self.stride, self.padding, self.dilation,
                           self.groups)
        out = torch.floor(acc * 2.0**-self.k + 0.5).clamp_(-ACT_LIMIT, ACT_LIMIT)
        return (out / _SCALE).to(x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.valid(F.pad(x, self.pad) if self.pad else x)


class IntegerLeakyReLU(nn.Module):
    """LeakyReLU on the grid: ``x`` where ``x ≥ 0``, else ``round(x · slope)`` in grid units
    (one IEEE multiplication, the same everywhere). Defined in book section *Transform coding
    with learned priors → Decoding on another machine*."""

    def __init__(self, negative_slope: float) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = _to_grid(x)
        leak = torch.floor(a * self.negative_slope + 0.5)
        return (torch.where(a < 0, leak, a) / _SCALE).to(x.device)


class _Float32(nn.Module):
    """The network's output as float32 (exact: grid values below ``2^24`` units)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        return IntegerConv(module)
    if isinstance(module, nn.LeakyReLU):
        return IntegerLeakyReLU(module.negative_slope)
    if isinstance(module, nn.ReLU | nn.Identity):
        return module
    for name, child in module.named_children():
        setattr(module, name, _convert(child))
    own = [n for n, _ in module.named_parameters(recurse=False)]
    if own:
        raise TypeError(f"integer_module converts convolutions, ReLU and LeakyReLU; "
                        f"{type(module).__name__} has its own parameters {own}")
    return module


def integer_module(module: nn.Module) -> nn.Module:
    """A fixed-point copy of ``module`` (``module`` is left unchanged): every ``Conv2d`` and
    ``ConvTranspose2d`` becomes an :class:`IntegerConv`, every ``LeakyReLU`` an
    :class:`IntegerLeakyReLU`; ReLU (and ``F.relu`` in a ``forward``), sums of two outputs and
    0/1 masks are exact on the grid as they are. A ``Sequential`` gets a last step to float32.
    Raises ``TypeError`` for a layer with other parameters (GDN, PReLU): that network cannot be
    made integer this way. Defined in book section *Transform coding with learned priors →
    Decoding on another machine*.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    net = _convert(copy.deepcopy(module)).eval()
    return nn.Sequential(*net, _Float32()) if isinstance(net, nn.Sequential) else net


@contextmanager
def integer_entropy(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model``'s entropy-parameter networks (:data:`ENTROPY_NETS`, wherever they sit in
    the module tree) as :func:`integer_module` copies inside the ``with`` block, and give the
    originals back after it. The encoder and the decoder of a file both code inside it.
    Defined in book section *Transform coding with learned priors → Decoding on another
    machine*.
    """
    saved = [(owner, name, getattr(owner, name)) for owner in list(model.modules())
             for name in ENTROPY_NETS if isinstance(getattr(owner, name, None), nn.Module)]
    converted = [integer_module(net) for _, _, net in saved]
    try:
        for (owner, name, _), net in zip(saved, converted, strict=True):
            setattr(owner, name, net)
        yield model
    finally:
        for owner, name, net in saved:
            setattr(owner, name, net)


# --------------------------------------------------------------------------- portable tables


def tanh(x: np.ndarray) -> np.ndarray:
    """``tanh`` from SciPy's scalar ``expit`` (``2·expit(2x) − 1``): the same bits on every CPU,
    unlike a SIMD ``tanh``. A helper of book section *Transform coding with learned priors →
    Decoding on another machine*; no page calls it."""
    return 2.0 * expit(2.0 * np.asarray(x, np.float64)) - 1.0


def _softplus(x: torch.Tensor) -> np.ndarray:
    """``log(1 + e^x)`` element by element with Python's scalar ``math`` (parameters only)."""
    flat = x.detach().to("cpu", torch.float64).reshape(-1).tolist()
    out = [v + math.log1p(math.exp(-v)) if v > 0 else math.log1p(math.exp(v)) for v in flat]
    return np.array(out, np.float64).reshape(tuple(x.shape))


def eb_parameters(eb: nn.Module, channel: int | None = None) -> tuple[list, list, list]:
    """The factorized prior's matrices (softplus applied), biases and factors (tanh applied) in
    float64, computed once for :func:`eb_logits` (``channel``: that channel's only). A helper of
    book section *Transform coding with learned priors → Decoding on another machine*; no page
    calls it."""
    params = ([_softplus(m) for m in eb.matrices],
            [b.detach().to("cpu", torch.float64).numpy() for b in eb.biases],
            [tanh(f.detach().to("cpu", torch.float64).numpy()) for f in eb.factors])
    if channel is None:
        return params
    return tuple([p[channel:channel + 1] for p in group] for group in params)


def eb_logits(eb: nn.Module, x: np.ndarray, params: tuple | None = None) -> np.ndarray:
    """CompressAI's ``EntropyBottleneck._logits_cumulative`` of ``x`` ``(C, 1, n)`` in float64,
    with each matrix product summed in a fixed order and :func:`tanh` for the nonlinearity:
    the same bits on every machine. Defined in book section *Transform coding with learned
    priors → Decoding on another machine*."""
    matrices, biases, factors = params or eb_parameters(eb)
    x = np.asarray(x, np.float64)
    for i, m in enumerate(matrices):  # m: (C, out, in)
        acc = m[:, :, 0:1] * x[:, 0:1, :]
        for j in range(1, m.shape[2]):
            acc = acc + m[:, :, j:j + 1] * x[:, j:j + 1, :]
        x = acc + biases[i]
        if i < len(factors):
            x = x + factors[i] * tanh(x)
    return x


def eb_likelihood(eb: nn.Module, v: np.ndarray, params: tuple | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pmf, lower, upper)`` of the values ``v`` ``(C, 1, n)`` under the factorized prior, as
    ``EntropyBottleneck._likelihood``, in portable float64. Defined in book section *Transform
    coding with learned priors → Decoding on another machine*."""
    params = params or eb_parameters(eb)
    lower = eb_logits(eb, v - 0.5, params)
    upper = eb_logits(eb, v + 0.5, params)
    sign = -np.sign(lower + upper)
    return np.abs(expit(sign * upper) - expit(sign * lower)), lower, upper


def _quantized(module: nn.Module, pmf: np.ndarray, tail: np.ndarray,
               pmf_length: torch.Tensor) -> None:
    from compressai.entropy_models.entropy_models import pmf_to_quantized_cdf

    cdf = torch.zeros((len(pmf_length), pmf.shape[1] + 2), dtype=torch.int32)
    for i, length in enumerate(pmf_length.tolist()):
        prob = torch.from_numpy(np.concatenate([pmf[i, :length], tail[i]]))
        row = pmf_to_quantized_cdf(prob, module.entropy_coder_precision)
        cdf[i, : row.numel()] = row
    module._quantized_cdf = cdf
    module._cdf_length = (pmf_length + 2).to(torch.int32)


def _update_bottleneck(eb: nn.Module) -> None:
    """``EntropyBottleneck.update()``, the same steps, with :func:`eb_likelihood`."""
    q = eb.quantiles.detach().cpu()
    medians = q[:, 0, 1]
    minima = torch.ceil(medians - q[:, 0, 0]).int().clamp(min=0)
    maxima = torch.ceil(q[:, 0, 2] - medians).int().clamp(min=0)
    pmf_start = medians - minima
    pmf_length = maxima + minima + 1
    samples = torch.arange(int(pmf_length.max()))[None, :] + pmf_start[:, None]  # float32
    pmf, lower, upper = eb_likelihood(eb, samples.double().numpy()[:, None, :])
    tail = expit(lower[:, 0, :1]) + expit(-upper[:, 0, -1:])
    _quantized(eb, pmf[:, 0, :], tail, pmf_length)
    eb._offset = -minima


def scale_table(lo: float = 0.11, hi: float = 256.0, levels: int = 64) -> torch.Tensor:
    """CompressAI's ``get_scale_table()`` (64 log-spaced scales from 0.11 to 256), each
    exponential taken by Python's scalar ``math.exp``: CompressAI's ``torch.exp`` gives other
    last bits with ``ATEN_CPU_CAPABILITY=default`` than with AVX2 (measured: 3 of 64 scales),
    and a scale on a table boundary then moves a symbol to another table. A helper of book
    section *Transform coding with learned priors → Decoding on another machine*; no page
    calls it."""
    a, b = math.log(lo), math.log(hi)
    return torch.tensor([math.exp(a + (b - a) * i / (levels - 1)) for i in range(levels)],
                        dtype=torch.float32)


def _update_conditional(gc: nn.Module) -> None:
    """``GaussianConditional.update()``, the same steps, with SciPy's scalar ``ndtr``."""
    from scipy.stats import norm

    gc.scale_table = scale_table(levels=len(gc.scale_table)).to(gc.scale_table.device)
    table = gc.scale_table.detach().cpu().float()
    multiplier = -float(norm.ppf(gc.tail_mass / 2))
    center = torch.ceil(table * multiplier).int()
    pmf_length = 2 * center + 1
    samples = (torch.arange(int(pmf_length.max()))[None, :] - center[:, None]).abs()
    s, scale = samples.double().numpy(), table.double().numpy()[:, None]
    upper, lower = ndtr((0.5 - s) / scale), ndtr((-0.5 - s) / scale)
    _quantized(gc, upper - lower, 2 * lower[:, :1], pmf_length)
    gc._offset = -center


#: The buffers that ``update()`` fills.
_TABLES = ("_offset", "_quantized_cdf", "_cdf_length")


def _state_crc(module: nn.Module) -> int:
    crc = 0
    for name, t in sorted(module.state_dict().items()):
        if name.rsplit(".", 1)[-1] not in _TABLES:  # the parameters, not the tables
            crc = zlib.crc32(t.detach().cpu().double().numpy().tobytes(), crc)
    return crc


def _made_here(module: nn.Module) -> bool:
    """Whether the module's tables are the portable ones of its present parameters."""
    mark = getattr(module, "_nctutor_portable", None)
    return mark is not None and mark[1] is module._quantized_cdf and mark[0] == _state_crc(module)


def portable_tables(model: nn.Module) -> nn.Module:
    """Remake the CDF tables of every ``EntropyBottleneck`` and ``GaussianConditional`` of
    ``model`` in portable arithmetic (see the module docstring), in place; returns ``model``.

    A module whose parameters have not changed since its last portable update is skipped, so
    calling it before every encode and decode costs nothing. ``model.update()`` afterwards gives
    CompressAI's float tables back. Defined in book section *Transform coding with learned
    priors → Decoding on another machine*.
    """
    from compressai.entropy_models import EntropyBottleneck, GaussianConditional

    for module in model.modules():
        if not isinstance(module, EntropyBottleneck | GaussianConditional):
            continue
        if _made_here(module):
            continue
        if isinstance(module, EntropyBottleneck):
            _update_bottleneck(module)
        else:
            _update_conditional(module)
        module._nctutor_portable = (_state_crc(module), module._quantized_cdf)
    return model
