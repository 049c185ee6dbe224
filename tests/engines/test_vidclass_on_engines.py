"""vidclass's own pipelines on real distributed engines give what the DirectRunner gives.

`preprocess` and `infer` (with a timeline and embeddings) run on a Flink cluster of one JobManager and two
TaskManagers (separate JVMs, Python SDK harnesses in processes of their own) and on Prism (SDK harnesses in
a worker pool: not in the launcher), over a small real set with broken files in it. The dataset (video ids,
splits, failure rows, record frames) and the predictions (labels, scores, embeddings, windows) must equal
the DirectRunner's, and `_SUCCESS` must come after the engine says the job finished.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from engines import cluster

TESTS = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from videos import text_file, truncated_copy  # noqa: E402

from pipelines import infer, preprocess  # noqa: E402
from vidclass import dataset, schema, synthetic  # noqa: E402
from vidclass.data import Augment  # noqa: E402
from vidclass.train import TrainConfig, train  # noqa: E402

pytestmark = [pytest.mark.engines, pytest.mark.timeout(1800)]
CLASSES = ("move_left", "move_right", "grow")
PREPROCESS = ["--num-frames", "8", "--size", "32", "--split", "train=0.6,val=0.2,test=0.2"]
INFER = ["--segment-seconds", "0.5", "--embeddings", "--run-id", "engines", "--timeout", "120"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The set, and what the DirectRunner makes of it: a dataset, a model trained on it, predictions."""
    root = tmp_path_factory.mktemp("engines-set")
    videos = root / "videos"
    paths = synthetic.write_dataset(videos, 4, classes=CLASSES, num_frames=24, height=48, width=64, seed=7)
    text_file(videos / "grow" / "notes.mp4")
    (videos / "move_left" / "empty.mp4").write_bytes(b"")
    truncated_copy(paths[0], videos / "move_right" / "cut_short.mp4", 0.6)
    assert preprocess.run(["--input", str(videos), "--output", str(root / "ds"), *PREPROCESS]) == 0
    train(str(root / "ds"), str(root / "model"), TrainConfig(epochs=1, augment=Augment.none()))
    assert infer.run(["--input", str(videos), "--model-dir", str(root / "model"), "--output", str(root / "pred"),
                      *INFER]) == 0
    return root


def _dataset_view(directory: pathlib.Path) -> dict:
    """Everything a run decides about a dataset, independent of which worker wrote which shard."""
    info = dataset.load(str(directory))
    clips = {}
    for split in info.splits:
        for raw in tf.data.TFRecordDataset(dataset.shard_paths(str(directory), info, split)):
            rec = schema.parse_clip(raw)
            frames = rec["frames"].numpy()
            clips[(rec["video_id"].numpy().decode(), split)] = (int(rec["label"]), hashlib.sha1(frames.tobytes()).hexdigest())
    videos = sorted((r["video_id"], r["split"], r["label"], r["frames_decoded"], r["decode_errors"], r["clips"])
                    for r in pq.read_table(directory / dataset.VIDEOS).to_pylist())
    failures = sorted((r["video_id"], r["error_code"]) for r in pq.read_table(directory / dataset.FAILURES).to_pylist())
    splits = {k: (v.videos, v.clips, v.videos_per_class) for k, v in info.splits.items()}
    return {"labels": info.labels.to_list(), "splits": splits, "failures_by_code": info.failures_by_code,
            "videos": videos, "failures": failures, "clips": clips}


def _rows(directory: pathlib.Path, kind: str, key) -> dict:
    files = sorted(str(p) for p in directory.glob(f"{kind}-*.parquet"))
    return {key(r): r for r in pq.read_table(files).to_pylist()}


def _same_predictions(got_dir: pathlib.Path, want_dir: pathlib.Path) -> None:
    for kind, key in (("predictions", lambda r: r["video_id"]),
                      ("segments", lambda r: (r["video_id"], r["segment_index"]))):
        got, want = _rows(got_dir, kind, key), _rows(want_dir, kind, key)
        assert got.keys() == want.keys(), (kind, sorted(set(got) ^ set(want)))
        for k, w in want.items():
            g = got[k]
            assert (g["status"], g["error_code"], g["label"], g["top_k_labels"]) == \
                   (w["status"], w["error_code"], w["label"], w["top_k_labels"]), (kind, k)
            if w["status"] == "ok":
                assert np.allclose(g["top_k_scores"], w["top_k_scores"], atol=1e-4), (kind, k)
                assert np.allclose(g["embedding"], w["embedding"], atol=1e-4), (kind, k)


