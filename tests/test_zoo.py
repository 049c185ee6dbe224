"""The codec zoo through the real sampler and the real `vidclass probe` command (see `zoo.py`).

Every file is made by the tests with PyAV's encoders, so this runs on a machine without a system ffmpeg.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zoo as zoo_mod
from videos import decodable_positions, read_index
from vidclass.sampling import SamplingSpec
from vidclass.video import sample_video

PROBE_TIMEOUT_S = 5  # per video; the FIFO entry must hit it
RUN_TIMEOUT_S = 180  # the whole probe run: a hang fails the test instead of stalling the suite


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, zoo_mod.ZooEntry]:
    return zoo_mod.build_zoo(tmp_path_factory.mktemp("zoo"), slow=True)


def _problems_in_row(name: str, e: zoo_mod.ZooEntry, row: dict) -> list[str]:
    got = {k: row[k] for k in ("status", "error_code", "frames_decoded", "header_frame_count", "decode_errors",
                               "padded_frames")}
    bad = []
    if row["status"] != e.status or row["error_code"] != e.error_code:
        bad.append(f"status/code {row['status']}/{row['error_code']} != {e.status}/{e.error_code}")
    if e.status == "error":
        msg = row["error_message"] or ""
        if not msg.strip() or (e.message and e.message not in msg.lower()):
            bad.append(f"message {msg!r} lacks {e.message!r}")
        if row["frames_decoded"] is not None or row["sampled_indices"] is not None:
            bad.append("an error row carries frame fields")
    elif row["status"] == "ok":
        n = row["frames_decoded"]
        if not e.frames_ok(n):
            bad.append(f"frames_decoded {n} not {e.frames}")
        if row["error_message"] is not None:
            bad.append(f"ok row with message {row['error_message']!r}")
        if e.padded_frames is not None and row["padded_frames"] != e.padded_frames:
            bad.append(f"padded_frames {row['padded_frames']} != {e.padded_frames}")
        if e.size is not None and (row["width"], row["height"]) != e.size:
            bad.append(f"size {row['width']}x{row['height']} != {e.size}")
        if e.codec is not None and row["codec"] != e.codec:
            bad.append(f"codec {row['codec']!r} != {e.codec!r}")
        if not e.damaged and (row["decode_errors"] or row["substituted_frames"]):
            bad.append(f"an intact file with {row['decode_errors']} decode errors, "
                       f"{row['substituted_frames']} substituted frames")
        if e.header_lies is not None and (row["header_frame_count"] != n) != e.header_lies:
            bad.append(f"header {row['header_frame_count']} vs decoded {n}: expected lies={e.header_lies}")
        # indices are positions in the stream's frame index: below its length, which damage may put above n
        top = max(e.frames) if isinstance(e.frames, tuple) else (e.frames or n)
        idx = np.array(row["sampled_indices"])
        if idx.shape != (1, 16) or idx.min() < 0 or idx.max() >= top or (np.diff(idx) < 0).any():
            bad.append(f"sampled_indices {row['sampled_indices']} not 16 ordered indices below {top}")
    return [f"{name}: {b} (got {got})" for b in bad]


def test_probe_cli_reports_every_zoo_video(zoo):
    """One `vidclass probe --json` run over the zoo completes and gives each video its true row, in order."""
    names = list(zoo)
    paths = [str(zoo[n].path) for n in names]
    proc = subprocess.run([sys.executable, "-m", "vidclass.cli", "probe", *paths, "--json",
                           "--timeout", str(PROBE_TIMEOUT_S)],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["uri"] for r in rows] == paths, "not one row per input in input order"
    problems = [p for name, row in zip(names, rows) for p in _problems_in_row(name, zoo[name], row)]
    assert not problems, "\n".join(problems)


def _read_back(frames: np.ndarray, turns: int) -> np.ndarray:
    return np.array([[read_index(np.rot90(f, turns)) for f in clip] for clip in frames])


@pytest.mark.parametrize("spec", [SamplingSpec(), SamplingSpec(num_frames=8, clips_per_video=3, stride=3,
                                                                resize="stretch")], ids=["segments", "strided"])
def test_sampled_frames_are_the_reported_frames(zoo, spec):
    """For every codec and container, the frames `sample_video` returns are the frames its indices name."""
    checked, problems = [], []
    for name, e in zoo.items():
        if e.readback is None:
            continue
        clips = sample_video(str(e.path), spec)
        checked.append(name)
        shape = (spec.clips_per_video, spec.num_frames, spec.size, spec.size, 3)
        if clips.frames.shape != shape or clips.frames.dtype != np.uint8:
            problems.append(f"{name}: frames {clips.frames.shape} {clips.frames.dtype}, not {shape} uint8")
            continue
        want = clips.indices % e.index_period if e.index_period else clips.indices
        got = _read_back(clips.frames, e.turns)
        shift = got - want
        if not ((shift == 0).all() if e.readback == "exact" else (shift == shift.flat[0]).all()):
            problems.append(f"{name}: read back {got.tolist()} for indices {clips.indices.tolist()}")
        if e.gray and np.abs(np.diff(clips.frames.astype(np.int16), axis=-1)).max() > 2:
            problems.append(f"{name}: a gray video gave colour frames")
    assert not problems, "\n".join(problems)
    assert checked, "no barcode video in the zoo"


def test_damaged_files_claim_only_frames_that_decode(zoo):
    """On truncated and corrupted files, every sampled frame is one a plain decode of every packet gives;
    where the sampler decodes the whole stream (its default on short videos), the frame count and the
    rejected packets agree with that decode exactly, and where it seeks they are bounded by it."""
    problems = []
    for name, e in zoo.items():
        if not e.damaged:
            continue
        packets, decodable = decodable_positions(e.path)
        for spec in (SamplingSpec(), SamplingSpec(num_frames=8, clips_per_video=4, stride=2)):
            clips = sample_video(str(e.path), spec)
            used = set(clips.indices.ravel().tolist())
            if not used <= set(decodable):
                problems.append(f"{name}: sampled {sorted(used - set(decodable))}, which do not decode")
            n, errs = clips.info.frames_decoded, clips.info.decode_errors
            if spec.stride is None and (n != len(decodable) or not 1 <= errs <= packets - len(decodable)):
                problems.append(f"{name}: frames_decoded {n}, decode_errors {errs}; a full decode gives "
                                f"{len(decodable)} of {packets} packets")
            if not len(decodable) <= n <= packets:
                problems.append(f"{name}: frames_decoded {n} outside {len(decodable)}..{packets}")
    assert not problems, "\n".join(problems)


def test_keyframe_mode_returns_keyframes_near_the_planned_frames(zoo):
    """`seek=keyframe` gives, for each planned frame, the nearest keyframe (every 100th frame here), decoded
    for real: its barcode reads back as that keyframe's index."""
    spec = SamplingSpec(seek="keyframe")
    for name in ("long_gop_h264.mp4", "long_gop_hevc.mkv", "long_gop_vp9.webm"):
        e = zoo[name]
        exact = sample_video(str(e.path), SamplingSpec())
        keyed = sample_video(str(e.path), spec)
        keys = np.arange(0, 1500, 100)
        nearest = keys[np.abs(exact.indices[..., None] - keys).argmin(axis=-1)]
        assert keyed.indices.tolist() == nearest.tolist(), name
        assert (_read_back(keyed.frames, 0) == keyed.indices % e.index_period).all(), name


_PEAK_RSS = ("import resource, sys\n"
             "from vidclass.sampling import SamplingSpec\n"
             "from vidclass.video import sample_video\n"
             "c = sample_video(sys.argv[1], SamplingSpec(clips_per_video=4))\n"
             "print(c.info.frames_decoded, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")


def _peak_rss_kb(path: Path) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(path)], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    return int(out[0]), int(out[1])


def test_memory_is_flat_in_video_length(zoo, tmp_path):
    """Sampling a 10-minute video peaks within 1.2x the memory of a 10-second one: the index is a few
    arrays, and only the sampled frames are kept (every 64x48 frame of the long one would be 166 MB)."""
    short_n, short_kb = _peak_rss_kb(zoo_mod.ten_seconds(tmp_path))
    long_n, long_kb = _peak_rss_kb(zoo["ten_minutes.mp4"].path)
    assert (short_n, long_n) == (300, 18000)
    assert long_kb < 1.2 * short_kb, f"peak RSS {long_kb} kB for 10 min vs {short_kb} kB for 10 s"
