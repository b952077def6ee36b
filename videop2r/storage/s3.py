"""Object store on S3/MinIO (`s3://bucket/prefix`) through the `minio` SDK.

- Every request goes through `RetryPolicy` (urllib3's own retries are off, so the count and the
  backoff are ours and configurable); a read that breaks mid-stream resumes with a Range request
  from the byte where it stopped.
- Uploads above `part_size` are multipart (the SDK splits them); S3 makes an object visible only
  when its PUT or CompleteMultipartUpload finishes, so publication is atomic per object.
- The bucket is created on the first write if it does not exist.
"""

from __future__ import annotations

import http.client
import io
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import check_bucket_name
from urllib3.exceptions import HTTPError as Urllib3HTTPError
from urllib3.exceptions import LocationParseError

from videop2r.metrics import metric
from videop2r.storage.base import ObjectInfo, ObjectNotFound, ObjectStore, StorageError, check_key
from videop2r.storage.retry import RetryPolicy

log = logging.getLogger(__name__)

_TRANSIENT_S3_CODES = frozenset({
    "InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed",
    "OperationAborted", "XMinioServerNotInitialized", "XMinioReadQuorum", "XMinioWriteQuorum",
})
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"})


def is_transient(exc: BaseException) -> bool:
    """Whether repeating the same S3 request may succeed (network trouble, 5xx, throttling)."""
    if isinstance(exc, S3Error):
        status = getattr(exc.response, "status", 0) or 0
        return exc.code in _TRANSIENT_S3_CODES or status >= 500 or status == 429
    if isinstance(exc, ServerError):
        return exc.status_code >= 500 or exc.status_code == 429
    if isinstance(exc, InvalidResponseError):
        code = exc.__reduce__()[1][0]  # the HTTP status; the SDK keeps it in a private field only
        return isinstance(code, int) and (code >= 500 or code == 429)
    if isinstance(exc, LocationParseError):
        return False
    return isinstance(exc, (Urllib3HTTPError, http.client.HTTPException, ConnectionError, TimeoutError, socket.error))


def _is_missing(exc: BaseException) -> bool:
    return isinstance(exc, S3Error) and exc.code in _MISSING_CODES


class _S3Reader(io.RawIOBase):
    """A GET response that resumes from the current byte with a Range request when the
    connection breaks mid-body."""

    def __init__(self, store: "S3Store", key: str, offset: int, length: int | None) -> None:
        self._store, self._key = store, key
        self._pos = offset
        self._end: int | None = None if length is None else offset + length
        self._response = self._open()

    def _open(self):  # noqa: ANN202 - urllib3 response
        store = self._store
        length = 0 if self._end is None else self._end - self._pos

        def get():  # noqa: ANN202
            return store.client.get_object(store.bucket, store.object_name(self._key), offset=self._pos, length=length)

        try:
            response = store.retry.call(get, is_transient=is_transient, backend="s3", operation="get",
                                        what=store.describe(self._key))
        except S3Error as exc:
            raise store.map_error(exc, self._key) from exc
        if self._end is None:
            size = response.headers.get("Content-Length")
            if size is not None:
                self._end = self._pos + int(size)
        return response

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - memoryview/bytearray
        if self._end is not None and self._pos >= self._end:
            return 0
        attempt = 0
        while True:
            try:
                got = self._response.readinto(buffer)
            except Exception as exc:  # noqa: BLE001 - classified below
                error: BaseException = exc
            else:
                if got or self._end is None or self._pos >= self._end:
                    self._pos += got
                    return got
                error = ConnectionError(f"connection closed {self._end - self._pos} bytes early")
            if not is_transient(error) or attempt >= self._store.retry.max_retries:
                raise StorageError(f"get {self._store.describe(self._key)}: read failed at byte {self._pos}: "
                                   f"{type(error).__name__}: {error}") from error
            self._drop_response()
            wait = self._store.retry.delay(attempt)
            log.warning("get %s: transient %s at byte %d (%s), resuming with a range request in %.2fs",
                        self._store.describe(self._key), type(error).__name__, self._pos, error, wait)
            metric("videop2r_storage_retries_total").labels(backend="s3", operation="get").inc()
            time.sleep(wait)
            attempt += 1
            self._response = self._open()

    def _drop_response(self) -> None:
        try:
            self._response.close()
            self._response.release_conn()
        except Exception:  # noqa: BLE001 - the connection is broken anyway
            pass

    def close(self) -> None:
        if not self.closed:
            if self._end is not None and self._pos >= self._end:
                self._response.release_conn()  # body fully read: the connection goes back to the pool
            else:
                self._drop_response()
        super().close()


