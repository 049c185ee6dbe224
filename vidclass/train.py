"""`vidclass train`: a dataset directory in, a model bundle out; resumable after a kill.

Run the same command again after an interruption and it continues from the last finished epoch
(weights, optimizer state and learning-rate schedule): `vidclass.resume` commits each epoch atomically,
wherever the model dir is (local, s3://, gs://). The saved model is the epoch with the best validation
loss, validated on the `val` split or, when the dataset has none, on a share of train carved out by group.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from typing import Any

import keras
import tensorflow as tf

from vidclass import bundle, dataset, errors, plots, resume, storage, strictjson
from vidclass.data import Augment, Subset, carve_validation, local_dataset, make_dataset
from vidclass.models import build_model
from vidclass.models.embedding import embedding_layer, embedding_width


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; stored in checkpoints so a resume cannot mix configs."""

    model: str = "r2plus1d"
    epochs: int = 30
    batch_size: int = 8
    learning_rate: float = 1e-3
    label_smoothing: float = 0.1
    class_weights: str = "auto"   # auto: on when the largest class has 1.5x the clips of the smallest
    augment: Augment = Augment()
    frames: int | None = None     # frames the model takes (<= the clips'); default all
    patience: int = 8             # early stopping on val loss, in epochs
    mixed_precision: bool = False
    strategy: str = "default"     # default | mirrored | multi_worker
    model_config: dict = dataclasses.field(default_factory=dict)
    cache: bool = True
    seed: int = 0
    val_fraction: float = 0.1     # share of train's groups validated on when the dataset has no val split

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name != "default":
        raise errors.UsageError(f"unknown strategy {name!r} (default, mirrored, multi_worker)")
    return tf.distribute.get_strategy()


def class_weights(names: tuple[str, ...], videos_per_class: dict[str, int], mode: str) -> dict[int, float] | None:
    """Inverse-frequency weights from the training videos per class, so rare classes are not ignored."""
    counts = [videos_per_class.get(name, 0) for name in names]
    present = [c for c in counts if c > 0]
    if mode == "off" or not present or (mode == "auto" and max(present) < 1.5 * min(present)):
        return None
    total = sum(present)
    return {i: (total / (len(present) * c) if c else 0.0) for i, c in enumerate(counts)}


