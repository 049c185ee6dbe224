"""Training end to end on a motion-only task: the bundle, evaluation, validation carved from train when a
dataset has none, strict JSON, and resume after kills (one at a known epoch, then several at random)."""
import csv
import json
import os
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import datasets
from vidclass import bundle, dataset, errors, plots, resume
from vidclass.data import Augment, carve_validation, make_dataset
from vidclass.evaluate import evaluate
from vidclass.train import TrainConfig, check_classes, train

NO_FLIP = Augment(crop=False, flip=False, color=True, temporal=False)  # a flip would swap left and right


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    return datasets.motion_dataset(tmp_path_factory.mktemp("motion") / "ds", {"train": 32, "val": 10, "test": 16})


def _history(model_dir):
    with open(os.path.join(model_dir, "history.csv")) as f:
        return list(csv.DictReader(f))


def strict_json(path):
    """The file parsed as strict JSON: NaN or Infinity anywhere is a failure, as it is for most readers."""
    def refuse(name):
        raise AssertionError(f"{path} holds {name}")
    return json.loads(open(path).read(), parse_constant=refuse)


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
    metrics = strict_json(model_dir / "metrics.json")
    strict_json(model_dir / "bundle.json")
    assert metrics["train"]["epochs_run"] == len(_history(model_dir)) and metrics["test"]["top1"] == result["top1"]
    assert metrics["train"]["validation"] == {"source": "val split", "videos": 20, "clips": 20}
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
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    for line in proc.stderr:
        if "epoch 2/4 done" in line:  # printed once the epoch is committed: kill hard right after
            assert json.loads((model_dir / "checkpoints" / "state.json").read_text())["epochs_done"] == 2
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


# --- validation carved out of train -------------------------------------------------------------------

@pytest.fixture(scope="module")
def no_val(tmp_path_factory):
    """train and test only: the layout of UCF101's and HMDB51's official splits."""
    return datasets.motion_dataset(tmp_path_factory.mktemp("noval") / "ds", {"train": 24, "test": 8}, seed=3)


@pytest.fixture(scope="module")
def carved_run(no_val, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("carved") / "m"
    metrics = train(str(no_val), str(model_dir), TrainConfig(model="frame_cnn", epochs=5, augment=NO_FLIP))
    return model_dir, metrics


def test_no_val_split_carves_a_share_of_train_and_selects_on_it(carved_run, no_val):
    """best_epoch is the epoch with the lowest loss on the carved share, and model.keras is that epoch's
    model: scoring it on the share again gives that epoch's val_loss."""
    model_dir, metrics = carved_run
    m = strict_json(model_dir / "metrics.json")["train"]
    assert m == metrics
    carve = carve_validation(str(no_val), dataset.load(str(no_val)), 0.1)
    assert m["validation"] == {"source": "carved from train", "fraction": 0.1, **{
        k: v for k, v in carve.summary().items() if k not in ("source", "fraction")}}
    assert 0 < m["validation"]["videos"] < 48 and m["validation"]["train_clips"] + m["validation"]["clips"] == 48
    rows = _history(model_dir)
    assert [int(r["epoch"]) for r in rows] == list(range(m["epochs_run"]))
    losses = [float(r["val_loss"]) for r in rows]
    assert m["selected_by"] == "val_loss" and m["best_epoch"] == 1 + int(np.argmin(losses))
    model = bundle.load_model(str(model_dir))
    model.compile(loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1))
    info = dataset.load(str(no_val))
    again = model.evaluate(make_dataset(str(no_val), info, "train", 8, False, subset=carve.val), verbose=0)
    assert again == pytest.approx(min(losses), abs=1e-4)


