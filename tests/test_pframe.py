"""Tests of the P-frame setting: nctutor.codecs.pframe and the pair helpers of nctutor.pframetrain.

Book chapter *Conditional coding in practice → The P-frame setting* and *→ Real bitstreams*.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nctutor import pframetrain
from nctutor.codecs import pframe as pf
from nctutor.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")


def texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random texture ``(3, h, w)`` on the 8-bit grid: low-passed noise, stretched."""
    g = torch.Generator().manual_seed(seed)
    n = F.avg_pool2d(torch.rand(1, 3, h + 2, w + 2, generator=g), 3, stride=1)[0]
    n = (n - n.min()) / (n.max() - n.min())
    return n.mul(255).round().div(255)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return 10 * math.log10(1 / mse)


def kodak_crop(top: int, left: int, h: int, w: int) -> torch.Tensor:
    from nctutor import data

    try:
        image = data.kodak(1)[0]
    except DataError as e:  # no data root on this machine
        pytest.skip(f"Kodak not available: {e}")
    return image[:, top : top + h, left : left + w]


def compensate_by_hand(ref: torch.Tensor, mv: torch.Tensor, block: int) -> torch.Tensor:
    """The prediction written the slow way: each block sliced from the border-replicated ref."""
    _, h, w = ref.shape
    pad = int(mv.abs().max()) + block
    big = F.pad(ref[None], (pad, pad, pad, pad), mode="replicate")[0]
    out = torch.empty_like(ref)
    for by in range(mv.shape[1]):
        for bx in range(mv.shape[2]):
            top, left = by * block, bx * block
            bh, bw = min(block, h - top), min(block, w - left)
            dy, dx = int(mv[0, by, bx]), int(mv[1, by, bx])
            out[:, top : top + bh, left : left + bw] = big[:, pad + top + dy : pad + top + dy + bh,
                                                           pad + left + dx : pad + left + dx + bw]
    return out


# --------------------------------------------------------------------------- block motion


def test_block_motion_finds_a_known_shift():
    ref = texture(96, 128)
    x = torch.roll(ref, shifts=(3, -5), dims=(1, 2))  # x[i, j] = ref[i - 3, j + 5]
    mv = pf.block_motion(x, ref)
    assert mv.shape == (2, 6, 8) and mv.dtype == torch.int64
    # interior blocks: not the first block row (rolled in from the bottom) nor the last column
    inner = (slice(1, None), slice(0, -1))
    assert (mv[0][inner] == -3).all() and (mv[1][inner] == 5).all()
    xt = pf.compensate(ref, mv)
    assert torch.equal(xt[:, 16:, :112], x[:, 16:, :112])


def test_block_motion_of_a_frame_with_itself_is_zero():
    ref = texture(40, 56, seed=3)  # not a multiple of the block: edge blocks padded
    mv = pf.block_motion(ref, ref)
    assert mv.shape == (2, 3, 4) and not mv.any()


def test_block_motion_checks_its_inputs():
    ref = texture(32, 32)
    with pytest.raises(ValueError):
        pf.block_motion(ref, ref[:, :16])
    with pytest.raises(ValueError):
        pf.block_motion(ref[None], ref[None])
    with pytest.raises(ValueError):
        pf.block_motion(ref, ref, search=-1)


def test_compensate_zero_motion_is_the_identity():
    for h, w in ((32, 48), (40, 50), (7, 5)):
        ref = texture(h, w, seed=h)
        mv = torch.zeros(2, *pf.motion_grid(h, w), dtype=torch.int64)
        assert torch.equal(pf.compensate(ref, mv), ref)


@pytest.mark.parametrize("h, w", [(32, 32), (40, 50)])
def test_compensate_replicates_the_border(h, w):
    ref = texture(h, w, seed=1)
    g = torch.Generator().manual_seed(h)
    mv = torch.randint(-40, 41, (2, *pf.motion_grid(h, w)), generator=g)  # far outside
    assert torch.equal(pf.compensate(ref, mv), compensate_by_hand(ref, mv, pf.BLOCK))
    # a vector pointing straight up out of the frame: every row is the first row
    up = torch.zeros_like(mv)
    up[0] = -64
    assert torch.equal(pf.compensate(ref, up), ref[:, :1].expand_as(ref))


def test_compensate_refuses_a_field_of_the_wrong_shape():
    ref = texture(32, 32)
    for shape in ((2, 3, 3), (1, 2, 2), (2, 2)):
        with pytest.raises(ValueError, match="mv must be"):
            pf.compensate(ref, torch.zeros(shape, dtype=torch.int64))


# --------------------------------------------------------------------------- motion stream


@pytest.mark.parametrize("grid", [(1, 1), (1, 7), (5, 1), (6, 8), (15, 26)])
def test_motion_round_trip(grid):
    g = torch.Generator().manual_seed(grid[0] * 100 + grid[1])
    mv = torch.randint(-16, 17, (2, *grid), generator=g)
    blob = pf.encode_motion(mv)
    assert isinstance(blob, bytes)
    assert torch.equal(pf.decode_motion(blob, grid), mv)


def test_motion_of_a_static_frame_is_tiny():
    blob = pf.encode_motion(torch.zeros(2, 15, 26, dtype=torch.int64))
    assert len(blob) < 16


def test_motion_round_trip_at_the_largest_accepted_vectors():
    for v in (63, 64, 100, 127):  # every field that encode_motion accepts must come back
        mv = torch.tensor([[[v, -v, v], [-v, v, -v]], [[-v, 0, v], [v, -v, 0]]])
        try:
            blob = pf.encode_motion(mv)
        except ValueError:
            continue
        assert torch.equal(pf.decode_motion(blob, (2, 3)), mv), v


