"""Where bytes live: one storage configuration for vidclass and Beam, remote <-> local copies, and the shard
cache that lets TensorFlow train on datasets kept where it has no driver (s3://, memory://, ...).

One configuration: the standard cloud environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...; Google's
application-default credentials) is read by s3fs/gcsfs and by Beam's boto3/GCS clients alike. Beam's
`--s3_*` flags are the other source; `configure_from_beam` makes them fsspec's configuration too, in this
process and, through fsspec's `FSSPEC_S3` environment variable, in the decoder children it starts.
Credentials live only there: never in a URL vidclass records (`redact`), a log line or a JSON file.
"""
from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import sys
import tempfile
import urllib.parse
import uuid
from typing import Any

import fsspec

from vidclass import errors

CACHE_ENV = "VIDCLASS_CACHE"
S3_CONF_ENV = "FSSPEC_S3"  # fsspec reads it when imported: how child processes get the same configuration
_MARKER = ".vidclass-cache.json"
_TF_SCHEMES = ("", "file", "gs")  # what TensorFlow 2.21 reads natively (tf.io.gfile.get_registered_schemes)
# Beam's S3Options -> s3fs's keyword arguments
_BEAM_S3 = {"s3_endpoint_url": "endpoint_url", "s3_access_key_id": "key", "s3_secret_access_key": "secret",
            "s3_session_token": "token"}
_SECRET_PARAM = re.compile(r"sig|signature|credential|token|secret|password|passwd|key", re.I)


# --- one configuration -----------------------------------------------------------------------------------