def test_carved_share_is_stable_and_keeps_groups_whole(tmp_path):
    """UCF101-style groups (clips of one source video) land on one side, the same on every call."""
    rng = np.random.default_rng(0)
    clips = [(datasets.moving_dot(1 if c == "right" else -1, rng), c, f"{c}/v_{c}_g{g:02d}_c{k:02d}.avi")
             for c in ("left", "right") for g in range(1, 26) for k in range(1, 4)]
    ds = datasets.write(tmp_path / "ds", {"train": clips}, ["left", "right"], datasets.SamplingSpec(num_frames=8, size=32))
    info = dataset.load(str(ds))
    a, b = carve_validation(str(ds), info, 0.2), carve_validation(str(ds), info, 0.2)
    assert a == b and a.val.ids
    groups = {vid.rsplit("_", 1)[0] for vid in a.val.ids}
    every = {vid for _, _, vid in clips}
    assert {vid for vid in every if vid.rsplit("_", 1)[0] in groups} == set(a.val.ids)
    assert len(a.val.ids) == 3 * len(groups) and a.val.clips == len(a.val.ids)
    assert a.train.clips == len(clips) - a.val.clips
    assert a.val_groups == len(groups) and 0.05 < len(groups) / 50 < 0.4
    got = {vid.decode() for _, _, vid in make_dataset(str(ds), info, "train", 16, False, with_ids=True,
                                                      subset=a.val).unbatch().as_numpy_iterator()}
    assert got == set(a.val.ids)


def test_without_any_validation_the_last_epoch_is_the_model(no_val, tmp_path):
    """--val-fraction 0: no early stopping, best_epoch names the last epoch, no 'val' curves, strict JSON."""
    model_dir = tmp_path / "m"
    metrics = train(str(no_val), str(model_dir), TrainConfig(model="frame_cnn", epochs=2, augment=NO_FLIP,
                                                             val_fraction=0.0))
    assert metrics["best_epoch"] == metrics["epochs_run"] == 2
    assert metrics["selected_by"] == "last epoch (no validation data)"
    assert metrics["validation"] == {"source": "none", "fraction": 0.0}
    assert strict_json(model_dir / "metrics.json")["train"] == metrics
    assert "val_loss" not in _history(model_dir)[0]
    result = evaluate(str(no_val), str(model_dir), "test")
    assert strict_json(model_dir / "metrics.json")["test"] == result


def test_plots_draw_only_series_that_exist(tmp_path):
    rows = [{"epoch": 0, "loss": 1.0, "accuracy": 0.5, "val_loss": float("nan")},
            {"epoch": 1, "loss": 0.8, "accuracy": 0.6, "val_loss": float("nan")}]
    assert plots.training_curves(rows, str(tmp_path / "c.png")) == ["loss", "accuracy"]
    rows[1]["val_loss"] = 0.9
    assert plots.training_curves(rows, str(tmp_path / "c.png")) == ["loss", "val_loss", "accuracy"]


def test_evaluate_gives_null_not_nan_for_a_class_without_videos(temporal_vs_frame, tmp_path):
    """A test split where one class has no videos: its recall is null, and metrics.json stays strict."""
    model_dir, _ = temporal_vs_frame["frame_cnn"]
    rng = np.random.default_rng(1)
    only_left = [(datasets.moving_dot(-1, rng), "left", f"test/left_{i}") for i in range(4)]
    ds = datasets.write(tmp_path / "ds", {"test": only_left}, ["left", "right"], datasets.SamplingSpec(num_frames=8, size=32))
    result = evaluate(str(ds), str(model_dir), "test")
    assert result["per_class"]["right"]["recall"] is None and result["per_class"]["right"]["support"] == 0
    assert strict_json(model_dir / "metrics.json")["test"]["per_class"]["right"]["recall"] is None


def test_a_class_without_training_videos_is_a_warning_and_one_class_an_error(capsys):
    check_classes(("a", "b", "c"), {"a": 3, "b": 2})
    err = capsys.readouterr().err
    assert "warning: 1 of 3 classes have no training videos" in err and err.rstrip().endswith(": c")
    with pytest.raises(errors.DatasetError, match="only 1 of 3 classes"):
        check_classes(("a", "b", "c"), {"a": 3})


def test_bad_val_fraction_and_failed_start_leave_nothing(no_val, tmp_path):
    """Refused settings and a dataset that cannot be read fail before the model dir exists."""
    with pytest.raises(errors.UsageError, match="val-fraction"):
        train(str(no_val), str(tmp_path / "a"), TrainConfig(val_fraction=1.0))
    with pytest.raises(errors.UsageError, match="frames"):
        train(str(no_val), str(tmp_path / "b"), TrainConfig(frames=99))
    with pytest.raises(errors.DatasetError):
        train(str(tmp_path / "nowhere"), str(tmp_path / "c"), TrainConfig())
    assert sorted(os.listdir(tmp_path)) == []


# --- random kills ----------------------------------------------------------------------------------------

