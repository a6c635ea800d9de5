"""Writing files so that a crash or Ctrl-C never leaves half of one, and checksums of files.

Chapter *How to run this book* (sections *Data* and *Training from the command line*: downloads,
checkpoints and ``.nct`` files are all written this way).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(file: str | os.PathLike, payload: bytes | str | Callable[[Path], None]) -> Path:
    """Write ``payload`` to ``file`` atomically: into a hidden temporary file beside it, then
    ``os.replace``; on any error the temporary file is removed and ``file`` is untouched.

    ``payload`` is bytes, text (UTF-8), or a function that writes a given path (e.g.
    ``lambda p: torch.save(obj, p)``). Errors name ``file``, never the temporary name. Returns
    ``file`` as a :class:`~pathlib.Path`. Used for every file nctutor writes (chapter *How to
    run this book → Training from the command line*); no page calls it.
    """
    file = Path(file)
    if file.is_dir():
        raise IsADirectoryError(f"{file} is a folder: give a file name to write")
    parent = file.parent if str(file.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write {file}: the folder {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{file.name}.", suffix=".part")
    except OSError as e:
        raise PermissionError(f"cannot write {file}: {e.strerror or e}") from None
    os.close(fd)
    try:
        if callable(payload):
            payload(Path(tmp))
        else:
            Path(tmp).write_bytes(payload.encode() if isinstance(payload, str) else payload)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return file


def sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file.

    Used by the chapter *How to run this book → Data* (the checksums); shipped weights are
    checked with it too.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
