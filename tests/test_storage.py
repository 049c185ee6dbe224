"""The storage layer on fsspec's memory:// file system (a scheme TensorFlow cannot read): the shard cache,
training into and resuming from a remote model dir, one configuration for Beam and fsspec, redaction."""
import json
import os
import uuid

import fsspec
import keras
import numpy as np
import pytest

import datasets
from vidclass import bundle, dataset, errors, resume, storage
from vidclass.data import Augment, local_dataset
from vidclass.evaluate import evaluate
from vidclass.train import TrainConfig, train


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test its own cache folder: nothing is written under $HOME."""
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def local_ds(tmp_path_factory):
    return datasets.motion_dataset(tmp_path_factory.mktemp("ds") / "ds", {"train": 8, "val": 2, "test": 3})


def upload_dataset(local, url):
    fs, root = fsspec.core.url_to_fs(url)
    fs.put(str(local), root, recursive=True)
    return url


@pytest.fixture
def remote_ds(local_ds):
    return upload_dataset(local_ds, f"memory://bucket-{uuid.uuid4().hex[:8]}/ds")


def test_cache_fetches_once_reuses_and_repairs(remote_ds, local_ds, cache, capsys):
    """First use fetches every file; later uses fetch nothing; a torn cached shard is fetched again alone."""
    info = dataset.load(remote_ds)
    where = local_dataset(remote_ds, info)
    assert where.startswith(str(cache)) and dataset.load(where) == info
    assert "caching 9 file(s)" in capsys.readouterr().err  # dataset.json, labels.txt, _SUCCESS, 6 shards
    assert local_dataset(remote_ds, info) == where and "caching" not in capsys.readouterr().err
    shard = os.path.join(where, info.splits["train"].shards[0])
    with open(shard, "r+b") as f:
        f.truncate(100)
    assert local_dataset(remote_ds, info) == where and "caching 1 file(s)" in capsys.readouterr().err
    assert os.path.getsize(shard) == os.path.getsize(local_ds / info.splits["train"].shards[0])


def test_a_dataset_written_again_gets_a_new_entry_and_the_old_one_goes(remote_ds, local_ds, cache):
    info = dataset.load(remote_ds)
    first = local_dataset(remote_ds, info)
    doc = json.loads((local_ds / "dataset.json").read_text())
    doc["created_at"] = "2031-01-01T00:00:00+00:00"
    with fsspec.open(f"{remote_ds}/dataset.json", "w") as f:
        f.write(json.dumps(doc))
    second = local_dataset(remote_ds, dataset.load(remote_ds))
    assert second != first and os.path.exists(second) and not os.path.exists(first)


def test_local_and_tf_readable_datasets_are_not_copied(local_ds, cache):
    assert local_dataset(str(local_ds), dataset.load(str(local_ds))) == str(local_ds)
    assert storage.tf_reads("gs://b/x") and not storage.tf_reads("s3://b/x") and not storage.tf_reads("memory://x")
    assert not cache.exists()


def test_a_shard_missing_remotely_is_a_dataset_error(remote_ds):
    info = dataset.load(remote_ds)
    storage.remove(f"{remote_ds}/{info.splits['test'].shards[0]}")
    with pytest.raises(errors.DatasetError, match="lacks test-00000"):
        local_dataset(remote_ds, info)


def test_train_and_evaluate_with_a_remote_dataset_and_model_dir(remote_ds, local_ds, tmp_path):
    """Trained from memory:// into memory://: the bundle, metrics, curves and the evaluation land there; no
    resume state is left, and local work folders are gone."""
    model_dir = remote_ds.replace("/ds", "/model")
    metrics = train(remote_ds, model_dir, TrainConfig(model="frame_cnn", epochs=2, augment=Augment.none()))
    fs, root = fsspec.core.url_to_fs(model_dir)
    names = {os.path.basename(p) for p in fs.ls(root, detail=False)}
    assert {"model.keras", "bundle.json", "metrics.json", "history.csv", "training_curves.png", "logs"} <= names
    assert "checkpoints" not in names and not os.path.exists(storage.work_dir(model_dir))
    b = bundle.load(model_dir)
    assert b.dataset == remote_ds and b.model_version == bundle.file_hash(f"{model_dir}/model.keras")
    result = evaluate(remote_ds, model_dir, "test")
    assert {"confusion_matrix.png", "confusion_matrix.csv"} <= {os.path.basename(p) for p in fs.ls(root, detail=False)}
    assert bundle.read_metrics(model_dir) == {"train": metrics, "test": result}
    with pytest.raises(errors.UsageError, match="overwrite"):
        train(remote_ds, model_dir, TrainConfig(model="frame_cnn", epochs=2))


def test_a_remote_run_resumes_from_the_state_it_uploaded(tmp_path):
    """Each commit reaches the remote model dir (files first, state.json last); a fresh start on another
    machine (an empty work folder) continues from it with the same weights and optimizer state."""
    url = f"memory://runs-{uuid.uuid4().hex[:8]}/m"
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x, y = np.random.rand(8, 3).astype("float32"), np.eye(2)[np.arange(8) % 2]
    run = resume.RunDir(url)
    state = run.begin({"config": "c"}, overwrite=False)
    assert not storage.exists(url)  # nothing remote before the first commit: a failed start leaves no trace
    model.fit(x, y, epochs=2, verbose=0, callbacks=[resume.EpochCommit(run, state, None, patience=5)])
    fs, root = fsspec.core.url_to_fs(url)
    assert sorted(os.path.basename(p) for p in fs.ls(f"{root}/checkpoints", detail=False)) == [
        "epoch-0002.weights.h5", "state.json", "train_config.json"]  # epoch 1's weights are gone
    storage.remove(run.local)  # another machine
    again = resume.RunDir(url)
    state2 = again.begin({"config": "c"}, overwrite=False)
    assert state2.epochs_done == 2 and [r["epoch"] for r in state2.history] == [0, 1]
    fresh = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    fresh.compile(optimizer="adam", loss="categorical_crossentropy")
    again.restore(fresh, state2)
    assert int(fresh.optimizer.iterations) == int(model.optimizer.iterations)
    np.testing.assert_array_equal(fresh.get_weights()[0], model.get_weights()[0])
    with pytest.raises(errors.UsageError, match="other settings"):
        resume.RunDir(url).begin({"config": "other"}, overwrite=False)


def test_beam_s3_flags_configure_fsspec_and_its_children(monkeypatch):
    """--s3_* flags become fsspec's S3 options, here and (through FSSPEC_S3) in child processes."""
    from apache_beam.options.pipeline_options import PipelineOptions, S3Options
    monkeypatch.setattr(fsspec.config, "conf", {})
    monkeypatch.setenv(storage.S3_CONF_ENV, "{}")  # restored (removed) after the test
    options = PipelineOptions(["--s3_endpoint_url=http://127.0.0.1:9", "--s3_access_key_id=k",
                               "--s3_secret_access_key=s", "--s3_region_name=eu-west-1", "--s3_verify=false"])
    storage.configure_from_beam(options)
    want = {"endpoint_url": "http://127.0.0.1:9", "key": "k", "secret": "s",
            "client_kwargs": {"region_name": "eu-west-1", "verify": False}}
    assert fsspec.config.conf["s3"] == want and json.loads(os.environ[storage.S3_CONF_ENV]) == want
    assert options.view_as(S3Options).s3_verify is False  # boto3 would read the string as a CA bundle path


def test_fsspec_configuration_reaches_beam_when_no_flags_are_given(monkeypatch):
    from apache_beam.options.pipeline_options import PipelineOptions, S3Options
    monkeypatch.setattr(fsspec.config, "conf", {"s3": {"endpoint_url": "http://127.0.0.1:9", "key": "k",
                                                       "secret": "s", "client_kwargs": {"region_name": "r"}}})
    options = PipelineOptions([])
    storage.configure_from_beam(options)
    s3 = options.view_as(S3Options)
    assert (s3.s3_endpoint_url, s3.s3_access_key_id, s3.s3_secret_access_key, s3.s3_region_name) == (
        "http://127.0.0.1:9", "k", "s", "r")


def test_redact_keeps_locations_and_drops_secrets():
    assert storage.redact("s3://bucket/ds") == "s3://bucket/ds"
    assert storage.redact("/data/ds") == "/data/ds"
    assert storage.redact("https://user:pw@host/v.mp4?X-Amz-Signature=abc&X-Amz-Credential=c&part=2") == \
        "https://host/v.mp4?part=2"
    assert storage.redact("s3://AKIA:secret@bucket/x") == "s3://bucket/x"
