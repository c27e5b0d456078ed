"""The download path against a local HTTP server on 127.0.0.1."""

import hashlib
import http.server
import threading
from functools import partial

import numpy as np
import pytest

from dltheory.data import DataNotFoundError, load
from dltheory.data import loaders as loaders_module
from dltheory.data.idx import write_idx
from dltheory.data.sources import RemoteFile, download


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_verified_download(server, tmp_path):
    root, url = server
    (root / "f.bin").write_bytes(b"payload" * 1000)
    remote = RemoteFile("f.bin", (url + "f.bin",), _sha(root / "f.bin"))
    path = download(remote, tmp_path / "dest", progress=True)
    assert path.read_bytes() == b"payload" * 1000


def test_corrupted_download_rejected_and_not_left_behind(server, tmp_path):
    root, url = server
    (root / "f.bin").write_bytes(b"tampered bytes")
    remote = RemoteFile("f.bin", (url + "f.bin",), hashlib.sha256(b"the real bytes").hexdigest())
    with pytest.raises(DataNotFoundError, match="sha256 mismatch"):
        download(remote, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_falls_back_to_second_mirror(server, tmp_path):
    root, url = server
    (root / "f.bin").write_bytes(b"ok")
    remote = RemoteFile("f.bin", (url + "missing/f.bin", url + "f.bin"), _sha(root / "f.bin"))
    assert download(remote, tmp_path / "dest").read_bytes() == b"ok"


def test_mnist_download_into_cache_then_load(server, isolated_cache, monkeypatch):
    root, url = server
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    write_idx(root / "t10k-images-idx3-ubyte.gz", images)
    write_idx(root / "t10k-labels-idx1-ubyte.gz", labels)
    files = {n: _sha(root / n) for n in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    monkeypatch.setitem(loaders_module.IDX_FILES, "mnist", files)
    monkeypatch.setitem(loaders_module._IDX_MIRRORS, "mnist", (url,))
    x, y = load("mnist", "test")
    np.testing.assert_array_equal(x, images)
    assert y.tolist() == [3, 1, 4, 1, 5]
    assert (isolated_cache / "cache" / "dltheory" / "mnist" / "t10k-images-idx3-ubyte.gz").exists()


def test_mnist_corrupted_mirror_gives_clear_error(server, isolated_cache, monkeypatch):
    root, url = server
    write_idx(root / "t10k-images-idx3-ubyte.gz", np.zeros((1, 28, 28), np.uint8))
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.zeros(1, np.uint8))
    monkeypatch.setitem(loaders_module._IDX_MIRRORS, "mnist", (url,))  # official digests will not match
    with pytest.raises(DataNotFoundError, match=r"looked in: .*download failed.*sha256 mismatch"):
        load("mnist", "test")
    assert not any((isolated_cache / "cache" / "dltheory" / "mnist").glob("*.gz"))


def test_offline_mode_refuses_download(isolated_cache, monkeypatch):
    monkeypatch.setenv("DLTHEORY_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="not found; looked in"):
        load("mnist", "test")
