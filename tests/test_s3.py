"""Every stage on s3:// against a real S3-compatible server (moto on loopback), reconciled with the same chain
run on local disk: preprocess s3->s3, inspect, train from and to s3 (and a SIGKILLed s3 run resumed), evaluate,
infer s3->s3 and --skip-scored. Runs are configured the two ways users configure them: only Beam's `--s3_*`
flags (preprocess, the --skip-scored infer) or only the standard AWS environment (everything else). The
secret key never appears in a file, an object or a log line.
"""
import contextlib
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import numpy as np
import pyarrow.parquet as pq
import pytest
import s3fs
import tensorflow as tf

import s3server
from pipelines import infer, preprocess
from vidclass import bundle, contact_sheet, dataset, schema, storage, synthetic
from vidclass.data import Augment, local_dataset
from vidclass.evaluate import evaluate
from vidclass.train import TrainConfig, train

CLASSES = ("move_left", "move_right", "grow")
S3 = "s3://vidclass-out"
VIDEOS = "s3://vidclass-in/videos"
COMMON = ["--num-frames", "8", "--size", "32", "--split", "train=0.7,test=0.3", "--direct_num_workers", "2"]
TRAIN = TrainConfig(model="frame_cnn", epochs=3, batch_size=4, augment=Augment.none(), val_fraction=0.3)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with s3server.s3_server(str(tmp_path_factory.mktemp("moto") / "moto.log")) as s:
        s.make_bucket("vidclass-in")
        s.make_bucket("vidclass-out")
        yield s


@contextlib.contextmanager
def configured(server, how, cache):
    """This process configured one way only: "flags" (no AWS environment at all; the flags are returned
    for the run to pass) or "env" (the standard AWS environment, nothing in fsspec's configuration)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [k for k in os.environ if k.startswith("AWS_")]:
            mp.delenv(name)
        mp.setattr(fsspec.config, "conf", {})
        mp.setenv(storage.S3_CONF_ENV, "{}")
        mp.setenv(storage.CACHE_ENV, cache)
        if how == "env":
            for k, v in server.env().items():
                mp.setenv(k, v)
        s3fs.S3FileSystem.clear_instance_cache()  # no client made under the other configuration is reused
        try:
            yield server.beam_flags() if how == "flags" else []
        finally:
            s3fs.S3FileSystem.clear_instance_cache()


@contextlib.contextmanager
def deterministic():
    """Op determinism for the two trainings compared (a test-only switch; the private API turns it off)."""
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        from tensorflow.python.framework import config as tf_config
        tf_config.disable_op_determinism()


def _inspect(directory, out):
    args = type("Args", (), {"dataset": directory, "out": out, "split": None, "per_class": 2, "frames": 4})()
    return contact_sheet.main(args)


def _kill_and_resume(root, model_dir, env):
    """`vidclass train --model-dir s3://...` SIGKILLed after its first epoch, then the same command again."""
    cmd = [sys.executable, "-m", "vidclass.cli", "train", "--data", f"{S3}/ds", "--model-dir", model_dir,
           "--model", "frame_cnn", "--epochs", "3", "--batch-size", "4", "--no-flip", "--no-crop", "--no-color",
           "--no-temporal-jitter"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    first = []
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        first.append(line)
        if "epoch 1/3 done" in line:  # committed, and uploaded before the line is printed
            os.kill(proc.pid, signal.SIGKILL)
            break
        assert time.monotonic() < deadline
    proc.wait(timeout=60)
    first.append(proc.stderr.read())
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert second.returncode == 0, second.stderr[-3000:]
    return "".join(first), second.stderr


@pytest.fixture(scope="module")
def chain(server, tmp_path_factory):
    """The chain on local disk and on s3, once; the tests below compare what each step left."""
    root = tmp_path_factory.mktemp("s3chain")
    cache, local = str(root / "cache"), root / "local"
    synthetic.write_dataset(root / "videos", 4, classes=CLASSES, num_frames=20, seed=5)
    client = server.client()
    for path in sorted((root / "videos").rglob("*.*")):
        client.upload_file(str(path), "vidclass-in", f"videos/{path.relative_to(root / 'videos')}")
    log = io.StringIO()
    out = {"root": root, "cache": cache}
    try:
        with contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
            assert preprocess.run(["--input", str(root / "videos"), "--output", str(local / "ds"), *COMMON]) == 0
            with configured(server, "flags", cache) as flags:
                assert preprocess.run(["--input", VIDEOS, "--output", f"{S3}/ds", *COMMON, *flags]) == 0
            with configured(server, "env", cache):
                _inspect(str(local / "ds"), str(root / "sheet.png"))
                start = log.tell()
                _inspect(f"{S3}/ds", f"{S3}/ds/contact_sheet.png")
                out["inspect_log"] = log.getvalue()[start:]
                with deterministic():
                    out["train_local"] = train(str(local / "ds"), str(local / "model"), TRAIN)
                    out["train_s3"] = train(f"{S3}/ds", f"{S3}/model", TRAIN)
                out["eval_local"] = evaluate(str(local / "ds"), str(local / "model"), "test")
                out["eval_s3"] = evaluate(f"{S3}/ds", f"{S3}/model", "test")
                assert infer.run(["--input", str(root / "videos"), "--model-dir", str(local / "model"),
                                  "--output", str(local / "scores"), "--run-id", "r1", "--direct_num_workers", "2"]) == 0
                assert infer.run(["--input", VIDEOS, "--model-dir", f"{S3}/model", "--output", f"{S3}/scores",
                                  "--run-id", "r1", "--direct_num_workers", "2"]) == 0
            with configured(server, "flags", cache) as flags:
                assert infer.run(["--input", VIDEOS, "--model-dir", f"{S3}/model", "--output", f"{S3}/scores2",
                                  "--skip-scored", f"{S3}/scores", "--run-id", "r2", "--direct_num_workers", "2",
                                  *flags]) == 0
    except BaseException:
        sys.stderr.write(log.getvalue())
        raise
    out["log"] = log.getvalue()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **server.env(),
           storage.CACHE_ENV: cache, "TMPDIR": str(root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out["killed"], out["resumed"] = _kill_and_resume(root, f"{S3}/resumed", env)
    return out


def _s3(server):
    return s3fs.S3FileSystem(endpoint_url=server.endpoint, key=s3server.ACCESS_KEY, secret=s3server.SECRET_KEY)


def assert_close(a, b, rel=1e-4):
    """Equal structure and equal values, floats within `rel`: with op determinism on, the two trainings still
    differed once, under the full suite's load, in a val_* figure (oneDNN may sum in another order)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), (a, b)
        for k in a:
            assert_close(a[k], b[k], rel)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_close(x, y, rel)
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=rel, abs=1e-6)
    else:
        assert a == b


