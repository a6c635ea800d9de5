"""Lattice quantization and the latent shift on a trained codec (Balcilar et al., ``balcilar2023``).

Defined in book section *Lattices and the latent shift on a trained codec → The codec*. The
trained codec is left untouched (no retraining): :class:`LatentCodec` wraps a
``bmshj2018-factorized`` or ``mbt2018-mean`` model and changes only what happens between its
encoder and decoder.

**Quantization of y** (Section 3.2 and Appendix F.1.1). ``y`` is centred on its predicted means
(the hyperprior's ``μ``; the factorized prior's per-channel medians, CompressAI's offsets), the
elements are sorted by their *density*, and consecutive runs of ``v`` elements are quantized
together with a unit-volume lattice (:mod:`nctutor.quant.cells`: ``scalar`` = rounding, ``hex`` =
A2, ``oct`` = A3*); the ``n mod v`` elements left over are rounded. The density of an element is
the hyperprior's scale rounded *up* to CompressAI's 64-entry scale table (the same rounding as
CompressAI's own coder, :meth:`GaussianConditional.build_indexes`), or the factorized prior's
channel; sorting by it (stable, so ties keep raster order) is the paper's "sort by σ" and makes
most groups share one density. Each distinct tuple of densities is a *table*: the probabilities
of the lattice cells under the product of the coordinates' densities (Eq. 2), computed in
float64 and cached. The cell indices are coded by :mod:`nctutor.entropy.cells` (constriction's
ANS coder, an escape for rare cells). ``quantizer="scalar"`` runs the very same machinery with
``v = 1``, so that the lattices are compared with rounding under one coder.

**Latent shift** (Section 4, Eq. 5-6). After decoding, the decoder knows the gradients of the
rate; it moves ``ẑ`` along ``∇_ẑ(−log2 p_f(ẑ))`` before predicting ``μ, σ`` (side shift: lowers
the rate of ``ŷ``) and ``ŷ`` along ``∇_ŷ(−log2 p(ŷ | ẑ))`` before the synthesis transform (main
shift: lowers the distortion). The steps ``ρ_f`` and ``ρ_h`` come from the encoder, as indices
into the fixed candidate sets :data:`SIDE_STEPS` and :data:`MAIN_STEPS` (4 bits each, one byte
in the file header). The encoder picks ``ρ_f`` by the rate of ``ŷ`` (Eq. 5) and ``ρ_h`` by the
MSE of the decoded image (Eq. 6); see :meth:`LatentCodec.compress` for the search.

*Determinism.* The decoder must rebuild the encoder's tables and groups bit for bit, on any
machine: ``h_s`` runs as an integer network (a file of format version 4 is coded inside
:func:`nctutor.entropy.integer.integer_entropy`), the side shift's gradient and the factorized
prior's CDFs are computed in portable float64 (:func:`portable_side_gradient`,
:func:`nctutor.entropy.integer.eb_logits`), the tables are float64 numpy, the sort is stable.
``g_s`` and the main shift (which shape only the picture) run in float on one thread. A CRC in
the ``y`` stream catches any mismatch.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from compressai.models import FactorizedPrior, MeanScaleHyperprior
from scipy.special import expit, ndtr

from ..entropy import integer
from ..entropy.cells import decode_cells, encode_cells
from ..errors import BitstreamError
from ..quant.cells import (
    QUANTIZERS,
    CellTable,
    cell_table,
    estimated_cells,
    quantize_keys,
    to_points,
)
from .exact import one_thread
from .image import ARCHITECTURES, model_fingerprint

__all__ = ["LatentCodec", "MAIN_STEPS", "SIDE_STEPS", "SEARCHES", "has_latent_codec",
           "portable_side_gradient", "rate_gradient", "side_gradient", "supports"]

#: ``ρ_h`` candidates of the main shift (index 0: no shift). Positive steps move ``ŷ`` uphill in
#: rate, against the distortion gradient when the two are negatively correlated; negative steps
#: serve images where they are positively correlated. Measured optima on Kodak lie in ±0.03.
MAIN_STEPS: tuple[float, ...] = (0.0, 0.001, 0.0015, 0.0022, 0.0033, 0.005, 0.0075, 0.011, 0.017,
                                 0.025, -0.001, -0.002, -0.004, -0.008, -0.016, -0.032)
#: ``ρ_f`` candidates of the side shift (index 0: no shift); both signs.
SIDE_STEPS: tuple[float, ...] = (0.0,) + tuple(s * 0.01 * 2.0 ** k for k in range(-2, 5)
                                               for s in (1, -1)) + (0.32,)
#: How the encoder picks ``ρ_h``: ``"brute"`` decodes every candidate (the paper's search);
#: ``"secant"`` decodes two and fits the MSE as a quadratic in ``ρ`` (see ``compress``).
SEARCHES = ("brute", "secant", "none")

_LN2 = math.log(2.0)

#: Largest table (estimated cells) a group may use; larger ones are rounded instead. Kodak and
#: CLIC with the shipped weights need at most 1.1e6 (Oct-Quant at q4).
CELL_CAP = 1 << 21
#: Largest plan (estimated cells of all tables of an image); Kodak and CLIC need at most 8.7e6
#: (Oct-Quant at q4, about 40 s of table building on one core, once per process).
PLAN_CAP = 12_000_000


def has_latent_codec(arch: str) -> bool:
    """Whether the architecture ``arch`` (a registry name) can be wrapped by
    :class:`LatentCodec`. A helper of book section *Lattices and the latent shift on a trained
    codec → The codec*; no page calls it."""
    cls = ARCHITECTURES.get(arch)  # the context models are not in ARCHITECTURES
    return cls is not None and issubclass(cls, FactorizedPrior | MeanScaleHyperprior)


def supports(model: torch.nn.Module) -> bool:
    """Whether :class:`LatentCodec` can wrap ``model``: a CompressAI ``FactorizedPrior`` or
    ``MeanScaleHyperprior`` (or a subclass). A helper of book section *Lattices and the latent
    shift on a trained codec → The codec*; no page calls it."""
    return isinstance(model, FactorizedPrior | MeanScaleHyperprior)


# --------------------------------------------------------------------------- densities


def _gaussian(scale: float) -> tuple[Callable, tuple[float, float]]:
    """CDF and box of the zero-mean Gaussian of ``scale`` (a table scale)."""
    return (lambda t: ndtr(t / scale)), (-(6.5 * scale + 1.0), 6.5 * scale + 1.0)


class _FactorizedCDF:
    """The factorized prior's learned CDFs in float64 (CompressAI's ``_logits_cumulative``);
    ``portable``: with :func:`nctutor.entropy.integer.eb_logits`, the same bits on any CPU."""

    def __init__(self, eb: torch.nn.Module, portable: bool = True):
        self.eb, self.portable = eb, portable
        self.matrices = [torch.nn.functional.softplus(m.detach().double()) for m in eb.matrices]
        self.biases = [b.detach().double() for b in eb.biases]
        self.factors = [torch.tanh(f.detach().double()) for f in eb.factors]
        q = eb.quantiles.detach().double()[:, 0, :]
        self.medians = q[:, 1].clone()
        self.lower, self.upper = q[:, 0] - q[:, 1], q[:, 2] - q[:, 1]

    def logits(self, c: int, t: torch.Tensor) -> torch.Tensor:
        x = t.reshape(1, -1)
        for i, m in enumerate(self.matrices):
            x = m[c] @ x + self.biases[i][c]
            if i < len(self.factors):
                x = x + self.factors[i][c] * torch.tanh(x)
        return x.reshape(t.shape)

    def density(self, c: int) -> tuple[Callable, tuple[float, float]]:
        med = float(self.medians[c])

        if self.portable:
            params = integer.eb_parameters(self.eb, c)

            def portable_cdf(t: np.ndarray) -> np.ndarray:
                x = np.asarray(t, np.float64) + med
                return expit(integer.eb_logits(self.eb, x.reshape(1, 1, -1), params)
                             ).reshape(np.shape(t))
            return portable_cdf, (float(self.lower[c]) - 1.0, float(self.upper[c]) + 1.0)

        def cdf(t: np.ndarray) -> np.ndarray:
            with one_thread():
                return torch.sigmoid(self.logits(c, torch.from_numpy(t + med))).numpy()
        return cdf, (float(self.lower[c]) - 1.0, float(self.upper[c]) + 1.0)


#: Bytes of cell tables a process keeps between images (least recently used dropped first).
#: Kodak's kodim01 at q4 with Oct-Quant builds about 160 MB of them.
CACHE_BYTES = 512 * 2**20


class _TableCache:
    """Cell tables built so far, by key; deterministic, so the cache changes nothing but the time.
    Bounded (:data:`CACHE_BYTES`): a process that decodes many files, damaged ones included,
    does not grow without end. No page calls it."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0
        self._tables: OrderedDict[tuple, CellTable] = OrderedDict()

    def get(self, key: tuple, build: Callable[[], CellTable]) -> CellTable:
        if key in self._tables:
            self._tables.move_to_end(key)
            return self._tables[key]
        table = self._tables[key] = build()
        self.held += _nbytes(table)
        while self.held > self.limit and len(self._tables) > 1:
            self.held -= _nbytes(self._tables.popitem(last=False)[1])
        return table


