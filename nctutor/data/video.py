"""Video: the BasketballPass frames and the four clips, decoded to tensors ``(T, 3, H, W)``.

Chapter *How to run this book → Data*; the rooms of the coming video chapters.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from .images import load_image
from .sources import files, path


def basketball_pass(n: int | None = None) -> torch.Tensor:
    """The first ``n`` (≤100) frames of BasketballPass (416×240) as ``(T, 3, 240, 416)``.

    Video data for the chapter *Conditional coding versus residual coding*; no page calls it yet
    (tested in ``tests/test_data.py``).
    """
    rels = files("video/BasketballPass")[:n]
    return torch.stack([load_image(path(r)) for r in rels])


CLIPS = ("bikes", "carphone_pristine", "bigbuckbunny", "cockatoo")


def video_clip(name: str, max_frames: int | None = None) -> torch.Tensor:
    """Decode the clip ``name`` (one of :data:`CLIPS`) with imageio-ffmpeg: ``(T, 3, H, W)``.

    Video data for the chapter *Conditional coding versus residual coding*; no page calls it yet
    (tested in ``tests/test_data.py``).
    """
    import imageio_ffmpeg

    if name not in CLIPS:
        raise ValueError(f"unknown clip {name!r}; choose one of {', '.join(CLIPS)}")
    file = path(f"video/{name}.mp4")
    reader = imageio_ffmpeg.read_frames(str(file), pix_fmt="rgb24")
    meta = next(reader)
    w, h = meta["size"]
    frames = []
    try:
        for raw in reader:
            frames.append(np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3))
            if max_frames is not None and len(frames) >= max_frames:
                break
    finally:
        reader.close()
    if not frames:
        raise DataError(f"{file} decoded to no frames")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255.0)