def _records(directory, info):
    """Every clip as (video id, clip index) -> (frames, metadata but the uri, which names where it was read)."""
    files = [f for split in sorted(info.splits) for f in dataset.shard_paths(directory, info, split)]
    out = {}
    for r in tf.data.TFRecordDataset(files):
        frames, meta = schema.decode_clip(r.numpy())
        out[meta.video_id, meta.clip_index] = (frames.tobytes(), dataclasses.replace(meta, uri=""))
    return out


def test_preprocess_s3_to_s3_with_beam_flags_matches_local(chain, server):
    """Same counts, same splits, and the same records (frames to the byte) as the local run."""
    local_dir = str(chain["root"] / "local" / "ds")
    fs = _s3(server)
    remote = json.loads(fs.cat(f"{S3}/ds/dataset.json"))
    here = json.loads(Path(local_dir, "dataset.json").read_text())
    assert remote["source"] == VIDEOS
    for doc in (remote, here):
        doc.pop("source"), doc.pop("created_at")
    assert remote == here and fs.exists(f"{S3}/ds/_SUCCESS")
    info = dataset.load(local_dir)
    assert "val" not in info.splits and info.inputs == 12
    with configured(server, "env", chain["cache"]):
        cached = local_dataset(f"{S3}/ds", dataset.load(f"{S3}/ds"))  # the s3 dataset's entry, fetched before
    assert cached.startswith(chain["cache"])
    remote_records, local_records = _records(cached, info), _records(local_dir, info)
    assert len(local_records) == 12 and remote_records == local_records


def test_inspect_reads_s3_through_the_cache_that_training_reuses(chain, server):
    assert _s3(server).exists(f"{S3}/ds/contact_sheet.png")
    assert "caching" in chain["inspect_log"]
    fetched = [line for line in chain["log"].splitlines() if line.startswith("storage: caching")]
    assert len(fetched) == 1, fetched  # inspect fetched it; train and evaluate reused it
    assert "storage: caching" not in chain["killed"] + chain["resumed"]  # and so did another process