def _nbytes(t: CellTable) -> int:
    return t.keys.nbytes + t.probs.nbytes + t.lut.nbytes


#: Gaussian tables by (quantizer, scales), factorized ones by (model fingerprint, quantizer,
#: channels).
_TABLES = _TableCache(CACHE_BYTES)


# --------------------------------------------------------------------------- gradients


def rate_gradient(y_hat: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """``∇_ŷ(−log2 P(ŷ))`` for the hyperprior's bin probability
    ``P = Φ((ŷ−μ+½)/σ) − Φ((ŷ−μ−½)/σ)`` (the likelihood CompressAI trains), in closed form:
    ``−(φ(u₊) − φ(u₋)) / (σ P ln 2)``. The decoder's proxy for ``−λ ∇_ŷ D`` (Eq. 4, 6).
    Defined in book section *Lattices and the latent shift on a trained codec → The codec*.
    """
    r = (y_hat - means).double()
    s = scales.double().clamp_min(0.11)
    up, lo = (r + 0.5) / s, (r - 0.5) / s
    p = (torch.special.ndtr(up) - torch.special.ndtr(lo)).clamp_min(1e-9)
    phi = torch.exp(-0.5 * up**2) - torch.exp(-0.5 * lo**2)
    return (-phi / (math.sqrt(2 * math.pi) * s * p * _LN2)).to(y_hat.dtype)


def side_gradient(eb: torch.nn.Module, z_hat: torch.Tensor) -> torch.Tensor:
    """``∇_ẑ(−log2 p_f(ẑ))`` of the factorized prior of ``z`` (autograd; Eq. 3, 5).
    Defined in book section *Lattices and the latent shift on a trained codec → The codec*.
    """
    with torch.enable_grad():
        z = z_hat.detach().clone().requires_grad_(True)
        c = z.size(1)
        v = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lik = eb._likelihood(v)[0]
        lik = eb.likelihood_lower_bound(lik) if eb.use_likelihood_bound else lik
        (-torch.log2(lik).sum()).backward()
    return z.grad.detach()


def portable_side_gradient(eb: torch.nn.Module, z_hat: torch.Tensor,
                           eps: float = 2.0**-10) -> torch.Tensor:
    """:func:`side_gradient` by a central difference of the portable likelihood
    (:func:`nctutor.entropy.integer.eb_likelihood`): ``−p'/(p ln 2)`` with ``p'`` from
    ``p(ẑ ± eps)``, the same bits on any CPU, so that the decoder of a version-4 file shifts
    ``ẑ`` exactly as its encoder did (autograd's float32 ``softplus`` differs between CPUs).
    Defined in book section *Lattices and the latent shift on a trained codec → The codec*.
    """
    c = z_hat.size(1)
    v = z_hat.detach().permute(1, 0, 2, 3).reshape(c, 1, -1).double().cpu().numpy()
    params = integer.eb_parameters(eb)
    p = np.maximum(integer.eb_likelihood(eb, v, params)[0], 1e-9)
    ahead = np.maximum(integer.eb_likelihood(eb, v + eps, params)[0], 1e-9)
    behind = np.maximum(integer.eb_likelihood(eb, v - eps, params)[0], 1e-9)
    grad = -(ahead - behind) / (2 * eps) / (p * _LN2)
    b, _, h, w = z_hat.shape
    return torch.from_numpy(grad).reshape(c, b, h, w).permute(1, 0, 2, 3).to(z_hat)


def _factorized_gradient(cdf: _FactorizedCDF, y_hat: torch.Tensor) -> torch.Tensor:
    """``∇_ŷ(−log2 P(ŷ))`` under the factorized prior (autograd through the float64 CDFs, all
    channels at once)."""
    with torch.enable_grad():
        y = y_hat.detach().double().clone().requires_grad_(True)
        t = y.transpose(0, 1).reshape(y.size(1), 1, -1)  # (C, 1, elements of a channel)

        def logits(v: torch.Tensor) -> torch.Tensor:
            for i, m in enumerate(cdf.matrices):
                v = m @ v + cdf.biases[i]
                if i < len(cdf.factors):
                    v = v + cdf.factors[i] * torch.tanh(v)
            return v

        p = torch.sigmoid(logits(t + 0.5)) - torch.sigmoid(logits(t - 0.5))
        (-torch.log2(p.clamp_min(1e-9)).sum()).backward()
    return y.grad.to(y_hat.dtype)


# --------------------------------------------------------------------------- the codec


@dataclass
class _Plan:
    """How the elements of ``y`` are grouped and coded (identical at encoder and decoder)."""

    groups: list[np.ndarray]   # per table: (count, v) element indices
    tables: list[CellTable]


class LatentCodec:
    """A trained ``bmshj2018-factorized`` or ``mbt2018-mean`` model whose ``y`` is quantized by a
    lattice and whose latents the decoder shifts along the rate gradients.

    Args:
        model: the trained model (eval mode, ``update()`` done), left unchanged.
        quantizer: ``"scalar"``, ``"hex"`` or ``"oct"`` (:data:`nctutor.quant.cells.QUANTIZERS`).
        shift: apply the latent shift (main and, for the hyperprior, side).
        search: how the encoder picks ``ρ_h`` (:data:`SEARCHES`).
        portable: the factorized prior's CDFs and the side gradient in portable arithmetic
            (:mod:`nctutor.entropy.integer`; format version 4); ``False``: the float versions
            of format version 3, which decode only on the machine kind that wrote them.

    ``compress(x)`` → ``{"strings": [[y], [z]] (factorized: [[y]]), "shape", "steps"}`` with
    ``steps = (i_h, i_f)`` the indices into :data:`MAIN_STEPS`, :data:`SIDE_STEPS`;
    ``decompress(strings, shape, steps)`` → ``{"x_hat"}``: CompressAI's contract plus the steps.
    Defined in book section *Lattices and the latent shift on a trained codec → The codec*.
    """

    def __init__(self, model: torch.nn.Module, quantizer: str = "scalar", shift: bool = False,
                 search: str = "brute", portable: bool = True):
        if not supports(model):
            raise TypeError(f"LatentCodec wraps a FactorizedPrior or MeanScaleHyperprior, got "
                            f"{type(model).__name__}")
        if quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer must be one of {', '.join(QUANTIZERS)}, got "
                             f"{quantizer!r}")
        if search not in SEARCHES:
            raise ValueError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
        if model.training:
            raise ValueError("model must be in eval mode (call model.eval())")
        self.model, self.quantizer, self.shift, self.search = model, quantizer, shift, search
        self.hyper = isinstance(model, MeanScaleHyperprior)
        self.portable = portable
        self._fcdf = None if self.hyper else _FactorizedCDF(model.entropy_bottleneck, portable)
        self._fingerprint = None if self.hyper else model_fingerprint(model)

    # ------------------------------------------------------------------ entropy parameters

    def params(self, z_hat: torch.Tensor | None, shape: tuple[int, ...]
               ) -> tuple[torch.Tensor, torch.Tensor | None, np.ndarray]:
        """``(means, scales, ids)`` of ``y``: the centres of the cells, the hyperprior's scales
        (``None`` for the factorized prior) and each element's density id (scale-table index or
        channel), flattened in ``y``'s order. ``h_s`` runs on one thread.
        A helper of book section *Lattices and the latent shift on a trained codec → The
        codec*; no page calls it."""
        if self.hyper:
            with one_thread():
                scales, means = self.model.h_s(z_hat).chunk(2, 1)
            ids = self.model.gaussian_conditional.build_indexes(scales)
            return means, scales, ids.reshape(-1).cpu().numpy().astype(np.int64)
        b, c, h, w = shape
        med = self._fcdf.medians.to(torch.float32).reshape(1, c, 1, 1).expand(b, c, h, w)
        ids = np.broadcast_to(np.arange(c).reshape(1, c, 1, 1), shape).reshape(-1)
        return med, None, ids.astype(np.int64)

    def _table(self, ids: tuple[int, ...], v_quantizer: str) -> CellTable:
        if self.hyper:
            table = self.model.gaussian_conditional.scale_table
            scales = tuple(float(table[i]) for i in ids)
            key, dens = (v_quantizer, scales), [_gaussian(s) for s in scales]
        else:
            key, dens = ((self._fingerprint, self.portable, v_quantizer, ids),
                         [self._fcdf.density(c) for c in ids])
        return _TABLES.get(key, lambda: cell_table(v_quantizer, [d[0] for d in dens],
                                                   [d[1] for d in dens]))

    def plan(self, ids: np.ndarray, decoding: bool = False) -> _Plan:
        """Groups and tables from the density ids (see the module docstring).

        A group of the hyperprior whose table would hold more than :data:`CELL_CAP` cells
        (:func:`nctutor.quant.cells.estimated_cells`; Oct-Quant at scales beyond about 30) is
        rounded instead, by the same rule at both ends; a plan of more than :data:`PLAN_CAP`
        cells in all is refused (``BitstreamError`` when ``decoding``: scales that large come
        from a damaged ``z``, and building their tables would take minutes).
        A helper of book section *Lattices and the latent shift on a trained codec → The
        codec*; no page calls it."""
        v = QUANTIZERS[self.quantizer][1]
        order = np.argsort(ids, kind="stable")
        n_main = len(order) - len(order) % v
        groups, tables, fallback, cells = [], [], [], 0.0
        for part, q, width in ((order[:n_main], self.quantizer, v), (None, "scalar", 1)):
            if part is None:  # the leftover elements and the groups rounded instead
                part = order[n_main:]
                if fallback:
                    part = np.concatenate([*fallback, part])
                    part = part[np.argsort(ids[part], kind="stable")]
            if part.size == 0:
                continue
            idx = part.reshape(-1, width)
            # one integer per tuple of ids, in the tuples' lexicographic order
            base = int(ids.max()) + 1
            code = np.zeros(len(idx), np.int64)
            for j in range(width):
                code = code * base + ids[idx[:, j]]
            codes, inverse, counts = np.unique(code, return_inverse=True, return_counts=True)
            by_table = np.split(idx[np.argsort(inverse, kind="stable")], np.cumsum(counts)[:-1])
            for c, members in zip(codes, by_table, strict=True):
                key = tuple(int(c // base**(width - 1 - j) % base) for j in range(width))
                size = self._cells(key)
                if width > 1 and size > CELL_CAP:
                    fallback.append(members.reshape(-1))
                    continue
                cells += size
                groups.append(members)
                tables.append((key, q))
        if cells > PLAN_CAP:
            msg = (f"the cell tables of this image would hold about {cells:.3g} cells (at most "
                   f"{PLAN_CAP:.3g})")
            if decoding:
                raise BitstreamError(f"corrupted file: {msg}: implausible scales, a damaged z")
            raise ValueError(f"{msg}; code it with quantizer 'scalar' or 'hex'")
        return _Plan(groups=groups, tables=[self._table(key, q) for key, q in tables])

    def _cells(self, ids: tuple[int, ...]) -> float:
        if not self.hyper:  # the factorized prior's tables are fixed by the model
            return 0.0
        table = self.model.gaussian_conditional.scale_table
        return estimated_cells([float(table[i]) for i in ids])

    # ------------------------------------------------------------------ quantization

    def quantize(self, y: torch.Tensor, means: torch.Tensor, ids: np.ndarray
                 ) -> tuple[torch.Tensor, list[np.ndarray], _Plan]:
        """``ŷ`` (lattice points around the means) and the cell keys of every group.
        A helper of book section *Lattices and the latent shift on a trained codec → The
        codec*; no page calls it."""
        plan = self.plan(ids)
        r = (y - means).double().reshape(-1).cpu().numpy()
        out = np.empty_like(r)
        keys = []
        for idx, table in zip(plan.groups, plan.tables, strict=True):
            k = quantize_keys(r[idx], table.quantizer)
            keys.append(k)
            out[idx] = to_points(k, table.quantizer)
        y_hat = means + torch.from_numpy(out).reshape(y.shape).to(y)
        return y_hat, keys, plan

    def _encode_y(self, keys: list[np.ndarray], plan: _Plan, steps: tuple[int, int]) -> bytes:
        indices, escapes = [], []
        for k, table in zip(keys, plan.tables, strict=True):
            ix = table.index(k)
            indices.append(ix)
            escapes.append(k[ix == len(table.keys)].reshape(-1))
        flat = np.concatenate(escapes) if escapes else np.zeros(0, np.int64)
        return encode_cells([t.probs for t in plan.tables], indices, flat, context=bytes(steps))

    def _decode_y(self, blob: bytes, means: torch.Tensor, ids: np.ndarray,
                  steps: tuple[int, int]) -> torch.Tensor:
        plan = self.plan(ids, decoding=True)
        indices, escapes = decode_cells(blob, [t.probs for t in plan.tables],
                                        [len(g) for g in plan.groups], context=bytes(steps))
        out = np.empty(means.numel(), np.float64)
        pos = 0
        for ix, idx, table in zip(indices, plan.groups, plan.tables, strict=True):
            v = idx.shape[1]
            k = np.zeros((len(ix), v), np.int64)
            hit = ix < len(table.keys)
            k[hit] = table.keys[ix[hit]]
            n_esc = int((~hit).sum()) * v
            if pos + n_esc > len(escapes):
                raise BitstreamError("corrupted y stream: fewer escaped keys than escapes")
            k[~hit] = escapes[pos : pos + n_esc].reshape(-1, v)
            pos += n_esc
            out[idx] = to_points(k, table.quantizer)
        if pos != len(escapes):
            raise BitstreamError("corrupted y stream: more escaped keys than escapes")
        return means + torch.from_numpy(out).reshape(means.shape).to(means)

    # ------------------------------------------------------------------ shifts

    def main_gradient(self, y_hat: torch.Tensor, means: torch.Tensor,
                      scales: torch.Tensor | None) -> torch.Tensor:
        """``∇_ŷ(−log2 P(ŷ))`` under the codec's prior (hyperprior: :func:`rate_gradient`).
        A helper of book section *Lattices and the latent shift on a trained codec → The
        codec*; no page calls it."""
        with one_thread():
            if self.hyper:
                return rate_gradient(y_hat, means, scales)
            return _factorized_gradient(self._fcdf, y_hat)

    def shifted_z(self, z_hat: torch.Tensor, i_f: int) -> torch.Tensor:
        """``ẑ + ρ_f ∇_ẑ(−log2 p_f(ẑ))`` with ``ρ_f = SIDE_STEPS[i_f]`` (one thread).
        A helper of book section *Lattices and the latent shift on a trained codec → The
        codec*; no page calls it."""
        if i_f == 0:
            return z_hat
        return z_hat + SIDE_STEPS[i_f] * self._side_gradient(z_hat)

    def _side_gradient(self, z_hat: torch.Tensor) -> torch.Tensor:
        if self.portable:
            return portable_side_gradient(self.model.entropy_bottleneck, z_hat)
        with one_thread():
            return side_gradient(self.model.entropy_bottleneck, z_hat)

    def synthesize(self, y_hat: torch.Tensor) -> torch.Tensor:
        """``g_s(ŷ)`` clamped to [0, 1], on one thread (the decoder's arithmetic).
        A helper of book section *Lattices and the latent shift on a trained codec → The
        codec*; no page calls it."""
        with one_thread():
            return self.model.g_s(y_hat).clamp_(0, 1)

    def _pick_side(self, y: torch.Tensor, z_hat: torch.Tensor) -> int:
        """Eq. (5): the ``ρ_f`` whose predicted ``μ, σ`` give ``ŷ`` the fewest bits (estimated
        by the rounded Gaussian likelihood; all candidates in one batched ``h_s`` pass)."""
        grad = self._side_gradient(z_hat)
        steps = torch.tensor(SIDE_STEPS, dtype=z_hat.dtype).reshape(-1, 1, 1, 1)
        scales, means = self.model.h_s(z_hat + steps * grad).chunk(2, 1)
        lik = self.model.gaussian_conditional._likelihood(
            torch.round(y - means) + means, scales, means).clamp_min(1e-9)
        bits = -torch.log2(lik).flatten(1).sum(1)
        return int(torch.argmin(bits))

    def _pick_main(self, x: torch.Tensor, y_hat: torch.Tensor, grad: torch.Tensor) -> int:
        """Eq. (6): the ``ρ_h`` with the smallest MSE of the decoded image."""
        h, w = x.shape[-2:]

        def mse(steps: list[int]) -> torch.Tensor:
            rho = torch.tensor([MAIN_STEPS[i] for i in steps], dtype=y_hat.dtype)
            x_hat = self.model.g_s(y_hat + rho.reshape(-1, 1, 1, 1) * grad).clamp_(0, 1)
            return ((x_hat[..., :h, :w] - x) ** 2).flatten(1).mean(1)

        if self.search == "none":
            return 0
        if self.search == "brute":
            errors = torch.cat([mse(list(range(i, min(i + 4, len(MAIN_STEPS)))))
                                for i in range(0, len(MAIN_STEPS), 4)])
            return int(torch.argmin(errors))
        # secant: x_hat(ρ) ≈ x_hat(0) + ρ d is linear near 0, so MSE(ρ) is a parabola through
        # MSE(0) whose slope and curvature follow from one more decode at a reference step.
        ref = len(MAIN_STEPS) // 2
        rho_ref = MAIN_STEPS[ref]
        x0, x1 = self.model.g_s(y_hat + torch.tensor([0.0, rho_ref]).reshape(-1, 1, 1, 1) * grad
                                )[..., :h, :w]
        d = (x1 - x0) / rho_ref
        e = x - x0
        best = float((e * d).sum() / (d * d).sum().clamp_min(1e-20))
        cand = np.array(MAIN_STEPS)
        return int(np.argmin(np.abs(cand - best))) if best > 0 else 0

    # ------------------------------------------------------------------ CompressAI's contract

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> dict:
        """Encode a padded batch of one image ``(1, 3, H, W)``.

        The side step (hyperprior) is chosen by Eq. (5) over all :data:`SIDE_STEPS` in one
        batched ``h_s`` pass; the main step by Eq. (6): ``search="brute"`` decodes every
        candidate (in batches of four), ``"secant"`` decodes two and rounds the parabola's
        minimum to the nearest candidate.
        Defined in book section *Lattices and the latent shift on a trained codec → The codec*.
        """
        if x.dim() != 4 or x.size(0) != 1:
            raise ValueError(f"x must have shape (1, 3, H, W), got {tuple(x.shape)}")
        y = self.model.g_a(x)
        i_f = 0
        if self.hyper:
            z = self.model.h_a(y)
            z_strings = self.model.entropy_bottleneck.compress(z)
            z_hat = self.model.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
            if self.shift:
                i_f = self._pick_side(y, z_hat)
            means, scales, ids = self.params(self.shifted_z(z_hat, i_f), y.shape)
        else:
            means, scales, ids = self.params(None, y.shape)
        y_hat, keys, plan = self.quantize(y, means, ids)
        i_h = 0
        if self.shift:
            i_h = self._pick_main(x, y_hat, self.main_gradient(y_hat, means, scales))
        strings = [[self._encode_y(keys, plan, (i_h, i_f))]]
        if self.hyper:
            strings.append(z_strings)
        shape = z.size()[-2:] if self.hyper else y.size()[-2:]
        return {"strings": strings, "shape": shape, "steps": (i_h, i_f)}

    @torch.no_grad()
    def decompress(self, strings: list, shape, steps: tuple[int, int] = (0, 0)) -> dict:
        """Decode ``compress``'s strings: ``{"x_hat"}`` (``(1, 3, H, W)``, padded size).
        Defined in book section *Lattices and the latent shift on a trained codec → The codec*.
        """
        i_h, i_f = steps
        if not (0 <= i_h < len(MAIN_STEPS) and 0 <= i_f < len(SIDE_STEPS)):
            raise BitstreamError(f"corrupted file: shift indices {steps} out of range")
        if not self.hyper and i_f:
            raise BitstreamError("corrupted file: a side shift for a model without side latents")
        if len(strings) != (2 if self.hyper else 1):
            raise ValueError("strings must be [y_strings, z_strings] ([y_strings] factorized)")
        h, w = (int(v) for v in shape)
        if self.hyper:
            z_hat = self.model.entropy_bottleneck.decompress(strings[1], (h, w))
            y_shape = (1, self.model.M, 4 * h, 4 * w)
            means, scales, ids = self.params(self.shifted_z(z_hat, i_f), y_shape)
        else:
            y_shape = (1, self.model.M, h, w)
            means, scales, ids = self.params(None, y_shape)
        y_hat = self._decode_y(strings[0][0], means, ids, (i_h, i_f))
        if i_h:
            y_hat = y_hat + MAIN_STEPS[i_h] * self.main_gradient(y_hat, means, scales)
        return {"x_hat": self.synthesize(y_hat)}
