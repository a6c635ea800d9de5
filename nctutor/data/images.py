"""Images as tensors: reading and writing files, the Kodak, BSDS500 and CLIC sets, crops.

Chapter *How to run this book → Data*. Images come back as float tensors of shape ``(3, H, W)``
with values in ``[0, 1]``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from .sources import files, path


def load_image(file: str | os.PathLike) -> torch.Tensor:
    """Read an image file as a float tensor ``(3, H, W)`` in ``[0, 1]`` (RGB).

    Grayscale, palette and RGBA images are converted to RGB; 16-bit images are scaled to 8 bits.
    Raises :class:`DataError` with the file name if it cannot be read.
    Not called on a page; the command line (``nctutor compress``) reads images with it, as do
    the image sets of book section *How to run this book → Data*.
    """
    try:
        with Image.open(file) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float64)
                scale = 65535.0 if a.max() > 255 else 255.0
                a = np.round(a / scale * 255.0).clip(0, 255).astype(np.uint8)
                im = Image.fromarray(a)
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {file}: {e}") from e
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div_(255.0)


def save_image(x: torch.Tensor, file: str | os.PathLike, format: str | None = None) -> None:
    """Write a ``(3, H, W)`` tensor in ``[0, 1]`` as an 8-bit image (rounded, clipped); the
    format comes from the file name (``.png``) unless ``format`` names one (``"PNG"``).

    Not called on a page; the command line (``nctutor decompress``) writes the image decoded
    from a file of book section *Transform coding with learned priors → Real bitstreams*.
    """
    a = to_uint8(x).permute(1, 2, 0).cpu().numpy()
    Image.fromarray(a).save(file, format=format)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Round a ``[0, 1]`` float image to 8-bit integers (what a decoder writes to disk).

    Used in book sections *Transform coding with learned priors → Real bitstreams* and
    *Your first learned codec → Compressing a Kodak image*; the 8-bit rule of *Transform
    coding with learned priors → Evaluation*.
    """
    return x.detach().clamp(0, 1).mul(255).round().to(torch.uint8)


class ImageSet(Sequence):
    """A list of images from the manifest, loaded lazily and kept in memory as 8-bit tensors.

    ``images[i]`` is a float tensor ``(3, H, W)`` in ``[0, 1]``; ``images.names[i]`` its file name.
    Defined in book section *How to run this book → Data*.
    """

    def __init__(self, rels: Sequence[str]):
        self.rels = list(rels)
        self.names = [r.rsplit("/", 1)[1].rsplit(".", 1)[0] for r in self.rels]
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.rels)

    def uint8(self, i: int) -> torch.Tensor:
        """Image ``i`` as a uint8 tensor ``(3, H, W)``."""
        i = range(len(self))[i]
        if i not in self._cache:
            self._cache[i] = to_uint8(load_image(path(self.rels[i])))
        return self._cache[i]

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return ImageSet(self.rels[i])
        return self.uint8(i).float().div(255.0)

    def __repr__(self) -> str:
        return f"ImageSet({len(self)} images: {', '.join(self.names[:3])}{'…' * (len(self) > 3)})"


def kodak(n: int | None = None) -> ImageSet:
    """The 24 Kodak images (768×512 or 512×768), the test set. ``n`` keeps the first ``n``.

    Defined in book section *How to run this book → Data*; the test images of every codec page.
    """
    return ImageSet(files("kodak")[:n])


def bsds500(split: str = "train") -> ImageSet:
    """BSDS500 images of ``split`` (``"train"``: 200, ``"val"``: 100, ``"test"``: 200,
    ``"all"``: 500). Training data only: never test on it.

    Used by the chapter *How to run this book → Data* (the training set of :class:`PatchDataset`).
    """
    if split == "all":
        return ImageSet([r for s in ("train", "val", "test") for r in files(f"bsds500/{s}")])
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val', 'test' or 'all', not {split!r}")
    return ImageSet(files(f"bsds500/{split}"))


def clic() -> ImageSet:
    """The two CLIC professional-validation photos (2048×1363 and 1152×768): large images.

    No page uses it yet; the command line and the bitstream tests use it (large images for
    *Transform coding with learned priors → Real bitstreams*).
    """
    return ImageSet(files("clic"))


class PatchDataset(torch.utils.data.Dataset):
    """Random square crops (with random horizontal flips) of a set of training images.

    ``len`` is ``epoch_size``: each item is a fresh random crop, drawn from the generator seeded
    with ``seed + index`` so that a given index always gives the same crop (repeatable runs).
    Images smaller than ``patch_size`` are rejected.
    Defined in book section *How to run this book → Data*.
    """

    def __init__(self, images: ImageSet | None = None, patch_size: int = 128,
                 epoch_size: int = 10_000, seed: int = 0):
        if patch_size < 8:
            raise ValueError(f"patch_size must be at least 8, got {patch_size}")
        self.images = images if images is not None else bsds500("train")
        self.patch_size = patch_size
        self.epoch_size = epoch_size
        self.seed = seed

    def __len__(self) -> int:
        return self.epoch_size

    def __getitem__(self, index: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        k = int(torch.randint(len(self.images), (1,), generator=g))
        img = self.images.uint8(k)
        _, h, w = img.shape
        p = self.patch_size
        if h < p or w < p:
            raise ValueError(f"image {self.images.names[k]} ({h}×{w}) is smaller than patch {p}")
        top = int(torch.randint(h - p + 1, (1,), generator=g))
        left = int(torch.randint(w - p + 1, (1,), generator=g))
        crop = img[:, top : top + p, left : left + p]
        if torch.rand((), generator=g) < 0.5:
            crop = crop.flip(-1)
        return crop.float().div(255.0)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Central ``size``×``size`` crop of ``(..., H, W)`` (the whole image where it is smaller).

    Used in book sections *Transform coding with learned priors → The mean-scale hyperprior* and
    *Your first learned codec → Compressing a Kodak image*, and by the notebook
    *Rate-distortion curves of three learned codecs*.
    """
    h, w = x.shape[-2:]
    sh, sw = min(size, h), min(size, w)
    top, left = (h - sh) // 2, (w - sw) // 2
    return x[..., top : top + sh, left : left + sw]

