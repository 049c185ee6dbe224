"""Shards of one split -> a `tf.data` pipeline of (frames, one-hot label) batches for Keras.

Reading, parsing and JPEG decoding run in parallel and ahead of the model (bench/input.py: ~250 clips/s
with augmentation at 16x112² on 2 loaded cores, 15-40x what r2plus1d trains on), so the input is never
the bottleneck. Augmentation is for the training split only, and each part can be switched off: a
horizontal flip, for one, turns "swipe left" into "swipe right".

Shards TensorFlow cannot read where they are (s3://, memory://) are read from the local shard cache
(`local_dataset`). A dataset without a `val` split (UCF101's and HMDB51's official splits) gets one
carved out of train by `carve_validation`, whole groups at a time.
"""
from __future__ import annotations

import collections
import dataclasses

import tensorflow as tf

from vidclass import dataset, labels, schema, storage

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class Augment:
    """Training-time augmentation; the same draw applies to every frame of a clip (motion stays intact)."""

    crop: bool = True          # random square crop of 80-100% of the side, resized back
    flip: bool = True          # horizontal flip with p=0.5
    color: bool = True         # brightness/contrast jitter
    temporal: bool = True      # random window when clips hold more frames than the model takes

    @classmethod
    def none(cls) -> "Augment":
        return cls(crop=False, flip=False, color=False, temporal=False)


def temporal_window(frames: tf.Tensor, length: int, random: bool) -> tf.Tensor:
    """`length` consecutive frames: a random window in training, the centre one otherwise, so evaluation
    and inference see what the model was trained around."""
    total = tf.shape(frames)[0]
    if random:
        start = tf.random.uniform([], 0, total - length + 1, dtype=tf.int32)
    else:
        start = (total - length) // 2
    return frames[start:start + length]


def augment_clip(frames: tf.Tensor, aug: Augment, size: int) -> tf.Tensor:
    """Spatial and colour augmentation of one float32 clip [T, S, S, 3] in 0..255."""
    if aug.crop:
        side = tf.cast(tf.round(tf.random.uniform([], 0.8, 1.0) * size), tf.int32)
        y = tf.random.uniform([], 0, size - side + 1, dtype=tf.int32)
        x = tf.random.uniform([], 0, size - side + 1, dtype=tf.int32)
        frames = tf.image.resize(frames[:, y:y + side, x:x + side, :], (size, size))
    if aug.flip:
        frames = tf.cond(tf.random.uniform([]) < 0.5, lambda: tf.reverse(frames, axis=[2]), lambda: frames)
    if aug.color:
        frames = frames * tf.random.uniform([], 0.8, 1.2) + tf.random.uniform([], -20.0, 20.0)  # contrast, brightness
        mean = tf.reduce_mean(frames)
        frames = (frames - mean) * tf.random.uniform([], 0.85, 1.15) + mean
        frames = tf.clip_by_value(frames, 0.0, 255.0)
    return frames


def local_dataset(directory: str, info: dataset.DatasetInfo) -> str:
    """The dataset as a folder TensorFlow reads: itself where TF has a driver (local, gs://), else its
    verified copy in the shard cache, fetched once and reused while the dataset is unchanged."""
    if storage.tf_reads(directory):
        return directory
    names = [dataset.DATASET_JSON, dataset.LABELS_TXT, dataset.SUCCESS,
             *(name for split in info.splits.values() for name in split.shards)]
    return storage.cached_copy(directory, names, info.to_json())


@dataclasses.dataclass(frozen=True)
class Subset:
    """Some videos' clips of a split: those in `ids`, or with `exclude` all the others."""

    ids: frozenset[str]
    exclude: bool
    clips: int


@dataclasses.dataclass(frozen=True)
class Carve:
    """A validation share cut out of `train`, whole groups at a time, and what each side holds."""

    fraction: float
    train: Subset
    val: Subset
    train_videos_per_class: dict[str, int]
    val_videos_per_class: dict[str, int]
    val_groups: int

    def summary(self) -> dict:
        """What metrics.json records about it."""
        return {"source": "carved from train", "fraction": self.fraction,
                "videos": sum(self.val_videos_per_class.values()), "clips": self.val.clips,
                "groups": self.val_groups, "train_videos": sum(self.train_videos_per_class.values()),
                "train_clips": self.train.clips}


def in_validation_share(video_id: str, fraction: float) -> bool:
    """Whether a video's group falls in the carved validation share. The group key keeps a UCF101 group
    (clips of one source video) on one side; the salt makes the draw independent of `assign_split`'s,
    which already decided which groups are in train."""
    return labels.split_point("val:" + labels.group_key(video_id)) < fraction