class EpochLog(keras.callbacks.Callback):
    """One line per epoch on stderr: users of long runs need progress, not Keras's progress bars."""

    def __init__(self, epochs: int, clips: int):
        super().__init__()
        self.epochs, self.clips = epochs, clips

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        took = time.monotonic() - self._start
        parts = [f"{k} {v:.4f}" for k, v in (logs or {}).items() if k != "learning_rate"]
        print(f"train: epoch {epoch + 1}/{self.epochs} done: {', '.join(parts)} ({took:.1f} s, "
              f"{self.clips / max(took, 1e-9):.0f} clips/s)", file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class Validation:
    """Where validation clips come from: the `val` split, a share carved out of train, or nowhere."""

    split: str | None              # the dataset split validation reads; None: no validation
    subset: Subset | None          # the carved share of `train`
    train_subset: Subset | None    # train without that share
    train_clips: int
    train_videos_per_class: dict[str, int]
    summary: dict[str, Any]        # what metrics.json records


def plan_validation(directory: str, info: dataset.DatasetInfo, fraction: float) -> Validation:
    """The `val` split when it has clips; else `fraction` of train's groups (0: none). Without validation
    there is no early stopping and the last epoch is the model."""
    train_split = info.splits["train"]
    if "val" in info.splits and info.splits["val"].clips > 0:
        val = info.splits["val"]
        return Validation("val", None, None, train_split.clips, dict(train_split.videos_per_class),
                          {"source": "val split", "videos": val.videos, "clips": val.clips})
    none = Validation(None, None, None, train_split.clips, dict(train_split.videos_per_class),
                      {"source": "none", "fraction": fraction})
    if fraction <= 0:
        return none
    carve = carve_validation(directory, info, fraction)
    if carve.train.clips == 0:
        raise errors.DatasetError(f"--val-fraction {fraction} left no training clips (train has "
                                  f"{train_split.videos} videos); use a smaller one, or 0")
    if carve.val.clips == 0:
        print(f"train: warning: no val split, and no group of train's {train_split.videos} videos fell in a "
              f"{fraction:.0%} validation share: training without validation (the last epoch is kept)",
              file=sys.stderr)
        return none
    print(f"train: no val split: validating on {fraction:.0%} of train's groups ({carve.summary()['videos']} "
          f"videos, {carve.val.clips} clips), carved by a stable hash", file=sys.stderr)
    return Validation("train", carve.val, carve.train, carve.train.clips, carve.train_videos_per_class,
                      carve.summary())


def check_classes(names: tuple[str, ...], videos_per_class: dict[str, int]) -> None:
    """A class without training videos cannot be learned: say so before any time is spent (an error when
    fewer than two classes are left to tell apart)."""
    empty = [n for n in names if videos_per_class.get(n, 0) == 0]
    if len(names) - len(empty) < 2:
        raise errors.DatasetError(f"only {len(names) - len(empty)} of {len(names)} classes have training videos; "
                                  "a classifier needs at least two")
    if empty:
        shown = ", ".join(empty[:10]) + (f" and {len(empty) - 10} more" if len(empty) > 10 else "")
        print(f"train: warning: {len(empty)} of {len(names)} classes have no training videos and will never be "
              f"predicted: {shown}", file=sys.stderr)


def train(data_dir: str, model_dir: str, cfg: TrainConfig, overwrite: bool = False) -> dict[str, Any]:
    """Train and write the bundle; returns the final metrics. Everything that can be refused is checked
    before the model dir is touched."""
    if not 0 <= cfg.val_fraction < 1:
        raise errors.UsageError(f"--val-fraction must be in [0, 1), got {cfg.val_fraction}")
    info = dataset.load(data_dir)
    if "train" not in info.splits or info.splits["train"].clips == 0:
        raise errors.DatasetError(f"{storage.redact(data_dir)} has no training clips")
    run = resume.RunDir(model_dir)
    if run.finished() and not overwrite:
        raise errors.UsageError(f"{model_dir} already holds a trained model; pass --overwrite to replace it")
    local_data = local_dataset(data_dir, info)
    val = plan_validation(local_data, info, cfg.val_fraction)
    check_classes(info.labels.names, val.train_videos_per_class)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy(
            "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16")
    frames = cfg.frames or info.spec.num_frames
    if not 1 <= frames <= info.spec.num_frames:
        raise errors.UsageError(f"--frames {frames}: the dataset's clips hold {info.spec.num_frames} frames")
    train_ds = make_dataset(local_data, info, "train", cfg.batch_size, True, frames, cfg.augment, cfg.cache,
                            seed=cfg.seed, subset=val.train_subset)
    val_ds = None if val.split is None else make_dataset(local_data, info, val.split, cfg.batch_size, False, frames,
                                                         cache=cfg.cache, subset=val.subset)
    steps = math.ceil(val.train_clips / cfg.batch_size)
    with _strategy(cfg.strategy).scope():
        model_cfg = {k: v for k, v in cfg.model_config.items() if k != "frames"}  # --frames decides frames
        try:
            model = build_model(cfg.model, len(info.labels), info.spec, frames=frames, **model_cfg)
        except (KeyError, ValueError) as e:  # an unknown model name or option, a size the model cannot take
            raise errors.UsageError(f"cannot build {cfg.model!r}: {e}") from e
        schedule = keras.optimizers.schedules.CosineDecay(
            cfg.learning_rate * 0.1, decay_steps=max(1, steps * cfg.epochs - steps), alpha=0.01,
            warmup_target=cfg.learning_rate, warmup_steps=steps)  # one epoch of warm-up
        model.compile(optimizer=keras.optimizers.Adam(schedule),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                               keras.metrics.TopKCategoricalAccuracy(k=min(5, len(info.labels)), name="top5")])
    settings = {"config": {k: v for k, v in json.loads(strictjson.dumps(cfg.to_dict())).items() if k != "epochs"},
                "data": storage.redact(data_dir)}
    state = run.begin(settings, overwrite)
    started = time.monotonic()
    try:
        run.restore(model, state)
        if state.epochs_done:
            print(f"train: resuming the interrupted run in {storage.redact(model_dir)} after epoch "
                  f"{state.epochs_done}", file=sys.stderr)
        print(f"train: {cfg.model} on {val.train_clips} clips, {len(info.labels)} classes, "
              f"{model.count_params():,} parameters, {cfg.epochs} epochs", file=sys.stderr)
        commit = resume.EpochCommit(run, state, "val_loss" if val_ds is not None else None, cfg.patience)
        callbacks = [commit, keras.callbacks.TensorBoard(os.path.join(run.local, "logs"), profile_batch=0),
                     EpochLog(cfg.epochs, val.train_clips)]
        if state.epochs_done < cfg.epochs and not state.stopped_early:
            model.fit(train_ds, validation_data=val_ds, shuffle=False, epochs=cfg.epochs, callbacks=callbacks,
                      verbose=0, initial_epoch=state.epochs_done,
                      class_weight=class_weights(info.labels.names, val.train_videos_per_class, cfg.class_weights))
    except BaseException:
        run.abandon(state)
        raise
    return _write_bundle(model, run, state, data_dir, info, cfg, frames, val, time.monotonic() - started)


