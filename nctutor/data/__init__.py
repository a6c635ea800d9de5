"""Data: Kodak, BSDS500, CLIC, video clips; found, verified, and downloaded where possible.

Chapter *How to run this book → Data*. Every file the book uses is listed with its SHA-256 in
``nctutor/data/manifest.txt`` (shipped in the package). A file is looked for under each data root in
turn:

1. ``$NCTUTOR_DATA`` if set, else ``../shared/data`` beside the checkout or the working folder;
2. the cache (``$NCTUTOR_CACHE/data``, default ``~/.cache/nctutor/data``).

A file found is checked against the manifest (once per process). A file found nowhere is
downloaded into the cache — from ``$NCTUTOR_MIRROR`` (a base URL laid out like a data root) if
set, else from its canonical source — verified, and moved into place atomically, so that no
half-written or corrupted file is ever left behind. Offline, the error names ``NCTUTOR_DATA`` and
the layout it expects. ``NCTUTOR_OFFLINE=1`` forbids downloads.

Images come back as float tensors of shape ``(3, H, W)`` with values in ``[0, 1]``.
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
from .video import CLIPS, basketball_pass, video_clip

__all__ = [
    "CLIPS", "DataError", "ImageSet", "PatchDataset", "basketball_pass", "bsds500", "cache_root",
    "center_crop", "clic", "fetch", "files", "kodak", "load_image", "manifest", "path", "roots",
    "save_image", "sha256", "to_uint8", "video_clip",
]