def _run_both(reference: pathlib.Path, out: pathlib.Path, engine_args: list[str]) -> None:
    """preprocess and infer on an engine, each compared with the DirectRunner's result."""
    videos = reference / "videos"
    assert preprocess.run(["--input", str(videos), "--output", str(out / "ds"), *PREPROCESS, *engine_args]) == 0
    assert _dataset_view(out / "ds") == _dataset_view(reference / "ds")
    assert infer.run(["--input", str(videos), "--model-dir", str(reference / "model"), "--output", str(out / "pred"),
                      *INFER, *engine_args]) == 0
    _same_predictions(out / "pred", reference / "pred")
    for d in (out / "ds", out / "pred"):
        assert not [p.name for p in d.iterdir() if p.name.startswith((".staging", "beam-temp", "_LEASE"))]


def test_flink_cluster_gives_the_direct_runners_results(reference, flink, tmp_path):
    """Both pipelines on a JobManager + 2 TaskManagers: same dataset, same predictions; every job ran on
    both TaskManagers and finished before the launcher wrote `_SUCCESS`."""
    fc, js = flink
    args = cluster.flink_pipeline_args(js.endpoint, parallelism=2,
                                       environment=cluster.process_environment_args(pythonpath=[TESTS]))
    before = {j["jid"] for j in fc.jobs()}
    _run_both(reference, tmp_path, args)
    jobs = [j for j in fc.jobs() if j["jid"] not in before]
    assert len(jobs) == 2 and all(j["state"] == "FINISHED" for j in jobs), jobs
    ends = sorted(fc.rest(f"/jobs/{j['jid']}")["end-time"] / 1000 for j in jobs)
    for end, d in zip(ends, ("ds", "pred")):
        assert os.path.getmtime(tmp_path / d / "_SUCCESS") >= end - 1.0, (d, end)
    for j in jobs:
        assert len(fc.job_taskmanagers(j["jid"])) == 2, "a TaskManager sat idle"


def test_prism_gives_the_direct_runners_results(reference, artifacts, prism, tmp_path):
    """Both pipelines on Prism (the portable runner closest to Dataflow Runner v2) with SDK harnesses in a
    worker pool, outside the launcher process: same dataset, same predictions."""
    with cluster.worker_pool(tmp_path / "pool", env={"PYTHONPATH": str(TESTS)}) as pool:
        args = cluster.prism_pipeline_args(artifacts.prism, job_endpoint=prism.endpoint, environment_type="EXTERNAL",
                                           worker_pool_endpoint=pool.endpoint)
        _run_both(reference, tmp_path, args)
    shutil.rmtree(tmp_path / "pool", ignore_errors=True)


def test_prism_workers_reach_s3_with_beam_flags_alone(reference, artifacts, prism, tmp_path, monkeypatch):
    """Videos and the dataset on an S3-compatible server configured only by Beam's `--s3_*` flags: SDK
    harnesses in a worker pool (other processes, no AWS environment) fetch the videos and write the shards,
    so the launcher's settings reach the workers; the dataset is the DirectRunner's."""
    import fsspec
    from s3server import s3_server
    for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "FSSPEC_S3"):
        monkeypatch.delenv(var, raising=False)
    saved = dict(fsspec.config.conf.get("s3", {}))
    try:
        with s3_server() as s3:
            bucket = s3.make_bucket("engines-s3")
            client = s3.client()
            for path in (reference / "videos").rglob("*"):
                if path.is_file():
                    client.upload_file(str(path), "engines-s3", f"videos/{path.relative_to(reference / 'videos')}")
            with cluster.worker_pool(tmp_path / "pool", env={"PYTHONPATH": str(TESTS)}, boot=True) as pool:
                args = cluster.prism_pipeline_args(artifacts.prism, job_endpoint=prism.endpoint,
                                                   environment_type="EXTERNAL", worker_pool_endpoint=pool.endpoint)
                assert preprocess.run(["--input", f"{bucket}/videos", "--output", f"{bucket}/ds", *PREPROCESS, *args,
                                       *s3.beam_flags()]) == 0
            fs = fsspec.filesystem("s3", key=s3.env()["AWS_ACCESS_KEY_ID"], secret=s3.env()["AWS_SECRET_ACCESS_KEY"],
                                   client_kwargs={"endpoint_url": s3.endpoint})
            fs.get("engines-s3/ds/", str(tmp_path / "ds"), recursive=True)
        got, want = _dataset_view(tmp_path / "ds"), _dataset_view(reference / "ds")
        assert got == want
    finally:
        fsspec.config.conf["s3"] = saved
        os.environ.pop("FSSPEC_S3", None)
