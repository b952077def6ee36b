"""open_store: backend choice from the URI, endpoint/credential resolution, clear errors."""

from __future__ import annotations

import pytest

from videop2r.config import ConfigError, StorageConfig, load_config
from videop2r.storage import StorageError, open_store
from videop2r.storage.local import LocalStore
from videop2r.storage.uri import parse_s3_uri, resolve_endpoint

S3_ENV = ("S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
          "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in S3_ENV:
        monkeypatch.delenv(name, raising=False)


def test_parse_s3_uri():
    assert parse_s3_uri("s3://bkt/a/b/").bucket == "bkt"
    assert parse_s3_uri("s3://bkt/a/b/").prefix == "a/b"
    assert parse_s3_uri("s3://bkt").prefix == ""
    with pytest.raises(ConfigError, match="expected s3://bucket"):
        parse_s3_uri("s3:///x")


def test_local_paths_and_file_uris(tmp_path):
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert open_store(f"file://{tmp_path}").root == tmp_path
    with pytest.raises(ConfigError, match="unsupported scheme 'gs'"):
        open_store("gs://bucket/x")
    with pytest.raises(ConfigError, match="empty"):
        open_store("")


def test_endpoint_precedence(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://aws.example:443")
    endpoint = resolve_endpoint(StorageConfig())
    assert (endpoint.host, endpoint.secure) == ("aws.example:443", True)
    monkeypatch.setenv("S3_ENDPOINT", "http://minio:9000")
    assert resolve_endpoint(StorageConfig()).host == "minio:9000"
    assert resolve_endpoint(StorageConfig(endpoint="cfg:1")).host == "cfg:1"
    with pytest.raises(ConfigError, match="storage.endpoint"):
        resolve_endpoint(StorageConfig(endpoint="ftp://x:1"))


def test_credential_precedence(monkeypatch):
    monkeypatch.setenv("MINIO_ROOT_USER", "minio-user")
    monkeypatch.setenv("MINIO_ROOT_PASSWORD", "minio-pass")
    config = StorageConfig(endpoint="h:1")
    assert resolve_endpoint(config).access_key == "minio-user"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "aws-user")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-pass")
    assert (resolve_endpoint(config).access_key, resolve_endpoint(config).secret_key) == ("aws-user", "aws-pass")
    explicit = StorageConfig(endpoint="h:1", access_key="cfg-user", secret_key="cfg-pass")
    assert resolve_endpoint(explicit).secret_key == "cfg-pass"
    with pytest.raises(ConfigError, match="together"):
        resolve_endpoint(StorageConfig(endpoint="h:1", access_key="only-user"))


def test_s3_needs_an_endpoint():
    with pytest.raises(ConfigError, match="needs an endpoint"):
        open_store("s3://bucket/x", StorageConfig())


def test_invalid_bucket_name_is_a_config_error():
    with pytest.raises(ConfigError, match="invalid bucket name"):
        open_store("s3://Bad_Bucket/x", StorageConfig(endpoint="127.0.0.1:1"))


def test_part_size_below_s3_minimum_is_rejected_by_the_config():
    with pytest.raises(ConfigError, match="storage.part_size_mb"):
        load_config(overrides=["storage.part_size_mb=4"])


def test_unreachable_endpoint_fails_after_the_configured_retries():
    # Nothing listens on port 1: every attempt is refused, then one StorageError names the count.
    config = StorageConfig(endpoint="127.0.0.1:1", access_key="a", secret_key="bbbbbbbb",
                           max_retries=2, retry_backoff_s=0.01)
    with pytest.raises(StorageError, match="failed after 3 attempts"):
        open_store("s3://bucket/x", config).stat("x")
