"""A bundle proves what it is: model.keras must hash to bundle.json's model_version, give one score per label
and take the frames and size bundle.json names, or loading refuses it with one line (ModelError) before any
video is decoded. So `infer --skip-scored` can never carry rows another model scored."""
import json
import shutil
import tempfile
import uuid

import fsspec
import keras
import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines import infer
from vidclass import bundle, errors, synthetic
from vidclass.labels import LabelMap
from vidclass.models import build_model
from vidclass.sampling import SamplingSpec


def make_bundle(directory, labels=("grow", "move_left"), frames=8, size=32, seed=0):
    """A real (untrained) frame_cnn bundle, written as `train` writes one."""
    keras.utils.set_random_seed(seed)
    spec = SamplingSpec(num_frames=frames, size=size)
    directory.mkdir(parents=True, exist_ok=True)
    build_model("frame_cnn", len(labels), spec).save(directory / bundle.MODEL_FILE)
    stamp(directory, labels=labels, frames=frames, size=size)
    return directory


def stamp(directory, labels=("grow", "move_left"), frames=8, size=32, version=None):
    """(Re)write bundle.json; by default with the hash of the model.keras that is there now."""
    b = bundle.Bundle(labels=LabelMap(tuple(labels)), spec=SamplingSpec(num_frames=frames, size=size),
                      model_name="frame_cnn", model_config={}, model_frames=frames,
                      model_version=version or bundle.file_hash(str(directory / bundle.MODEL_FILE)))
    bundle.write(str(directory), b)
    return b


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    return make_bundle(root / "a", seed=0), make_bundle(root / "b", seed=1)


def test_a_true_bundle_loads_here_and_from_memory_without_leaving_a_copy(bundles, tmp_path, monkeypatch):
    a, _ = bundles
    model = bundle.load_model(str(a))
    assert model.output_shape == (None, 2)
    url = f"memory://bundles-{uuid.uuid4().hex[:8]}/a"
    fsspec.filesystem("memory").put(str(a), url.split("://", 1)[1], recursive=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    remote = bundle.load_model(url)
    for x, y in zip(model.get_weights(), remote.get_weights()):
        np.testing.assert_array_equal(x, y)
    assert list(tmp_path.iterdir()) == []  # the downloaded copy is gone


def test_another_models_file_is_refused_by_its_hash(bundles, tmp_path):
    a, b = bundles
    swapped = shutil.copytree(a, tmp_path / "swapped")
    shutil.copyfile(b / bundle.MODEL_FILE, swapped / bundle.MODEL_FILE)
    with pytest.raises(errors.ModelError, match=r"model\.keras does not match its bundle\.json: its hash is "
                                                r"[0-9a-f]{16}, bundle\.json says model_version [0-9a-f]{16}"):
        bundle.load_model(str(swapped))


@pytest.mark.parametrize("labels, scores", [(("a", "b", "c"), 2), (("a",), 2)])
def test_labels_must_match_the_models_outputs(bundles, tmp_path, labels, scores):
    a, _ = bundles
    d = shutil.copytree(a, tmp_path / "d")
    if len(labels) == 1:  # a one-label map cannot be a classifier's: use a 3-output model with 2 labels
        make_bundle(d, labels=("x", "y", "z"))
        stamp(d, labels=("x", "y"))
        labels, scores = ("x", "y"), 3
    else:
        stamp(d, labels=labels)
    with pytest.raises(errors.ModelError, match=f"gives {scores} class scores but bundle.json lists {len(labels)} labels"):
        bundle.load_model(str(d))


@pytest.mark.parametrize("change", [{"size": 48}, {"frames": 4}])
def test_sampling_must_match_the_models_input(bundles, tmp_path, change):
    a, _ = bundles
    d = shutil.copytree(a, tmp_path / "d")
    stamp(d, **change)
    with pytest.raises(errors.ModelError, match=r"takes input \(8, 32, 32, 3\) .* but bundle.json says "
                                                f"{change.get('frames', 8)} frames of {change.get('size', 32)}x"):
        bundle.load_model(str(d))


def test_an_unloadable_file_is_one_line_not_a_traceback(bundles, tmp_path):
    a, _ = bundles
    d = shutil.copytree(a, tmp_path / "d")
    (d / bundle.MODEL_FILE).write_bytes(b"not a keras file")
    stamp(d)
    with pytest.raises(errors.ModelError, match="cannot load"):
        bundle.load_model(str(d))
    (d / bundle.BUNDLE_JSON).write_text("{")
    with pytest.raises(errors.ModelError, match="bundle.json is unreadable"):
        bundle.load(str(d))


def _rows(out):
    return {r["video_id"]: r for p in sorted(out.glob("predictions-*.parquet")) for r in pq.read_table(str(p)).to_pylist()}


def test_skip_scored_never_carries_rows_of_another_model(bundles, tmp_path):
    """A model.keras swapped under an unchanged bundle.json is refused before any video is decoded (no output
    is begun); once bundle.json names the new model, every video is scored again, none carried over."""
    a, b = bundles
    synthetic.write_dataset(tmp_path / "videos", 2, classes=("grow", "move_left"), num_frames=12, seed=2)
    model = shutil.copytree(a, tmp_path / "model")
    first = tmp_path / "first"
    flags = ["--input", str(tmp_path / "videos"), "--model-dir", str(model), "--direct_num_workers", "1"]
    assert infer.run([*flags, "--output", str(first), "--run-id", "r1"]) == 0
    before = _rows(first)
    assert len(before) == 4 and {r["model_version"] for r in before.values()} == {json.loads(
        (a / bundle.BUNDLE_JSON).read_text())["model_version"]}
    shutil.copyfile(b / bundle.MODEL_FILE, model / bundle.MODEL_FILE)
    with pytest.raises(errors.ModelError, match="does not match its bundle.json"):
        infer.run([*flags, "--output", str(tmp_path / "refused"), "--skip-scored", str(first), "--run-id", "r2"])
    assert not (tmp_path / "refused").exists()
    new = stamp(model)
    assert infer.run([*flags, "--output", str(tmp_path / "second"), "--skip-scored", str(first), "--run-id", "r2"]) == 0
    after = _rows(tmp_path / "second")
    assert sorted(after) == sorted(before)
    assert {(r["model_version"], r["run_id"]) for r in after.values()} == {(new.model_version, "r2")}
    assert any(after[v]["top_k_scores"] != before[v]["top_k_scores"] for v in after)
