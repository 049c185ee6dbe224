"""Conditional writes of one small object, on each kind of storage a lease can live on.

A lease is only as good as its storage's compare-and-swap: "create it only if absent" and "replace (or
delete) it only if it is still the version I read". Each store below gives those three with the storage's
own atomic primitive, and names a version by what that storage compares:

- local disks: `link()` of a fully written temp file (never a half-written lease), and replace/delete
  under an exclusive `flock` on the lease file itself (re-checked by inode, since a replace swaps inodes);
  the version is a hash of the content, which carries the holder's token and a sequence number.
- S3 (s3fs): `PutObject` with `If-None-Match: *` and `If-Match: <etag>`, `DeleteObject` with `If-Match`.
- GCS (gcsfs): uploads with `ifGenerationMatch=0` / `=<generation>` and deletes with `ifGenerationMatch`
  (written to gcsfs's request API; not exercised by the tests here, which have no GCS server).
- memory:// (tests, one process): a process-wide lock.
Anything else gets a check-then-write store that says, once, that it is not atomic.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import sys
import threading
import uuid
from typing import Iterator, Protocol
from urllib.parse import quote

import fsspec


class Conflict(Exception):
    """The object is not in the state the write was conditional on (exists, or changed, or gone)."""


class Store(Protocol):
    """One object's conditional operations; a version is opaque and only compared by the store."""

    url: str

    def create(self, data: bytes) -> str: ...
    def read(self) -> tuple[bytes, str] | None: ...
    def replace(self, data: bytes, version: str) -> str: ...
    def delete(self, version: str) -> None: ...


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


class LocalStore:
    """A lease file on a local (or NFS-like POSIX) disk."""

    def __init__(self, url: str, path: str):
        self.url, self.path = url, path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

    def _temp(self, data: bytes) -> str:
        tmp = f"{self.path}.{uuid.uuid4().hex[:12]}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def create(self, data: bytes) -> str:
        tmp = self._temp(data)
        try:
            os.link(tmp, self.path)  # atomic, and the lease appears with all its content
        except FileExistsError:
            raise Conflict(self.url) from None
        finally:
            os.unlink(tmp)
        return _digest(data)

    def read(self) -> tuple[bytes, str] | None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return data, _digest(data)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[bytes]:
        """Hold `flock` on the lease file now at `path`; yield its content. A lock taken on an inode that a
        replace has since swapped out is let go and taken again on the new one."""
        while True:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                raise Conflict(self.url) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    current = os.stat(self.path).st_ino
                except FileNotFoundError:
                    raise Conflict(self.url) from None
                if current == os.fstat(fd).st_ino:
                    with os.fdopen(os.dup(fd), "rb") as f:
                        yield f.read()
                    return
            finally:
                os.close(fd)  # closing releases the lock

    def replace(self, data: bytes, version: str) -> str:
        with self._locked() as current:
            if _digest(current) != version:
                raise Conflict(self.url)
            os.replace(self._temp(data), self.path)
        return _digest(data)

    def delete(self, version: str) -> None:
        with self._locked() as current:
            if _digest(current) != version:
                raise Conflict(self.url)
            os.unlink(self.path)


_MEMORY_LOCK = threading.Lock()


class FsspecStore:
    """memory:// under a process-wide lock (atomic within one process, which is all memory:// spans); any
    other fsspec storage as check-then-write, announced once as not atomic."""

    _warned: set[str] = set()

    def __init__(self, url: str, fs: fsspec.AbstractFileSystem, path: str, atomic: bool):
        self.url, self.fs, self.path = url, fs, path
        self._lock = _MEMORY_LOCK if atomic else threading.Lock()
        proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        if not atomic and proto not in self._warned:
            self._warned.add(proto)
            print(f"vidclass: note: {proto}:// has no conditional write vidclass knows; the output lease is "
                  "best-effort there (two runs started at the same instant may both proceed)", file=sys.stderr)

    def _read(self) -> bytes | None:
        try:
            return self.fs.cat_file(self.path)
        except FileNotFoundError:
            return None

    def create(self, data: bytes) -> str:
        with self._lock:
            if self._read() is not None:
                raise Conflict(self.url)
            self.fs.pipe_file(self.path, data)
        return _digest(data)

    def read(self) -> tuple[bytes, str] | None:
        with self._lock:
            data = self._read()
        return None if data is None else (data, _digest(data))

    def replace(self, data: bytes, version: str) -> str:
        with self._lock:
            current = self._read()
            if current is None or _digest(current) != version:
                raise Conflict(self.url)
            self.fs.pipe_file(self.path, data)
        return _digest(data)

    def delete(self, version: str) -> None:
        with self._lock:
            current = self._read()
            if current is None or _digest(current) != version:
                raise Conflict(self.url)
            self.fs.rm_file(self.path)