def _falsy(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off")


def configure_from_beam(options: Any) -> None:
    """Make Beam's `--s3_*` flags the S3 configuration of vidclass's own file access too; or, when only
    fsspec is configured (`FSSPEC_S3`, a config file), give Beam that endpoint and credentials.

    With neither, nothing is needed: s3fs and Beam's boto3 client both read the standard AWS environment.
    `options` is a Beam `PipelineOptions`, used by duck typing (this library never imports Beam).
    """
    given = {k: v for k, v in options.get_all_options().items() if k.startswith("s3_") and v not in (None, False)}
    if _falsy(given.get("s3_verify")):
        _beam_s3_view(options).s3_verify = False  # boto3 would take the string "false" for a CA bundle path
    if any(k in given for k in (*_BEAM_S3, "s3_region_name", "s3_verify", "s3_disable_ssl")):
        conf: dict[str, Any] = {_BEAM_S3[k]: v for k, v in given.items() if k in _BEAM_S3}
        client = {}
        if "s3_region_name" in given:
            client["region_name"] = given["s3_region_name"]
        if "s3_verify" in given:
            client["verify"] = False if _falsy(given["s3_verify"]) else given["s3_verify"]
        if client:
            conf["client_kwargs"] = client
        if given.get("s3_disable_ssl"):
            conf["use_ssl"] = False
        configure_s3(conf)
        return
    conf = fsspec.config.conf.get("s3", {})
    view = _beam_s3_view(options)
    for beam_name, fs_name in _BEAM_S3.items():
        if conf.get(fs_name) is not None:
            setattr(view, beam_name, conf[fs_name])
    client = conf.get("client_kwargs") or {}
    if client.get("region_name"):
        view.s3_region_name = client["region_name"]
    if "verify" in client:
        view.s3_verify = client["verify"]


def _beam_s3_view(options: Any) -> Any:
    """Beam's S3Options view of `options`, found from the object itself rather than by importing Beam."""
    base = next(c for c in type(options).__mro__ if c.__name__ == "PipelineOptions")
    s3_options = next((c for c in base.__subclasses__() if c.__name__ == "S3Options"), None)
    if s3_options is None:
        raise errors.UsageError("this Apache Beam has no S3Options; install vidclass's s3 extra")
    return options.view_as(s3_options)


def configure_s3(conf: dict[str, Any]) -> None:
    """Set fsspec's S3 options for this process and the processes it starts (explicit values beat the
    AWS environment, as Beam's flags do for Beam)."""
    merged = {**fsspec.config.conf.get("s3", {}), **conf}
    fsspec.config.conf["s3"] = merged
    os.environ[S3_CONF_ENV] = json.dumps(merged)


def worker_config() -> dict[str, Any]:
    """The S3 settings this process runs with, for pipeline workers on other machines or processes: Beam
    sends its own `--s3_*` options to them, but vidclass's own access (decoding, fingerprints, the model
    bundle) needs them in fsspec's form. Empty when the standard environment is all there is."""
    return dict(fsspec.config.conf.get("s3", {}))


def apply_worker_config(conf: dict[str, Any] | None) -> None:
    """In a worker: take the launcher's settings (`worker_config`), once per process."""
    if conf and fsspec.config.conf.get("s3") != {**fsspec.config.conf.get("s3", {}), **conf}:
        configure_s3(conf)


def redact(url: str) -> str:
    """`url` without anything secret that could ride in it (user:password@, signed-URL query parameters),
    for every place a URL is recorded: bundle.json, metrics, logs."""
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = "&".join(p for p in parts.query.split("&") if p and not _SECRET_PARAM.search(p.split("=", 1)[0]))
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# --- remote <-> local ----------------------------------------------------------------------------------

def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    return url[len("file://"):] if url.startswith("file://") else url


def tf_reads(url: str) -> bool:
    """Whether TensorFlow's own file system reads `url` (local paths, gs://); s3 left TF core in 2.x."""
    return (url.split("://", 1)[0] if "://" in url else "") in _TF_SCHEMES


def join(url: str, *names: str) -> str:
    return "/".join([url.rstrip("/"), *names])


def exists(url: str) -> bool:
    fs, path = fsspec.core.url_to_fs(url)
    return fs.exists(path)


def write_bytes(url: str, data: bytes) -> None:
    """Write a whole file at any URL (parents made where the file system has folders)."""
    fs, path = fsspec.core.url_to_fs(url)
    if is_local(url):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with fs.open(path, "wb") as f:
        f.write(data)


def remove(url: str) -> None:
    """Remove a file or a folder tree if it exists."""
    fs, path = fsspec.core.url_to_fs(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def upload(local: str, url: str) -> None:
    """Copy a local file or folder tree to `url` (replacing what is there)."""
    fs, path = fsspec.core.url_to_fs(url)
    if os.path.isdir(local):
        for root, _, files in os.walk(local):
            rel = os.path.relpath(root, local)
            for name in files:
                fs.put_file(os.path.join(root, name), posixpath.normpath(posixpath.join(path, rel, name)))
    else:
        fs.put_file(local, path)


def download(url: str, local: str) -> None:
    """Copy one remote file to a local path, whole or not at all (a kill leaves no torn file under `local`)."""
    fs, path = fsspec.core.url_to_fs(url)
    os.makedirs(os.path.dirname(os.path.abspath(local)), exist_ok=True)
    part = f"{local}.part-{uuid.uuid4().hex[:8]}"
    try:
        fs.get_file(path, part)
        os.replace(part, local)
    finally:
        if os.path.exists(part):
            os.remove(part)


# --- the local cache -----------------------------------------------------------------------------------

def cache_root(run_temp: str | None = None) -> str:
    """`$VIDCLASS_CACHE`, else `$XDG_CACHE_HOME/vidclass`, else `run_temp` when the caller has a temp folder
    of its own for the run (never $HOME then), else `~/.cache/vidclass`; with a read-only home, the
    command's private temp folder (no reuse across runs then: set `$VIDCLASS_CACHE`)."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    if os.environ.get("XDG_CACHE_HOME"):
        return os.path.join(os.environ["XDG_CACHE_HOME"], "vidclass")
    if run_temp:
        return os.path.join(run_temp, "vidclass-cache")
    home = os.path.expanduser("~")
    if os.access(home, os.W_OK):
        return os.path.join(home, ".cache", "vidclass")
    return os.path.join(os.environ.get("VIDCLASS_RUN_DIR") or tempfile.gettempdir(), "vidclass-cache")


def work_dir(url: str, run_temp: str | None = None) -> str:
    """A local folder of one's own for a remote output (a model dir trained locally, then uploaded); the
    same folder for the same URL, so a killed run's leftovers are replaced by the next run, not piled up."""
    key = hashlib.sha256(redact(url).encode()).hexdigest()[:16]
    return os.path.join(cache_root(run_temp), "work", key)


def cached_copy(url: str, names: list[str], identity: str, run_temp: str | None = None) -> str:
    """A local folder holding the files `names` of the remote folder `url`, from the shard cache.

    The entry is keyed by `identity` (what makes this folder's content what it is: a dataset's
    dataset.json with its created_at), so every later run on the same data reuses it, and a dataset
    written again gets a fresh entry (the old one of the same URL is dropped). Each use checks every
    file's size against the remote listing; missing or torn files are fetched again, and nothing is
    fetched when the disk cannot hold it.
    """
    root = os.path.join(cache_root(run_temp), "datasets")
    key = hashlib.sha256(f"{redact(url)}\n{identity}".encode()).hexdigest()[:20]
    entry = os.path.join(root, key)
    fs, base = fsspec.core.url_to_fs(url)
    fs.invalidate_cache(base)  # a listing s3fs cached earlier in this process may predate a rewrite
    sizes = {posixpath.basename(i["name"].rstrip("/")): i["size"] for i in fs.ls(base, detail=True)}
    missing = [n for n in names if n not in sizes]
    if missing:
        raise errors.DatasetError(f"{redact(url)} lacks {missing[0]} (and {len(missing) - 1} more) that its "
                                  "dataset.json lists; preprocess it again")
    stale = [n for n in names if _size(os.path.join(entry, n)) != sizes[n]]
    if stale:
        need = sum(sizes[n] for n in stale)
        os.makedirs(entry, exist_ok=True)
        free = shutil.disk_usage(entry).free
        if need > free:
            raise errors.DatasetError(f"caching {redact(url)} needs {need / 1e9:.1f} GB but {entry} has "
                                      f"{free / 1e9:.1f} GB free; point ${CACHE_ENV} at a larger disk")
        print(f"storage: caching {len(stale)} file(s), {need / 1e6:.1f} MB, of {redact(url)} in {entry}",
              file=sys.stderr, flush=True)
        for n in stale:
            download(join(url, n), os.path.join(entry, n))
        bad = [n for n in stale if _size(os.path.join(entry, n)) != sizes[n]]
        if bad:
            raise errors.DatasetError(f"{redact(url)}/{bad[0]} changed size while being cached; retry")
        _drop_other_versions(root, key, redact(url))
    with open(os.path.join(entry, _MARKER), "w") as f:
        json.dump({"url": redact(url), "identity": hashlib.sha256(identity.encode()).hexdigest(),
                   "files": {n: sizes[n] for n in names}}, f)
    return entry


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _drop_other_versions(root: str, keep: str, url: str) -> None:
    """Entries of an earlier version of the same dataset URL will never be read again."""
    for name in os.listdir(root):
        marker = os.path.join(root, name, _MARKER)
        if name == keep or not os.path.exists(marker):
            continue
        try:
            with open(marker) as f:
                same = json.load(f).get("url") == url
        except (OSError, ValueError):
            continue
        if same:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
