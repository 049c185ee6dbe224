"""`vidclass inspect`: the counts table, which clips get sampled, and that each caption sits over its own frames."""
from __future__ import annotations

import argparse
import dataclasses
import io

import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf

from vidclass import contact_sheet, dataset, errors, schema
from vidclass.dataset import DatasetInfo, SplitInfo
from vidclass.labels import LabelMap
from vidclass.sampling import SamplingSpec

T, SIZE = 6, 16
COLOURS = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}
LABELS = LabelMap.from_names(COLOURS)  # blue=0, green=1, red=2
# Videos per split and class; each video yields CLIPS clips. green has no val video, red no test one.
VIDEOS = {"train": {"blue": 2, "green": 3, "red": 2}, "val": {"blue": 1, "green": 0, "red": 1},
          "test": {"blue": 1, "green": 1, "red": 0}}
CLIPS = 2


def record(label: str, video: int, clip: int) -> bytes:
    frames = np.broadcast_to(np.array(COLOURS[label], np.uint8), (T, SIZE, SIZE, 3)).copy()
    meta = schema.ClipMeta(video_id=f"videos/{label}/v_{label}_g{video:02d}_c01.avi", uri=f"/v/{label}{video}.avi",
                           label_index=LABELS.index(label), label=label, fps=25.0, frame_indices=range(T),
                           timestamps_us=[i * 40000 for i in range(T)], clip_index=clip, num_clips=CLIPS)
    return schema.encode_clip(frames, meta)


def make_dataset(root, compression: str | None = None, finished: bool = True, shards: int = 2) -> str:
    """Write shards of solid-colour clips, dataset.json, labels.txt and (optionally) _SUCCESS, by hand."""
    splits = {}
    for split, per_class in VIDEOS.items():
        records = [record(lab, v, c) for lab, n in per_class.items() for v in range(n) for c in range(CLIPS)]
        names = tuple(dataset.shard_name(split, i, shards, compression) for i in range(shards))
        options = tf.io.TFRecordOptions(compression_type="GZIP" if compression == "gzip" else "")
        for i, name in enumerate(names):  # class-sorted records cut into contiguous runs, as a writer might
            with tf.io.TFRecordWriter(str(root / name), options) as w:
                for r in np.array_split(np.array(records, dtype=object), shards)[i]:
                    w.write(r)
        splits[split] = SplitInfo(names, sum(per_class.values()), CLIPS * sum(per_class.values()), dict(per_class))
    info = DatasetInfo(spec=SamplingSpec(num_frames=T, clips_per_video=CLIPS, size=SIZE), labels=LABELS,
                       splits=splits, failures_by_code={"unreadable": 2, "no_frames": 1}, inputs=14,
                       compression=compression)
    (root / dataset.DATASET_JSON).write_text(info.to_json())
    (root / dataset.LABELS_TXT).write_text(LABELS.to_text())
    if finished:
        (root / dataset.SUCCESS).write_text("")
    return str(root)


@pytest.fixture
def ds_dir(tmp_path) -> str:
    return make_dataset(tmp_path)


def test_counts_table_numbers(ds_dir):
    """Every class row shows its videos per split and total; totals, clips, failures and the spec follow."""
    text = contact_sheet.counts_table(dataset.load(ds_dir))
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    assert rows["class"] == ["train", "val", "test", "total"]
    assert rows["blue"] == ["2", "1", "1", "4"]
    assert rows["green"] == ["3", "0", "1", "4"]
    assert rows["red"] == ["2", "1", "0", "3"]
    assert rows["videos"] == ["7", "2", "2", "11"]
    assert rows["clips"] == ["14", "4", "4", "22"]
    assert "failures: 3 (no_frames 1, unreadable 2)" in text
    assert "inputs: 14 = 11 videos + 3 failures" in text
    assert "num_frames=6" in text and "clips_per_video=2" in text and "size=16" in text


def test_sample_clips_per_class_from_distinct_videos(ds_dir):
    """Each class gets per_class clips of its own label, from different videos while there are enough."""
    info = dataset.load(ds_dir)
    samples = contact_sheet.sample_clips(ds_dir, info, "train", per_class=2)
    assert list(samples) == ["blue", "green", "red"]  # label-index order
    for label, clips in samples.items():
        assert len(clips) == 2
        assert len({meta.video_id for _, meta in clips}) == 2
        for frames, meta in clips:
            assert meta.label == label and frames.shape == (T, SIZE, SIZE, 3)
    # More than a class's distinct videos: the extra comes from another clip of a video already shown.
    val = contact_sheet.sample_clips(ds_dir, info, "val", per_class=3)
    assert sorted(val) == ["blue", "red"] and all(len(v) == CLIPS for v in val.values())


def test_sample_clips_stops_early(tmp_path):
    """Reading stops once every class is full, so a bad or huge tail of a split is never read."""
    root = make_dataset(tmp_path, shards=1)
    info = dataset.load(root)
    path = dataset.shard_paths(root, info, "test")[0]
    with tf.io.TFRecordWriter(path) as w:  # one clip a class first, then garbage that would fail to parse
        for label in ("blue", "green"):
            w.write(record(label, 0, 0))
        for _ in range(5):
            w.write(b"not a SequenceExample")
    one = one_clip_per_video(info)
    samples = contact_sheet.sample_clips(root, one, "test", per_class=1)
    assert {k: len(v) for k, v in samples.items()} == {"blue": 1, "green": 1}
    assert sum(len(v) for v in contact_sheet.sample_clips(root, info, "train", 5, max_records=3).values()) == 3


