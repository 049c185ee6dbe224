"""Where a video's bytes come from: local paths as they are, any other fsspec URL through a local copy.

Remote copies go to a scratch folder: the one the decoder's parent process named in `VIDCLASS_SCRATCH`
(it removes whatever a killed child left there), else the system temp folder. FFmpeg needs a seekable
local file to index and seek, and a full copy is what a timeout can bound.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator

import fsspec

from vidclass import errors

SCRATCH_ENV = "VIDCLASS_SCRATCH"


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def scratch_dir() -> str:
    """The folder for temp copies: the parent's per-worker folder when decoding in a child process."""
    return os.environ.get(SCRATCH_ENV) or tempfile.gettempdir()


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[str]:
    """A local path FFmpeg can open; remote bytes go to a scratch file that is removed whatever happens."""
    if is_local(uri):
        path = uri[len("file://"):] if uri.startswith("file://") else uri
        if not os.path.exists(path):
            raise errors.VideoError(errors.NOT_FOUND, uri, "no such file")
        if os.path.isdir(path):
            raise errors.VideoError(errors.UNREADABLE, uri, "is a directory, not a video file")
        yield path
        return
    fs, path = fsspec.core.url_to_fs(uri)
    try:
        if not fs.exists(path):
            raise errors.VideoError(errors.NOT_FOUND, uri, "no such object")
    except (OSError, PermissionError) as e:
        raise errors.VideoError(errors.UNREADABLE, uri, f"cannot reach storage: {e}") from e
    suffix = os.path.splitext(path)[1][:10]
    fd, tmp = tempfile.mkstemp(prefix="vidclass-", suffix=suffix, dir=scratch_dir())
    try:
        with os.fdopen(fd, "wb") as out, fs.open(path, "rb") as src:
            while chunk := src.read(8 << 20):
                out.write(chunk)
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)
