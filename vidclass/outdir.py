"""Output directories that appear whole: write into a hidden staging folder, then swap in, `_SUCCESS` last.

Only the holder of the directory's lease (`vidclass.lease`) writes here: `begin` and `commit` take the
`Lease` and prove it is still held before they touch anything, so two runs never interleave their files
and a reader never sees `_SUCCESS` beside files of two runs. `_SUCCESS` holds the committing run's token:
a reader that wants to be sure nothing was swapped while it read compares it before and after.

A rerun into the same directory leaves exactly that run's files: files an earlier run owned (other shard
counts, an old failures table) are removed at the swap, and leftovers of a killed run (staging folders,
Beam's `beam-temp-*`) are cleared when the next run begins; under the lease, a run that left them is dead
(its lease expired) or was overridden with `--force`. Only files matching the caller's patterns are ever
deleted, so pointing `--output` at a folder with other things in it loses nothing else.
"""
from __future__ import annotations

import datetime
import fnmatch
import json
import posixpath
import uuid
from typing import Iterable

import fsspec

from vidclass.lease import Lease

SUCCESS = "_SUCCESS"
_STAGING_PREFIX = ".staging-"
_LEFTOVERS = (_STAGING_PREFIX + "*", "beam-temp-*")


def _fs(directory: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(directory)
    return fs, root.rstrip("/")


def _url(directory: str, name: str) -> str:
    return directory.rstrip("/") + "/" + name


def _names(fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    if not fs.exists(root):
        return []
    return [posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False)]


def is_finished(directory: str) -> bool:
    """Whether a run completed into `directory`: readers trust nothing else."""
    fs, root = _fs(directory)
    return fs.exists(posixpath.join(root, SUCCESS))


def _check_holds(directory: str, lease: Lease) -> None:
    """Renew `lease` conditionally (raises `LeaseLost` if another run took it) and check it covers `directory`."""
    if lease.directory != (directory.rstrip("/") or directory):
        raise ValueError(f"the lease is on {lease.directory}, not on {directory}")
    lease.verify()


def begin(directory: str, lease: Lease) -> str:
    """Make `directory`, stop readers trusting its old contents, clear a killed run's leftovers; return a
    fresh staging folder (a URL under `directory`) for this run to write into. Needs the directory's lease:
    only then is every other staging folder there a dead run's."""
    _check_holds(directory, lease)
    fs, root = _fs(directory)
    fs.makedirs(root, exist_ok=True)
    for name in _names(fs, root):
        if name == SUCCESS:
            fs.rm(posixpath.join(root, name))
        elif any(fnmatch.fnmatch(name, pat) for pat in _LEFTOVERS):
            fs.rm(posixpath.join(root, name), recursive=True)
    staging = _url(directory, f"{_STAGING_PREFIX}{uuid.uuid4().hex[:12]}")
    fs.makedirs(fsspec.core.url_to_fs(staging)[1], exist_ok=True)
    return staging


def commit(directory: str, staging: str, owned: Iterable[str], lease: Lease, keep_out: Iterable[str] = (),
           success: bool = True) -> list[str]:
    """Replace the files of `directory` matching `owned` with those of `staging` (minus `keep_out`),
    drop the staging folder, and write `_SUCCESS` last when `success`. Returns the names now present.
    Refuses (`LeaseLost`) before the swap, and again before `_SUCCESS`, unless `lease` is still held."""
    _check_holds(directory, lease)
    fs, root = _fs(directory)
    _, stage_root = _fs(staging)
    owned, keep_out = tuple(owned), tuple(keep_out)
    new = [n for n in _names(fs, stage_root)
           if not any(fnmatch.fnmatch(n, p) for p in keep_out) and not n.startswith("beam-temp-")]
    for name in _names(fs, root):
        if name not in new and any(fnmatch.fnmatch(name, pat) for pat in owned):
            fs.rm(posixpath.join(root, name), recursive=True)
    for name in new:
        dest = posixpath.join(root, name)
        if fs.exists(dest):
            fs.rm(dest, recursive=True)
        fs.mv(posixpath.join(stage_root, name), dest, recursive=True)
    if fs.exists(stage_root):  # on object stores an emptied folder is already gone
        fs.rm(stage_root, recursive=True)
    if success:
        _check_holds(directory, lease)
        stamp = {"run_token": lease.token, "committed_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        with fs.open(posixpath.join(root, SUCCESS), "w") as f:
            f.write(json.dumps(stamp) + "\n")
    return sorted(new)
