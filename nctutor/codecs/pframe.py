"""The P-frame setting of the conditional coders: a coded reference, motion and its prediction.

Chapter *Conditional coding in practice* (sections *The P-frame setting* and *Real bitstreams*).
Brand, Seiler and Kaup code one frame ``x`` given a reference frame coded with JPEG 2000 to about
35 dB and a motion-compensated prediction ``x̃`` from it; they take DVC's pretrained SpyNet flow
and motion coder, which is not available offline. This module uses classical tools instead:

- :func:`jpeg2000_reference`: the reference coded with OpenJPEG (through Pillow) at a target
  PSNR (``quality_mode="dB"``);
- :func:`block_motion`: integer-pel full-search block matching on luma (``B×B`` blocks, search
  range ``±R``), the textbook motion estimator of H.261 … H.264;
- :func:`compensate`: the prediction ``x̃``, each block copied from the reference displaced by
  its vector (borders replicated);
- :func:`encode_motion` / :func:`decode_motion`: the vectors as bytes (left-neighbour prediction,
  zig-zag to unsigned, DEFLATE), whose length counts in the rate.

Everything here is integer-exact, so encoder and decoder form the same ``x̃`` bit for bit.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..config import one_thread
from ..errors import NctutorError

#: Block side and search range of the book's motion estimator.
BLOCK, SEARCH = 16, 16
#: Target PSNR (dB) of the JPEG 2000 reference, as in the paper's test setup.
REFERENCE_PSNR = 35.0


class MotionStreamError(NctutorError, ValueError):
    """A motion stream that does not decode to the field its header promises (book section
    *Conditional coding in practice → Real bitstreams*)."""


def _check_frame(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"{what} must be a (3, H, W) tensor in [0, 1], got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in [0, 1] → ``(H, W, 3)`` uint8 (rounded), for Pillow; no page calls it."""
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def from_uint8(a: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 → ``(3, H, W)`` float in [0, 1]; no page calls it."""
    return torch.from_numpy(np.array(a, copy=True)).permute(2, 0, 1).float().div(255.0)


def jpeg2000_reference(x: torch.Tensor, psnr: float = REFERENCE_PSNR) -> tuple[torch.Tensor, int]:
    """The reference frame ``x`` coded with JPEG 2000 at about ``psnr`` dB: ``(decoded, bytes)``.

    OpenJPEG's fixed-quality mode (``quality_mode="dB"``) stops adding coding passes once its
    own PSNR estimate reaches the target, so the decoded PSNR lands near it (within about 1 dB).
    Defined in book section *Conditional coding in practice → The P-frame setting*.
    """
    _check_frame(x, "x")
    buf = io.BytesIO()
    Image.fromarray(to_uint8(x)).save(buf, "JPEG2000", quality_mode="dB", quality_layers=[psnr])
    decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return from_uint8(decoded), buf.tell()


def _luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of ``(3, H, W)`` on the 0…255 scale, as ``(1, 1, H, W)`` float64."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(3, 1, 1)
    return (x.double().mul(255).round() * w).sum(0)[None, None]


def _grid(h: int, w: int, block: int) -> tuple[int, int]:
    return -(-h // block), -(-w // block)


def block_motion(x: torch.Tensor, ref: torch.Tensor, block: int = BLOCK,
                 search: int = SEARCH) -> torch.Tensor:
    """Integer motion vectors ``(2, H/B, W/B)`` (dy, dx) of ``x``'s ``B×B`` blocks in ``ref``.

    Full search over ``|dy|, |dx| ≤ search``: each block takes the displacement with the smallest
    sum of absolute luma differences, plus a small cost on the vector's length that breaks ties
    towards short, cheap vectors (blocks on flat areas). Blocks on the frame's edge are padded by
    replication. Defined in book section *Conditional coding in practice → The P-frame setting*.
    """
    _check_frame(x, "x")
    _check_frame(ref, "ref")
    if x.shape != ref.shape:
        raise ValueError(f"x {tuple(x.shape)} and ref {tuple(ref.shape)} differ in size")
    if block < 1 or search < 0:
        raise ValueError(f"block must be positive and search non-negative, got {block}, {search}")
    h, w = x.shape[-2:]
    gh, gw = _grid(h, w, block)
    with one_thread():  # a thousand small tensor operations: threads only add overhead
        return _search(x, ref, block, search, gh, gw)


def _search(x: torch.Tensor, ref: torch.Tensor, block: int, search: int, gh: int,
            gw: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    cur = F.pad(_luma(x), (0, gw * block - w, 0, gh * block - h), mode="replicate")
    padded = F.pad(_luma(ref), (search, search + gw * block - w, search, search + gh * block - h),
                   mode="replicate")
    best = torch.full((gh, gw), float("inf"), dtype=torch.float64)
    mv = torch.zeros(2, gh, gw, dtype=torch.int64)
    for dy in range(-search, search + 1):
        for dx in range(-search, search + 1):
            cand = padded[..., search + dy : search + dy + gh * block,
                          search + dx : search + dx + gw * block]
            sad = F.avg_pool2d((cur - cand).abs(), block)[0, 0] * block * block
            cost = sad + 0.5 * block * (abs(dy) + abs(dx))
            better = cost < best
            best = torch.where(better, cost, best)
            mv[0][better], mv[1][better] = dy, dx
    return mv


def compensate(ref: torch.Tensor, mv: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """The motion-compensated prediction ``x̃``: each ``B×B`` block of the frame copied from
    ``ref`` displaced by its vector of ``mv`` ``(2, H/B, W/B)`` (outside the frame: replicated
    border). Defined in book section *Conditional coding in practice → The P-frame setting*.
    """
    _check_frame(ref, "ref")
    h, w = ref.shape[-2:]
    gh, gw = _grid(h, w, block)
    if tuple(mv.shape) != (2, gh, gw):
        raise ValueError(f"mv must be (2, {gh}, {gw}) for a {h}×{w} frame and {block}-pixel "
                         f"blocks, got {tuple(mv.shape)}")
    rows = torch.arange(gh * block).view(-1, 1) + mv[0].repeat_interleave(block, 0) \
        .repeat_interleave(block, 1)
    cols = torch.arange(gw * block).view(1, -1) + mv[1].repeat_interleave(block, 0) \
        .repeat_interleave(block, 1)
    rows, cols = rows.clamp(0, h - 1)[:h, :w], cols.clamp(0, w - 1)[:h, :w]
    return ref[:, rows, cols]


def _zigzag(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    return np.where(u % 2 == 0, u // 2, -(u + 1) // 2)


def encode_motion(mv: torch.Tensor) -> bytes:
    """The field ``mv`` ``(2, gh, gw)`` as bytes: each vector minus its left neighbour (the first
    column: minus the one above), zig-zag mapped to unsigned bytes, raw DEFLATE (zlib, level 9).

    Vectors must stay within ±63 (:data:`SEARCH` is 16), so that a difference of neighbours
    fits a byte. The vectors' size is not stored: the decoder knows the frame and block size.
    Defined in book section *Conditional coding in practice → Real bitstreams*.
    """
    a = mv.numpy().astype(np.int64)
    if a.ndim != 3 or a.shape[0] != 2 or np.abs(a).max(initial=0) > 63:
        raise ValueError(f"mv must be (2, gh, gw) with |v| <= 63 (differences must fit a "
                         f"byte), got {a.shape}")
    d = a.copy()
    d[:, :, 1:] -= a[:, :, :-1]
    d[:, 1:, 0] -= a[:, :-1, 0]
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(_zigzag(d).astype(np.uint8).tobytes()) + c.flush()


def decode_motion(blob: bytes, grid: tuple[int, int]) -> torch.Tensor:
    """The field written by :func:`encode_motion` for a ``grid = (gh, gw)`` of blocks.

    Raises :class:`MotionStreamError` when the bytes are not a DEFLATE stream of exactly
    ``2·gh·gw`` values. Defined in book section *Conditional coding in practice → Real
    bitstreams*.
    """
    gh, gw = grid
    try:
        d = zlib.decompressobj(-15)
        raw = d.decompress(blob, 2 * gh * gw + 1)
        complete = d.eof and not d.unused_data and not d.unconsumed_tail
    except zlib.error as e:
        raise MotionStreamError(f"the motion stream is damaged ({e}); the file cannot be "
                                "decoded") from None
    if len(raw) != 2 * gh * gw or not complete:
        raise MotionStreamError(f"the motion stream holds {len(raw)} values where {2 * gh * gw} "
                                "were expected: the file is damaged")
    v = _unzigzag(np.frombuffer(raw, np.uint8).astype(np.int64)).reshape(2, gh, gw)
    v[:, 1:, 0] = np.cumsum(v[:, :, 0], axis=1)[:, 1:]
    v = np.cumsum(v, axis=2)
    return torch.from_numpy(v)


def predict(x: torch.Tensor, ref: torch.Tensor, block: int = BLOCK,
            search: int = SEARCH) -> tuple[torch.Tensor, bytes]:
    """Motion estimation and compensation in one call: ``(x̃, motion bytes)``.

    Defined in book section *Conditional coding in practice → The P-frame setting*.
    """
    mv = block_motion(x, ref, block, search)
    return compensate(ref, mv, block), encode_motion(mv)


def motion_grid(height: int, width: int, block: int = BLOCK) -> tuple[int, int]:
    """The ``(gh, gw)`` block grid of an ``height×width`` frame. Defined in book section
    *Conditional coding in practice → Real bitstreams*."""
    return _grid(height, width, block)
