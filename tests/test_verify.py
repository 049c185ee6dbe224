"""The checks run before `_SUCCESS`, on files made by TensorFlow's own writer and then damaged."""
import gzip

import pytest
import tensorflow as tf

from vidclass import dataset, verify


def _write(path, n, gz=False):
    options = tf.io.TFRecordOptions(compression_type="GZIP" if gz else "")
    with tf.io.TFRecordWriter(str(path), options) as w:
        for i in range(n):
            w.write(bytes([i % 251]) * (1000 + 37 * i))
    return path


def test_counts_match_tensorflow(tmp_path):
    """The framing walk counts what tf.data reads, plain and GZIP, empty included."""
    for n in (0, 1, 7):
        plain = _write(tmp_path / f"p{n}.tfrecord", n)
        packed = _write(tmp_path / f"g{n}.tfrecord.gz", n, gz=True)
        assert verify.count_records(str(plain)) == n == sum(1 for _ in tf.data.TFRecordDataset(str(plain)))
        assert verify.count_records(str(packed), compressed=True) == n


@pytest.mark.parametrize("cut", [5, 12, 500, -1])
def test_a_cut_short_shard_is_named(tmp_path, cut):
    """Cut inside a header, after a header, inside the data, or one byte short of the end: always an error."""
    shard = _write(tmp_path / "train-00000-of-00001.tfrecord", 3)
    data = shard.read_bytes()
    shard.write_bytes(data[:cut])
    with pytest.raises(ValueError, match="train-00000-of-00001.tfrecord: record"):
        verify.count_records(str(shard))
    packed = tmp_path / "cut.tfrecord.gz"
    packed.write_bytes(gzip.compress(data[:cut]))
    with pytest.raises(ValueError, match="cut.tfrecord.gz: record"):
        verify.count_records(str(packed), compressed=True)


def test_garbage_is_not_a_record(tmp_path):
    junk = tmp_path / "junk.tfrecord"
    junk.write_bytes(b"this is not a TFRecord file at all, just text" * 3)
    with pytest.raises(ValueError, match="damaged"):
        verify.count_records(str(junk))


def test_shard_problems(tmp_path):
    """Missing listed shards, record counts that disagree, clips with no shard, and unlisted shard files."""
    _write(tmp_path / "train-00000-of-00002.tfrecord", 3)
    _write(tmp_path / "train-00001-of-00002.tfrecord", 2)
    _write(tmp_path / "test-00000-of-00001.tfrecord", 1)
    train = ("train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord")
    good = {"train": dataset.SplitInfo(train, 5, 5, {"a": 5}),
            "test": dataset.SplitInfo(("test-00000-of-00001.tfrecord",), 1, 1, {"a": 1})}
    assert verify.shard_problems(str(tmp_path), good, False) == []
    wrong = {**good, "train": dataset.SplitInfo(good["train"].shards, 5, 6, {"a": 5})}
    assert verify.shard_problems(str(tmp_path), wrong, False) == [
        "train: shards hold 5 records, dataset.json counts 6 clips"]
    none_listed = {**good, "val": dataset.SplitInfo((), 2, 2, {"a": 2})}
    assert verify.shard_problems(str(tmp_path), none_listed, False) == ["val: 2 clips counted but no shard listed"]
    (tmp_path / "train-00001-of-00002.tfrecord").unlink()
    _write(tmp_path / "stray-00000-of-00001.tfrecord", 1)
    assert verify.shard_problems(str(tmp_path), good, False) == [
        "train: listed shard train-00001-of-00002.tfrecord is missing",
        "shard files not listed in dataset.json: stray-00000-of-00001.tfrecord"]


def test_conservation_problems():
    assert verify.conservation_problems(["a", "b", "c"], ["a", "c", "b"]) == []
    assert verify.conservation_problems(["a", "b", "c"], ["a", "a", "x"]) == [
        "1 videos have more than one row (e.g. a)", "2 videos have no row (e.g. b)",
        "1 rows name videos that were not inputs (e.g. x)"]


def test_parquet_shard_problems(tmp_path):
    for name in ("predictions-00000-of-00002.parquet", "predictions-00002-of-00003.parquet", "run.json"):
        (tmp_path / name).write_bytes(b"")
    assert verify.parquet_shard_problems(str(tmp_path), "predictions", 2) == [
        "predictions shard predictions-00001-of-00002.parquet is missing",
        "predictions file predictions-00002-of-00003.parquet was not written by this run"]
    assert verify.parquet_shard_problems(str(tmp_path), "segments", 0) == []