def _kill_at_random(motion, model_dir, tmp_path, kills, epochs, seed):
    """Start `vidclass train` and SIGKILL it at a random moment after it logs an epoch (so each attempt
    makes progress, and kills land mid-epoch, mid-commit or mid-bundle), `kills` times; then run it to the
    end. An attempt that finished before its kill ends the loop."""
    cmd = [sys.executable, "-m", "vidclass.cli", "train", "--data", str(motion), "--model-dir", str(model_dir),
           "--model", "frame_cnn", "--epochs", str(epochs), "--no-flip", "--patience", str(epochs)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(tmp_path)}
    rng = random.Random(seed)
    for _ in range(kills):
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        for line in proc.stderr:
            if " done:" in line:  # committed; the next epoch (and its commit) is under way
                break
        time.sleep(rng.uniform(0.0, 0.6))  # about one epoch of frame_cnn here
        proc.kill()
        proc.wait(timeout=60)
        proc.stderr.close()
        if (model_dir / "bundle.json").exists() and not (model_dir / "checkpoints" / "state.json").exists():
            return
    final = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]


def _check_consistent(model_dir, epochs):
    rows = _history(model_dir)
    metrics = strict_json(model_dir / "metrics.json")["train"]
    assert [int(r["epoch"]) for r in rows] == list(range(epochs)), [r["epoch"] for r in rows]
    assert metrics["epochs_run"] == epochs and metrics["final"]["epoch"] == epochs - 1
    losses = [float(r["val_loss"]) for r in rows]
    assert metrics["best_epoch"] == 1 + int(np.argmin(losses))
    assert metrics["best"]["val_loss"] == pytest.approx(min(losses))
    assert not (model_dir / "checkpoints").exists()
    b = bundle.load(str(model_dir))
    assert b.model_version == bundle.file_hash(str(model_dir / "model.keras"))


def test_three_random_kills_lose_and_repeat_no_epoch(motion, tmp_path):
    """Killed at random moments (mid-epoch, mid-commit, mid-bundle), resumed: every epoch exactly once."""
    model_dir = tmp_path / "m"
    _kill_at_random(motion, model_dir, tmp_path, kills=3, epochs=5, seed=11)
    _check_consistent(model_dir, 5)


@pytest.mark.slow
def test_eight_random_kills_lose_and_repeat_no_epoch(motion, tmp_path):
    model_dir = tmp_path / "m"
    _kill_at_random(motion, model_dir, tmp_path, kills=8, epochs=12, seed=7)
    _check_consistent(model_dir, 12)


def test_history_csv_is_rewritten_from_the_committed_state(tmp_path):
    """A history.csv torn or ahead of the state (a kill between the two writes) is replaced on start."""
    run = resume.RunDir(str(tmp_path / "m"))
    state = run.begin({"config": 1}, overwrite=False)
    assert state.epochs_done == 0 and (tmp_path / "m" / "history.csv").read_text() == "epoch\n"
    (tmp_path / "m" / "history.csv").write_text("epoch,loss\n0,1.0\n1,0.9\n1,0.9\n2,0.")
    assert run.begin({"config": 1}, overwrite=False).epochs_done == 0
    assert (tmp_path / "m" / "history.csv").read_text() == "epoch\n"
    assert resume.history_csv([{"epoch": 0, "loss": 1.0, "val_loss": float("nan")}]) == "epoch,loss,val_loss\n0,1.0,\n"


def test_a_run_that_fails_before_its_first_epoch_leaves_the_dir_as_it_was(tmp_path):
    """A crash inside the first epoch (records smaller than dataset.json says) removes what the start made;
    a folder that existed keeps only what was there."""
    rng = np.random.default_rng(0)
    clips = [(datasets.moving_dot(d, rng, size=24), name, f"train/{name}_{i}")
             for i in range(4) for d, name in ((-1, "left"), (1, "right"))]
    bad = datasets.write(tmp_path / "bad", {"train": clips}, ["left", "right"],
                         datasets.SamplingSpec(num_frames=8, size=32))
    mine = tmp_path / "existing"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    for model_dir in (tmp_path / "fresh", mine):
        with pytest.raises(Exception, match="32"):
            train(str(bad), str(model_dir), TrainConfig(model="frame_cnn", epochs=1, val_fraction=0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "existing"]
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
