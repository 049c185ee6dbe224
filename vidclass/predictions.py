"""The rows `infer` writes and `predict --json` prints: one per video, and one per window of its timeline.

Both Parquet schemas are fixed here and nowhere else, as are the file names an inference output owns;
`--skip-scored` reads these rows back.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any, Sequence

import fsspec
import numpy as np
import pyarrow as pa

from vidclass import errors
from vidclass.labels import LabelMap
from vidclass.video import VideoInfo, Window

PREDICTIONS = "predictions"
SEGMENTS = "segments"
RUN_JSON = "run.json"
OWNED = (f"{PREDICTIONS}-*.parquet", f"{SEGMENTS}-*.parquet", RUN_JSON)

_SCORE_FIELDS = [
    ("status", pa.string()), ("error_code", pa.string()), ("error_message", pa.string()),
    ("label", pa.string()), ("label_index", pa.int64()), ("score", pa.float64()),
    ("top_k_labels", pa.list_(pa.string())), ("top_k_scores", pa.list_(pa.float64())),
    ("num_clips", pa.int64()), ("embedding", pa.list_(pa.float32())),
]
_STAMP_FIELDS = [("model_version", pa.string()), ("run_id", pa.string()),
                 ("processed_at", pa.timestamp("us", tz="UTC"))]
SCHEMA = pa.schema([
    ("video_id", pa.string()), ("video_uri", pa.string()), *_SCORE_FIELDS,
    ("true_label", pa.string()), ("num_segments", pa.int64()), ("frames_decoded", pa.int64()),
    ("decode_errors", pa.int64()), ("duration_s", pa.float64()), ("fps", pa.float64()), ("width", pa.int64()),
    ("height", pa.int64()), ("content_fingerprint", pa.string()), *_STAMP_FIELDS,
])
SEGMENT_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("video_uri", pa.string()), ("segment_index", pa.int64()),
    ("start_s", pa.float64()), ("end_s", pa.float64()), *_SCORE_FIELDS, ("content_fingerprint", pa.string()),
    *_STAMP_FIELDS,
])
COLUMNS = tuple(SCHEMA.names)
SEGMENT_COLUMNS = tuple(SEGMENT_SCHEMA.names)


@dataclasses.dataclass(frozen=True)
class VideoRef:
    """Which input video a row is about."""

    video_id: str
    uri: str
    true_label: str | None = None
    fingerprint: str = ""


@dataclasses.dataclass(frozen=True)
class Stamp:
    """What every row of one run shares: the model, the run, how many labels a row lists."""

    labels: LabelMap
    model_version: str
    run_id: str
    top_k: int = 5


@dataclasses.dataclass(frozen=True)
class Scores:
    """A model's output for one video or window: mean class probabilities, and its mean embedding."""

    probs: np.ndarray
    embedding: np.ndarray | None = None

    @staticmethod
    def mean(parts: Sequence["Scores"]) -> "Scores":
        """The average over clips or windows: how a video's label comes from its parts."""
        probs = np.mean([p.probs for p in parts], axis=0)
        embs = [p.embedding for p in parts if p.embedding is not None]
        return Scores(probs, np.mean(embs, axis=0) if len(embs) == len(parts) and embs else None)


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


def _scored(scores: Scores, num_clips: int, stamp: Stamp) -> dict[str, Any]:
    names, values = top_k(scores.probs, stamp.labels, stamp.top_k)
    return {"status": "ok", "error_code": None, "error_message": None, "label": names[0],
            "label_index": stamp.labels.index(names[0]), "score": values[0], "top_k_labels": names,
            "top_k_scores": values, "num_clips": num_clips,
            "embedding": None if scores.embedding is None else [float(x) for x in scores.embedding],
            "model_version": stamp.model_version, "run_id": stamp.run_id, "processed_at": now()}


def _failed(failure: errors.Failure, stamp: Stamp) -> dict[str, Any]:
    return {"status": "error", "error_code": failure.code, "error_message": failure.message, "label": None,
            "label_index": None, "score": None, "top_k_labels": [], "top_k_scores": [], "num_clips": None,
            "embedding": None, "model_version": stamp.model_version, "run_id": stamp.run_id,
            "processed_at": now()}


def ok_row(video: VideoRef, scores: Scores, info: VideoInfo, num_clips: int, stamp: Stamp,
           num_segments: int | None = None) -> dict[str, Any]:
    """A scored video: the top-1 label and score, the top-k, what decoding saw, the embedding if asked."""
    return {"video_id": video.video_id, "video_uri": video.uri, **_scored(scores, num_clips, stamp),
            "true_label": video.true_label, "num_segments": num_segments, "frames_decoded": info.frames_decoded,
            "decode_errors": info.decode_errors, "duration_s": round(info.duration_s, 3),
            "fps": round(info.fps, 3), "width": info.width, "height": info.height,
            "content_fingerprint": video.fingerprint}


def error_row(video: VideoRef, failure: errors.Failure, stamp: Stamp) -> dict[str, Any]:
    """A video that could not be scored: still exactly one row, with the reason."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(video_id=video.video_id, video_uri=failure.uri or video.uri, **_failed(failure, stamp),
               true_label=video.true_label, content_fingerprint=video.fingerprint)
    return row


def segment_row(video: VideoRef, window: Window, stamp: Stamp, scores: Scores | None = None,
                num_clips: int = 0, failure: errors.Failure | None = None) -> dict[str, Any]:
    """One window of a video's timeline: scored, or why it could not be."""
    body = _scored(scores, num_clips, stamp) if failure is None else _failed(failure, stamp)
    return {"video_id": video.video_id, "video_uri": video.uri, "segment_index": window.index,
            "start_s": window.start_s, "end_s": window.end_s, **body, "content_fingerprint": video.fingerprint}


def conform(row: dict[str, Any], columns: Sequence[str] = COLUMNS) -> dict[str, Any]:
    """A row read back from an earlier output, with exactly today's columns (new ones null)."""
    return {c: row.get(c) for c in columns}


def to_json_row(row: dict[str, Any]) -> dict[str, Any]:
    """The same row, JSON-ready (timestamps as ISO strings)."""
    return {k: (v.isoformat() if isinstance(v, datetime.datetime) else v) for k, v in row.items()}


@dataclasses.dataclass(frozen=True)
class ScoringConfig:
    """Everything besides the model that decides a row's content; `--skip-scored` carries rows over only
    from an output scored the same way."""

    clips_per_video: int
    top_k: int
    segment_seconds: float | None = None
    segment_stride: float | None = None
    embeddings: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def write_run_json(directory: str, stamp: Stamp, config: ScoringConfig, counts: dict[str, int]) -> None:
    """`run.json` beside the rows: which model and settings made them, and how many of each."""
    doc = {"run_id": stamp.run_id, "model_version": stamp.model_version, "scoring": config.to_dict(),
           "counts": counts, "finished_at": now().isoformat()}
    with fsspec.open(directory.rstrip("/") + "/" + RUN_JSON, "w") as f:
        json.dump(doc, f, indent=2)


def read_scoring_config(directory: str) -> ScoringConfig | None:
    """How an earlier output was scored, or None when it does not say (made before run.json existed)."""
    try:
        with fsspec.open(directory.rstrip("/") + "/" + RUN_JSON, "r") as f:
            return ScoringConfig(**json.load(f)["scoring"])
    except (FileNotFoundError, KeyError, TypeError, ValueError):
        return None
