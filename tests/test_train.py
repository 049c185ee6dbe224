"""Training end to end on a motion-only task: the bundle, evaluation, and resume after a kill."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import datasets
from vidclass import bundle, errors
from vidclass.data import Augment
from vidclass.evaluate import evaluate
from vidclass.train import TrainConfig, train

NO_FLIP = Augment(crop=False, flip=False, color=True, temporal=False)  # a flip would swap left and right


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    return datasets.motion_dataset(tmp_path_factory.mktemp("motion") / "ds", {"train": 32, "val": 10, "test": 16})


def _history(model_dir):
    with open(os.path.join(model_dir, "history.csv")) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def temporal_vs_frame(motion, tmp_path_factory):
    """Train the default temporal model and the original post's frame_cnn on the same data."""
    out = {}
    for name in ("r2plus1d", "frame_cnn"):
        model_dir = tmp_path_factory.mktemp(name)
        train(str(motion), str(model_dir), TrainConfig(model=name, epochs=10, batch_size=8, augment=NO_FLIP))
        out[name] = (model_dir, evaluate(str(motion), str(model_dir), "test"))
    return out


def test_temporal_model_learns_motion_and_frame_cnn_cannot(temporal_vs_frame):
    """Only motion separates the classes: r2plus1d is well above chance, the per-frame CNN is not."""
    r2, fc = temporal_vs_frame["r2plus1d"][1], temporal_vs_frame["frame_cnn"][1]
    assert r2["top1"] >= 0.85, r2
    assert fc["top1"] <= 0.72, fc
    assert r2["top1"] - fc["top1"] >= 0.2


def test_bundle_is_complete_and_describes_the_model(temporal_vs_frame, motion):
    """model.keras loads in safe mode; bundle.json carries labels, sampling and a version hash of the
    file; metrics, history, curves and the confusion matrix are written; no resume state is left."""
    model_dir, result = temporal_vs_frame["r2plus1d"]
    for name in ("model.keras", "bundle.json", "metrics.json", "history.csv", "training_curves.png",
                 "confusion_matrix.png", "confusion_matrix.csv"):
        assert (model_dir / name).exists(), name
    assert not (model_dir / "checkpoints").exists()
    assert list((model_dir / "logs").rglob("events.out.tfevents*")), "TensorBoard logs"
    b = bundle.load(str(model_dir))
    assert b.labels.to_list() == ["left", "right"] and b.model_name == "r2plus1d"
    assert b.spec.num_frames == 8 and b.spec.size == 32
    assert b.model_version == bundle.file_hash(str(model_dir / "model.keras"))
    bundle.load_model(str(model_dir))
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["train"]["epochs_run"] == len(_history(model_dir)) and metrics["test"]["top1"] == result["top1"]
    assert set(result) >= {"top1", "top5", "mean_class_accuracy", "num_examples", "per_class"}
    assert result["num_examples"] == 32 and set(result["per_class"]) == {"left", "right"}


def test_finished_model_dir_is_not_silently_overwritten(temporal_vs_frame, motion):
    """Training into a finished bundle refuses without --overwrite."""
    model_dir, _ = temporal_vs_frame["frame_cnn"]
    with pytest.raises(errors.UsageError, match="overwrite"):
        train(str(motion), str(model_dir), TrainConfig(model="frame_cnn", epochs=1))


def test_killed_training_resumes_from_last_finished_epoch(motion, tmp_path):
    """SIGKILL after epoch 2 of 4, then the same command: it continues at epoch 3, each epoch once."""
    model_dir = tmp_path / "m"
    cmd = [sys.executable, "-m", "vidclass.cli", "train", "--data", str(motion), "--model-dir", str(model_dir),
           "--model", "frame_cnn", "--epochs", "4", "--no-flip"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    for line in proc.stderr:
        if "epoch 2/4 done" in line:
            # let the epoch-end callbacks (backup of weights and optimizer) finish, then kill hard
            while not (model_dir / "checkpoints" / "training_metadata.json").exists() or \
                    json.loads((model_dir / "checkpoints" / "training_metadata.json").read_text())["epoch"] < 2:
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            break
        assert time.monotonic() < deadline
    proc.wait(timeout=60)
    assert not (model_dir / "bundle.json").exists()
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming" in second.stderr
    assert "epoch 1/4 done" not in second.stderr and "epoch 3/4 done" in second.stderr
    assert [int(r["epoch"]) for r in _history(model_dir)] == [0, 1, 2, 3]
    assert (model_dir / "bundle.json").exists() and not (model_dir / "checkpoints").exists()
