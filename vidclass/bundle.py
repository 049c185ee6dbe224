"""The model bundle written by `train` and read by `evaluate`, `infer` and `predict`.

`bundle.json` carries the labels and the dataset's `SamplingSpec`, so inference decodes and samples
exactly as training did, with no frame flags from the user. `model_version` is a hash of `model.keras`:
predictions name the exact weights that made them, and `--skip-scored` knows when a model changed.
Loading the model proves the bundle is what it says (hash, label count, input shape) before any video is
decoded: a model.keras copied over another's would otherwise score under the wrong labels, or pass its
rows off as the old model's to `--skip-scored`.
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import os
import posixpath
import tempfile
from typing import Any

import fsspec

import vidclass
from vidclass import errors, storage, strictjson
from vidclass.labels import LabelMap
from vidclass.sampling import SamplingSpec

MODEL_FILE = "model.keras"
BUNDLE_JSON = "bundle.json"
METRICS_JSON = "metrics.json"


@dataclasses.dataclass(frozen=True)
class Bundle:
    """What a trained model needs to be used: labels, sampling, and the frames it takes."""

    labels: LabelMap
    spec: SamplingSpec
    model_name: str
    model_config: dict[str, Any]
    model_frames: int
    model_version: str
    jpeg_quality: int = 90  # the dataset's: inference round-trips frames through the same JPEG as training
    embedding_layer: str = ""  # the layer whose output feeds the classifier: what `--embeddings` returns
    embedding_width: int = 0
    dataset: str = ""
    vidclass_version: str = vidclass.__version__
    created_at: str = ""

    def to_json(self) -> str:
        return strictjson.dumps({
            "labels": self.labels.to_list(), "sampling": self.spec.to_dict(), "model": self.model_name,
            "model_config": self.model_config, "model_frames": self.model_frames,
            "model_version": self.model_version, "jpeg_quality": self.jpeg_quality,
            "embedding": {"layer": self.embedding_layer, "width": self.embedding_width}, "dataset": self.dataset,
            "vidclass_version": self.vidclass_version,
            "created_at": self.created_at or datetime.datetime.now(datetime.timezone.utc).isoformat()}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Bundle":
        d = json.loads(text)
        return cls(labels=LabelMap(tuple(d["labels"])), spec=SamplingSpec.from_dict(d["sampling"]),
                   model_name=d["model"], model_config=d["model_config"], model_frames=d["model_frames"],
                   model_version=d["model_version"], jpeg_quality=d.get("jpeg_quality", 90),
                   embedding_layer=d.get("embedding", {}).get("layer", ""),
                   embedding_width=d.get("embedding", {}).get("width", 0), dataset=d.get("dataset", ""),
                   vidclass_version=d.get("vidclass_version", ""), created_at=d.get("created_at", ""))


def _join(model_dir: str, name: str) -> str:
    return model_dir.rstrip("/") + "/" + name


def file_hash(url: str) -> str:
    """Short content hash of a file (the model's version)."""
    h = hashlib.sha256()
    with fsspec.open(url, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()[:16]


def write(model_dir: str, bundle: Bundle) -> None:
    with fsspec.open(_join(model_dir, BUNDLE_JSON), "w") as f:
        f.write(bundle.to_json())


def load(model_dir: str) -> Bundle:
    """The bundle's description; a clear error when the directory holds no finished model."""
    fs, root = fsspec.core.url_to_fs(model_dir)
    for name in (BUNDLE_JSON, MODEL_FILE):
        if not fs.exists(posixpath.join(root, name)):
            raise errors.ModelError(f"{model_dir} is not a model bundle (no {name}); train one with "
                                    "`vidclass train --data DATASET --model-dir MODEL_DIR`")
    with fs.open(posixpath.join(root, BUNDLE_JSON), "r") as f:
        text = f.read()
    try:
        return Bundle.from_json(text)
    except (ValueError, KeyError, TypeError) as e:
        raise errors.ModelError(f"{storage.join(storage.redact(model_dir), BUNDLE_JSON)} is unreadable: "
                                f"{type(e).__name__}: {e}") from e


def load_model(model_dir: str):
    """The Keras model, loaded with safe mode on (no arbitrary code from the file is run), once `check`
    has proved it is the model bundle.json describes.

    Cached per process by the file's identity: `infer` checks the model in its launcher and then loads
    it in the worker, which on the DirectRunner is the same process (a second load cost ~0.4 s)."""
    b = load(model_dir)
    fs, root = fsspec.core.url_to_fs(model_dir)
    path = posixpath.join(root, MODEL_FILE)
    info = fs.info(path)
    model, digest = _load_model(fs.unstrip_protocol(path), info.get("size"),
                                str(info.get("mtime") or info.get("LastModified") or info.get("ETag") or
                                    info.get("created")))
    check(b, model, digest, model_dir)
    return model


def check(b: Bundle, model, digest: str, model_dir: str) -> None:
    """Refuse a model.keras that is not the one bundle.json describes, naming the file and the mismatch."""
    where = storage.join(storage.redact(model_dir), MODEL_FILE)
    if digest != b.model_version:
        raise errors.ModelError(f"{where} does not match its bundle.json: its hash is {digest}, bundle.json says "
                                f"model_version {b.model_version} (was another model copied over it?)")
    outputs = model.output_shape[0] if isinstance(model.output_shape, list) else model.output_shape
    if outputs[-1] != len(b.labels):
        raise errors.ModelError(f"{where} gives {outputs[-1]} class scores but bundle.json lists "
                                f"{len(b.labels)} labels")
    want = (b.model_frames, b.spec.size, b.spec.size, 3)
    got = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if got != want:
        raise errors.ModelError(f"{where} takes input {got} (frames, height, width, channels) but bundle.json "
                                f"says {b.model_frames} frames of {b.spec.size}x{b.spec.size}")


@functools.lru_cache(maxsize=2)
def _load_model(url: str, size: int, stamp: str):
    """(model, hash of the bytes it was loaded from): one read of a remote file serves both."""
    fs, path = fsspec.core.url_to_fs(url)
    if storage.is_local(url):
        return _load_local(path, url)
    with tempfile.TemporaryDirectory(prefix="vidclass-model-") as tmp:
        local = os.path.join(tmp, MODEL_FILE)
        fs.get_file(path, local)
        return _load_local(local, url)


def _load_local(path: str, shown: str):
    import keras

    import vidclass.models  # noqa: F401  registers vidclass's layers for deserialisation
    digest = file_hash(path)
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False), digest
    except Exception as e:  # a torn or foreign file: whatever Keras raises, the user needs one line
        raise errors.ModelError(f"cannot load {storage.redact(shown)}: {type(e).__name__}: {str(e).strip()[:200]}") from e


def read_metrics(model_dir: str) -> dict[str, Any]:
    fs, root = fsspec.core.url_to_fs(model_dir)
    path = posixpath.join(root, METRICS_JSON)
    if not fs.exists(path):
        return {}
    with fs.open(path, "r") as f:
        return json.load(f)


def update_metrics(model_dir: str, section: str, values: dict[str, Any]) -> None:
    """Add or replace one section (`train`, `test`, ...) of metrics.json, keeping the others."""
    metrics = read_metrics(model_dir)
    metrics[section] = values
    with fsspec.open(_join(model_dir, METRICS_JSON), "w") as f:
        f.write(strictjson.dumps(metrics, indent=2))
