"""Object storage: one interface (`ObjectStore`), a local-directory and an S3/MinIO backend.

`open_store(uri, config)` picks the backend from the URI: `s3://bucket/prefix` or a local path.
"""

from videop2r.storage.base import ObjectInfo, ObjectNotFound, ObjectStore, StorageError

__all__ = ["ObjectInfo", "ObjectNotFound", "ObjectStore", "StorageError", "open_store"]


def open_store(uri: str, config=None) -> ObjectStore:  # noqa: ANN001 - StorageConfig, imported lazily
    """Open the store at `uri` (local path or s3://bucket/prefix) with credentials from `config`/env."""
    from videop2r.storage.uri import open_store as _open

    return _open(uri, config)
