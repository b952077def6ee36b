"""Pick and configure a backend from a URI: `s3://bucket/prefix`, `file:///dir` or a plain path.

S3 endpoint and credentials come from `StorageConfig` first, then the usual environment:
endpoint `$S3_ENDPOINT` or `$AWS_ENDPOINT_URL` (host:port or http(s)://host:port), keys
`$AWS_ACCESS_KEY_ID`/`$AWS_SECRET_ACCESS_KEY`, else `$MINIO_ROOT_USER`/`$MINIO_ROOT_PASSWORD`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from videop2r.config import ConfigError, StorageConfig
from videop2r.storage.base import ObjectStore
from videop2r.storage.local import LocalStore
from videop2r.storage.retry import RetryPolicy

ENDPOINT_ENV = ("S3_ENDPOINT", "AWS_ENDPOINT_URL")
CREDENTIAL_ENV = (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"))


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str


@dataclass(frozen=True)
class S3Endpoint:
    host: str  # host:port
    secure: bool
    access_key: str | None
    secret_key: str | None


def is_s3_uri(uri: str) -> bool:
    return uri.startswith("s3://")


def parse_s3_uri(uri: str) -> S3Location:
    """`s3://bucket/a/b` -> S3Location("bucket", "a/b")."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(f"config error: storage uri {uri!r}: expected s3://bucket[/prefix]")
    if parts.query or parts.fragment:
        raise ConfigError(f"config error: storage uri {uri!r}: no ?query or #fragment allowed")
    return S3Location(parts.netloc, parts.path.strip("/"))


def resolve_endpoint(config: StorageConfig) -> S3Endpoint:
    """Endpoint and credentials from the config, falling back to the environment."""
    raw = config.endpoint or next((os.environ[name] for name in ENDPOINT_ENV if os.environ.get(name)), None)
    if not raw:
        raise ConfigError("config error: storage.endpoint: an s3:// URI needs an endpoint "
                          "(set storage.endpoint or $S3_ENDPOINT / $AWS_ENDPOINT_URL)")
    secure = config.secure
    if "://" in raw:
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"config error: storage.endpoint: {raw!r} is not host:port or http(s)://host:port")
        secure, raw = parts.scheme == "https", parts.netloc
    access_key = config.access_key
    secret_key = config.secret_key.get_secret_value() if config.secret_key else None
    if access_key is None and secret_key is None:
        for key_env, secret_env in CREDENTIAL_ENV:
            if os.environ.get(key_env):
                access_key, secret_key = os.environ[key_env], os.environ.get(secret_env)
                break
    if (access_key is None) != (secret_key is None):
        raise ConfigError("config error: storage.secret_key: access key and secret key must be given together")
    return S3Endpoint(raw, secure, access_key, secret_key)


def open_store(uri: str, config: StorageConfig | None = None) -> ObjectStore:
    """The store at `uri`: `s3://bucket/prefix` (MinIO/S3) or a local directory (`file://` or a path)."""
    config = config or StorageConfig()
    if is_s3_uri(uri):
        from videop2r.storage.s3 import S3Store, make_client  # minio only when S3 is used

        location = parse_s3_uri(uri)
        endpoint = resolve_endpoint(config)
        client = make_client(
            endpoint.host, endpoint.access_key, endpoint.secret_key, secure=endpoint.secure,
            region=config.region, connect_timeout_s=config.connect_timeout_s, read_timeout_s=config.read_timeout_s,
        )
        retry = RetryPolicy(config.max_retries, config.retry_backoff_s, config.retry_max_backoff_s)
        try:
            return S3Store(client, location.bucket, location.prefix, part_size=config.part_size_mb << 20,
                           retry=retry, create_bucket=config.create_bucket)
        except ValueError as exc:
            raise ConfigError(f"config error: storage uri {uri!r}: {exc}") from None
    if "://" in uri:
        parts = urlsplit(uri)
        if parts.scheme != "file":
            raise ConfigError(f"config error: storage uri {uri!r}: unsupported scheme {parts.scheme!r} "
                              "(use s3://bucket/prefix, file:///dir or a path)")
        return LocalStore(parts.path, uri)
    if not uri:
        raise ConfigError("config error: storage uri is empty")
    return LocalStore(uri)