def one_clip_per_video(info: DatasetInfo) -> DatasetInfo:
    """The same info with one clip a video, so one clip a class is all there is to find."""
    return dataclasses.replace(info, spec=dataclasses.replace(info.spec, clips_per_video=1))


def test_sample_clips_reads_gzip_shards(tmp_path):
    """A dataset written with compression=gzip is read with the matching TFRecord compression."""
    root = make_dataset(tmp_path, compression="gzip")
    info = dataset.load(root)
    assert info.splits["train"].shards[0].endswith(".gz")
    samples = contact_sheet.sample_clips(root, info, "train", per_class=1)
    assert {k: len(v) for k, v in samples.items()} == {"blue": 1, "green": 1, "red": 1}


def dominant_colour(cell: np.ndarray) -> str:
    mean = cell[..., :3].reshape(-1, 3).mean(0)
    return min(COLOURS, key=lambda name: np.abs(mean - np.array(COLOURS[name]) / 255).sum())


def test_sheet_frames_sit_under_their_label(ds_dir):
    """The cells of the row captioned "red" are red (and so on): captions and frames are never mismatched."""
    info = dataset.load(ds_dir)
    samples = contact_sheet.sample_clips(ds_dir, info, "train", per_class=2)
    png, rows = contact_sheet.render_sheet(samples, info, frames_per_clip=4)
    image = matplotlib.image.imread(io.BytesIO(png))
    assert [r.label for r in rows] == ["blue", "blue", "green", "green", "red", "red"]
    tops = [row.cells[0][1] for row in rows]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)  # drawn top to bottom in label order
    for row in rows:
        caption_left, caption_top, caption_right, caption_bottom = row.caption_box
        assert caption_left >= 0 and caption_right < row.cells[0][0]  # whole, and left of its own frames
        assert row.cells[0][1] <= (caption_top + caption_bottom) / 2 <= row.cells[0][3]
        caption_label, caption_id = row.caption.splitlines()
        assert caption_label == row.label and row.video_id.startswith(f"videos/{row.label}/")
        assert caption_id.startswith("…") and row.video_id.endswith(caption_id[1:]) and len(caption_id) <= 26
        assert len(row.cells) == 4
        for left, top, right, bottom in row.cells:
            assert right - left > 20 and bottom - top > 20
            inner = image[top + 3:bottom - 3, left + 3:right - 3]
            assert dominant_colour(inner) == row.label
            assert np.abs(inner[..., :3].mean((0, 1)) - np.array(COLOURS[row.label]) / 255).max() < 0.1


def test_sheet_file_is_a_png_sized_by_rows(tmp_path, ds_dir):
    """draw_sheet writes a readable PNG whose height grows with the number of rows."""
    info = dataset.load(ds_dir)
    small = contact_sheet.draw_sheet(contact_sheet.sample_clips(ds_dir, info, "train", 1), info,
                                     str(tmp_path / "out" / "small.png"), frames_per_clip=8)
    big = contact_sheet.draw_sheet(contact_sheet.sample_clips(ds_dir, info, "train", 2), info,
                                   str(tmp_path / "big.png"), frames_per_clip=8)
    a, b = matplotlib.image.imread(small), matplotlib.image.imread(big)
    assert a.shape[1] == b.shape[1] >= 8 * 50 and b.shape[0] > a.shape[0] >= 3 * 50


def test_main_prints_table_and_writes_sheet(ds_dir, capsys):
    """The command prints counts to stdout, the sheet path to stderr, and leaves the dataset readable."""
    args = argparse.Namespace(dataset=ds_dir, out=None, split=None, per_class=1, frames=3)
    assert contact_sheet.main(args) == 0
    out, err = capsys.readouterr()
    assert "green" in out and "failures: 3" in out
    sheet = f"{ds_dir}/{contact_sheet.SHEET_NAME}"
    assert sheet in err and "train" in err
    assert matplotlib.image.imread(sheet).ndim == 3
    info = dataset.load(ds_dir)
    assert all(not p.endswith(".png") for s in info.splits for p in dataset.shard_paths(ds_dir, info, s))


def test_main_unfinished_dataset(tmp_path):
    """Without _SUCCESS the command refuses the dataset (a `DatasetError`: exit 2 from the CLI) and writes
    no sheet."""
    root = make_dataset(tmp_path, finished=False)
    with pytest.raises(errors.DatasetError, match="not a finished vidclass dataset.*_SUCCESS"):
        contact_sheet.main(argparse.Namespace(dataset=root, out=None, split=None, per_class=3, frames=8))
    assert not (tmp_path / contact_sheet.SHEET_NAME).exists()


def test_main_unknown_split(ds_dir):
    """Asking for a split the dataset lacks is refused, naming the splits it has."""
    with pytest.raises(errors.DatasetError, match="'dev'"):
        contact_sheet.main(argparse.Namespace(dataset=ds_dir, out=None, split="dev", per_class=3, frames=8))
