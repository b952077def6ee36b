"""Object storage: one interface (`ObjectStore`), a local-directory and an S3/MinIO backend.

`open_store(uri, config)` picks the backend from the URI: `s3://bucket/prefix` or a local path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from videop2r.storage.base import InvalidKey, ObjectInfo, ObjectNotFound, ObjectStore, StorageError, check_key

if TYPE_CHECKING:
    from videop2r.config import StorageConfig

__all__ = ["InvalidKey", "ObjectInfo", "ObjectNotFound", "ObjectStore", "StorageError", "check_key", "open_store"]


def open_store(uri: str, config: StorageConfig | None = None) -> ObjectStore:
    """Open the store at `uri` (local path, file:// or s3://bucket/prefix); S3 endpoint and
    credentials come from `config`, else $S3_ENDPOINT/$AWS_ENDPOINT_URL and $AWS_*/$MINIO_ROOT_*."""
    from videop2r.storage.uri import open_store as _open  # minio is imported only for s3:// URIs

    return _open(uri, config)
