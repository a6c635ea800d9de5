"""P-frame coders on one autoencoder core: the difference coder, CodecNet, GDC and xGDC.

Chapter *Conditional coding in practice* (sections *Five coders on one core*, *Switching* and
*Real bitstreams*); the theory is chapter *Conditional coding versus residual coding*. After
Brand, Seiler and Kaup, *Generalized Difference Coder* (Fig. 3 (j)-(m)); their core is DVC's
autoencoder with a context model, ours is the book's mean-scale hyperprior (Minnen et al. 2018,
CompressAI's ``MeanScaleHyperprior`` with ``y`` coded exactly, :mod:`nctutor.codecs.exact`), so
every coder can start from the shipped image codec of the same quality.

Every coder codes the current frame ``x`` given the prediction ``x̃`` (both ``(B, 3, H, W)`` in
[0, 1], ``H`` and ``W`` multiples of 64):

- :class:`DiffCoder`: codes ``r = x − x̃``; ``x̂ = x̃ + r̂`` (Fig. 3 (j));
- :class:`CodecNet`: Ladune et al.'s conditional coder: the encoder sees ``(x, x̃)``, the decoder
  sees ``ŷ`` and a latent of ``x̃`` with ``Y_p`` channels from a second encoder, the *prediction
  bottleneck* of Eq. (8)-(9) (Fig. 3 (h), (k));
- :class:`GDC`: the generalized difference ``q = GD(x, x̃)`` and sum ``x̂ = GS(x̃, q̂)``, three-layer
  conv nets with PReLU, Eq. (12)'s difference and sum made learnable (Fig. 3 (l));
- :class:`XGDC`: ``r`` and a 16-channel ``g = GD(x, x̃)`` coded in *one* latent; the decoder
  forms both ``x̂_d = x̃ + r̂`` (Eq. 12) and ``x̂_g = GS(x̃, ĝ)`` (Eq. 13) (Fig. 3 (m)).

``forward(x, x̃)`` returns ``{"x_hat", "likelihoods"}`` (xGDC: also ``"x_hat_d"``, ``"x_hat_g"``);
``compress(x, x̃)`` returns ``{"strings": [y, z], "shape"}`` and ``decompress(strings, shape, x̃)``
the same reconstructions, clamped to [0, 1]. The switching of Section 5 (:func:`frame_switch`,
:func:`quadtree`) and the training rule θ = 30 dB (:func:`theta_rule`) are written by hand: they
are the lesson.
"""

from __future__ import annotations

import torch
from compressai.layers import GDN
from compressai.models.utils import conv, deconv
from torch import nn

from ..config import one_thread
from .exact import ExactMeanScaleHyperprior

#: The coders, by model name (``nctutor train pframe-xgdc -q 2``).
CODERS = ("pframe-diff", "pframe-codecnet64", "pframe-codecnet192", "pframe-gdc", "pframe-xgdc")
#: Prediction PSNR (dB) above which xGDC trains its difference branch (Section 6.2).
THETA_DB = 30.0
#: Channels of xGDC's generalized difference (Section 6.1: 16 + 3 = 19 core channels).
XGDC_CHANNELS = 16
#: Width of the hidden layers of GD and GS.
GD_WIDTH = 16
#: Block sides of the quad-tree search (Section 6.4: 256×256 down to 4×4).
QT_SIZES = (256, 128, 64, 32, 16, 8, 4)
#: The paper's core width, to which CodecNet's ``Y_p`` refers: at a profile with a narrower core
#: ``Y_p`` shrinks in proportion (``Y_p·N/128``).
PAPER_N = 128