def test_motion_refuses_long_vectors_and_bad_shapes():
    for bad in (torch.full((2, 2, 2), 64), torch.full((2, 2, 2), -64),
                torch.zeros(3, 2, 2, dtype=torch.int64), torch.zeros(2, 4, dtype=torch.int64)):
        with pytest.raises(ValueError):
            pf.encode_motion(bad)


def test_damaged_motion_streams_raise_motion_stream_error():
    grid = (6, 8)
    mv = torch.randint(-16, 17, (2, *grid), generator=torch.Generator().manual_seed(5))
    blob = pf.encode_motion(mv)
    assert issubclass(pf.MotionStreamError, ValueError)
    damaged = [b"", blob[:1], blob[: len(blob) // 2], blob[:-1], blob + b"\x00",
               blob + blob]
    for bad in damaged:
        with pytest.raises(pf.MotionStreamError):
            pf.decode_motion(bad, grid)
    with pytest.raises(pf.MotionStreamError):  # the right stream read for another grid
        pf.decode_motion(blob, (6, 7))
    with pytest.raises(pf.MotionStreamError):
        pf.decode_motion(blob, (6, 9))
    rng = np.random.default_rng(0)
    for _ in range(200):  # random bytes: a MotionStreamError or (rarely) some field, never a crash
        junk = rng.integers(0, 256, size=int(rng.integers(1, 40)), dtype=np.uint8).tobytes()
        try:
            out = pf.decode_motion(junk, grid)
        except pf.MotionStreamError:
            continue
        assert out.shape == (2, *grid)


# --------------------------------------------------------------------------- the reference


def test_jpeg2000_reference_near_35_db():
    x = kodak_crop(128, 256, 128, 192)
    ref, nbytes = pf.jpeg2000_reference(x)
    assert ref.shape == x.shape and ref.dtype == torch.float32
    assert torch.equal(ref, ref.mul(255).round().div(255))  # a decoded 8-bit frame
    assert abs(psnr(ref, x) - pf.REFERENCE_PSNR) < 2.0
    assert 0 < nbytes < 128 * 192 * 3
    ref30, nbytes30 = pf.jpeg2000_reference(x, psnr=30.0)
    assert nbytes30 < nbytes and psnr(ref30, x) < psnr(ref, x)


def test_jpeg2000_reference_checks_its_input():
    with pytest.raises(ValueError):
        pf.jpeg2000_reference(torch.zeros(1, 3, 16, 16))


# --------------------------------------------------------------------------- pairs and crops


def test_make_pair():
    big = kodak_crop(100, 200, 96 + 8, 128 + 8)
    ref, x = big[:, 4:100, 4:132], big[:, 2:98, 7:135]  # the camera moved by (2, -3) pixels
    pair = pframetrain.make_pair(ref, x)
    assert set(pair) == {"x", "xt", "ref", "info"}
    for key in ("x", "xt", "ref"):
        assert pair[key].dtype == torch.uint8 and pair[key].shape == (3, 96, 128)
    assert torch.equal(pair["x"], x.mul(255).round().to(torch.uint8))
    info = pair["info"]
    assert set(info) == {"reference_bytes", "reference_psnr", "motion_bytes", "prediction_psnr"}
    x8, xt8, ref8 = (pair[k].float() / 255 for k in ("x", "xt", "ref"))
    assert info["prediction_psnr"] == pytest.approx(psnr(xt8, x8), abs=0.1)
    assert info["reference_psnr"] == pytest.approx(psnr(ref8, ref), abs=0.1)
    assert abs(info["reference_psnr"] - pf.REFERENCE_PSNR) < 2.0
    assert info["reference_bytes"] > 0 and info["motion_bytes"] > 0
    # the prediction is made from the decoded reference with the coded motion
    mv = pf.block_motion(x8, ref8)
    assert torch.equal(pf.compensate(ref8, mv), xt8)
    assert info["motion_bytes"] == len(pf.encode_motion(mv))
    # the motion was found: the prediction is better than the reference left in place
    assert info["prediction_psnr"] > psnr(ref8, x8) + 3


def synthetic_pairs(n: int = 3) -> list[dict]:
    out = []
    for i in range(n):
        x = texture(80 + 16 * i, 96, seed=10 + i)
        xt = (x + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(i)))
        out.append({"x": pframetrain._u8(x), "xt": pframetrain._u8(xt)})
    return out


def test_crops_are_deterministic_and_vary():
    items = synthetic_pairs()
    a = pframetrain.crops(items, 5, 64, seed=7)
    assert a.shape == (2, 3, 64, 64) and a.dtype == torch.float32
    assert 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, pframetrain.crops(items, 5, 64, seed=7))
    assert not torch.equal(a, pframetrain.crops(items, 6, 64, seed=7))
    assert not torch.equal(a, pframetrain.crops(items, 5, 64, seed=8))
    many = torch.stack([pframetrain.crops(items, i, 64, seed=7) for i in range(20)])
    assert len({tuple(c.flatten()[:50].tolist()) for c in many}) == 20


def test_crop_is_a_window_of_one_pair():
    items = synthetic_pairs()
    crop = pframetrain.crops(items, 3, 64, seed=0).mul(255).round().to(torch.uint8)

    def windows():
        for item in items:
            both = torch.stack([item["x"], item["xt"]])
            for b in (both, both.flip(-1)):
                for top in range(b.shape[-2] - 63):
                    for left in range(b.shape[-1] - 63):
                        yield b[..., top : top + 64, left : left + 64]

    assert any(torch.equal(w, crop) for w in windows())  # x and x̃ from one place of one pair
