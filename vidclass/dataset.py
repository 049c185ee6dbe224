"""The dataset directory written by `preprocess` and read by `inspect`, `train` and `evaluate`.

`dataset.json` carries everything downstream stages need (sampling spec, labels, shards, counts), so
no flag is repeated after preprocessing. A reader trusts a directory only once `_SUCCESS` exists.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import fsspec

import vidclass
from vidclass import errors, outdir
from vidclass.labels import LabelMap
from vidclass.sampling import SamplingSpec

FORMAT_VERSION = 1
DATASET_JSON = "dataset.json"
LABELS_TXT = "labels.txt"
FAILURES = "failures.parquet"
VIDEOS = "videos.parquet"
CONTACT_SHEET = "contact_sheet.png"
SUCCESS = outdir.SUCCESS
# q90 JPEG at 112 px, as records hold them: 0.28-0.53 B/px over bench/engines.py's sources (0.44 mean; shards
# came out 1.8x the 150 MB target at the 0.25 assumed before): what shard counts and size warnings plan with
JPEG_BYTES_PER_PIXEL = 0.4
# the files a dataset directory owns: a rerun replaces these and never touches anything else
OWNED = ("*-?????-of-?????.tfrecord", "*-?????-of-?????.tfrecord.gz", DATASET_JSON, LABELS_TXT, FAILURES, VIDEOS,
         CONTACT_SHEET)


def shard_name(split: str, index: int, count: int, compression: str | None = None) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord" + (".gz" if compression == "gzip" else "")


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    """One split: its shard file names (relative), and how many videos and clips, per class too."""

    shards: tuple[str, ...]
    videos: int
    clips: int
    videos_per_class: dict[str, int]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """The parsed `dataset.json`."""

    spec: SamplingSpec
    labels: LabelMap
    splits: dict[str, SplitInfo]
    failures_by_code: dict[str, int]
    inputs: int
    compression: str | None = None
    jpeg_quality: int = 90
    source: str = ""
    vidclass_version: str = vidclass.__version__
    created_at: str = ""

    @property
    def failures(self) -> int:
        return sum(self.failures_by_code.values())

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "format_version": FORMAT_VERSION, "vidclass_version": self.vidclass_version,
            "created_at": self.created_at or datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "source": self.source, "sampling": self.spec.to_dict(), "labels": self.labels.to_list(),
            "compression": self.compression, "jpeg_quality": self.jpeg_quality, "inputs": self.inputs,
            "splits": {k: dataclasses.asdict(v) for k, v in sorted(self.splits.items())},
            "failures": {"total": self.failures, "by_code": dict(sorted(self.failures_by_code.items()))},
        }
        return json.dumps(doc, indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "DatasetInfo":
        doc = json.loads(text)
        if doc.get("format_version") != FORMAT_VERSION:
            raise errors.DatasetError(f"dataset format {doc.get('format_version')} is not {FORMAT_VERSION}; "
                             "re-run `vidclass preprocess` with this vidclass version")
        splits = {k: SplitInfo(tuple(v["shards"]), v["videos"], v["clips"], dict(v["videos_per_class"]))
                  for k, v in doc["splits"].items()}
        return cls(spec=SamplingSpec.from_dict(doc["sampling"]), labels=LabelMap(tuple(doc["labels"])),
                   splits=splits, failures_by_code=dict(doc["failures"]["by_code"]), inputs=doc["inputs"],
                   compression=doc.get("compression"), jpeg_quality=doc.get("jpeg_quality", 90),
                   source=doc.get("source", ""), vidclass_version=doc.get("vidclass_version", ""),
                   created_at=doc.get("created_at", ""))


def load(directory: str) -> DatasetInfo:
    """Read a finished dataset; refuses one without `_SUCCESS` (a run that died or is still writing)."""
    if not outdir.is_finished(directory):
        raise errors.DatasetError(f"{directory} is not a finished vidclass dataset (no {SUCCESS}); "
                                "run `vidclass preprocess` into it, and let it finish")
    with fsspec.open(directory.rstrip("/") + "/" + DATASET_JSON, "r") as f:
        return DatasetInfo.from_json(f.read())


def shard_paths(directory: str, info: DatasetInfo, split: str) -> list[str]:
    """Full paths of a split's shards, as listed in `dataset.json` (never a glob: no stray files read)."""
    if split not in info.splits:
        raise errors.DatasetError(f"split {split!r} not in {directory} (has {sorted(info.splits)})")
    return [directory.rstrip("/") + "/" + name for name in info.splits[split].shards]
