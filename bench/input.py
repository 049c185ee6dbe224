"""Input-pipeline benchmark: is `make_dataset` fast enough that training never waits for it?

    python bench/input.py [--clips 512] [--frames 16] [--size 112] [--batch-size 8] [--seconds 20] [--workdir DIR]
                          [--remote memory|s3]

Writes `--clips` clips (textured noise, a slow pan and moving shapes, so the JPEGs are of realistic size) as a
dataset of 8 shards, then times, in one process:
  input      full passes over `make_dataset(training=True)` with augmentation, without and with cache, plus
             stages of it (read, parse, JPEG decode, augmentation) to show which one costs; passes are
             interleaved in rounds so drift on a shared machine hits all alike; medians of the passes
             after a warm-up pass
  training   `model.fit` of the default model (Adam + CategoricalCrossentropy as in train.py) on that
             pipeline, alternating with one in-memory batch repeated (the compute floor); the first epoch
             of each (trace) excluded
  remote     with --remote, the dataset is first put on memory:// or on an S3-compatible server (moto on
             loopback), schemes TensorFlow cannot read: the timed passes then read the local shard cache
             (`vidclass.data.local_dataset`), and the cold fill and a warm reuse of the cache are timed
Prints one JSON document on stdout; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import vidclass  # noqa: F401  before TensorFlow, as the CLI imports them: it picks TF's CPU kernels
import tensorflow as tf
import keras

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import datasets  # noqa: E402  (tests/datasets.py)

from vidclass import dataset, schema, storage  # noqa: E402
from vidclass.data import Augment, local_dataset, make_dataset  # noqa: E402
from vidclass.models import DEFAULT_MODEL, build_model  # noqa: E402
from vidclass.sampling import SamplingSpec  # noqa: E402

CLASSES, SHARDS = 10, 8
GOALS = {"input_vs_training_min": 3.0}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)  # progress: stderr


def make_clip(rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """A textured background (smooth blobs + fine grain) panning slowly, with three moving coloured shapes."""
    big = size + 2 * frames
    base = cv2.resize(rng.uniform(0, 255, (big // 8, big // 8, 3)).astype(np.float32), (big, big),
                      interpolation=cv2.INTER_CUBIC)
    base += cv2.resize(rng.normal(0, 25, (big // 2, big // 2, 3)).astype(np.float32), (big, big))
    shapes = [(rng.uniform(10, size - 10, 2), rng.uniform(-3, 3, 2), int(rng.integers(6, 18)),
               rng.integers(0, 256, 3).tolist()) for _ in range(3)]
    dx, dy = rng.integers(-1, 2, 2)
    clip = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        ox, oy = frames + dx * t, frames + dy * t
        frame = base[oy:oy + size, ox:ox + size] + rng.normal(0, 4, (size, size, 3))  # sensor noise
        frame = np.clip(frame, 0, 255).astype(np.uint8)
        for i, (pos, vel, r, color) in enumerate(shapes):
            x, y = (int(v) for v in pos + vel * t)
            if i % 2:
                cv2.circle(frame, (x, y), r, color, -1)
            else:
                cv2.rectangle(frame, (x - r, y - r), (x + r, y + r), color, -1)
        clip[t] = frame
    return clip


def write_dataset(directory: Path, clips: int, frames: int, size: int) -> tuple[Path, float]:
    """The dataset directory, and the mean JPEG size per frame in bytes."""
    rng = np.random.default_rng(0)
    labels = [f"class{c}" for c in range(CLASSES)]
    items = [(make_clip(rng, frames, size), labels[i % CLASSES], f"v{i}") for i in range(clips)]
    jpeg = statistics.mean(len(schema.encode_jpeg(f)) for clip, _, _ in items[:16] for f in clip)
    datasets.write(directory, {"train": items}, labels, SamplingSpec(num_frames=frames, size=size), SHARDS)
    return directory, jpeg


def stage_datasets(d: str, info: dataset.DatasetInfo, batch: int) -> dict[str, tf.data.Dataset]:
    """make_dataset as shipped, plus pipelines that stop at each stage, built the way make_dataset builds them."""
    frames = info.spec.num_frames

    def records() -> tf.data.Dataset:
        files = tf.data.Dataset.from_tensor_slices(dataset.shard_paths(d, info, "train")).shuffle(SHARDS)
        return files.interleave(tf.data.TFRecordDataset, cycle_length=SHARDS, num_parallel_calls=tf.data.AUTOTUNE,
                                deterministic=False).shuffle(256)

    def unrolled(s: tf.Tensor) -> tf.Tensor:  # decode_jpeg per frame without map_fn's while loop
        jpeg = schema.parse_clip(s, decode_frames=False)["jpeg"]
        return tf.cast(tf.stack([tf.io.decode_jpeg(jpeg[i], channels=3) for i in range(frames)]), tf.float32)

    def staged(fn) -> tf.data.Dataset:
        return records().map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False).batch(batch)

    return {
        "read": records().batch(batch),
        "parse": staged(lambda s: schema.parse_clip(s, decode_frames=False)["jpeg"]),
        "parse_decode_map_fn": staged(lambda s: tf.cast(schema.parse_clip(s)["frames"], tf.float32)),
        "parse_decode_unrolled": staged(unrolled),
        "make_dataset_no_aug": make_dataset(d, info, "train", batch, True, augment=Augment.none()),
        "make_dataset_aug_no_crop": make_dataset(d, info, "train", batch, True, augment=Augment(crop=False)),
        "make_dataset_aug": make_dataset(d, info, "train", batch, True),
        "make_dataset_aug_cache": make_dataset(d, info, "train", batch, True, cache=True),
    }


def time_pass(ds: tf.data.Dataset, clips: int) -> float:
    """Clips/s of one full pass over `ds`."""
    start = time.perf_counter()
    for _ in ds:
        pass
    return clips / (time.perf_counter() - start)


def bench_input(variants: dict[str, tf.data.Dataset], clips: int, seconds: float) -> dict[str, dict]:
    """One warm-up pass each (fills the cache too), then interleaved rounds until `seconds` (at least 3)."""
    for name, ds in variants.items():
        log(f"input: warm-up {name}: {time_pass(ds, clips):.0f} clips/s")
    rates: dict[str, list[float]] = {name: [] for name in variants}
    start, rounds = time.perf_counter(), 0  # rounds interleave the variants: drift hits all alike
    while rounds < 3 or time.perf_counter() - start < seconds:
        for name, ds in variants.items():
            rates[name].append(time_pass(ds, clips))
        rounds += 1
    log(f"input: {rounds} rounds in {time.perf_counter() - start:.1f} s")
    return {n: {"clips_per_s": round(statistics.median(r), 1), "range": [round(min(r)), round(max(r))]}
            for n, r in rates.items()}


def bench_training(real: tf.data.Dataset, info: dataset.DatasetInfo, batch: int, steps: int, rounds: int) -> dict:
    """`model.fit` of the default model, one epoch of `steps` batches at a time, alternating between the real
    pipeline and one in-memory batch repeated (the compute floor); one warm-up epoch of each (trace) excluded."""
    keras.utils.set_random_seed(0)
    model = build_model(DEFAULT_MODEL, CLASSES, info.spec)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.CategoricalCrossentropy(),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    sets = {"fit": real.take(steps), "fit_in_memory": real.take(1).cache().repeat(steps)}
    epochs: dict[str, list[float]] = {name: [] for name in sets}
    step_s: dict[str, list[float]] = {name: [] for name in sets}
    for r in range(rounds + 1):
        for name, ds in sets.items():
            stamps: list[float] = []
            cb = keras.callbacks.LambdaCallback(
                on_train_batch_end=lambda b, logs=None, out=stamps: out.append(time.perf_counter()))
            start = time.perf_counter()
            model.fit(ds, epochs=1, callbacks=[cb], verbose=0, shuffle=False)
            epochs[name].append(time.perf_counter() - start)
            if r:  # round 0 traces
                step_s[name] += np.diff(stamps).tolist()
            log(f"training: round {r} {name}: {epochs[name][-1]:.1f} s")
    return {"parameters": model.count_params(), "steps_per_epoch": steps, "epochs_timed": rounds, **{
        name: {"clips_per_s": round(statistics.median(steps * batch / e for e in epochs[name][1:]), 1),
               "step_ms_median": round(1000 * statistics.median(step_s[name]), 1),
               "step_ms_p90": round(1000 * float(np.percentile(step_s[name], 90)), 1),
               "warmup_epoch_s": round(epochs[name][0], 1)} for name in sets}}


def remote_copy(local: Path, scheme: str, stack) -> tuple[str, dict]:
    """Put the dataset where TensorFlow cannot read it; read it back through the shard cache, timed cold
    (fetch every shard) and warm (one listing to check sizes)."""
    import fsspec
    if scheme == "s3":
        import s3server  # tests/s3server.py: moto's S3 server on loopback
        server = stack.enter_context(s3server.s3_server())
        os.environ.update(server.env())
        server.make_bucket("bench")
        url = "s3://bench/ds"
    else:
        url = f"memory://bench-{os.getpid()}/ds"
    fs, root = fsspec.core.url_to_fs(url)
    fs.put(str(local), root, recursive=True)
    info = dataset.load(url)
    size = sum(os.path.getsize(p) for p in local.iterdir())
    t0 = time.perf_counter()
    cached = local_dataset(url, info)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert local_dataset(url, info) == cached
    warm = time.perf_counter() - t0
    log(f"remote: {url} cached in {cold:.2f} s, reused in {warm * 1000:.0f} ms")
    return cached, {"url": url, "bytes": size, "cache_fill_s": round(cold, 2),
                    "cache_fill_MB_per_s": round(size / 1e6 / cold, 1), "cache_reuse_ms": round(warm * 1000, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=512)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--train-steps", type=int, default=24, help="batches per timed training epoch")
    p.add_argument("--train-rounds", type=int, default=3, help="timed training epochs of each kind")
    p.add_argument("--workdir")
    p.add_argument("--remote", choices=("memory", "s3"), default=None,
                   help="read the dataset from memory:// or moto's S3 through the local shard cache")
    a = p.parse_args()
    root = a.workdir or tempfile.mkdtemp(prefix="vidclass-bench-input-")
    remote = None
    stack = contextlib.ExitStack()
    try:
        log(f"writing {a.clips} clips to {root}")
        t0 = time.perf_counter()
        d, jpeg_bytes = write_dataset(Path(root) / "data", a.clips, a.frames, a.size)
        write_s = time.perf_counter() - t0
        if a.remote:
            os.environ[storage.CACHE_ENV] = str(Path(root) / "cache")
            d, remote = remote_copy(Path(d), a.remote, stack)
        info = dataset.load(str(d))
        variants = stage_datasets(str(d), info, a.batch_size)
        inp = bench_input(variants, a.clips, a.seconds)
        training = bench_training(variants["make_dataset_aug"], info, a.batch_size, a.train_steps, a.train_rounds)
    finally:
        stack.close()
        if not a.workdir:
            shutil.rmtree(root, ignore_errors=True)
    train = training["fit"]["clips_per_s"]
    ratios = {"input_vs_training": round(inp["make_dataset_aug"]["clips_per_s"] / train, 2),
              "input_cache_vs_training": round(inp["make_dataset_aug_cache"]["clips_per_s"] / train, 2),
              "fit_vs_fit_in_memory": round(train / training["fit_in_memory"]["clips_per_s"], 2)}
    ms = {n: round(1000 * a.batch_size / v["clips_per_s"], 2) for n, v in inp.items()}  # per batch, cumulative
    out = {"machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__,
                       "keras": keras.__version__, "platform": platform.platform(),
                       "load_avg_1m_after": round(os.getloadavg()[0], 2)},
           "config": {**vars(a), "model": DEFAULT_MODEL, "classes": CLASSES, "shards": SHARDS},
           "results": {"jpeg_bytes_per_frame": round(jpeg_bytes), "write_s": round(write_s, 1), "remote": remote,
                       "input": inp,
                       "input_ms_per_batch": ms, "training": training},
           "ratios": ratios,
           "goals": {**GOALS, "met": ratios["input_vs_training"] >= GOALS["input_vs_training_min"]}}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
