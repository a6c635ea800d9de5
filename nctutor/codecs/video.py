"""A binary video codec: Frame-Conv3D transforms and delta-sigma modulated binary codes.

Chapter *A binary video codec with delta-sigma modulation*, section *The codec*.

After Sun et al., *High-quality single-model deep video compression with Frame-Conv3D and
multi-frame differential modulation* (``sun_deltasigma``; only its supplement is at hand, so the
layer sizes below are ours, and small). A *group* of ``T`` frames is coded at once:

- ``g_a``, the **Frame-Conv3D** encoder: 3-D convolutions over (time, height, width), four of
  them with spatial stride 2 (stride 16 in all, time kept), GDN between them applied frame by
  frame (CompressAI's :class:`~compressai.layers.GDN`), then ``tanh``. It maps ``(B, T, 3, H, W)``
  to continuous codes ``c`` in [−1, 1] of shape ``(B, C, T, H/16, W/16)``. The bound is ours: a
  delta-sigma loop is stable only while its input stays inside the quantizer's range; without
  it the first-order model's codes grew past 1 in training, the loop overloaded (its state ran
  to ±1000, every bit stuck), ``1 − tanh² y`` vanished and no gradient could bring them back
  (book section *A binary video codec with delta-sigma modulation → Training*);
- the **binary quantizer** across frames: order 0 is ``b = B(tanh c)`` frame by frame; orders 1
  and 2 are the delta-sigma modulators of :mod:`nctutor.quant.deltasigma`, Eq. (A.1)-(A.2) and
  (B.1), run along the time axis of every code (one switch, :data:`MODELS`);
- ``g_s``, the decoder, the mirror image of ``g_a`` with transposed 3-D convolutions: it sees the
  bits of all frames at once and so can undo the modulator's noise shaping (its time kernels
  act as the delta-sigma *decimation filter*);
- **one model for many rates** by *channel dropout*: in training each group keeps only its first
  ``K`` channels (``K`` drawn from :data:`CHANNEL_STEPS`), the rest are set to 0 ("not sent"); at
  test time ``K`` sets the rate (``K·T·h·w`` bits before entropy coding);
- the bits are entropy-coded by :mod:`nctutor.entropy.binary` (context: the same channel's bit
  in the previous frame and the causal spatial neighbours).

There is no rate term in the loss (the bits are binary; the rate is set by ``K``): training
minimizes the MSE of the reconstructed group, averaged over the drawn ``K``.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
from compressai.layers import GDN
from torch import nn

from ..entropy import binary
from ..quant.deltasigma import binarize_ste, modulate
from .image import pad

__all__ = ["CHANNEL_STEPS", "MODELS", "STRIDE", "BinaryVideoCodec", "create", "fingerprint"]

#: The codec's names and their modulator order (0: none, frame by frame).
MODELS = {"frameconv3d-order0": 0, "frameconv3d-order1": 1, "frameconv3d-order2": 2}
#: Spatial downsampling of ``g_a`` (time is not downsampled).
STRIDE = 16
#: Fractions of the ``C`` channels a group keeps in training and at test time (the rates).
CHANNEL_STEPS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1)


class FrameGDN(nn.Module):
    """CompressAI's GDN (or inverse GDN) applied to every frame of ``(B, C, T, H, W)``.

    A layer of :class:`BinaryVideoCodec` (book section *A binary video codec with delta-sigma
    modulation → The codec*); no page calls it.
    """

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.gdn = GDN(channels, inverse=inverse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = self.gdn(x.transpose(1, 2).reshape(b * t, c, h, w))
        return y.reshape(b, t, c, h, w).transpose(1, 2)


def _conv(cin: int, cout: int, k: tuple[int, int, int]) -> nn.Conv3d:
    """Spatial stride 2, time stride 1, 'same' padding in time."""
    return nn.Conv3d(cin, cout, k, stride=(1, 2, 2), padding=tuple(s // 2 for s in k))


def _deconv(cin: int, cout: int, k: tuple[int, int, int]) -> nn.ConvTranspose3d:
    """The transposed twin of :func:`_conv`: spatial upsampling by 2, time kept."""
    return nn.ConvTranspose3d(cin, cout, k, stride=(1, 2, 2), padding=tuple(s // 2 for s in k),
                              output_padding=(0, 1, 1))


class BinaryVideoCodec(nn.Module):
    """Frame-Conv3D encoder, binary codes modulated across frames, Frame-Conv3D decoder.

    Args:
        order: the modulator across frames: 0 (none), 1 (Eq. (A.1)) or 2 (Eq. (B.1)).
        N: channel width of the transforms.
        C: channels of the binary code (the most bits per latent pixel and frame).

    ``forward(x, channels)`` takes frames ``(B, T, 3, H, W)`` in [0, 1] (``H``, ``W`` multiples
    of :data:`STRIDE`) and returns ``{"x_hat", "bits"}``; ``compress`` / ``decompress`` code one
    group to bytes and back (CompressAI's contract, without ``update()``: the coder adapts).
    Defined in book section *A binary video codec with delta-sigma modulation → The codec*.
    """

    def __init__(self, order: int = 1, N: int = 48, C: int = 128) -> None:
        super().__init__()
        if order not in (0, 1, 2):
            raise ValueError(f"order must be 0, 1 or 2, got {order}")
        if C % 16:
            raise ValueError(f"C must be a multiple of 16 (the channel steps), got {C}")
        self.order, self.N, self.C = order, N, C
        k5, k3 = (1, 5, 5), (3, 3, 3)  # first/last layer: frame by frame; inner: over time too
        self.g_a = nn.Sequential(
            _conv(3, N, k5), FrameGDN(N), _conv(N, N, k3), FrameGDN(N),
            _conv(N, N, k3), FrameGDN(N), _conv(N, C, k3))
        self.g_s = nn.Sequential(
            _deconv(C, N, k3), FrameGDN(N, inverse=True), _deconv(N, N, k3),
            FrameGDN(N, inverse=True), _deconv(N, N, k3), FrameGDN(N, inverse=True),
            _deconv(N, 3, k5))

    def channel_steps(self) -> list[int]:
        """The numbers of kept channels ``K`` the model was trained for (its rates)."""
        return [round(f * self.C) for f in CHANNEL_STEPS]

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous codes ``c`` ``(B, C, T, h, w)`` in [−1, 1] of frames ``(B, T, 3, H, W)``."""
        if x.dim() != 5 or x.shape[2] != 3:
            raise ValueError(f"frames must be (B, T, 3, H, W), got {tuple(x.shape)}")
        if x.shape[-1] % STRIDE or x.shape[-2] % STRIDE:
            raise ValueError(f"height and width must be multiples of {STRIDE}, got "
                             f"{tuple(x.shape[-2:])}: pad them (codecs.pad)")
        return torch.tanh(self.g_a(x.transpose(1, 2)))  # bounded: the loop never overloads

    def binarize(self, c: torch.Tensor) -> torch.Tensor:
        """Codes ``c`` ``(B, C, T, h, w)`` → bits in {−1, +1}, modulated along time (dim 2)."""
        if self.order == 0:
            return binarize_ste(torch.tanh(c))  # Eq. (A.2) frame by frame
        return modulate(c, self.order, dim=2)

    def keep(self, b: torch.Tensor, channels: int | torch.Tensor) -> torch.Tensor:
        """Zero every channel from ``channels`` on (a scalar, or one ``K`` per group)."""
        k = torch.as_tensor(channels, device=b.device).reshape(-1, 1, 1, 1, 1)
        index = torch.arange(self.C, device=b.device).reshape(1, -1, 1, 1, 1)
        return b * (index < k)

    def synthesize(self, b: torch.Tensor) -> torch.Tensor:
        """Frames ``(B, T, 3, H, W)`` from bits ``(B, C, T, h, w)`` (dropped channels 0)."""
        return self.g_s(b).transpose(1, 2)

    def forward(self, x: torch.Tensor, channels: int | torch.Tensor | None = None) -> dict:
        b = self.keep(self.binarize(self.codes(x)), self.C if channels is None else channels)
        return {"x_hat": self.synthesize(b), "bits": b}

    @torch.no_grad()
    def compress(self, frames: torch.Tensor, channels: int) -> dict:
        """Code one group ``(T, 3, H, W)`` in [0, 1] with its first ``channels`` channels.

        The frames are moved to the model's device and padded to multiples of :data:`STRIDE`
        (:func:`nctutor.codecs.pad`); returns ``{"strings": [bytes], "shape": (h, w)}``.
        """
        self._check_channels(channels)
        if frames.dim() != 4 or frames.shape[1] != 3 or frames.shape[0] < 1:
            raise ValueError(f"a group must be (T, 3, H, W) with T >= 1, got {tuple(frames.shape)}")
        x = pad(frames.to(next(self.parameters()).device), STRIDE).unsqueeze(0)
        b = self.binarize(self.codes(x))[0, :channels]  # (K, T, h, w)
        bits = (b > 0).to(torch.uint8).transpose(0, 1).cpu().numpy()  # (T, K, h, w)
        return {"strings": [binary.encode_bits(bits)], "shape": tuple(bits.shape[-2:])}

    @torch.no_grad()
    def decompress(self, strings: list[bytes], shape: tuple[int, int], frames: int,
                   channels: int) -> torch.Tensor:
        """Decode one group: ``(T, 3, STRIDE·h, STRIDE·w)`` in [0, 1] on the model's device
        (crop it to the size)."""
        self._check_channels(channels)
        bits = binary.decode_bits(strings[0], (frames, channels, *shape))
        b = torch.zeros(1, self.C, frames, *shape, device=next(self.parameters()).device)
        b[0, :channels] = torch.from_numpy(bits).to(b.device).float().transpose(0, 1) * 2 - 1
        return self.synthesize(b)[0].clamp(0, 1)

    def _check_channels(self, channels: int) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int) \
                or not 1 <= channels <= self.C:
            raise ValueError(f"channels must be an int in 1..{self.C}, got {channels!r}")


def create(name: str, N: int = 48, C: int = 128) -> BinaryVideoCodec:
    """The codec ``name`` of :data:`MODELS` (its modulator order), untrained.

    Defined in book section *A binary video codec with delta-sigma modulation → The codec*.
    """
    if name not in MODELS:
        raise ValueError(f"unknown video model {name!r}; choose one of {', '.join(MODELS)}")
    return BinaryVideoCodec(MODELS[name], N, C)


def fingerprint(model: BinaryVideoCodec) -> int:
    """CRC32 of the decoder's weights: a file made for one model is refused by another.

    The bits decode with any model (the coder adapts, it has no tables), so what must match is
    ``g_s``. Used by the ``.nct`` video files (book section *A binary video codec with delta-sigma
    modulation → Real bytes*); no page calls it.
    """
    crc = zlib.crc32(np.array([model.order, model.N, model.C], dtype=np.int32).tobytes())
    for t in model.g_s.state_dict().values():
        crc = zlib.crc32(t.detach().cpu().float().numpy().tobytes(), crc)
    return crc
