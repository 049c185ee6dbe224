"""Dataset directories written straight from arrays, for tests of training and evaluation.

They go through the real record schema and `dataset.json`, skipping only the decode (tested elsewhere),
so a training test takes seconds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from vidclass import dataset, schema
from vidclass.labels import LabelMap
from vidclass.sampling import SamplingSpec


def moving_dot(direction: int, rng: np.random.Generator, frames: int = 8, size: int = 32) -> np.ndarray:
    """A bright dot crossing a noisy frame left (-1) or right (+1). Its position in any one frame is
    spread alike for both directions, so only motion tells them apart."""
    clip = rng.integers(0, 90, (frames, size, size, 3)).astype(np.uint8)
    step = 2
    travel = step * (frames - 1)
    start = rng.integers(3, size - 3 - travel)
    x0 = start if direction > 0 else start + travel
    y = rng.integers(6, size - 6)
    for t in range(frames):
        x = x0 + direction * step * t
        clip[t, y - 3:y + 3, x - 3:x + 3] = 250
    return clip


def write(directory: Path, clips: dict[str, list[tuple[np.ndarray, str, str]]], labels: list[str],
          spec: SamplingSpec, shards: int = 2) -> Path:
    """`clips` maps split -> [(frames [T,S,S,3], label, video_id)]; writes shards, dataset.json, _SUCCESS."""
    directory.mkdir(parents=True, exist_ok=True)
    label_map = LabelMap(tuple(labels))
    splits = {}
    for split, items in clips.items():
        names = [dataset.shard_name(split, i, shards) for i in range(shards)]
        writers = [tf.io.TFRecordWriter(str(directory / n)) for n in names]
        per_class: dict[str, int] = {}
        videos = set()
        for i, (frames, label, vid) in enumerate(items):
            n = frames.shape[0]
            meta = schema.ClipMeta(video_id=vid, uri=f"/synthetic/{vid}", label_index=label_map.index(label),
                                   label=label, fps=25.0, frame_indices=range(n),
                                   timestamps_us=[40_000 * t for t in range(n)])
            writers[i % shards].write(schema.encode_clip(frames, meta))
            if vid not in videos:
                videos.add(vid)
                per_class[label] = per_class.get(label, 0) + 1
        for w in writers:
            w.close()
        splits[split] = dataset.SplitInfo(tuple(names), len(videos), len(items), per_class)
    info = dataset.DatasetInfo(spec=spec, labels=label_map, splits=splits, failures_by_code={},
                               inputs=sum(s.videos for s in splits.values()))
    (directory / dataset.DATASET_JSON).write_text(info.to_json())
    (directory / dataset.LABELS_TXT).write_text(label_map.to_text())
    (directory / dataset.SUCCESS).write_text("")
    return directory


def motion_dataset(directory: Path, per_split: dict[str, int], frames: int = 8, size: int = 32,
                   seed: int = 0) -> Path:
    """left/right moving-dot clips, `per_split[split]` per class, one clip per video."""
    rng = np.random.default_rng(seed)
    clips = {split: [(moving_dot(d, rng, frames, size), name, f"{split}/{name}_{i}")
                     for i in range(n) for d, name in ((-1, "left"), (1, "right"))]
             for split, n in per_split.items()}
    return write(directory, clips, ["left", "right"], SamplingSpec(num_frames=frames, size=size))
