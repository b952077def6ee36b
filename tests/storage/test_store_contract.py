"""The ObjectStore contract, run against both backends (local directory; S3 on the real gateway)."""

from __future__ import annotations

import os

import pytest

from videop2r.storage import InvalidKey, ObjectInfo, ObjectNotFound


def test_put_get_roundtrip_and_overwrite(any_store):
    any_store.put_bytes("a/b/c.bin", b"first")
    assert any_store.get_bytes("a/b/c.bin") == b"first"
    any_store.put_bytes("a/b/c.bin", b"second, longer")
    assert any_store.get_bytes("a/b/c.bin") == b"second, longer"
    assert any_store.stat("a/b/c.bin") == ObjectInfo("a/b/c.bin", 14)


def test_empty_object(any_store):
    any_store.put_bytes("empty", b"")
    assert any_store.get_bytes("empty") == b""
    assert any_store.stat("empty").size == 0


def test_list_is_sorted_and_filters_by_string_prefix(any_store):
    for key in ["shards/00001.tar", "shards/00000.tar", "shards-old/x", "sh.txt", "index.json"]:
        any_store.put_bytes(key, key.encode())
    assert [o.key for o in any_store.list()] == sorted(
        ["shards/00001.tar", "shards/00000.tar", "shards-old/x", "sh.txt", "index.json"])
    assert [o.key for o in any_store.list("shards/")] == ["shards/00000.tar", "shards/00001.tar"]
    assert [o.key for o in any_store.list("shards/0000")] == ["shards/00000.tar", "shards/00001.tar"]
    assert [o.key for o in any_store.list("sh")] == ["sh.txt", "shards-old/x", "shards/00000.tar", "shards/00001.tar"]
    assert list(any_store.list("nothing/")) == []
    assert [o.size for o in any_store.list("index")] == [len(b"index.json")]


def test_streaming_and_range_reads(any_store):
    payload = os.urandom(3 * (1 << 20) + 17)
    any_store.put_bytes("blob", payload)
    with any_store.open_read("blob") as stream:
        chunks = []
        while chunk := stream.read(256 * 1024):
            chunks.append(chunk)
    assert len(chunks) > 1 and b"".join(chunks) == payload
    assert any_store.get_range("blob", 1000, 5000) == payload[1000:6000]
    assert any_store.get_range("blob", len(payload) - 7, 7) == payload[-7:]
    with any_store.open_read("blob", offset=(1 << 20)) as stream:
        assert stream.read() == payload[1 << 20:]


def test_missing_objects(any_store):
    with pytest.raises(ObjectNotFound, match="nope"):
        any_store.get_bytes("nope")
    with pytest.raises(ObjectNotFound):
        any_store.stat("nope/deeper")
    assert not any_store.exists("nope")
    any_store.delete("nope")  # not an error


def test_delete_and_exists(any_store):
    any_store.put_bytes("k", b"v")
    assert any_store.exists("k")
    any_store.delete("k")
    assert not any_store.exists("k")
    assert list(any_store.list()) == []


def test_files_and_json(any_store, tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(os.urandom(100_000))
    any_store.put_file("files/src.bin", source)
    out = any_store.get_file("files/src.bin", tmp_path / "down" / "copy.bin")
    assert out.read_bytes() == source.read_bytes()
    assert not list((tmp_path / "down").glob(".*"))  # no leftover partial download
    any_store.put_json("meta/index.json", {"b": [1, 2], "a": "x"})
    assert any_store.get_json("meta/index.json") == {"a": "x", "b": [1, 2]}


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "./a", "a\\b", "a/"])
def test_invalid_keys_are_rejected(any_store, key):
    with pytest.raises(InvalidKey):
        any_store.put_bytes(key, b"x")


def test_root_exists(any_store):
    # A fresh store under a prefix/dir that nobody wrote to yet does not exist; after a write it does.
    assert not any_store.root_exists()
    any_store.put_bytes("x", b"1")
    assert any_store.root_exists()
