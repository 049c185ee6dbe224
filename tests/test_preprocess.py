"""The preprocess pipeline on the real DirectRunner: videos in, a complete dataset directory out."""
import pathlib
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from videos import barcode_video, read_index, text_file, truncated_copy
from pipelines import preprocess
from vidclass import dataset, errors

SHARED_CHECKER = pathlib.Path(__file__).resolve().parents[2] / "shared" / "tools" / "check_dataset.py"


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory):
    """Three classes of barcode videos of various lengths, an upload cut short (still usable), a text
    file and an empty file."""
    root = tmp_path_factory.mktemp("videos")
    for cls in ("jump", "run", "walk"):
        (root / cls).mkdir()
        for i in range(5):
            barcode_video(root / cls / f"{cls}_{i}.mp4", 12 + 3 * i)
    full = barcode_video(root / "full.mp4", 60, container_options={"movflags": "+faststart"})
    truncated_copy(full, root / "run" / "cut_short.mp4", 0.6)
    full.unlink()
    text_file(root / "jump" / "notes.mp4")
    (root / "walk" / "empty.avi").write_bytes(b"")
    return root


def _run(*flags):
    return preprocess.run([*map(str, flags), "--direct_num_workers", "2"])


def _records(directory, info, split):
    """Parse a split's shards with exactly the keys TF Model Garden's video reader uses."""
    ctx = {"clip/label/index": tf.io.FixedLenFeature([], tf.int64),
           "clip/label/string": tf.io.FixedLenFeature([], tf.string),
           "clip/media_id": tf.io.FixedLenFeature([], tf.string)}
    seq = {"image/encoded": tf.io.FixedLenSequenceFeature([], tf.string),
           "clip/frame_index": tf.io.FixedLenSequenceFeature([], tf.int64)}
    out = []
    for raw in tf.data.TFRecordDataset(dataset.shard_paths(str(directory), info, split)):
        c, s = tf.io.parse_single_sequence_example(raw, context_features=ctx, sequence_features=seq)
        frames = [tf.io.decode_jpeg(j).numpy() for j in s["image/encoded"]]
        out.append((int(c["clip/label/index"]), c["clip/label/string"].numpy().decode(),
                    c["clip/media_id"].numpy().decode(), frames, s["clip/frame_index"].numpy().tolist()))
    return out


def test_class_folders_become_a_complete_dataset(class_folders, tmp_path):
    """Good videos become Model Garden records with the right labels and frames; bad ones become
    failure rows; counts reconcile; `_SUCCESS` is written."""
    out = tmp_path / "ds"
    assert _run("--input", class_folders, "--output", out, "--num-frames", 8, "--size", 64) == 0
    names = sorted(p.name for p in out.iterdir())
    assert {"_SUCCESS", "dataset.json", "labels.txt", "failures.parquet", "videos.parquet"} <= set(names)
    assert not [n for n in names if n.startswith((".staging", "beam-temp"))]
    info = dataset.load(str(out))
    assert info.labels.to_list() == ["jump", "run", "walk"]
    assert (out / "labels.txt").read_text().split() == ["jump", "run", "walk"]
    failures = pq.read_table(out / "failures.parquet").to_pylist()
    assert sorted((f["video_id"], f["error_code"]) for f in failures) == [
        ("jump/notes.mp4", "unreadable"), ("walk/empty.avi", "unreadable")]
    assert all(f["message"] and f["uri"].endswith(f["video_id"]) for f in failures)
    seen = {}
    for split in info.splits:
        for label_index, label, video_id, frames, frame_index in _records(out, info, split):
            assert info.labels.name(label_index) == label == video_id.split("/")[0]
            assert [read_index(f) for f in frames] == frame_index  # the frames are the ones named
            assert frames[0].shape == (64, 64, 3) and len(frames) == 8
            seen[video_id] = split
    assert len(seen) == 16 and sum(s.videos for s in info.splits.values()) == 16
    assert info.inputs == 18 and info.failures == 2
    videos = {v["video_id"]: v for v in pq.read_table(out / "videos.parquet").to_pylist()}
    assert videos["run/cut_short.mp4"]["decode_errors"] >= 1 and videos["run/cut_short.mp4"]["frames_decoded"] < 60
    assert all(v["decode_errors"] == 0 for k, v in videos.items() if k != "run/cut_short.mp4")
    for split, s in info.splits.items():
        assert s.clips == sum(1 for v in seen.values() if v == split)