def _write_bundle(model, run: resume.RunDir, state: resume.State, data_dir: str, info: dataset.DatasetInfo,
                  cfg: TrainConfig, frames: int, val: Validation, seconds: float) -> dict[str, Any]:
    """Keep the chosen epoch's model, describe it, draw the curves, publish, and drop the resume state."""
    import shutil
    model_path = os.path.join(run.local, bundle.MODEL_FILE)
    best = run.best_model_path(state)
    by_val = val.split is not None and best is not None
    if by_val:
        shutil.copyfile(best, model_path)
    else:
        model.save(model_path)
    history = state.history
    chosen = state.best_epoch if by_val else (len(history) - 1 if history else None)
    layer = embedding_layer(model)
    b = bundle.Bundle(labels=info.labels, spec=info.spec, model_name=cfg.model,
                      model_config={**cfg.model_config, "frames": frames}, model_frames=frames,
                      model_version=bundle.file_hash(model_path), jpeg_quality=info.jpeg_quality,
                      embedding_layer=layer, embedding_width=embedding_width(model, layer),
                      dataset=storage.redact(data_dir if not storage.is_local(data_dir) else os.path.abspath(data_dir)))
    row = next((r for r in history if int(r["epoch"]) == chosen), {})
    metrics = {"epochs_run": len(history), "best_epoch": None if chosen is None else chosen + 1,
               "selected_by": "val_loss" if by_val else "last epoch (no validation data)",
               "stopped_early": state.stopped_early, "validation": val.summary,
               "final": history[-1] if history else {}, "best": row,
               "train_seconds_this_run": round(seconds, 1), "config": cfg.to_dict()}
    bundle.update_metrics(run.local, "train", metrics)
    plots.training_curves(history, os.path.join(run.local, "training_curves.png"))
    bundle.write(run.local, b)
    run.finish([bundle.MODEL_FILE, resume.HISTORY, bundle.METRICS_JSON, "training_curves.png", "logs",
                bundle.BUNDLE_JSON])
    print(f"train: model bundle in {storage.redact(run.url)} (model_version {b.model_version}, epoch "
          f"{metrics['best_epoch']} of {len(history)}, chosen by {metrics['selected_by']})", file=sys.stderr)
    return json.loads(strictjson.dumps(metrics))
