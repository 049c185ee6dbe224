"""The inference pipeline on the real DirectRunner: one Parquet row per video, reruns, --skip-scored."""
import json
import os
import shutil
import subprocess
import sys

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from videos import fifo, text_file
from pipelines import infer, preprocess
from vidclass import dataset, errors, synthetic
from vidclass.data import Augment
from vidclass.evaluate import predict_split, video_level
from vidclass.train import TrainConfig, train

CLASSES = ("move_left", "move_right", "grow")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Synthetic videos -> real preprocess -> a briefly trained model bundle."""
    root = tmp_path_factory.mktemp("infer")
    synthetic.write_dataset(root / "videos", 5, classes=CLASSES, num_frames=20, seed=3)
    assert preprocess.run(["--input", str(root / "videos"), "--output", str(root / "ds"), "--num-frames", "8",
                           "--size", "32", "--split", "train=0.6,test=0.4"]) == 0
    train(str(root / "ds"), str(root / "model"), TrainConfig(epochs=2, augment=Augment.none()))
    return root


def _rows(out):
    return pq.read_table([str(p) for p in sorted(out.glob("predictions-*.parquet"))]).to_pylist()


def _infer(*flags):
    return infer.run([*map(str, flags), "--direct_num_workers", "2"])


@pytest.fixture(scope="module")
def archive(trained):
    """The labelled videos plus broken ones: a text file, an empty file and a FIFO that blocks open()."""
    arch = trained / "archive"
    shutil.copytree(trained / "videos", arch)
    text_file(arch / "grow" / "notes.mp4")
    (arch / "move_left" / "empty.mp4").write_bytes(b"")
    fifo(arch / "move_right" / "stuck.mp4")
    return arch


def test_one_row_per_video_with_errors_as_rows(trained, archive, tmp_path):
    """Every input video gets exactly one row; broken ones have status=error and their code; labels
    from class folders come along as true_label; any Parquet reader opens the output."""
    out = tmp_path / "out"
    assert _infer("--input", archive, "--model-dir", trained / "model", "--output", out, "--run-id", "r1",
                  "--timeout", "3") == 0
    assert (out / "_SUCCESS").exists() and not [p for p in out.iterdir() if p.name.startswith(".staging")]
    rows = {r["video_id"]: r for r in _rows(out)}
    assert len(rows) == 15 + 3
    assert rows["grow/notes.mp4"]["error_code"] == "unreadable"
    assert rows["move_left/empty.mp4"]["error_code"] == "unreadable"
    assert rows["move_right/stuck.mp4"]["error_code"] == "timeout"
    good = [r for r in rows.values() if r["status"] == "ok"]
    assert len(good) == 15
    for r in good:
        assert r["label"] in CLASSES and r["label"] == r["top_k_labels"][0] and r["score"] == r["top_k_scores"][0]
        assert r["true_label"] == r["video_id"].split("/")[0] and r["run_id"] == "r1"
        assert abs(sum(r["top_k_scores"]) - 1) < 1e-3 and r["frames_decoded"] == 20 and r["num_clips"] == 1
        assert r["decode_errors"] == 0
    (n, distinct), = duckdb.sql(f"select count(*), count(distinct video_id) from '{out}/predictions-*.parquet'").fetchall()
    assert n == distinct == 18


def test_predictions_agree_with_evaluate(trained, tmp_path):
    """infer's video-level probabilities equal evaluate's on the same videos (one sampler, one schema)."""
    from vidclass import bundle
    info = dataset.load(str(trained / "ds"))
    model = bundle.load_model(str(trained / "model"))
    probs, labels, ids = predict_split(model, str(trained / "ds"), info, "test", 8)
    vprobs, _, vids = video_level(probs, labels, ids)
    out = tmp_path / "out"
    assert _infer("--input", trained / "videos", "--model-dir", trained / "model", "--output", out,
                  "--top-k", "3") == 0
    rows = {r["video_id"]: r for r in _rows(out)}
    for vid, p in zip(vids, vprobs):
        row = rows[vid]
        assert row["label"] == info.labels.name(int(np.argmax(p)))
        ours = dict(zip(row["top_k_labels"], row["top_k_scores"]))
        np.testing.assert_allclose([ours[name] for name in info.labels.names], p, atol=1e-4)


def test_rerun_replaces_and_skip_scored_scores_only_new_videos(trained, tmp_path):
    """Same run id twice: same rows, no duplicates. Then a nightly run with --skip-scored scores only the
    new and the changed video and carries the rest over, still one row per video."""
    arch = tmp_path / "arch"
    shutil.copytree(trained / "videos", arch)
    out1 = tmp_path / "night1"
    flags = ["--model-dir", trained / "model", "--input", arch]
    assert _infer(*flags, "--output", out1, "--run-id", "n1") == 0
    assert _infer(*flags, "--output", out1, "--run-id", "n1") == 0
    assert len(_rows(out1)) == 15 and len(list(out1.glob("predictions-*.parquet"))) == 1
    shutil.copy(arch / "grow" / "grow_000.mp4", arch / "grow" / "grow_new.mp4")
    changed = arch / "move_left" / "move_left_001.mp4"
    changed.write_bytes((arch / "move_left" / "move_left_002.mp4").read_bytes())
    os.utime(changed, ns=(1, 1))  # a different content fingerprint even on coarse clocks
    out2 = tmp_path / "night2"
    assert _infer(*flags, "--output", out2, "--run-id", "n2", "--skip-scored", out1) == 0
    rows = {r["video_id"]: r for r in _rows(out2)}
    assert len(rows) == 16
    fresh = sorted(v for v, r in rows.items() if r["run_id"] == "n2")
    assert fresh == ["grow/grow_new.mp4", "move_left/move_left_001.mp4"]
    assert all(r["status"] == "ok" for r in rows.values())


def test_systemic_faults_exit_non_zero(trained, tmp_path):
    """No model, no inputs, or every video broken: the run fails loudly, with a typed error the CLI turns
    into one line and a named exit status."""
    with pytest.raises(errors.ModelError, match="nomodel"):
        _infer("--input", trained / "videos", "--model-dir", tmp_path / "nomodel", "--output", tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.RunFailed, match="no videos found"):
        _infer("--input", tmp_path / "empty", "--model-dir", trained / "model", "--output", tmp_path / "o")
    (tmp_path / "bad").mkdir()
    text_file(tmp_path / "bad" / "a.mp4")
    assert _infer("--input", tmp_path / "bad", "--model-dir", trained / "model", "--output", tmp_path / "o2") == 1
    assert len(_rows(tmp_path / "o2")) == 1 and not (tmp_path / "o2" / "_SUCCESS").exists()


def test_predict_cli_matches_infer_rows(trained, tmp_path):
    """`vidclass predict --json` prints one row per video with the same labels and scores as infer."""
    out = tmp_path / "out"
    assert _infer("--input", trained / "videos" / "grow", "--model-dir", trained / "model", "--output", out) == 0
    by_uri = {r["video_uri"]: r for r in _rows(out)}
    videos = sorted(by_uri)[:3] + [str(tmp_path / "missing.mp4")]
    res = subprocess.run([sys.executable, "-m", "vidclass.cli", "predict", *videos, "--model-dir",
                          str(trained / "model"), "--json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["video_uri"] for r in lines] == videos
    for r in lines[:3]:
        assert r["label"] == by_uri[r["video_uri"]]["label"]
        assert abs(r["score"] - by_uri[r["video_uri"]]["score"]) < 1e-4
    assert lines[3]["status"] == "error" and lines[3]["error_code"] == "not_found"
