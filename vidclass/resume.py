"""A training run's resume state: one atomic commit per finished epoch, kept wherever the model dir is.

`checkpoints/` holds the run's settings, the last finished epoch's weights (optimizer state included),
the best epoch's model, and `state.json`, which names those files and carries the history rows. state.json
is replaced whole (a rename on disk, a single PUT on object stores) only after the files it names are
written, so a kill at any instant leaves the previous epoch's state or this one's: an epoch is redone
or kept, never lost and never logged twice (history.csv is rewritten from state.json).

A remote model dir (s3://, gs://, ...) is trained in a local working folder: each commit is uploaded
(files first, state.json last), a new start downloads the remote state, and the finished bundle is
uploaded with bundle.json last. Nothing is uploaded before the first epoch is committed, so a run that
fails to start leaves no trace there.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
from typing import Any

import fsspec
import keras

from vidclass import bundle, errors, storage, strictjson

CKPT = "checkpoints"
STATE = "state.json"
CONFIG = "train_config.json"
HISTORY = "history.csv"
# what a bundle's training and evaluation wrote: replaced by `--overwrite`, nothing else is touched
OWNED = (CKPT, HISTORY, bundle.METRICS_JSON, bundle.BUNDLE_JSON, bundle.MODEL_FILE, "training_curves.png",
         "confusion_matrix.png", "confusion_matrix.csv", "logs")


@dataclasses.dataclass
class State:
    """What the finished epochs left: `history` has one row per epoch, `best_*` the epoch chosen so far."""

    epochs_done: int = 0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    weights: str | None = None
    best_epoch: int | None = None  # 0-based, like the history's "epoch" column
    best_value: float | None = None
    best_file: str | None = None
    stopped_early: bool = False

    def files(self) -> set[str]:
        return {f for f in (self.weights, self.best_file) if f}


def _replace_text(path: str, text: str) -> None:
    """Write a whole file or nothing: readers see the old content or the new, never a torn one."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def history_csv(rows: list[dict[str, float]]) -> str:
    """history.csv as Keras's CSVLogger wrote it (epoch, then the metrics sorted), blanks for missing values."""
    keys = ["epoch", *sorted({k for r in rows for k in r} - {"epoch"})]

    def cell(r: dict, k: str) -> str:
        v = r.get(k)
        if k == "epoch":
            return str(int(v))
        return "" if v is None or not math.isfinite(v) else repr(float(v))
    return "".join(",".join(line) + "\n" for line in [keys, *([cell(r, k) for k in keys] for r in rows)])


