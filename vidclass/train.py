"""`vidclass train`: a dataset directory in, a model bundle out; resumable after a kill.

Run the same command again after an interruption and it continues from the last finished epoch
(weights, optimizer state and learning-rate schedule), because `checkpoints/` keeps them per epoch.
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

from vidclass import bundle, dataset, errors, plots
from vidclass.data import Augment, make_dataset
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name != "default":
        raise ValueError(f"unknown strategy {name!r} (default, mirrored, multi_worker)")
    return tf.distribute.get_strategy()


def class_weights(info: dataset.DatasetInfo, mode: str) -> dict[int, float] | None:
    """Inverse-frequency weights from the train split's counts, so rare classes are not ignored."""
    counts = [info.splits["train"].videos_per_class.get(name, 0) for name in info.labels.names]
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


def _previous_history(path: str) -> list[dict[str, float]]:
    if not os.path.exists(path):
        return []
    import csv
    with open(path) as f:
        # CSVLogger writes "NA" for a metric missing in an epoch
        return [{k: float(v) if v not in ("", "NA") else float("nan") for k, v in row.items()}
                for row in csv.DictReader(f)]


def _check_resume_config(ckpt_dir: str, cfg: TrainConfig, data_dir: str) -> bool:
    """True when resuming; refuses to resume a run made with different settings."""
    path = os.path.join(ckpt_dir, "train_config.json")
    current = {"config": json.loads(json.dumps(cfg.to_dict())), "data": data_dir}
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        saved_cfg = {k: v for k, v in saved["config"].items() if k != "epochs"}
        if saved_cfg != {k: v for k, v in current["config"].items() if k != "epochs"} or saved["data"] != data_dir:
            raise errors.UsageError(f"{ckpt_dir} holds an interrupted run with other settings; rerun with the "
                             "same flags to resume, or --overwrite to start afresh")
        return os.path.exists(os.path.join(ckpt_dir, "training_metadata.json"))
    os.makedirs(ckpt_dir, exist_ok=True)
    with open(path, "w") as f:
        json.dump(current, f)
    return False


def train(data_dir: str, model_dir: str, cfg: TrainConfig, overwrite: bool = False) -> dict[str, Any]:
    """Train and write the bundle; returns the final metrics."""
    info = dataset.load(data_dir)
    if "train" not in info.splits or info.splits["train"].clips == 0:
        raise errors.DatasetError(f"{data_dir} has no training clips")
    os.makedirs(model_dir, exist_ok=True)
    ckpt_dir = os.path.join(model_dir, "checkpoints")
    finished = os.path.exists(os.path.join(model_dir, bundle.BUNDLE_JSON)) and not os.path.exists(ckpt_dir)
    if finished and not overwrite:
        raise errors.UsageError(f"{model_dir} already holds a trained model; pass --overwrite to replace it")
    if overwrite:
        import shutil
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        for name in ("history.csv", bundle.METRICS_JSON):
            if os.path.exists(os.path.join(model_dir, name)):
                os.remove(os.path.join(model_dir, name))
    resuming = _check_resume_config(ckpt_dir, cfg, data_dir)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy(
            "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16")
    frames = cfg.frames or info.spec.num_frames
    has_val = "val" in info.splits and info.splits["val"].clips > 0
    train_ds = make_dataset(data_dir, info, "train", cfg.batch_size, True, frames, cfg.augment, cfg.cache,
                            seed=cfg.seed)
    val_ds = make_dataset(data_dir, info, "val", cfg.batch_size, False, frames, cache=cfg.cache) if has_val else None
    steps = math.ceil(info.splits["train"].clips / cfg.batch_size)
    with _strategy(cfg.strategy).scope():
        model_cfg = {k: v for k, v in cfg.model_config.items() if k != "frames"}  # --frames decides frames
        model = build_model(cfg.model, len(info.labels), info.spec, frames=frames, **model_cfg)
        schedule = keras.optimizers.schedules.CosineDecay(
            cfg.learning_rate * 0.1, decay_steps=max(1, steps * cfg.epochs - steps), alpha=0.01,
            warmup_target=cfg.learning_rate, warmup_steps=steps)  # one epoch of warm-up
        model.compile(optimizer=keras.optimizers.Adam(schedule),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                               keras.metrics.TopKCategoricalAccuracy(k=min(5, len(info.labels)), name="top5")])
    history_path = os.path.join(model_dir, "history.csv")
    monitor = "val_loss" if has_val else "loss"
    best = keras.callbacks.ModelCheckpoint(os.path.join(ckpt_dir, "best.keras"), monitor=monitor,
                                           save_best_only=True)
    previous = _previous_history(history_path) if resuming else []
    if previous and monitor in previous[0]:
        best.best = min(row[monitor] for row in previous)  # a resumed run must not forget its best epoch
    callbacks = [keras.callbacks.BackupAndRestore(ckpt_dir, delete_checkpoint=False), best,
                 keras.callbacks.CSVLogger(history_path, append=resuming),
                 keras.callbacks.TensorBoard(os.path.join(model_dir, "logs"), profile_batch=0),
                 EpochLog(cfg.epochs, info.splits["train"].clips)]
    if has_val:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience))
    if resuming:
        print(f"train: resuming the interrupted run in {ckpt_dir}", file=sys.stderr)
    print(f"train: {cfg.model} on {info.splits['train'].clips} clips, {len(info.labels)} classes, "
          f"{model.count_params():,} parameters, {cfg.epochs} epochs", file=sys.stderr)
    started = time.monotonic()
    model.fit(train_ds, validation_data=val_ds, shuffle=False, epochs=cfg.epochs, callbacks=callbacks, verbose=0,
              class_weight=class_weights(info, cfg.class_weights))
    return _write_bundle(model, model_dir, ckpt_dir, data_dir, info, cfg, frames, history_path,
                         time.monotonic() - started, has_val)