def test_shared_checker_accepts_the_dataset(class_folders, tmp_path):
    """An outside reader (plain tf.data, Model Garden keys) finds what dataset.json promises."""
    if not SHARED_CHECKER.exists():
        pytest.skip("../shared/tools/check_dataset.py not beside this checkout")
    out = tmp_path / "ds"
    assert _run("--input", class_folders, "--output", out, "--num-frames", 4, "--size", 32) == 0
    info = dataset.load(str(out))
    counts = ",".join(f"{k}={v.clips}" for k, v in info.splits.items())
    res = subprocess.run([sys.executable, str(SHARED_CHECKER), str(out), "--counts", counts, "--classes", "3",
                          "--frames", "4", "--size", "32"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_manifest_splits_are_kept_and_rerun_replaces_everything(class_folders, tmp_path):
    """A manifest's split column decides the splits; a rerun with another shard count leaves only its
    own shards (no stale files a reader's glob would take)."""
    manifest = tmp_path / "m.csv"
    rows = ["uri,label,split"] + [f"{class_folders}/run/run_{i}.mp4,run,{'test' if i < 2 else 'train'}"
                                  for i in range(5)] + [f"{class_folders}/walk/walk_0.mp4,walk,test"]
    manifest.write_text("\n".join(rows) + "\n")
    out = tmp_path / "ds"
    assert _run("--input", manifest, "--output", out, "--num-frames", 4, "--size", 32, "--num-shards", 3) == 0
    assert len(list(out.glob("train-*.tfrecord"))) == 3
    (out / "contact_sheet.png").write_bytes(b"old")  # describes the old dataset: must go
    (out / "my_notes.txt").write_text("keep me")  # not ours: must stay
    assert _run("--input", manifest, "--output", out, "--num-frames", 4, "--size", 32, "--num-shards", 1) == 0
    info = dataset.load(str(out))
    assert {k: (v.videos, v.videos_per_class) for k, v in info.splits.items()} == {
        "train": (3, {"run": 3}), "test": (3, {"run": 2, "walk": 1})}
    assert sorted(p.name for p in out.glob("*.tfrecord")) == ["test-00000-of-00001.tfrecord",
                                                              "train-00000-of-00001.tfrecord"]
    assert not (out / "contact_sheet.png").exists() and (out / "my_notes.txt").exists()
    assert not [p for p in out.iterdir() if p.name.startswith((".staging", "beam-temp"))]
    assert pq.read_table(out / "failures.parquet").num_rows == 0


def test_all_bad_inputs_fail_the_run_loudly(tmp_path):
    """A run where every video fails exits non-zero and leaves no `_SUCCESS`, but keeps the failure rows."""
    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    text_file(root / "a" / "x.mp4")
    (root / "a" / "y.mp4").write_bytes(b"")
    out = tmp_path / "ds"
    assert _run("--input", root, "--output", out) == 1
    assert not (out / "_SUCCESS").exists()
    assert pq.read_table(out / "failures.parquet").num_rows == 2


def test_error_share_above_limit_fails_run(class_folders, tmp_path):
    """--max-error-rate turns a mostly-broken input into a failed run (2 of 18 bad > 10%)."""
    out = tmp_path / "ds"
    assert _run("--input", class_folders, "--output", out, "--num-frames", 2, "--size", 16,
                "--max-error-rate", 0.1) == 1
    assert not (out / "_SUCCESS").exists()


def test_unknown_flag_is_an_error_not_silently_dropped(class_folders, tmp_path):
    """A typo in a flag stops the run with a suggestion, instead of Beam dropping it with a warning."""
    with pytest.raises(errors.UsageError, match="num-shards"):
        _run("--input", class_folders, "--output", tmp_path / "o", "--num-shard", 2)


def test_sdist_ships_library_and_pipelines(tmp_path):
    """Dataflow workers install the sdist made from setup.py: it must hold both packages."""
    root = pathlib.Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path),
                    str(root)], check=True, capture_output=True, timeout=300)
    import tarfile
    (sdist,) = tmp_path.glob("vidclass-*.tar.gz")
    names = tarfile.open(sdist).getnames()
    for module in ("vidclass/video/reader.py", "vidclass/schema.py", "pipelines/preprocess.py", "pipelines/decode.py"):
        assert any(n.endswith(module) for n in names), module