class RunDir:
    """The model dir of one training run and the local folder it is trained in (the dir itself when local)."""

    def __init__(self, model_dir: str):
        self.url = model_dir.rstrip("/") or model_dir
        self.remote = not storage.is_local(model_dir)
        self.local = storage.work_dir(model_dir) if self.remote else storage.local_path(model_dir)
        self.ckpt = os.path.join(self.local, CKPT)
        self._created = False
        self._config_sent = False

    def finished(self) -> bool:
        """A bundle is there and no run is half way (its state.json goes only after bundle.json is written)."""
        return storage.exists(storage.join(self.url, bundle.BUNDLE_JSON)) and \
            not storage.exists(storage.join(self.url, CKPT, STATE))

    def begin(self, config: dict[str, Any], overwrite: bool) -> State:
        """The state to continue from (empty for a fresh run); refuses to resume a run with other settings."""
        if overwrite:
            for name in OWNED:
                storage.remove(storage.join(self.url, name))
        if self.remote:
            shutil.rmtree(self.local, ignore_errors=True)
            self._fetch()
        self._created = not os.path.exists(self.local)
        os.makedirs(self.ckpt, exist_ok=True)
        state = self._read_state()
        if state.epochs_done:
            with open(os.path.join(self.ckpt, CONFIG)) as f:
                saved = json.load(f)
            if saved != config:
                raise errors.UsageError(f"{storage.redact(self.url)} holds an interrupted run with other settings; "
                                        "rerun with the same flags to resume, or --overwrite to start afresh")
            self._config_sent = True
        _replace_text(os.path.join(self.ckpt, CONFIG), strictjson.dumps(config))
        _replace_text(os.path.join(self.local, HISTORY), history_csv(state.history))
        self._collect(state)
        return state

    def _fetch(self) -> None:
        """The remote run's committed state into the fresh local folder."""
        state_url = storage.join(self.url, CKPT, STATE)
        if not storage.exists(state_url):
            return
        storage.download(state_url, os.path.join(self.ckpt, STATE))
        state = self._read_state()
        for name in (CONFIG, *state.files()):
            storage.download(storage.join(self.url, CKPT, name), os.path.join(self.ckpt, name))

    def _read_state(self) -> State:
        path = os.path.join(self.ckpt, STATE)
        if not os.path.exists(path):
            return State()
        with open(path) as f:
            doc = json.load(f)
        doc["history"] = [{k: (math.nan if v is None else v) for k, v in r.items()} for r in doc["history"]]
        return State(**doc)

    def restore(self, model: keras.Model, state: State) -> None:
        """The last finished epoch's weights and optimizer state into `model`."""
        if state.weights:
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(os.path.join(self.ckpt, state.weights))

    def commit(self, state: State, model: keras.Model, improved: bool) -> None:
        """Make the epoch just finished durable: its files, then state.json, then history.csv."""
        n = state.epochs_done
        state.weights = f"epoch-{n:04d}.weights.h5"
        model.save_weights(os.path.join(self.ckpt, state.weights), overwrite=True)
        if improved:
            state.best_file = f"best-{n:04d}.keras"
            model.save(os.path.join(self.ckpt, state.best_file), overwrite=True)
        text = strictjson.dumps(dataclasses.asdict(state))
        _replace_text(os.path.join(self.ckpt, STATE), text)
        _replace_text(os.path.join(self.local, HISTORY), history_csv(state.history))
        if self.remote:
            for name in ([CONFIG] if not self._config_sent else []) + [state.weights] + ([state.best_file] if improved else []):
                storage.upload(os.path.join(self.ckpt, name), storage.join(self.url, CKPT, name))
            self._config_sent = True
            storage.upload(os.path.join(self.ckpt, STATE), storage.join(self.url, CKPT, STATE))
            storage.upload(os.path.join(self.local, HISTORY), storage.join(self.url, HISTORY))
        self._collect(state)

    def _collect(self, state: State) -> None:
        """Drop checkpoint files no committed state names (an earlier epoch's, or a killed write's)."""
        keep = state.files() | {STATE, CONFIG}
        for name in os.listdir(self.ckpt):
            if name not in keep:
                os.remove(os.path.join(self.ckpt, name))
        if self.remote:
            fs, root = fsspec.core.url_to_fs(storage.join(self.url, CKPT))
            for path in (fs.ls(root, detail=False) if fs.exists(root) else []):
                if os.path.basename(path.rstrip("/")) not in keep:
                    fs.rm(path)

    def best_model_path(self, state: State) -> str | None:
        return os.path.join(self.ckpt, state.best_file) if state.best_file else None

    def finish(self, names: list[str]) -> None:
        """The bundle is written locally: publish it (bundle.json last), then end the run's resume state."""
        if self.remote:
            for name in [n for n in names if n != bundle.BUNDLE_JSON] + [bundle.BUNDLE_JSON]:
                local = os.path.join(self.local, name)
                if os.path.isdir(local):
                    storage.remove(storage.join(self.url, name))  # a folder (logs/) is replaced whole
                if os.path.exists(local):
                    storage.upload(local, storage.join(self.url, name))
            storage.remove(storage.join(self.url, CKPT, STATE))  # the run is over from here on
            storage.remove(storage.join(self.url, CKPT))
            shutil.rmtree(self.local, ignore_errors=True)
        else:
            os.remove(os.path.join(self.ckpt, STATE))
            shutil.rmtree(self.ckpt, ignore_errors=True)

    def abandon(self, state: State) -> None:
        """A run that failed before committing any epoch leaves nothing behind (a later one may have)."""
        if state.epochs_done:
            return
        if self.remote or self._created:
            shutil.rmtree(self.local, ignore_errors=True)
            return
        shutil.rmtree(self.ckpt, ignore_errors=True)
        shutil.rmtree(os.path.join(self.local, "logs"), ignore_errors=True)  # only failed attempts wrote these
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.local, HISTORY))


class EpochCommit(keras.callbacks.Callback):
    """Commits every finished epoch, keeps the best one by `monitor` (if any), and stops early after
    `patience` epochs without improvement; resumed runs continue its counts from the state."""

    def __init__(self, run: RunDir, state: State, monitor: str | None, patience: int):
        super().__init__()
        self.run, self.state, self.monitor, self.patience = run, state, monitor, patience

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
        s = self.state
        s.history = [r for r in s.history if int(r["epoch"]) < epoch] + [row]
        s.epochs_done = epoch + 1
        value = row.get(self.monitor, math.nan) if self.monitor else math.nan
        improved = math.isfinite(value) and (s.best_value is None or value < s.best_value)
        if improved:
            s.best_epoch, s.best_value = epoch, value
        if self.monitor and s.best_epoch is not None and epoch - s.best_epoch >= self.patience:
            s.stopped_early = True
            self.model.stop_training = True
        self.run.commit(s, self.model, improved)
