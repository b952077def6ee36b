"""S3 backend on the real juicefs gateway: multipart, bucket creation, credentials, clear errors."""

from __future__ import annotations

import os

import pytest

from videop2r.storage import ObjectNotFound, StorageError, open_store

pytestmark = pytest.mark.integration

MiB = 1 << 20


def test_large_file_is_uploaded_in_parts(s3_config_for, s3_gateway, fault_proxy, bucket, tmp_path):
    """12 MiB with 5 MiB parts: three UploadPart requests, and the object reads back intact."""
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(12 * MiB))
    store = open_store(f"s3://{bucket}/ckpt", s3_config_for(fault_proxy.endpoint, part_size_mb=5))
    store.put_file("step-1/model.safetensors", source)
    parts = [path for method, path in fault_proxy.requests if method == "PUT" and "partNumber=" in path]
    assert len(parts) == 3
    assert any(method == "POST" and "uploads" in path for method, path in fault_proxy.requests)
    assert store.stat("step-1/model.safetensors").size == 12 * MiB
    assert store.get_bytes("step-1/model.safetensors") == source.read_bytes()


def test_put_bytes_above_part_size_is_multipart_too(s3_config_for, s3_gateway, fault_proxy, bucket):
    payload = os.urandom(6 * MiB)
    store = open_store(f"s3://{bucket}", s3_config_for(fault_proxy.endpoint, part_size_mb=5))
    store.put_bytes("blob", payload)
    assert sum(1 for m, p in fault_proxy.requests if m == "PUT" and "partNumber=" in p) == 2
    assert store.get_bytes("blob") == payload


def test_small_object_is_a_single_put(s3_config_for, s3_gateway, fault_proxy, bucket):
    store = open_store(f"s3://{bucket}", s3_config_for(fault_proxy.endpoint))
    store.put_bytes("small", b"x" * 1000)
    assert not any("partNumber=" in p for _, p in fault_proxy.requests)


def test_bucket_is_created_on_first_write(s3_config_for, s3_gateway, bucket):
    config = s3_config_for()
    store = open_store(f"s3://{bucket}/runs", config)
    assert not store.root_exists()
    assert list(store.list()) == []  # listing a missing bucket is empty, not an error
    store.put_bytes("a", b"1")
    assert store.root_exists()
    assert store.client.bucket_exists(bucket)


def test_missing_bucket_without_creation_is_a_clear_error(s3_config_for, s3_gateway, bucket):
    store = open_store(f"s3://{bucket}/x", s3_config_for(create_bucket=False))
    with pytest.raises(ObjectNotFound, match=f"bucket '{bucket}' does not exist"):
        store.get_bytes("a")
    with pytest.raises(ObjectNotFound, match="does not exist"):
        store.put_bytes("a", b"1")


def test_prefixes_isolate_stores_in_one_bucket(s3_config_for, s3_gateway, bucket):
    config = s3_config_for()
    one, two = open_store(f"s3://{bucket}/one", config), open_store(f"s3://{bucket}/two/", config)
    one.put_bytes("k", b"1")
    two.put_bytes("k", b"2")
    assert one.get_bytes("k") == b"1" and two.get_bytes("k") == b"2"
    assert [o.key for o in one.list()] == ["k"]
    assert two.uri == f"s3://{bucket}/two"
    whole = open_store(f"s3://{bucket}", config)
    assert [o.key for o in whole.list()] == ["one/k", "two/k"]


def test_credentials_and_endpoint_from_environment(s3_gateway, bucket, monkeypatch):
    for name in ("S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3_gateway.endpoint}")
    monkeypatch.setenv("MINIO_ROOT_USER", s3_gateway.access_key)
    monkeypatch.setenv("MINIO_ROOT_PASSWORD", s3_gateway.secret_key)
    store = open_store(f"s3://{bucket}")
    store.put_bytes("env", b"ok")
    # AWS_* take precedence over MINIO_ROOT_*: wrong AWS keys must now be used, and fail.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong-user")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(StorageError, match="InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied"):
        open_store(f"s3://{bucket}").get_bytes("env")


def test_wrong_credentials_fail_at_once_without_retries(s3_config_for, s3_gateway, fault_proxy, bucket):
    config = s3_config_for(fault_proxy.endpoint, secret_key="not-the-secret", max_retries=5)
    with pytest.raises(StorageError) as info:
        open_store(f"s3://{bucket}", config).put_bytes("x", b"1")
    assert "attempts" not in str(info.value)
    assert fault_proxy.connections == 1


def test_ranged_reads_reuse_pooled_connections(s3_config_for, s3_gateway, fault_proxy, bucket):
    payload = os.urandom(100_000)
    open_store(f"s3://{bucket}", s3_config_for()).put_bytes("shard.tar", payload)
    store = open_store(f"s3://{bucket}", s3_config_for(fault_proxy.endpoint, region="us-east-1"))
    for offset in range(0, 90_000, 10_000):
        assert store.get_range("shard.tar", offset, 5_000) == payload[offset:offset + 5_000]
    assert fault_proxy.connections == 1 and len(fault_proxy.requests) == 9
