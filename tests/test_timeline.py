"""Timelines and embeddings: `infer --segment-seconds`, `--embeddings` and `predict` on videos the tests make.

The model is trained on red and blue noise (two classes any model learns in a few epochs), so a video that
turns from red to blue halfway has a known timeline.
"""
import fractions
import json
import subprocess
import sys

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

import datasets
from videos import text_file
from pipelines import infer
from vidclass import bundle
from vidclass.data import Augment
from vidclass.sampling import SamplingSpec
from vidclass.train import TrainConfig, train
from vidclass.video import windows
from vidclass.video.writer import write_video

COLOURS = {"red": (200, 30, 30), "blue": (30, 40, 200)}
FPS = 10


def _noise(colour: str, n: int, rng, h: int = 48, w: int = 64) -> np.ndarray:
    base = np.array(COLOURS[colour], np.float32)
    return np.clip(base + rng.normal(0, 25, (n, h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A bundle trained on 8-frame 32x32 clips of red or blue noise."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    clips = {split: [(_noise(c, 8, rng, 32, 32), c, f"{split}/{c}_{i}") for i in range(n) for c in COLOURS]
             for split, n in (("train", 32), ("val", 4))}
    datasets.write(root / "ds", clips, sorted(COLOURS), SamplingSpec(num_frames=8, size=32))
    train(str(root / "ds"), str(root / "model"), TrainConfig(epochs=6, augment=Augment.none(), patience=6))
    return root / "model"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """red_then_blue.mp4 (10 s each), blue.mp4 and red.mp4 (8 s), a video with a 5-s hole in its
    timestamps, and a text file posing as a video."""
    root = tmp_path_factory.mktemp("archive")
    rng = np.random.default_rng(1)
    write_video(root / "red_then_blue.mp4", np.concatenate([_noise("red", 100, rng), _noise("blue", 100, rng)]),
                FPS, gop=20)
    write_video(root / "blue.mp4", _noise("blue", 80, rng), FPS, gop=20)
    write_video(root / "red.mp4", _noise("red", 80, rng), FPS, gop=20)
    pts = [100 * i for i in range(40)] + [9000 + 100 * i for i in range(10)]  # ms: frames at 0-3.9 s, 9-9.9 s
    write_video(root / "gap.mp4", _noise("red", 50, rng), FPS, pts=pts, time_base=fractions.Fraction(1, 1000))
    text_file(root / "notes.mp4")
    return root


def _infer(*flags):
    return infer.run([*map(str, flags), "--direct_num_workers", "2"])


def _table(out, kind):
    files = sorted(str(p) for p in out.glob(f"{kind}-*.parquet"))
    return pq.read_table(files).to_pylist() if files else []


def test_windows_tile_the_timeline():
    """Back-to-back windows cover [0, duration) without gaps or overlaps; the last one is shorter; a
    stride below the length overlaps them, and the last still ends at the end."""
    w = windows(25.0, 10.0)
    assert [(x.start_s, x.end_s) for x in w] == [(0, 10), (10, 20), (20, 25)]
    o = windows(25.0, 10.0, 5.0)
    assert [(x.start_s, x.end_s) for x in o] == [(0, 10), (5, 15), (10, 20), (15, 25)]
    assert [(x.start_s, x.end_s) for x in windows(3.0, 10.0)] == [(0, 3)]
    with pytest.raises(ValueError):
        windows(10.0, 0)


@pytest.fixture(scope="module")
def timeline_out(model, archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "scores"
    assert _infer("--input", archive, "--model-dir", model, "--output", out, "--run-id", "t1",
                  "--segment-seconds", 2, "--embeddings", "--timeout", 20) == 0
    return out


def test_timeline_changes_label_at_the_right_window(timeline_out):
    """The red-then-blue video's windows say red for 0-10 s and blue for 10-20 s; the windows tile its
    timeline; its video row is the mean over its 10 windows."""
    segs = sorted((r for r in _table(timeline_out, "segments") if r["video_id"] == "red_then_blue.mp4"),
                  key=lambda r: r["segment_index"])
    assert [r["label"] for r in segs] == ["red"] * 5 + ["blue"] * 5
    assert [r["segment_index"] for r in segs] == list(range(10))
    assert segs[0]["start_s"] == 0 and segs[-1]["end_s"] == pytest.approx(20.0)
    assert all(a["end_s"] == b["start_s"] for a, b in zip(segs, segs[1:]))
    rows = {r["video_id"]: r for r in _table(timeline_out, "predictions")}
    row = rows["red_then_blue.mp4"]
    assert row["num_segments"] == 10 and row["status"] == "ok"
    probs = dict(zip(row["top_k_labels"], row["top_k_scores"]))
    assert abs(probs["red"] - np.mean([dict(zip(s["top_k_labels"], s["top_k_scores"]))["red"] for s in segs])) < 1e-3
    assert rows["blue.mp4"]["label"] == "blue" and rows["red.mp4"]["label"] == "red"


def test_broken_video_and_empty_windows(timeline_out):
    """A file that is no video has its error row and no segment rows; windows with no frame (a hole in the
    timestamps) are error segment rows, and the video is still labelled from the others."""
    rows = {r["video_id"]: r for r in _table(timeline_out, "predictions")}
    segs = _table(timeline_out, "segments")
    assert rows["notes.mp4"]["status"] == "error" and not [s for s in segs if s["video_id"] == "notes.mp4"]
    gap = sorted((s for s in segs if s["video_id"] == "gap.mp4"), key=lambda s: s["segment_index"])
    assert [s["status"] for s in gap] == ["ok", "ok", "error", "error", "ok"]
    assert {s["error_code"] for s in gap if s["status"] == "error"} == {"no_frames"}
    assert rows["gap.mp4"]["status"] == "ok" and rows["gap.mp4"]["num_segments"] == 5
    run = json.loads((timeline_out / "run.json").read_text())
    assert run["counts"]["segments"] == len(segs) and run["scoring"]["segment_seconds"] == 2


def test_embeddings_width_and_class_structure(model, timeline_out):
    """Every ok row carries an embedding of the model's feature width; same-colour videos are closer than
    different-colour ones (cosine, in DuckDB as the README shows)."""
    width = bundle.load(str(model)).embedding_width
    assert width == 128
    rows = _table(timeline_out, "predictions") + _table(timeline_out, "segments")
    assert all(len(r["embedding"]) == width for r in rows if r["status"] == "ok")
    assert all(r["embedding"] is None for r in rows if r["status"] != "ok")
    sims = duckdb.sql(f"""
        select a.label = b.label as same, avg(array_cosine_similarity(a.embedding::FLOAT[{width}],
               b.embedding::FLOAT[{width}])) as sim
        from '{timeline_out}/segments-*.parquet' a, '{timeline_out}/segments-*.parquet' b
        where a.status = 'ok' and b.status = 'ok' and a.video_id || a.segment_index < b.video_id || b.segment_index
        group by 1""").fetchall()
    sim = dict(sims)
    assert sim[True] > sim[False], sim


def test_predict_gives_the_same_timeline_and_embeddings(model, archive, timeline_out, tmp_path):
    """`predict --segment-seconds --json` prints the same window rows as `infer` wrote (labels, scores,
    embeddings), then the video's row; `--plot` draws the timeline."""
    png = tmp_path / "timeline.png"
    proc = subprocess.run([sys.executable, "-m", "vidclass.cli", "predict", str(archive / "red_then_blue.mp4"),
                           "--model-dir", str(model), "--segment-seconds", "2", "--embeddings", "--json",
                           "--plot", str(png)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r.get("segment_index") for r in printed] == [*range(10), None]
    written = {r["segment_index"]: r for r in _table(timeline_out, "segments") if r["video_id"] == "red_then_blue.mp4"}
    for r in printed[:-1]:
        w = written[r["segment_index"]]
        assert (r["label"], r["start_s"], r["end_s"]) == (w["label"], w["start_s"], w["end_s"])
        assert np.allclose(r["embedding"], w["embedding"], atol=1e-5)
        assert np.allclose(r["top_k_scores"], w["top_k_scores"], atol=1e-5)
    assert printed[-1]["num_segments"] == 10
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    table = subprocess.run([sys.executable, "-m", "vidclass.cli", "predict", str(archive / "red_then_blue.mp4"),
                            "--model-dir", str(model), "--segment-seconds", "5"], capture_output=True, text=True,
                           timeout=300)
    assert table.returncode == 0 and "0:00-0:05" in table.stdout and "0:15-0:20" in table.stdout


def test_skip_scored_carries_timelines_over(model, archive, timeline_out, tmp_path):
    """A nightly rerun with --skip-scored keeps the earlier rows and their windows (nothing duplicated); a
    run with other segment settings scores everything again."""
    out = tmp_path / "night2"
    assert _infer("--input", archive, "--model-dir", model, "--output", out, "--run-id", "t2",
                  "--segment-seconds", 2, "--embeddings", "--skip-scored", timeline_out, "--timeout", 20) == 0
    before = sorted((r["video_id"], r["segment_index"], r["label"]) for r in _table(timeline_out, "segments"))
    segs = _table(out, "segments")
    assert sorted((r["video_id"], r["segment_index"], r["label"]) for r in segs) == before
    assert {r["run_id"] for r in segs} == {"t1"}
    rows = {r["video_id"]: r["run_id"] for r in _table(out, "predictions")}
    assert rows["red.mp4"] == "t1" and rows["notes.mp4"] == "t2"  # errors are scored again
    other = tmp_path / "other"
    assert _infer("--input", archive, "--model-dir", model, "--output", other, "--run-id", "t3",
                  "--segment-seconds", 4, "--skip-scored", timeline_out, "--timeout", 20) == 0
    assert {r["run_id"] for r in _table(other, "segments")} == {"t3"}
    assert len([r for r in _table(other, "segments") if r["video_id"] == "red_then_blue.mp4"]) == 5


def test_decoder_crash_mid_video_keeps_the_timeline_whole(archive, monkeypatch):
    """A decoder that dies after two windows of a 20-s video: those two windows keep their frames, the eight
    it cut off become failed windows (`decoder_crash`), and the video is reported with all ten, so its row
    is labelled from what was scored and its timeline stays whole."""
    import os

    import apache_beam as beam

    from pipelines.decode import FAILED, VIDEO_INFO, WINDOW_FAILED, DecodeWindows
    from vidclass.predictions import VideoRef
    from vidclass.video import DecodeLimits
    tests = os.path.dirname(__file__)
    monkeypatch.setenv("PYTHONPATH", tests + os.pathsep + os.environ.get("PYTHONPATH", ""))
    dofn = DecodeWindows(SamplingSpec(num_frames=8, size=32), DecodeLimits(timeout_s=60), 2.0, None)
    dofn.target = "crashers:windows_then_segfault"
    dofn.setup()
    try:
        task = VideoRef("red_then_blue.mp4", str(archive / "red_then_blue.mp4"))
        out = list(dofn.process(task))
    finally:
        dofn.teardown()
    tagged = [(o.tag, o.value) if isinstance(o, beam.pvalue.TaggedOutput) else ("ok", o) for o in out]
    ok = [v for tag, v in tagged if tag == "ok"]
    lost = [v for tag, v in tagged if tag == WINDOW_FAILED]
    assert [w.window.index for _, w in ok] == [0, 1] and all(w.clips is not None for _, w in ok)
    assert [w.window.index for _, w in lost] == list(range(2, 10))
    assert {w.failure.code for _, w in lost} == {"decoder_crash"}
    assert not [v for tag, v in tagged if tag == FAILED]
    (info,) = [v for tag, v in tagged if tag == VIDEO_INFO]
    assert info[2] == 10 and lost[-1][1].window.end_s == pytest.approx(20.0)