class Core(ExactMeanScaleHyperprior):
    """The mean-scale hyperprior with ``cin`` input and ``cout`` output channels and ``side``
    extra channels into the synthesis (CodecNet's prediction latent).

    Same layers as CompressAI's ``MeanScaleHyperprior(N, M)`` except the first analysis, the
    first and the last synthesis convolution, so the shipped image codec's weights fit all the
    others. Defined in book section *Conditional coding in practice → Five coders on one core*.
    """

    def __init__(self, N: int, M: int, cin: int = 3, cout: int = 3, side: int = 0) -> None:
        super().__init__(N=N, M=M)
        self.cin, self.cout, self.side = cin, cout, side
        if cin != 3:
            self.g_a[0] = conv(cin, N)
        if side:
            self.g_s[0] = deconv(M + side, N)
        if cout != 3:
            self.g_s[-1] = deconv(N, cout)

    def code(self, inp: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """``(ŷ, likelihoods)`` of the training-time forward pass (noise or rounding, as
        CompressAI's ``MeanScaleHyperprior.forward``)."""
        y = self.g_a(inp)
        z_hat, z_lik = self.entropy_bottleneck(self.h_a(y))
        scales, means = self.h_s(z_hat).chunk(2, 1)
        y_hat, y_lik = self.gaussian_conditional(y, scales, means=means)
        return y_hat, {"y": y_lik, "z": z_lik}

    def compress_latent(self, inp: torch.Tensor) -> dict:
        """``{"strings": [y_strings, z_strings], "shape"}`` of ``inp``."""
        y = self.g_a(inp)
        return self._compress_y(y, self.h_a(y))

    def decode_latent(self, strings: list, shape) -> torch.Tensor:
        """``ŷ`` from :meth:`compress_latent`'s strings (``h_s`` on one thread)."""
        if not isinstance(strings, list) or len(strings) != 2:
            raise ValueError("strings must be [y_strings, z_strings]")
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        return self._decode_y(strings[0], *self._params(z_hat))


def _small_net(cin: int, cout: int, zero_last: bool) -> nn.Sequential:
    """Three 3×3 convolutions with PReLU between them (Fig. 3 (e)-(f): GD and GS)."""
    net = nn.Sequential(nn.Conv2d(cin, GD_WIDTH, 3, padding=1), nn.PReLU(GD_WIDTH),
                        nn.Conv2d(GD_WIDTH, GD_WIDTH, 3, padding=1), nn.PReLU(GD_WIDTH),
                        nn.Conv2d(GD_WIDTH, cout, 3, padding=1))
    if zero_last:
        nn.init.zeros_(net[-1].weight)
        nn.init.zeros_(net[-1].bias)
    return net


class PFrameCoder(nn.Module):
    """What the five coders share: the core, and the contract ``forward`` / ``compress`` /
    ``decompress`` of CompressAI with the prediction ``x̃`` as a second argument.

    A subclass says what the core codes (:meth:`analysis`) and how a frame is made from the
    core's output (:meth:`synthesis`). Defined in book section *Conditional coding in practice →
    Five coders on one core*.
    """

    name = ""

    def __init__(self, N: int, M: int, cin: int = 3, cout: int = 3, side: int = 0) -> None:
        super().__init__()
        self.N, self.M = N, M
        self.core = Core(N, M, cin, cout, side)

    def analysis(self, x: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def synthesis(self, y_hat: torch.Tensor, xt: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, xt: torch.Tensor) -> dict:
        _check_pair(x, xt)
        y_hat, likelihoods = self.core.code(self.analysis(x, xt))
        return {**self.synthesis(y_hat, xt), "likelihoods": likelihoods}

    def compress(self, x: torch.Tensor, xt: torch.Tensor) -> dict:
        _check_pair(x, xt)
        return self.core.compress_latent(self.analysis(x, xt))

    def decompress(self, strings: list, shape, xt: torch.Tensor) -> dict[str, torch.Tensor]:
        y_hat = self.core.decode_latent(strings, shape)
        with one_thread():  # the decoder's floats must not depend on the thread count
            out = self.synthesis(y_hat, xt)
        return {k: v.clamp(0, 1) for k, v in out.items()}

    def update(self, force: bool = False) -> bool:
        """Build the entropy coders' tables (CompressAI's ``update``)."""
        return self.core.update(force=force)

    def aux_loss(self) -> torch.Tensor:
        return self.core.aux_loss()


class DiffCoder(PFrameCoder):
    """The difference coder: the core codes ``r = x − x̃``, the decoder adds ``x̃`` back
    (Fig. 3 (j), Eq. 12). Defined in book section *Conditional coding in practice → Five coders
    on one core*."""

    name = "pframe-diff"

    def analysis(self, x, xt):
        return x - xt

    def synthesis(self, y_hat, xt):
        return {"x_hat": xt + self.core.g_s(y_hat)}


class CodecNet(PFrameCoder):
    """Ladune et al.'s conditional coder with a prediction bottleneck of ``Y_p`` channels.

    The main encoder sees ``(x, x̃)``; a second, four-layer encoder (GDN, stride 2, width and
    output ``Y_p``) turns ``x̃`` into a latent that the decoder reads beside ``ŷ``; the decoder
    outputs ``x̂`` itself (Fig. 3 (h), (k)). Eq. (8)-(9) of chapter *Conditional coding versus
    residual coding*: what the bottleneck drops of ``x̃`` the rate must pay for. Defined in book
    section *Conditional coding in practice → Five coders on one core*.
    """

    def __init__(self, N: int, M: int, yp: int) -> None:
        super().__init__(N, M, cin=6, side=yp)
        self.yp = yp
        self.name = f"pframe-codecnet{yp}"
        self.g_c = nn.Sequential(conv(3, yp), GDN(yp), conv(yp, yp), GDN(yp), conv(yp, yp),
                                 GDN(yp), conv(yp, yp))

    def analysis(self, x, xt):
        return torch.cat([x, xt], 1)

    def synthesis(self, y_hat, xt):
        return {"x_hat": self.core.g_s(torch.cat([y_hat, self.g_c(xt)], 1))}


class GDC(PFrameCoder):
    """The generalized difference coder: ``q = GD(x, x̃)``, ``x̂ = GS(x̃, q̂)`` with a 3-channel
    ``q`` (Fig. 3 (l)).

    GD and GS are written as the difference and the sum plus a three-layer correction whose last
    layer starts at zero: at step 0 the GDC *is* the difference coder whose core it shares (the
    paper initializes the core from a trained difference coder; GD and GS then learn). Defined in
    book section *Conditional coding in practice → Five coders on one core*.
    """

    name = "pframe-gdc"

    def __init__(self, N: int, M: int) -> None:
        super().__init__(N, M)
        self.gd = _small_net(6, 3, zero_last=True)
        self.gs = _small_net(6, 3, zero_last=True)

    def analysis(self, x, xt):
        return x - xt + self.gd(torch.cat([x, xt], 1))

    def synthesis(self, y_hat, xt):
        q_hat = self.core.g_s(y_hat)
        return {"x_hat": xt + q_hat + self.gs(torch.cat([xt, q_hat], 1))}


class XGDC(PFrameCoder):
    """The extended GDC: ``r`` and ``g = GD(x, x̃)`` (16 channels) in one latent of a 19-channel
    core; the decoder forms ``x̂_d = x̃ + r̂`` (Eq. 12) and ``x̂_g = GS(x̃, ĝ)`` (Eq. 13).

    ``GS`` reads ``x̃`` and all 19 decoded channels and is written as ``x̃ + r̂`` plus a
    correction whose last layer starts at zero, so ``x̂_g = x̂_d`` at step 0. ``forward`` returns
    ``"x_hat"`` by the training rule (:func:`theta_rule`). Defined in book section *Conditional
    coding in practice → Five coders on one core*.
    """

    name = "pframe-xgdc"

    def __init__(self, N: int, M: int) -> None:
        super().__init__(N, M, cin=3 + XGDC_CHANNELS, cout=3 + XGDC_CHANNELS)
        self.gd = _small_net(6, XGDC_CHANNELS, zero_last=False)
        self.gs = _small_net(6 + XGDC_CHANNELS, 3, zero_last=True)

    def analysis(self, x, xt):
        return torch.cat([x - xt, self.gd(torch.cat([x, xt], 1))], 1)

    def synthesis(self, y_hat, xt):
        out = self.core.g_s(y_hat)
        x_d = xt + out[:, :3]
        x_g = x_d + self.gs(torch.cat([xt, out], 1))
        return {"x_hat_d": x_d, "x_hat_g": x_g}

    def forward(self, x, xt):
        out = super().forward(x, xt)
        return {**out, "x_hat": theta_rule(x, xt, out["x_hat_d"], out["x_hat_g"])}


def _check_pair(x: torch.Tensor, xt: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 3 or x.shape != xt.shape:
        raise ValueError(f"x and x̃ must both be (B, 3, H, W), got {tuple(x.shape)} and "
                         f"{tuple(xt.shape)}")
    if x.shape[-2] % 64 or x.shape[-1] % 64:
        raise ValueError(f"H and W must be multiples of 64 (pad with codecs.pad), got "
                         f"{tuple(x.shape[-2:])}")


def create(name: str, N: int, M: int) -> PFrameCoder:
    """A fresh coder ``name`` (:data:`CODERS`) with core widths ``N``, ``M``; CodecNet's ``Y_p``
    is scaled by ``N/128`` (:data:`PAPER_N`). Defined in book section *Conditional coding in
    practice → Five coders on one core*."""
    if name not in CODERS:
        raise ValueError(f"unknown P-frame coder {name!r}; known: {', '.join(CODERS)}")
    if name.startswith("pframe-codecnet"):
        net = CodecNet(N, M, yp=max(1, int(name.removeprefix("pframe-codecnet")) * N // PAPER_N))
        net.name = name
        return net
    return {"pframe-diff": DiffCoder, "pframe-gdc": GDC, "pframe-xgdc": XGDC}[name](N, M)


def count_parameters(net: nn.Module) -> int:
    """Trainable parameters of a coder (the complexity row of Table 1). Defined in book section
    *Conditional coding in practice → Five coders on one core*."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- training rule


def psnr_per_sample(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR (dB, peak 1) of each item of a batch (for :func:`theta_rule`); no page calls it."""
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


def theta_rule(x: torch.Tensor, xt: torch.Tensor, x_d: torch.Tensor, x_g: torch.Tensor,
               theta: float = THETA_DB) -> torch.Tensor:
    """xGDC's training target (Section 6.2): per crop, ``x̂_d`` where the prediction is better
    than ``theta`` dB (small ``I(x̃; r)``, the difference wins), else ``x̂_g``.

    Defined in book section *Conditional coding in practice → Training*.
    """
    good = psnr_per_sample(xt, x) > theta
    return torch.where(good.view(-1, 1, 1, 1), x_d, x_g)


# --------------------------------------------------------------------------- switching


def block_cost(x: torch.Tensor, x_hat: torch.Tensor, lmbda: float) -> torch.Tensor:
    """Per-pixel Lagrangian cost ``λ·255²/3 · Σ_c (x − x̂)²`` in bits: summed over a block and
    added to its side bits, it is the block's share of ``λ·255²·MSE·HW + bits`` (the training
    loss times the pixel count). Defined in book section *Conditional coding in practice →
    Switching*."""
    return lmbda * 255**2 / 3 * (x - x_hat).pow(2).sum(-3)


def frame_switch(costs: list[float]) -> int:
    """Frame-level switching: the index of the smallest Lagrangian cost (one flag per frame).
    Defined in book section *Conditional coding in practice → Switching*."""
    return min(range(len(costs)), key=costs.__getitem__)


def quadtree(cost_d: torch.Tensor, cost_g: torch.Tensor,
             sizes: tuple[int, ...] = QT_SIZES) -> tuple[torch.Tensor, list[int]]:
    """Rate-distortion-optimal quad-tree choice between two reconstructions (Section 6.4).

    ``cost_d``, ``cost_g``: ``(H, W)`` per-pixel costs of ``x̂_d`` and ``x̂_g``
    (:func:`block_cost`). The frame is tiled into ``sizes[0]`` blocks; each block either
    splits into four (down to ``sizes[-1]``) or takes one of the two signals. Side bits: one
    split flag per block larger than the smallest size, one choice bit per leaf, all counted in
    the search. Returns the mask (``(H, W)`` bool, True = ``x̂_g``) and the bits in depth-first
    order (:func:`decode_quadtree` reads them back). Defined in book section *Conditional
    coding in practice → Switching*.
    """
    h, w = cost_d.shape
    cd = cost_d.double()
    cg = cost_g.double()

    def search(top: int, left: int, level: int) -> tuple[float, list[int]]:
        s = sizes[level]
        d = float(cd[top : top + s, left : left + s].sum())
        g = float(cg[top : top + s, left : left + s].sum())
        last = level == len(sizes) - 1
        leaf_bits = [0] * (not last) + [int(g < d)]
        leaf = min(d, g) + len(leaf_bits)
        if last:
            return leaf, leaf_bits
        half = sizes[level + 1]
        split_cost, split_bits = 1.0, [1]
        for t, lft in ((top, left), (top, left + half), (top + half, left),
                       (top + half, left + half)):
            if t < h and lft < w:
                c, b = search(t, lft, level + 1)
                split_cost += c
                split_bits += b
        return (leaf, leaf_bits) if leaf <= split_cost else (split_cost, split_bits)

    bits: list[int] = []
    for top in range(0, h, sizes[0]):
        for left in range(0, w, sizes[0]):
            bits += search(top, left, 0)[1]
    mask = decode_quadtree(bits, h, w, sizes)
    return mask, bits


def decode_quadtree(bits: list[int], height: int, width: int,
                    sizes: tuple[int, ...] = QT_SIZES) -> torch.Tensor:
    """The ``(H, W)`` mask of the bits of :func:`quadtree` (True = ``x̂_g``). Raises
    ``ValueError`` when the bits run out or are left over. Defined in book section
    *Conditional coding in practice → Switching*."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    it = iter(bits)

    def take() -> int:
        try:
            return next(it)
        except StopIteration:
            raise ValueError("the quad-tree bits end before the tree does: the stream is "
                             "damaged") from None

    def read(top: int, left: int, level: int) -> None:
        s = sizes[level]
        last = level == len(sizes) - 1
        if not last and take():
            half = sizes[level + 1]
            for t, lft in ((top, left), (top, left + half), (top + half, left),
                           (top + half, left + half)):
                if t < height and lft < width:
                    read(t, lft, level + 1)
            return
        mask[top : top + s, left : left + s] = bool(take())

    for top in range(0, height, sizes[0]):
        for left in range(0, width, sizes[0]):
            read(top, left, 0)
    if next(it, None) is not None:
        raise ValueError("bits are left over after the quad-tree: the stream is damaged")
    return mask


def pack_bits(bits: list[int]) -> bytes:
    """Bits → bytes, most significant first, zero-padded. Defined in book section *Conditional
    coding in practice → Real bitstreams*."""
    out = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        out[i // 8] |= (b & 1) << (7 - i % 8)
    return bytes(out)


def unpack_bits(blob: bytes, n: int) -> list[int]:
    """The first ``n`` bits of ``blob`` (:func:`pack_bits`). Defined in book section
    *Conditional coding in practice → Real bitstreams*."""
    if len(blob) * 8 < n:
        raise ValueError(f"{len(blob)} bytes hold fewer than {n} bits: the stream is damaged")
    return [(blob[i // 8] >> (7 - i % 8)) & 1 for i in range(n)]