def _precondition_failed(e: BaseException) -> bool:
    """Whether an s3fs error is S3 refusing a conditional request (412, or 409 for a concurrent one)."""
    if isinstance(e, (FileExistsError, FileNotFoundError)):
        return True
    cause = getattr(e, "__cause__", None)
    code = getattr(cause, "response", {}).get("Error", {}).get("Code", "") if cause is not None else ""
    return code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409") \
        or (isinstance(e, OSError) and e.errno == errno.EINVAL and "pre-condition" in str(e))


class S3Store:
    """The lease as one S3 object, swapped only with ETag preconditions (S3, MinIO, Ceph, moto)."""

    def __init__(self, url: str, fs, path: str):
        self.url, self.fs, self.path = url, fs, path
        self.bucket, self.key, _ = fs.split_path(path)

    def create(self, data: bytes) -> str:
        try:
            return self.fs.pipe_file(self.path, data, mode="create")["ETag"]
        except Exception as e:  # noqa: BLE001 - sorted below: a refused precondition is the only "no"
            if _precondition_failed(e):
                raise Conflict(self.url) from None
            raise

    def read(self) -> tuple[bytes, str] | None:
        async def get():  # body and ETag from one response: a HEAD then a GET could straddle a write
            resp = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self.key)  # pylint: disable=W0212
            return await resp["Body"].read(), resp["ETag"]
        try:
            return fsspec.asyn.sync(self.fs.loop, get)
        except FileNotFoundError:
            return None

    def replace(self, data: bytes, version: str) -> str:
        try:
            return self.fs.pipe_file(self.path, data, IfMatch=version)["ETag"]
        except Exception as e:  # noqa: BLE001
            if _precondition_failed(e):
                raise Conflict(self.url) from None
            raise

    def delete(self, version: str) -> None:
        try:
            self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.key, IfMatch=version)
        except Exception as e:  # noqa: BLE001
            if _precondition_failed(e):
                raise Conflict(self.url) from None
            raise
        finally:
            self.fs.invalidate_cache(self.path)


class GCSStore:
    """The lease as one GCS object, swapped only with generation preconditions, through gcsfs's request
    API (gcsfs turns a failed precondition, HTTP 412, into FileExistsError)."""

    def __init__(self, url: str, fs, path: str):
        self.url, self.fs, self.path = url, fs, path
        self.bucket, self.key, _ = fs.split_path(path)

    def _upload(self, data: bytes, generation: str) -> str:
        upload = f"{self.fs._location}/upload/storage/v1/b/{quote(self.bucket)}/o"  # pylint: disable=W0212
        try:
            out = self.fs.call("POST", upload, uploadType="media", name=self.key, ifGenerationMatch=generation,
                               data=data, headers={"Content-Type": "application/json"}, json_out=True)
        except FileExistsError:
            raise Conflict(self.url) from None
        self.fs.invalidate_cache(self.path)
        return str(out["generation"])

    def create(self, data: bytes) -> str:
        return self._upload(data, "0")

    def read(self) -> tuple[bytes, str] | None:
        try:
            headers, data = self.fs.call("GET", "b/{}/o/{}", self.bucket, self.key, alt="media")
        except FileNotFoundError:
            return None
        return data, str(headers.get("X-Goog-Generation") or headers.get("x-goog-generation"))

    def replace(self, data: bytes, version: str) -> str:
        return self._upload(data, version)

    def delete(self, version: str) -> None:
        try:
            self.fs.call("DELETE", "b/{}/o/{}", self.bucket, self.key, ifGenerationMatch=version)
        except (FileExistsError, FileNotFoundError):
            raise Conflict(self.url) from None
        finally:
            self.fs.invalidate_cache(self.path)


def for_url(url: str) -> Store:
    """The store for an object URL, by its filesystem."""
    fs, path = fsspec.core.url_to_fs(url)
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if "file" in protocols or "local" in protocols:
        return LocalStore(url, path)
    if protocols & {"s3", "s3a"}:
        return S3Store(url, fs, path)
    if protocols & {"gs", "gcs"}:
        return GCSStore(url, fs, path)
    return FsspecStore(url, fs, path, atomic="memory" in protocols)
