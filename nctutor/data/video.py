"""Video: the BasketballPass frames and the four clips, decoded to tensors ``(T, 3, H, W)``.

Chapter *How to run this book → Data*; the rooms of the coming video chapters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .images import load_image
from .sources import files, path


def basketball_pass(n: int | None = None) -> torch.Tensor:
    """The first ``n`` (≤100) frames of BasketballPass (416×240) as ``(T, 3, 240, 416)``.

    Video data of the chapter *A binary video codec with delta-sigma modulation* (through
    :func:`clip_frames`; tested in ``tests/test_data.py``).
    """
    rels = files("video/BasketballPass")[:n]
    return torch.stack([load_image(path(r)) for r in rels])


CLIPS = ("bikes", "carphone_pristine", "bigbuckbunny", "cockatoo")


def read_video(file: str | Path, limit: int | None = None) -> tuple[Iterator[np.ndarray],
                                                                  Callable[[], None]]:
    """Open a video file with imageio-ffmpeg: an iterator of its first ``limit`` frames (all for
    ``None``) as uint8 ``(H, W, 3)`` arrays, decoded one at a time, and a function that releases
    the reader. A file ffmpeg cannot decode raises :class:`DataError`.

    Used by :func:`video_clip` and by ``nctutor compress CLIP.mp4`` (book section *A binary video
    codec with delta-sigma modulation → Real bytes*); no page calls it.
    """
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(file), pix_fmt="rgb24")
    try:
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as e:
        reader.close()
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"cannot read the video {file}: ffmpeg could not decode it "
                        f"({first})") from None
    width, height = meta["size"]

    def frames() -> Iterator[np.ndarray]:
        for i, raw in enumerate(reader):
            if limit is not None and i >= limit:
                break
            yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)

    return frames(), reader.close


def video_clip(name: str, max_frames: int | None = None, uint8: bool = False) -> torch.Tensor:
    """Decode the clip ``name`` (one of :data:`CLIPS`) with imageio-ffmpeg: ``(T, 3, H, W)``,
    float in [0, 1], or the 8-bit values with ``uint8=True`` (a quarter of the memory).

    Video data of the chapter *A binary video codec with delta-sigma modulation* (through
    :func:`clip_frames`; tested in ``tests/test_data.py``).
    """
    if name not in CLIPS:
        raise ValueError(f"unknown clip {name!r}; choose one of {', '.join(CLIPS)}")
    file = path(f"video/{name}.mp4")
    frames, close = read_video(file, max_frames)
    try:
        frames = list(frames)
    finally:
        close()
    if not frames:
        raise DataError(f"{file} decoded to no frames")
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    return x if uint8 else x.float().div(255.0)



# --------------------------------------------------------------------------- groups for training

#: Which frames each clip lends to training, validation and test: ``(clip, first, stop)``. The two
#: test clips are held out whole: BasketballPass (HEVC class D, fast motion: the paper's hard case)
#: and Carphone (QCIF, slow). The last 24 frames of each training clip are the validation segment.
SPLIT: dict[str, tuple[tuple[str, int, int | None], ...]] = {
    "train": (("bikes", 0, 226), ("bigbuckbunny", 0, 108), ("cockatoo", 0, 256)),
    "val": (("bikes", 226, 250), ("bigbuckbunny", 108, 132), ("cockatoo", 256, 280)),
    "test": (("BasketballPass", 0, 100), ("carphone_pristine", 0, 120)),
}
#: Clips wider than this are halved (area average) for training and validation: 720p clips at
#: half size give crops with more structure per pixel, and halve their H.264 source artefacts.
MAX_TRAIN_WIDTH = 640
#: The clips' widths (their README), to decide halving before decoding.
_WIDTHS = {"bikes": 640, "carphone_pristine": 176, "bigbuckbunny": 1280, "cockatoo": 1280}


def clip_frames(name: str, first: int = 0, stop: int | None = None) -> torch.Tensor:
    """Frames ``first:stop`` of a clip of :data:`CLIPS` or of ``"BasketballPass"``, as
    ``(T, 3, H, W)``.

    Defined in book section *A binary video codec with delta-sigma modulation → Real bytes*.
    """
    x = basketball_pass(stop) if name == "BasketballPass" else video_clip(name, stop)
    return x[first:stop]


def _clip_uint8(name: str, first: int, stop: int | None, halve: bool) -> torch.Tensor:
    """Frames ``first:stop`` as uint8, halved in size (area average) where ``halve``: decoded and
    pooled a few frames at a time, so memory stays near the uint8 result."""
    if name == "BasketballPass":
        x = basketball_pass(stop)[first:stop].mul(255).round().to(torch.uint8)
    else:
        x = video_clip(name, stop, uint8=True)[first:stop]  # ffmpeg's seeking is not exact
    if not halve:
        return x
    return torch.cat([torch.nn.functional.avg_pool2d(x[i : i + 16].float(), 2).round()
                      .to(torch.uint8) for i in range(0, len(x), 16)])


@functools.lru_cache(maxsize=2)
def split_frames(split: str, limit: int | None = None) -> list[torch.Tensor]:
    """The frames of ``split`` (:data:`SPLIT`) as uint8 ``(T, 3, H, W)``, one tensor per clip (at
    most ``limit`` frames of each); training and validation clips wider than
    :data:`MAX_TRAIN_WIDTH` are halved. Kept in memory (the last two splits asked for): do not
    modify the tensors.

    Used by :class:`GroupDataset` and the video trainer; no page calls it.
    """
    if split not in SPLIT:
        raise ValueError(f"split must be one of {', '.join(SPLIT)}, got {split!r}")
    out = []
    for name, first, stop in SPLIT[split]:
        if limit is not None:
            stop = first + limit if stop is None else min(stop, first + limit)
        wide = name != "BasketballPass" and _WIDTHS.get(name, 0) > MAX_TRAIN_WIDTH
        out.append(_clip_uint8(name, first, stop, halve=split != "test" and wide))
    return out


class GroupDataset(torch.utils.data.Dataset):
    """Random ``frames × patch × patch`` crops of consecutive frames (random horizontal flips).

    Item ``i`` is drawn from a generator seeded with ``seed`` and ``i``, so a resumed run sees the
    groups it would have seen; a clip is drawn with probability proportional to its groups.
    Used by the video trainer (book section *A binary video codec with delta-sigma modulation →
    Training*); no page calls it.
    """

    def __init__(self, clips: list[torch.Tensor], frames: int, patch_size: int,
                 epoch_size: int, seed: int = 0) -> None:
        for x in clips:
            if x.shape[0] < frames or min(x.shape[-2:]) < patch_size:
                raise ValueError(f"a clip of {tuple(x.shape)} is too small for groups of "
                                 f"{frames} frames of {patch_size}×{patch_size}")
        self.clips, self.frames, self.patch_size = clips, frames, patch_size
        self.epoch_size, self.seed = epoch_size, seed
        self.weights = torch.tensor([x.shape[0] - frames + 1 for x in clips], dtype=torch.float64)

    def __len__(self) -> int:
        return self.epoch_size

    def __getitem__(self, index: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        x = self.clips[int(torch.multinomial(self.weights, 1, generator=g))]
        t, _, h, w = x.shape
        p = self.patch_size
        first = int(torch.randint(t - self.frames + 1, (1,), generator=g))
        top = int(torch.randint(h - p + 1, (1,), generator=g))
        left = int(torch.randint(w - p + 1, (1,), generator=g))
        group = x[first : first + self.frames, :, top : top + p, left : left + p]
        if torch.rand((), generator=g) < 0.5:
            group = group.flip(-1)
        return group.float().div(255.0)