def test_training_from_and_to_s3_matches_local(chain, server):
    """The same model: equal metrics and weights, a validation share carved alike, the bundle on s3."""
    a, b = dict(chain["train_local"]), dict(chain["train_s3"])
    a.pop("train_seconds_this_run"), b.pop("train_seconds_this_run")
    assert_close(a, b)
    assert a["validation"]["source"] == "carved from train" and a["selected_by"] == "val_loss"
    local_model = bundle.load_model(str(chain["root"] / "local" / "model"))
    with configured(server, "env", chain["cache"]):
        remote_bundle = bundle.load(f"{S3}/model")
        remote_model = bundle.load_model(f"{S3}/model")
        names = {p.rsplit("/", 1)[-1] for p in _s3(server).ls(f"{S3}/model")}
    for x, y in zip(local_model.get_weights(), remote_model.get_weights()):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    assert remote_bundle.dataset == f"{S3}/ds"
    assert {"model.keras", "bundle.json", "metrics.json", "history.csv", "training_curves.png", "logs",
            "confusion_matrix.png", "confusion_matrix.csv"} <= names and "checkpoints" not in names


def test_evaluate_on_s3_matches_local_and_writes_there(chain, server):
    a, b = dict(chain["eval_local"]), dict(chain["eval_s3"])
    a.pop("model_version"), b.pop("model_version")
    assert_close(a, b)
    assert a["num_examples"] > 0
    metrics = json.loads(_s3(server).cat(f"{S3}/model/metrics.json"))
    assert metrics["test"] == chain["eval_s3"] and metrics["train"] == chain["train_s3"]


def _rows(fs, directory):
    return {r["video_id"]: r for p in sorted(fs.glob(f"{directory}/predictions-*.parquet"))
            for r in pq.read_table(fs.open(p, "rb")).to_pylist()}


def test_infer_s3_to_s3_matches_local_and_skip_scored_carries_every_row(chain, server):
    fs = _s3(server)
    local_rows = {r["video_id"]: r for p in sorted((chain["root"] / "local" / "scores").glob("predictions-*.parquet"))
                  for r in pq.read_table(str(p)).to_pylist()}
    remote = _rows(fs, f"{S3}/scores")
    assert sorted(remote) == sorted(local_rows) and len(remote) == 12 and fs.exists(f"{S3}/scores/_SUCCESS")
    for vid, r in remote.items():
        here = local_rows[vid]
        assert (r["status"], r["label"], r["true_label"], r["top_k_labels"]) == \
            (here["status"], here["label"], here["true_label"], here["top_k_labels"]) and r["status"] == "ok"
        np.testing.assert_allclose(r["top_k_scores"], here["top_k_scores"], atol=1e-4)
        assert r["video_uri"] == f"{VIDEOS}/{vid}"
    carried = _rows(fs, f"{S3}/scores2")
    assert carried == remote  # every video scored by this model before: carried over, not scored again


def test_a_killed_s3_training_resumes_from_its_uploaded_state(chain, server):
    assert "epoch 1/3 done" in chain["killed"]
    assert "resuming the interrupted run in s3://vidclass-out/resumed after epoch 1" in chain["resumed"]
    assert "epoch 1/3 done" not in chain["resumed"] and "epoch 3/3 done" in chain["resumed"]
    fs = _s3(server)
    history = fs.cat(f"{S3}/resumed/history.csv").decode().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1", "2"]
    assert not fs.exists(f"{S3}/resumed/checkpoints") and fs.exists(f"{S3}/resumed/bundle.json")
    assert json.loads(fs.cat(f"{S3}/resumed/metrics.json"))["train"]["epochs_run"] == 3
    work = os.path.join(chain["cache"], "work")
    assert not os.path.exists(work) or os.listdir(work) == []  # local working folders are removed


def test_no_credential_in_any_file_object_or_log(chain, server):
    secret = s3server.SECRET_KEY.encode()
    fs = _s3(server)
    objects = [p for bucket in ("vidclass-in", "vidclass-out") for p in fs.find(bucket)]
    assert len(objects) > 30
    assert [p for p in objects if secret in fs.cat(p)] == []
    files = [p for p in chain["root"].rglob("*") if p.is_file()]
    assert [p for p in files if secret in p.read_bytes()] == []
    for text in (chain["log"], chain["killed"], chain["resumed"]):
        assert s3server.SECRET_KEY not in text
