"""Data: the real files, verification, and the download path against a local HTTP server."""

import functools
import hashlib
import http.server
import io
import shutil
import tarfile
import threading
import time
from pathlib import Path

import pytest
import torch

from nctutor import data


def shared(monkeypatch, *folders: str) -> Path:
    """The first data root (:func:`nctutor.data.roots`: ``$NCTUTOR_DATA``, else ``../shared/data``
    beside the checkout or the working folder) holding every manifest file under ``folders``,
    made the test's only root (``NCTUTOR_DATA``); the test is skipped, saying so, if none does."""
    searched = data.roots()
    for root in searched:
        if all((root / rel).is_file() for folder in folders for rel in data.files(folder)):
            monkeypatch.setenv("NCTUTOR_DATA", str(root))
            return root
    pytest.skip(f"no data root holds all of {', '.join(folders)} (searched: "
                f"{', '.join(map(str, searched))}); set NCTUTOR_DATA to the book's data folder")


def test_kodak_is_24_images_of_the_right_size(monkeypatch):
    shared(monkeypatch, "kodak")
    kodak = data.kodak()
    assert len(kodak) == 24
    for i in range(len(kodak)):
        x = kodak[i]
        assert x.dtype == torch.float32 and x.shape[0] == 3
        assert tuple(x.shape[1:]) in {(512, 768), (768, 512)}
        assert 0 <= float(x.min()) and float(x.max()) <= 1


def test_training_and_video_sets(monkeypatch):
    shared(monkeypatch, "bsds500", "clic", "video")
    assert len(data.bsds500("train")) == 200 and len(data.bsds500("all")) == 500
    assert data.clic()[0].shape == (3, 1363, 2048)
    clip = data.video_clip("carphone_pristine", max_frames=3)
    assert clip.shape == (3, 3, 144, 176)
    assert data.basketball_pass(2).shape == (2, 3, 240, 416)
    patches = data.PatchDataset(data.bsds500("train"), patch_size=48, epoch_size=10, seed=1)
    assert patches[3].shape == (3, 48, 48)
    assert torch.equal(patches[3], patches[3])  # the same index gives the same crop
    with pytest.raises(ValueError, match="split"):
        data.bsds500("training")
    with pytest.raises(ValueError, match="unknown clip"):
        data.video_clip("foreman")


def test_empty_root_offline_says_what_to_set(monkeypatch, tmp_path):
    monkeypatch.setenv("NCTUTOR_DATA", str(tmp_path))
    monkeypatch.setenv("NCTUTOR_OFFLINE", "1")
    tic = time.perf_counter()
    with pytest.raises(data.DataError) as err:
        data.kodak()[0]
    assert time.perf_counter() - tic < 5
    message = str(err.value)
    assert "NCTUTOR_DATA" in message and "kodak/kodim01.png" in message


def test_unreadable_image_is_a_data_error(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(data.DataError, match="cannot read image"):
        data.load_image(bad)


def test_corrupted_local_file_is_refused(monkeypatch, tmp_path):
    shared_root = shared(monkeypatch, "kodak")
    (tmp_path / "kodak").mkdir()
    shutil.copy(shared_root / "kodak" / "kodim03.png", tmp_path / "kodak" / "kodim01.png")
    monkeypatch.setenv("NCTUTOR_DATA", str(tmp_path))
    monkeypatch.setenv("NCTUTOR_OFFLINE", "1")
    with pytest.raises(data.DataError, match="checksum"):
        data.path("kodak/kodim01.png")


@pytest.fixture
def server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving the folder ``tmp_path / "www"``."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_verifies_and_writes_atomically(monkeypatch, tmp_path, server):
    shared_root = shared(monkeypatch, "kodak")
    www, url = server
    (www / "kodak").mkdir()
    shutil.copy(shared_root / "kodak" / "kodim01.png", www / "kodak" / "kodim01.png")
    shutil.copy(shared_root / "kodak" / "kodim03.png", www / "kodak" / "kodim02.png")  # corrupted
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("NCTUTOR_DATA", str(empty))
    monkeypatch.setenv("NCTUTOR_MIRROR", url)
    monkeypatch.setattr(data.sources, "FILE_URLS", {})  # only the local server is ever asked
    monkeypatch.setattr(data.sources, "ARCHIVE_URLS", {})
    cache = data.cache_root()

    got = data.path("kodak/kodim01.png")
    assert got == cache / "kodak" / "kodim01.png"
    assert hashlib.sha256(got.read_bytes()).hexdigest() == data.manifest()["kodak/kodim01.png"]
    assert data.kodak(1)[0].shape == (3, 512, 768)

    with pytest.raises(data.DataError, match="checksum"):
        data.path("kodak/kodim02.png")
    assert not (cache / "kodak" / "kodim02.png").exists()
    assert sorted(p.name for p in (cache / "kodak").iterdir()) == ["kodim01.png"]  # no .part

    with pytest.raises(data.DataError, match="NCTUTOR_DATA"):  # 404 on the server
        data.path("kodak/kodim05.png")


def test_download_of_an_archive(monkeypatch, tmp_path, server):
    shared_root = shared(monkeypatch, "bsds500/train")
    www, url = server
    names = [Path(r).name for r in data.files("bsds500/train")[:2]]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in names:
            tar.add(shared_root / "bsds500" / "train" / name,
                    f"BSR/BSDS500/data/images/train/{name}")
    (www / "BSR_bsds500.tgz").write_bytes(buf.getvalue())
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("NCTUTOR_DATA", str(empty))
    monkeypatch.setattr(data.sources, "FILE_URLS", {})
    monkeypatch.setattr(data.sources, "ARCHIVE_URLS", {"bsds500": f"{url}/BSR_bsds500.tgz"})
    first = data.path(f"bsds500/train/{names[0]}")
    assert first.parent == data.cache_root() / "bsds500" / "train"
    assert sorted(p.name for p in first.parent.iterdir()) == sorted(names)
    with pytest.raises(data.DataError):  # a file the archive does not hold
        data.path(data.files("bsds500/train")[5])


def test_no_shared_data_is_committed():
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        tracked = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True,
                                 check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    digests = set(data.manifest().values())
    for name in filter(None, tracked):
        file = root / name
        if file.is_file() and file.stat().st_size > 1000:
            assert hashlib.sha256(file.read_bytes()).hexdigest() not in digests, name