class S3Store(ObjectStore):
    """Objects under `prefix` in `bucket` of an S3-compatible endpoint."""

    def __init__(
        self,
        client: Minio,
        bucket: str,
        prefix: str = "",
        *,
        part_size: int = 16 << 20,
        retry: RetryPolicy | None = None,
        create_bucket: bool = True,
    ) -> None:
        check_bucket_name(bucket, strict=True)  # ValueError: lowercase letters, digits, - and ., 3..63 long
        if part_size < 5 << 20:
            raise ValueError(f"part_size {part_size} is below the S3 minimum of 5 MiB")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = part_size
        self.retry = retry or RetryPolicy()
        self.create_bucket = create_bucket
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()

    # -- naming and errors

    def object_name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def describe(self, key: str) -> str:
        return f"{self.uri}/{key}"

    def map_error(self, exc: S3Error, key: str) -> StorageError:
        if exc.code == "NoSuchBucket":
            return ObjectNotFound(f"{self.describe(key)}: bucket {self.bucket!r} does not exist")
        if _is_missing(exc):
            return ObjectNotFound(f"{self.uri}: no object {key!r}")
        return StorageError(f"{self.describe(key)}: {exc.code}: {exc.message}")

    def _call(self, operation: str, key: str, fn):  # noqa: ANN001, ANN202
        try:
            return self.retry.call(fn, is_transient=is_transient, backend="s3", operation=operation,
                                   what=self.describe(key))
        except S3Error as exc:
            raise self.map_error(exc, key) from exc
        except StorageError:
            raise
        except (Urllib3HTTPError, OSError, ValueError) as exc:  # not transient: bad endpoint, bad name
            raise StorageError(f"{operation} {self.describe(key)}: {type(exc).__name__}: {exc}") from exc

    def _ensure_bucket(self) -> None:
        if self._bucket_ready or not self.create_bucket:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return

            def make() -> None:
                if self.client.bucket_exists(self.bucket):
                    return
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:  # created concurrently by another writer
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

            self._call("make_bucket", "", make)
            self._bucket_ready = True

    # -- the interface

    def put_bytes(self, key: str, data: bytes) -> None:
        name = self.object_name(key)
        self._ensure_bucket()
        self._call("put", key, lambda: self.client.put_object(
            self.bucket, name, io.BytesIO(data), len(data), part_size=self.part_size))

    def put_file(self, key: str, path: str | Path) -> None:
        name = self.object_name(key)
        path = Path(path)
        if not path.is_file():
            raise StorageError(f"put {self.describe(key)}: no such file {path}")
        self._ensure_bucket()
        # Each attempt re-reads the file from its start; a failed multipart upload leaves no object.
        self._call("put", key, lambda: self.client.fput_object(self.bucket, name, str(path), part_size=self.part_size))

    def open_read(self, key: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        self.object_name(key)
        if length == 0:
            self.stat(key)
            return io.BytesIO(b"")
        return io.BufferedReader(_S3Reader(self, key, offset, length), buffer_size=1 << 20)

    def stat(self, key: str) -> ObjectInfo:
        name = self.object_name(key)
        info = self._call("stat", key, lambda: self.client.stat_object(self.bucket, name))
        return ObjectInfo(key, int(info.size or 0))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        found: list[ObjectInfo] = []

        def page_through() -> None:
            # Resumes after the last key seen when a listing page fails transiently.
            start_after = found[-1].key if found else None
            objects = self.client.list_objects(
                self.bucket, prefix=full, recursive=True,
                start_after=(self.prefix + "/" + start_after if self.prefix and start_after else start_after),
            )
            for obj in objects:
                if obj.is_dir:
                    continue
                found.append(ObjectInfo(obj.object_name[strip:], int(obj.size or 0)))

        try:
            self._call("list", prefix or ".", page_through)
        except ObjectNotFound:  # no bucket: nothing under any prefix
            return iter(())
        return iter(found)

    def delete(self, key: str) -> None:
        name = self.object_name(key)
        try:
            self._call("delete", key, lambda: self.client.remove_object(self.bucket, name))
        except ObjectNotFound:
            pass

    def root_exists(self) -> bool:
        if not self._call("bucket_exists", "", lambda: self.client.bucket_exists(self.bucket)):
            return False
        if not self.prefix:
            return True
        name = self.prefix + "/"
        found = self._call("list", "", lambda: next(iter(self.client.list_objects(self.bucket, prefix=name)), None))
        return found is not None


def make_client(
    endpoint: str,
    access_key: str | None,
    secret_key: str | None,
    *,
    secure: bool = False,
    region: str | None = None,
    connect_timeout_s: float = 10.0,
    read_timeout_s: float = 120.0,
) -> Minio:
    """A minio client whose HTTP pool does not retry on its own (our RetryPolicy does)."""
    http_client = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
        maxsize=max(10, (os.cpu_count() or 2) * 4),
        retries=False,
        cert_reqs="CERT_REQUIRED" if secure else "CERT_NONE",
    )
    return Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region,
                 http_client=http_client)
