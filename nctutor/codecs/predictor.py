"""The code-space predictor of Klopp et al. (2018): codes predicted from their causal neighbours.

Chapter *Predicting codes from their neighbours* (sections *The spatial predictor*, *Adding the
hyperprior*, *Coding with a mixture*, *The checkerboard*).

The transforms are those of the book's mean-scale hyperprior (CompressAI's
``MeanScaleHyperprior``: the same ``g_a``, ``g_s``, ``h_a``, ``h_s``, so every variant starts
from the shipped ``mbt2018-mean`` weights); what is new, and written here by hand because it is
the lesson, is the spatial predictor of Table 1 of the paper's supplement: two causal 2×2
convolutions with ReLU, then a 1×1 convolution to the parameters of a ``K``-component Gaussian
mixture for every channel of every code symbol (weights, means, scales; the paper's "2kN"
outputs plus the weights), which :mod:`nctutor.entropy.mixture` turns into bin probabilities
(Eq. 17) and codes.

- ``kwcc2018-spatial``: the spatial predictor alone (no hyperprior; Fig. 6);
- ``kwcc2018-hierarchical``: Fig. 8: the hyperprior's decoder output ``h = h_s(ẑ)`` is an
  *extra input* of the spatial predictor (added to its first layer and, through a 1×1
  convolution, to its output), not the distribution itself. The output path from ``h`` starts
  as a copy of the mean-scale model's means and scales, and the rest of the predictor near
  zero, so that training starts from the shipped model's rate and only has to learn what the
  neighbours add;
- ``kwcc2018-checkerboard`` (beyond the paper, after He et al. 2021): the same, with a
  two-pass checkerboard context (a 5×5 convolution over the *anchors*, the symbols with even
  ``i + j``, which are coded first with ``h`` alone), so that each pass decodes in parallel.

*Causality.* The first 2×2 convolution sees the symbol above-left, above and left of the
current one (its own tap is masked: "mask A"), the second sees the first layer's features at the
same four positions: the predictor of symbol ``(i, j)`` depends only on symbols ``(i', j')``
with ``i' ≤ i``, ``j' ≤ j`` and ``(i', j') ≠ (i, j)``. Decoding therefore needs an order in
which those come first: raster order (the paper's) or, with the same probabilities and the same
bits, by anti-diagonals ``i + j = d``, each decoded in one batch (what :meth:`_code_raster`
does: ``H + W − 1`` steps instead of ``H·W``).

*Determinism.* Encoder and decoder compute every mixture from identical tensors with the same
batched convolutions: the predictor of a diagonal runs on its symbols' 3×3 causal patches (the
not-yet-decoded centre set to zero at both ends), the hyperprior's maps on the whole ``ẑ``
once. A ``.nct`` file (format version 4) codes inside
:func:`nctutor.entropy.integer.integer_entropy`, which runs ``h_s`` and the predictor as integer
networks, so that every machine computes the same mixtures; the tables are then made in float64
(:mod:`nctutor.entropy.mixture`), whose CRC refuses a decoder with other weights.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from compressai.models import CompressionModel, MeanScaleHyperprior
from torch import nn

from ..config import one_thread
from ..entropy.mixture import MixtureDecoder, MixtureEncoder, bin_likelihood
from ..errors import BitstreamError

__all__ = ["CausalConv2x2", "SpatialPredictor", "SpatialOnly", "HierarchicalSpatial",
           "Checkerboard", "mixture_split", "hidden_width", "K_COMPONENTS"]

#: Components of each symbol's Gaussian mixture.
K_COMPONENTS = 3


def hidden_width(M: int) -> int:
    """Width of the predictor's hidden layers: 256 at the paper's M = 192 (Table 1), 128 at the
    ``cpu`` profile's M = 96. Defined in book section *Predicting codes from their neighbours →
    The spatial predictor*."""
    return max(8, (4 * M) // 3 // 8 * 8)


class CausalConv2x2(nn.Conv2d):
    """A 2×2 convolution that looks up and left: output ``(i, j)`` reads inputs ``(i−1, j−1)``,
    ``(i−1, j)``, ``(i, j−1)`` and, unless ``exclude_current`` ("mask A"), ``(i, j)``.

    :meth:`forward` pads the map on the top and left with zeros (same size out);
    :meth:`valid` convolves a patch without padding (the coder's per-symbol patches). Defined in
    book section *Predicting codes from their neighbours → The spatial predictor*.
    """

    def __init__(self, in_channels: int, out_channels: int, exclude_current: bool) -> None:
        super().__init__(in_channels, out_channels, kernel_size=2)
        mask = torch.ones(1, 1, 2, 2)
        if exclude_current:
            mask[..., 1, 1] = 0
        self.register_buffer("mask", mask, persistent=False)

    #: The zeros :meth:`forward` adds on the top and left (``F.pad`` order: left, right, top,
    #: bottom); :class:`nctutor.entropy.integer.IntegerConv` keeps it, and the mask.
    pad = (1, 0, 1, 0)

    def valid(self, x: torch.Tensor) -> torch.Tensor:
        """The masked convolution without padding."""
        return F.conv2d(x, self.weight * self.mask, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.valid(F.pad(x, self.pad))


def mixture_split(params: torch.Tensor, K: int) -> tuple[torch.Tensor, ...]:
    """``(B, 3·K·M, H, W)`` predictor outputs → logits, means, scales, each ``(B, K, M, H, W)``.
    Defined in book section *Predicting codes from their neighbours → The spatial predictor*."""
    B, C, H, W = params.shape
    if C % (3 * K):
        raise ValueError(f"{C} channels are not 3·K·M for K = {K}")
    p = params.view(B, 3, K, C // (3 * K), H, W)
    return p[:, 0], p[:, 1], p[:, 2]


class SpatialPredictor(nn.Module):
    """Table 1's spatial predictor, optionally fed the hyperprior's features ``h`` (Fig. 8).

    ``order="raster"``: two causal 2×2 convolutions (mask A, then B), ReLU after each, a 1×1
    convolution to ``3·K·M`` outputs. ``order="checkerboard"``: a 5×5 convolution over the
    anchors (``i + j`` even; zero at the anchors themselves) and a 1×1 one. With
    ``h_channels > 0``, ``h`` enters the first layer through a 1×1 convolution (``hin``) and the
    output through another (``skip``), initialized to pass the mean-scale model's means and
    scales to every component. Defined in book section *Predicting codes from their neighbours →
    The spatial predictor*.
    """

    def __init__(self, M: int, K: int = K_COMPONENTS, h_channels: int = 0,
                 order: str = "raster") -> None:
        super().__init__()
        if order not in ("raster", "checkerboard"):
            raise ValueError(f"order must be 'raster' or 'checkerboard', got {order!r}")
        hidden = hidden_width(M)
        self.M, self.K, self.order = M, K, order
        if order == "raster":
            self.ctx1 = CausalConv2x2(M, hidden, exclude_current=True)
            self.ctx2 = CausalConv2x2(hidden, hidden, exclude_current=False)
        else:
            self.ctx1 = nn.Conv2d(M, hidden, 5, padding=2)
            self.ctx2 = nn.Conv2d(hidden, hidden, 1)
        self.out = nn.Conv2d(hidden, 3 * K * M, 1)
        self.hin = nn.Conv2d(h_channels, hidden, 1) if h_channels else None
        self.skip = nn.Conv2d(h_channels, 3 * K * M, 1) if h_channels else None
        with torch.no_grad():
            self.out.weight.normal_(0.0, 0.01)  # small: the start is (nearly) the prior's
            self.out.bias.zero_()
            bias = self.out.bias.view(3, K, M)
            bias[1] += (torch.arange(K) - (K - 1) / 2).mul(0.05)[:, None]  # distinct components
            if self.skip is None:
                bias[2] += 1.0  # scales of a predictor without a hyperprior
            else:  # h = (scales, means) of the mean-scale h_s: copied to every component
                self.skip.weight.zero_()
                self.skip.bias.zero_()
                w = self.skip.weight.view(3, K, M, h_channels)
                for k in range(K):
                    w[1, k, :, M:2 * M] = torch.eye(M)
                    w[2, k, :, :M] = torch.eye(M)

    def forward(self, y_hat: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """Predictor outputs ``(B, 3·K·M, H, W)`` for the whole map (training, and the
        checkerboard coder): position ``(i, j)`` sees only its causal context."""
        if self.order == "checkerboard":
            anchor = anchors(*y_hat.shape[-2:], y_hat.device)
            f = self.ctx1(y_hat * anchor) * (1 - anchor)
        else:
            f = self.ctx1(y_hat)
        if self.hin is not None:
            f = f + self.hin(h)
        f = self.ctx2(F.relu(f))
        return self._output(F.relu(f), h)

    def _output(self, f: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        p = self.out(f)
        return p if self.skip is None else p + self.skip(h)

    def at(self, patches: torch.Tensor, hin: torch.Tensor | None, valid: torch.Tensor,
           skip: torch.Tensor | None) -> torch.Tensor:
        """Raster predictor outputs ``(n, 3·K·M)`` for ``n`` symbols from their 3×3 causal
        patches ``(n, M, 3, 3)`` (rows and columns ``i−2…i``, ``j−2…j``, centre zero),
        ``hin(h)`` at their first layer's 2×2 positions ``(n, hidden, 2, 2)``, which of those lie
        inside the map ``(n, 1, 2, 2)``, and ``skip(h)`` at the symbols ``(n, 3·K·M)``: the
        numbers :meth:`forward` gives at those positions (up to float rounding)."""
        f = self.ctx1.valid(patches)
        if hin is not None:
            f = f + hin
        f = F.relu(f) * valid  # the zero padding of the full map
        f = F.relu(self.ctx2.valid(f))
        p = self.out(f)[:, :, 0, 0]
        return p if skip is None else p + skip


def anchors(H: int, W: int, device=None) -> torch.Tensor:
    """``(1, 1, H, W)``: 1 at the checkerboard's anchors (``i + j`` even), 0 elsewhere. Defined
    in book section *Predicting codes from their neighbours → The checkerboard*."""
    i = torch.arange(H, device=device)[:, None]
    j = torch.arange(W, device=device)[None, :]
    return ((i + j) % 2 == 0).float()[None, None]


class _PredictorCodec(CompressionModel):
    """Shared by the three variants: the mean-scale transforms, the predictor, and the
    ``forward`` → likelihoods, ``compress`` → strings contract of CompressAI."""

    hyperprior = True
    order = "raster"

    def __init__(self, N: int = 128, M: int = 192, K: int = K_COMPONENTS) -> None:
        super().__init__()
        base = MeanScaleHyperprior(N=N, M=M)  # the book's transforms, same names as there
        self.g_a, self.g_s = base.g_a, base.g_s
        if self.hyperprior:
            self.entropy_bottleneck = base.entropy_bottleneck
            self.h_a, self.h_s = base.h_a, base.h_s
        self.predictor = SpatialPredictor(M, K, 2 * M if self.hyperprior else 0, self.order)
        self.N, self.M, self.K = N, M, K

    # ----------------------------------------------------------------- training

    def forward(self, x: torch.Tensor) -> dict:
        """``{"x_hat", "likelihoods": {"y"[, "z"]}}``: ``ŷ = y + u`` in training (Eq. 18),
        ``round(y)`` in eval mode (Eq. 14), and each symbol's bin probability under its
        mixture (Eq. 17)."""
        y = self.g_a(x)
        likelihoods = {}
        h = None
        if self.hyperprior:
            z_hat, likelihoods["z"] = self.entropy_bottleneck(self.h_a(y))
            h = self.h_s(z_hat)
        y_hat = y + torch.empty_like(y).uniform_(-0.5, 0.5) if self.training else torch.round(y)
        logits, means, scales = mixture_split(self.predictor(y_hat, h), self.K)
        likelihoods["y"] = bin_likelihood(y_hat, logits, means, scales)
        return {"x_hat": self.g_s(y_hat), "likelihoods": likelihoods}

    # ----------------------------------------------------------------- coding

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> dict:
        """``{"strings": [y_strings(, z_strings)], "shape"}`` (``shape``: ``ẑ``'s with a
        hyperprior, else ``y``'s), one string per image of the batch."""
        y = self.g_a(x)
        h = z_strings = None
        if self.hyperprior:
            z = self.h_a(y)
            z_strings = self.entropy_bottleneck.compress(z)
            shape = tuple(z.shape[-2:])
            z_hat = self.entropy_bottleneck.decompress(z_strings, shape)
            with one_thread():
                h = self.h_s(z_hat)
        else:
            shape = tuple(y.shape[-2:])
        y_hat = torch.round(y)
        y_strings = []
        for b in range(len(x)):
            enc = MixtureEncoder()
            with one_thread():  # on the CPU, where the integer networks compute anyway
                self._code(y_hat.shape[-2:], None if h is None else h[b:b + 1].cpu(),
                           y_hat[b:b + 1].cpu(), enc)
            y_strings.append(enc.finish())
        return {"strings": [y_strings, z_strings] if self.hyperprior else [y_strings],
                "shape": shape}

    @torch.no_grad()
    def decompress(self, strings: list, shape) -> dict:
        """``{"x_hat"}`` from :meth:`compress`'s strings and shape (``g_s`` on one thread:
        the same 8-bit image whatever the caller's thread count)."""
        if len(strings) != (2 if self.hyperprior else 1):
            raise ValueError(f"expected {2 if self.hyperprior else 1} lists of strings")
        h = None
        if self.hyperprior:
            z_hat = self.entropy_bottleneck.decompress(strings[1], tuple(shape))
            with one_thread():
                h = self.h_s(z_hat)
            size = (4 * int(shape[0]), 4 * int(shape[1]))
        else:
            size = (int(shape[0]), int(shape[1]))
        y_hat = torch.zeros(len(strings[0]), self.M, *size)
        for b, s in enumerate(strings[0]):
            dec = MixtureDecoder(s)
            with one_thread():
                try:
                    y_hat[b:b + 1] = self._code(size, None if h is None else h[b:b + 1].cpu(),
                                                None, dec)
                except (ValueError, RuntimeError, OverflowError) as e:
                    raise BitstreamError(f"corrupted y stream: {e}") from None
            dec.finish()
        with one_thread():
            x_hat = self.g_s(y_hat.to(next(self.parameters()).device))
        return {"x_hat": x_hat.clamp_(0, 1)}

    def _code(self, size, h, y_hat, coder) -> torch.Tensor:
        """Encode (``y_hat`` given) or decode (``y_hat`` None) one image's symbols in the
        predictor's order; returns ``ŷ`` ``(1, M, H, W)``."""
        if self.order == "checkerboard":
            return self._code_checkerboard(size, h, y_hat, coder)
        return self._code_raster(size, h, y_hat, coder)

    def _symbols(self, params: torch.Tensor, y_values, coder) -> torch.Tensor:
        """Code one group: ``params`` ``(n, 3·K·M)``, ``y_values`` ``(n, M)`` or None; the
        group's symbols ``(n, M)``, channel by channel within each position."""
        n = params.shape[0]
        p = params.view(n, 3, self.K, self.M).permute(1, 0, 3, 2).reshape(3, n * self.M, self.K)
        p = p.detach().double().numpy()
        if y_values is None:
            if not np.isfinite(p).all():
                raise BitstreamError("corrupted y stream: the predictor's parameters are not "
                                     "finite")
            return torch.from_numpy(coder.decode(p[0], p[1], p[2])).view(n, self.M).float()
        coder.add(y_values.reshape(-1).double().numpy(), p[0], p[1], p[2])
        return y_values

    def _code_raster(self, size, h, y_hat, coder) -> torch.Tensor:
        H, W = size
        pred = self.predictor
        grid = torch.zeros(1, self.M, H + 2, W + 2)  # ŷ so far, two zero rows/columns above-left
        hin = skip = None
        if pred.hin is not None:
            hin = F.pad(pred.hin(h), (1, 0, 1, 0))[0]  # at the first layer's positions
            skip = pred.skip(h)[0]
        inside = torch.ones(1, H + 1, W + 1)
        inside[:, 0, :] = 0
        inside[:, :, 0] = 0
        three, two = torch.arange(3), torch.arange(2)
        for d in range(H + W - 1):  # anti-diagonals: every symbol's context lies on earlier ones
            i = torch.arange(max(0, d - W + 1), min(d, H - 1) + 1)
            j = d - i
            r3, c3 = (i[:, None] + three)[:, :, None], (j[:, None] + three)[:, None, :]
            r2, c2 = (i[:, None] + two)[:, :, None], (j[:, None] + two)[:, None, :]
            patches = grid[0][:, r3, c3].permute(1, 0, 2, 3)  # (n, M, 3, 3), centre still 0
            params = pred.at(patches,
                             None if hin is None else hin[:, r2, c2].permute(1, 0, 2, 3),
                             inside[:, r2, c2].permute(1, 0, 2, 3),
                             None if skip is None else skip[:, i, j].T)
            values = None if y_hat is None else y_hat[0][:, i, j].T
            grid[0][:, i + 2, j + 2] = self._symbols(params, values, coder).T
        return grid[:, :, 2:, 2:].clone()

    def _code_checkerboard(self, size, h, y_hat, coder) -> torch.Tensor:
        H, W = size
        anchor = anchors(H, W)[0, 0].bool()
        known = torch.zeros(1, self.M, H, W)
        for mask in (anchor, ~anchor):  # pass 1: anchors (h only); pass 2: the rest
            params = self.predictor(known, h)[0][:, mask].T  # (n, 3·K·M)
            values = None if y_hat is None else y_hat[0][:, mask].T
            known[0][:, mask] = self._symbols(params, values, coder).T
        return known


class SpatialOnly(_PredictorCodec):
    """``kwcc2018-spatial``: the spatial predictor alone (Fig. 6). Defined in book section
    *Predicting codes from their neighbours → The spatial predictor*."""

    hyperprior = False


class HierarchicalSpatial(_PredictorCodec):
    """``kwcc2018-hierarchical``: the hyperprior's ``h`` as extra features of the spatial
    predictor (Fig. 8). Defined in book section *Predicting codes from their neighbours →
    Adding the hyperprior*."""


class Checkerboard(_PredictorCodec):
    """``kwcc2018-checkerboard``: :class:`HierarchicalSpatial` with a two-pass checkerboard
    context (beyond the paper). Defined in book section *Predicting codes from their neighbours
    → The checkerboard*."""

    order = "checkerboard"
