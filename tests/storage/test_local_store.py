"""What is specific to the local-directory backend: atomic replace, crash leftovers, errors."""

from __future__ import annotations

import os

import pytest

from videop2r.storage import StorageError, open_store
from videop2r.storage.local import PARTIAL_SUFFIX, LocalStore


def test_partial_files_from_a_crash_are_never_listed_or_read(tmp_path):
    store = open_store(str(tmp_path))
    store.put_bytes("ckpt/model.bin", b"complete")
    # what a writer killed mid-write leaves behind
    (tmp_path / "ckpt" / f".model.bin.abc123{PARTIAL_SUFFIX}").write_bytes(b"compl")
    assert [o.key for o in store.list()] == ["ckpt/model.bin"]
    assert store.get_bytes("ckpt/model.bin") == b"complete"


def test_failed_write_keeps_the_old_object_and_leaves_no_temporary(tmp_path):
    store = LocalStore(tmp_path)
    store.put_bytes("obj", b"old")
    with pytest.raises(StorageError, match="cannot write"):
        store.put_file("obj", tmp_path / "does-not-exist")
    assert store.get_bytes("obj") == b"old"
    assert sorted(os.listdir(tmp_path)) == ["obj"]


def test_file_uri_and_plain_path(tmp_path):
    a = open_store(f"file://{tmp_path}")
    b = open_store(str(tmp_path))
    a.put_bytes("x", b"1")
    assert b.get_bytes("x") == b"1"
    assert a.uri == f"file://{tmp_path}"


def test_directory_is_not_an_object(tmp_path):
    store = LocalStore(tmp_path)
    store.put_bytes("d/x", b"1")
    assert not store.exists("d")
    with pytest.raises(FileNotFoundError):
        store.get_bytes("d")


def test_read_only_root_gives_storage_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="cannot write"):
            LocalStore(root).put_bytes("x", b"1")
    finally:
        root.chmod(0o700)
