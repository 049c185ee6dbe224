"""The prediction row: one per input video, its Parquet schema fixed here and nowhere else.

`infer` writes these rows, `predict --json` prints them, and `--skip-scored` reads them back.
"""
from __future__ import annotations

import datetime
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa

from vidclass import errors
from vidclass.labels import LabelMap
from vidclass.video import VideoInfo

SCHEMA = pa.schema([
    ("video_id", pa.string()), ("video_uri", pa.string()), ("status", pa.string()),
    ("error_code", pa.string()), ("error_message", pa.string()),
    ("label", pa.string()), ("label_index", pa.int64()), ("score", pa.float64()),
    ("top_k_labels", pa.list_(pa.string())), ("top_k_scores", pa.list_(pa.float64())),
    ("true_label", pa.string()), ("num_clips", pa.int64()), ("frames_decoded", pa.int64()),
    ("decode_errors", pa.int64()),
    ("duration_s", pa.float64()), ("fps", pa.float64()), ("width", pa.int64()), ("height", pa.int64()),
    ("content_fingerprint", pa.string()), ("model_version", pa.string()), ("run_id", pa.string()),
    ("processed_at", pa.timestamp("us", tz="UTC")),
])
COLUMNS = tuple(SCHEMA.names)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def content_fingerprint(uri: str) -> str:
    """What identifies a video's content cheaply: the store's checksum where it keeps one (GCS md5/crc32c,
    S3 ETag), else size and modification time. One metadata call, never a read of the bytes."""
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        info = fs.info(path)
    except (OSError, ValueError):
        return ""
    for key in ("md5Hash", "crc32c", "ETag", "etag", "md5"):
        if info.get(key):
            return f"{key}:{str(info[key]).strip(chr(34))}"
    mtime = info.get("mtime") or info.get("updated") or info.get("LastModified") or ""
    return f"size:{info.get('size')};mtime:{mtime}"


def top_k(probs: np.ndarray, labels: LabelMap, k: int) -> tuple[list[str], list[float]]:
    order = np.argsort(-probs, kind="stable")[:max(1, min(k, len(probs)))]
    return [labels.name(int(i)) for i in order], [round(float(probs[i]), 6) for i in order]


def ok_row(video_id: str, uri: str, probs: np.ndarray, labels: LabelMap, k: int, info: VideoInfo,
           num_clips: int, model_version: str, run_id: str, true_label: str | None = None,
           fingerprint: str = "") -> dict[str, Any]:
    """A scored video: the top-1 label and score, the top-k, and what decoding saw."""
    names, scores = top_k(probs, labels, k)
    return {"video_id": video_id, "video_uri": uri, "status": "ok", "error_code": None, "error_message": None,
            "label": names[0], "label_index": labels.index(names[0]), "score": scores[0],
            "top_k_labels": names, "top_k_scores": scores, "true_label": true_label, "num_clips": num_clips,
            "frames_decoded": info.frames_decoded, "decode_errors": info.decode_errors,
            "duration_s": round(info.duration_s, 3),
            "fps": round(info.fps, 3), "width": info.width, "height": info.height,
            "content_fingerprint": fingerprint, "model_version": model_version, "run_id": run_id,
            "processed_at": now()}


def error_row(video_id: str, failure: errors.Failure, model_version: str, run_id: str,
              true_label: str | None = None, fingerprint: str = "") -> dict[str, Any]:
    """A video that could not be scored: still exactly one row, with the reason."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(video_id=video_id, video_uri=failure.uri, status="error", error_code=failure.code,
               error_message=failure.message, true_label=true_label, content_fingerprint=fingerprint,
               model_version=model_version, run_id=run_id, processed_at=now(), top_k_labels=[], top_k_scores=[])
    return row


def to_json_row(row: dict[str, Any]) -> dict[str, Any]:
    """The same row, JSON-ready (timestamps as ISO strings)."""
    return {k: (v.isoformat() if isinstance(v, datetime.datetime) else v) for k, v in row.items()}