def carve_validation(directory: str, info: dataset.DatasetInfo, fraction: float, split: str = "train") -> Carve:
    """Read the split's (video id, label) pairs, no JPEG decoding, and cut `fraction` of its groups out."""
    files = dataset.shard_paths(directory, info, split)
    compression = "GZIP" if info.compression == "gzip" else ""
    ds = tf.data.TFRecordDataset(files, compression_type=compression, num_parallel_reads=min(8, len(files)) or 1)

    def id_and_label(serialized):
        rec = schema.parse_clip(serialized, decode_frames=False)
        return rec["video_id"], rec["label_string"]

    ds = ds.map(id_and_label, num_parallel_calls=AUTOTUNE).batch(1024)
    clips: collections.Counter = collections.Counter()
    label_of: dict[str, str] = {}
    for ids, names in ds.as_numpy_iterator():
        for vid, name in zip(ids, names):
            vid = vid.decode()
            clips[vid] += 1
            label_of[vid] = name.decode()
    val = frozenset(v for v in clips if in_validation_share(v, fraction))
    per_class = {True: collections.Counter(), False: collections.Counter()}
    for vid, name in label_of.items():
        per_class[vid in val][name] += 1
    val_clips = sum(clips[v] for v in val)
    return Carve(fraction, Subset(val, True, sum(clips.values()) - val_clips), Subset(val, False, val_clips),
                 dict(per_class[False]), dict(per_class[True]),
                 len({labels.group_key(v) for v in val}))


def make_dataset(directory: str, info: dataset.DatasetInfo, split: str, batch_size: int, training: bool,
                 frames: int | None = None, augment: Augment = Augment(), cache: bool = False,
                 shuffle_buffer: int = 2048, with_ids: bool = False, seed: int | None = None,
                 subset: Subset | None = None) -> tf.data.Dataset:
    """Batches of (float32 [B, T, S, S, 3] in 0..255, one-hot float32 [B, C]) — plus video ids [B] when
    `with_ids`, for video-level evaluation. `frames` < the clips' frames takes a temporal window; `subset`
    keeps some videos' clips only (a carved validation share, or train without it)."""
    files = dataset.shard_paths(directory, info, split)
    size, clip_frames, num_classes = info.spec.size, info.spec.num_frames, len(info.labels)
    frames = frames or clip_frames
    if frames > clip_frames:
        raise ValueError(f"the model takes {frames} frames but the dataset's clips hold {clip_frames}")
    compression = "GZIP" if info.compression == "gzip" else ""
    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
                       cycle_length=max(1, min(len(files), 8)), num_parallel_calls=AUTOTUNE,
                       deterministic=not training)
    if subset is not None:
        ds = ds.filter(_membership(subset))
    if cache:
        ds = ds.cache()  # the serialized records: small, and they skip the file reads from epoch 2 on
    if training:
        # after the cache, which replays epoch 1's order: this shuffle is what mixes later epochs
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    aug = augment if training else Augment.none()

    def to_example(serialized):
        rec = schema.parse_clip(serialized)
        clip = tf.ensure_shape(tf.cast(rec["frames"], tf.float32), (clip_frames, size, size, 3))
        if frames < clip_frames:
            clip = temporal_window(clip, frames, random=training and aug.temporal)
        clip = tf.ensure_shape(augment_clip(clip, aug, size), (frames, size, size, 3))
        label = tf.one_hot(rec["label"], num_classes)
        return (clip, label, rec["video_id"]) if with_ids else (clip, label)

    ds = ds.map(to_example, num_parallel_calls=AUTOTUNE, deterministic=not training)
    ds = ds.batch(batch_size, drop_remainder=False)
    # dataset.json knows the clip count: telling tf.data lets Keras size epochs without probing for the end.
    batches = -(-(subset.clips if subset is not None else info.splits[split].clips) // batch_size)
    return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(AUTOTUNE)


def _membership(subset: Subset):
    """A record predicate: is its video (not) one of `subset.ids`; a hash table, not a Python call per clip."""
    keys = tf.constant(sorted(subset.ids) or [""], tf.string)
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        keys, tf.ones_like(keys, tf.int64) if subset.ids else tf.zeros_like(keys, tf.int64)), default_value=0)

    def keep(serialized):
        vid = tf.io.parse_single_sequence_example(
            serialized, context_features={schema.MEDIA_ID_KEY: tf.io.FixedLenFeature([], tf.string)})[0]
        inside = tf.equal(table.lookup(vid[schema.MEDIA_ID_KEY]), 1)
        return tf.logical_not(inside) if subset.exclude else inside
    return keep