def _write_bundle(model, model_dir, ckpt_dir, data_dir, info, cfg, frames, history_path, seconds, has_val):
    """Keep the best epoch's model, describe it, draw the curves, and drop the resume state."""
    import shutil
    best_path = os.path.join(ckpt_dir, "best.keras")
    model_path = os.path.join(model_dir, bundle.MODEL_FILE)
    if has_val and os.path.exists(best_path):
        shutil.copyfile(best_path, model_path)
    else:
        model.save(model_path)
    history = _dedupe_history(history_path)
    layer = embedding_layer(model)
    b = bundle.Bundle(labels=info.labels, spec=info.spec, model_name=cfg.model,
                      model_config={**cfg.model_config, "frames": frames}, model_frames=frames,
                      model_version=bundle.file_hash(model_path), jpeg_quality=info.jpeg_quality,
                      embedding_layer=layer, embedding_width=embedding_width(model, layer),
                      dataset=os.path.abspath(data_dir))
    bundle.write(model_dir, b)
    last = history[-1] if history else {}
    best_row = min(history, key=lambda r: r.get("val_loss", r["loss"])) if history else {}
    metrics = {"epochs_run": len(history), "best_epoch": int(best_row.get("epoch", 0)) + 1 if best_row else None,
               "final": last, "best": best_row, "train_seconds_this_run": round(seconds, 1),
               "config": json.loads(json.dumps(cfg.to_dict()))}
    bundle.update_metrics(model_dir, "train", metrics)
    plots.training_curves(history, os.path.join(model_dir, "training_curves.png"))
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    print(f"train: model bundle in {model_dir} (model_version {b.model_version}, best epoch "
          f"{metrics['best_epoch']})", file=sys.stderr)
    return metrics


def _dedupe_history(path: str) -> list[dict[str, float]]:
    """history.csv with one row per epoch: a kill between logging and checkpointing repeats an epoch."""
    rows = {int(r["epoch"]): r for r in _previous_history(path)}
    ordered = [rows[k] for k in sorted(rows)]
    if ordered:
        with open(path, "w") as f:
            keys = list(ordered[0])
            f.write(",".join(keys) + "\n")
            f.writelines(",".join(repr(r[k]) if k != "epoch" else str(int(r[k])) for k in keys) + "\n"
                         for r in ordered)
    return ordered
