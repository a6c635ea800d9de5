"""Data: Kodak, BSDS500, CLIC and video clips; found, verified, and downloaded where possible.

Chapter *How to run this book → Data*. One module per idea:

- :mod:`~nctutor.data.sources`: the manifest of every file with its SHA-256, the data roots
  searched (``$NCTUTOR_DATA``, ``../shared/data``, the cache), verified downloads;
- :mod:`~nctutor.data.images`: images as float tensors ``(3, H, W)`` in ``[0, 1]``, the Kodak,
  BSDS500 and CLIC sets, training crops;
- :mod:`~nctutor.data.video`: the BasketballPass frames and the four clips as ``(T, 3, H, W)``.

Their public names are all available here (``data.kodak()``, ``data.path(...)``).
"""

from .images import (
    ImageSet,
    PatchDataset,
    bsds500,
    center_crop,
    clic,
    kodak,
    load_image,
    save_image,
    to_uint8,
)
from .sources import DataError, cache_root, fetch, files, manifest, path, roots, sha256
from .video import (
    CLIPS,
    SPLIT,
    GroupDataset,
    basketball_pass,
    clip_frames,
    read_video,
    split_frames,
    video_clip,
)

__all__ = [
    "CLIPS", "DataError", "GroupDataset", "ImageSet", "PatchDataset", "SPLIT", "basketball_pass",
    "bsds500", "cache_root", "center_crop", "clic", "clip_frames", "fetch", "files", "kodak",
    "load_image", "manifest", "path", "read_video", "roots", "save_image", "sha256", "split_frames",
    "to_uint8", "video_clip",
]
