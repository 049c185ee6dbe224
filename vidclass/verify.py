"""Checks of a staged output against what its metadata claims, run by the launcher before `_SUCCESS`.

`_SUCCESS` is a promise to readers: every shard `dataset.json` lists exists and holds the clips it counts,
labels.txt is the label map, and every input video is exactly one row of `videos.parquet` or
`failures.parquet`. These functions check that on the files themselves (a pipeline's own counters can
disagree with what reached storage) and return what is wrong, in words; the caller refuses to commit.

Counting TFRecords walks the framing only (8-byte length, its masked CRC32C, the data, the data's CRC):
no record is parsed, and uncompressed shards are read by seeking past the data.
"""
from __future__ import annotations

import collections
import posixpath
import struct
from typing import Iterable, Mapping, Sequence

import fsspec
import google_crc32c
import pyarrow.parquet as pq

from vidclass import dataset, discovery
from vidclass.labels import LabelMap

_HEADER = struct.Struct("<QI")  # record length, masked CRC32C of those 8 bytes
_MAX_RECORD = 1 << 34  # a length beyond 16 GiB is damage, not a clip


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def count_records(url: str, compressed: bool = False) -> int:
    """Records in one TFRecord file. Raises ValueError at the first break in the framing (a truncated or
    damaged file), naming the byte offset."""
    fs, path = fsspec.core.url_to_fs(url)
    size = None if compressed else fs.size(path)
    with fs.open(path, "rb", compression="gzip" if compressed else None) as f:
        count = offset = 0
        while True:
            header = f.read(_HEADER.size)
            if not header:
                return count
            length, crc = _HEADER.unpack(header) if len(header) == _HEADER.size else (0, None)
            if crc is None or _masked_crc(header[:8]) != crc or length > _MAX_RECORD:
                raise ValueError(f"{posixpath.basename(path)}: record {count} is damaged or cut short at byte {offset}")
            end = offset + _HEADER.size + length + 4
            if size is not None:
                if end > size:
                    raise ValueError(f"{posixpath.basename(path)}: record {count} is cut short at byte {size} "
                                     f"(needs {end})")
                f.seek(end)
            elif len(f.read(length + 4)) != length + 4:
                raise ValueError(f"{posixpath.basename(path)}: record {count} is cut short after byte {offset}")
            count, offset = count + 1, end


def _names(directory: str) -> set[str]:
    fs, root = fsspec.core.url_to_fs(directory)
    fs.invalidate_cache(root)
    return {posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False)}


def shard_problems(directory: str, splits: Mapping[str, dataset.SplitInfo], compressed: bool) -> list[str]:
    """Every listed shard exists and the records of a split's shards sum to its counted clips; no shard file
    lies there unlisted (a reader that globs would count it)."""
    present, problems, listed = _names(directory), [], set()
    for split, info in sorted(splits.items()):
        listed.update(info.shards)
        if info.clips and not info.shards:
            problems.append(f"{split}: {info.clips} clips counted but no shard listed")
        missing = [s for s in info.shards if s not in present]
        problems += [f"{split}: listed shard {s} is missing" for s in missing]
        total = 0
        for name in info.shards:
            if name in present:
                try:
                    total += count_records(f"{directory.rstrip('/')}/{name}", compressed)
                except ValueError as e:
                    problems.append(f"{split}: {e}")
                    missing.append(name)
        if info.shards and not missing and total != info.clips:
            problems.append(f"{split}: shards hold {total} records, dataset.json counts {info.clips} clips")
    strays = sorted(n for n in present if n.endswith((".tfrecord", ".tfrecord.gz")) and n not in listed)
    if strays:
        problems.append(f"shard files not listed in dataset.json: {', '.join(strays[:3])}")
    return problems


def conservation_problems(inputs: Iterable[str], outcomes: Sequence[str]) -> list[str]:
    """Each input id appears exactly once among the outcome rows (written or failed), and nothing else does."""
    want, seen = set(inputs), collections.Counter(outcomes)
    twice = sorted(k for k, n in seen.items() if n > 1)
    lost, extra = sorted(want - set(seen)), sorted(set(seen) - want)
    problems = []
    if twice:
        problems.append(f"{len(twice)} videos have more than one row (e.g. {twice[0]})")
    if lost:
        problems.append(f"{len(lost)} videos have no row (e.g. {lost[0]})")
    if extra:
        problems.append(f"{len(extra)} rows name videos that were not inputs (e.g. {extra[0]})")
    return problems


def _table(url: str, columns: list[str]) -> list[dict]:
    with fsspec.open(url, "rb") as f:
        return pq.read_table(f, columns=columns).to_pylist()


def dataset_problems(staging: str, task_ids: Sequence[str], discover_failures: int) -> list[str]:
    """A staged dataset directory, read back as a reader would: dataset.json vs labels.txt vs the Parquet
    tables vs the shards, and the run's inputs vs the rows."""
    base = staging.rstrip("/")
    try:
        with fsspec.open(f"{base}/{dataset.DATASET_JSON}", "r") as f:
            info = dataset.DatasetInfo.from_json(f.read())
        with fsspec.open(f"{base}/{dataset.LABELS_TXT}", "r", encoding="utf-8") as f:
            names = LabelMap.from_text(f.read()).to_list()
        videos = _table(f"{base}/{dataset.VIDEOS}", ["video_id", "split", "clips", "label"])
        failures = _table(f"{base}/{dataset.FAILURES}", ["video_id", "stage"])
    except (OSError, ValueError, KeyError) as e:
        return [f"cannot read the staged dataset back: {type(e).__name__}: {e}"]
    problems = []
    if names != info.labels.to_list():
        problems.append(f"labels.txt has {len(names)} classes, dataset.json {len(info.labels)}")
    decoded_failed = [f["video_id"] for f in failures if f["stage"] != discovery.STAGE]
    problems += conservation_problems(task_ids, [v["video_id"] for v in videos] + decoded_failed)
    if len(failures) - len(decoded_failed) != discover_failures:
        problems.append(f"failures.parquet has {len(failures) - len(decoded_failed)} discovery rows, "
                        f"discovery refused {discover_failures}")
    if len(failures) != info.failures:
        problems.append(f"failures.parquet has {len(failures)} rows, dataset.json counts {info.failures}")
    by_split: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for v in videos:
        by_split[v["split"]][0] += 1
        by_split[v["split"]][1] += v["clips"]
    for split in sorted(set(by_split) | set(info.splits)):
        s = info.splits.get(split)
        got = tuple(by_split.get(split, (0, 0)))
        if s is None or got != (s.videos, s.clips) or sum(s.videos_per_class.values()) != s.videos:
            problems.append(f"{split}: videos.parquet has {got[0]} videos / {got[1]} clips, dataset.json "
                            f"{(s.videos, s.clips) if s else 'no such split'}")
    return problems + shard_problems(staging, info.splits, info.compression == "gzip")


def parquet_shard_problems(directory: str, kind: str, count: int) -> list[str]:
    """`kind-SSSSS-of-NNNNN.parquet` for exactly the `count` shards the run wrote (readers glob `kind-*`)."""
    want = {f"{kind}-{i:05d}-of-{count:05d}.parquet" for i in range(count)}
    have = {n for n in _names(directory) if n.startswith(f"{kind}-") and n.endswith(".parquet")}
    problems = [f"{kind} shard {n} is missing" for n in sorted(want - have)]
    return problems + [f"{kind} file {n} was not written by this run" for n in sorted(have - want)]
