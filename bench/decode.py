"""Decode benchmark: vidclass's PyAV sampler against the previous release's OpenCV sampler, decode floors,
a hand-written PyAV seek loop and the original blog post's recipe, on short clips and on long videos.

    python bench/decode.py [--videos 6] [--seconds 10] [--repeats 3] [--long-minutes 30 10] [--long-gop 2 10]
                           [--long-scale 1] [--workdir DIR] [--out result.json]

Every video is made by bench/media.py with PyAV (lavfi sources encoded by libx264 veryfast, capped at
1 Mb/s like 360p web video) and kept in --workdir for the next run. Times are medians of --repeats; methods
are interleaved and their order rotated each repeat, so drift on a shared machine hits all alike. Sampling is
SamplingSpec(num_frames=16, size=112) with one decoder thread (DecodeLimits(threads=1)), as the pipelines run.

A. Short clips (--videos clips of --seconds, 640x360 30 fps, x264's default GOP), per clip:
  vidclass           sample_video in this process
  vidclass_isolated  the same through a warm DecodeWorker (child process + IPC)
  today_opencv       the previous release's OpenCV sampler, ported below: grab() every frame counting them,
                     retrieve() + resize the frames the header's count predicts, a second pass if it lied
  floor              OpenCV alone: grab() up to the last index vidclass sampled, retrieve() those, no resize
  original_post      read() every frame, resize to 224x224, imwrite a JPEG each, imread 16 evenly spaced back
                     (the folder is deleted after the clock stops)
  Every OpenCV method decodes on one FFmpeg thread (CAP_PROP_N_THREADS=1), like vidclass, original_post
  included: its ratio to vidclass compares the recipes, not thread counts.
B. Long videos (--long-minutes x --long-scale at 25 fps, a keyframe every --long-gop seconds), per video:
  full_decode        PyAV decodes every frame, no conversion, one slice thread: the floor of any full pass
  vidclass_exact     sample_video, seek="exact"      vidclass_keyframe  the same with seek="keyframe"
  today_opencv       as in A
  pyav_seek_loop     what torchcodec/decord users write: a demux pass for the timestamps, then per frame
                     vidclass_exact chose, seek(backward) + decode to its pts, convert to RGB (and resize)
  probe_cli          `python -m vidclass.cli probe PATH --json` as a subprocess, start-up included
C. Peak memory (VmHWM of a fresh process while it samples) of vidclass_exact on the first long video vs
   the first clip.

Results are checked, not only timed (`checks`; the exit status is 1 if one fails): frame counts against
the full decode, vidclass_exact's frames against the seek loop's, keyframe mode's frames being keyframes.
Goals on long videos are keyed by GOP and meant for --long-scale 1. One JSON document goes to stdout,
progress to stderr.
"""
from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import av
import cv2
import numpy as np

from vidclass.resize import resize_frame
from vidclass.sampling import SamplingSpec, sample_indices
from vidclass.video import Clips, DecodeLimits, sample_video
from vidclass.video.isolation import DecodeWorker

from media import (CLIP_FPS, LONG_FPS, LONG_SOURCE, SOURCES, emit, log, make_long,  # bench/media.py
                   make_videos, peak_rss_mib)

SPEC = SamplingSpec(num_frames=16, size=112)
KEYFRAME_SPEC = SamplingSpec(num_frames=16, size=112, seek="keyframe")
LIMITS = DecodeLimits(threads=1)
POST_SIZE = 224
GOALS = {"vidclass_vs_today_opencv_max": 1.1, "original_post_speedup_min": 2.2, "peak_rss_long_vs_clip_max": 1.2,
         "long": {"gop2s": {"exact_vs_full_decode_max": 0.05, "keyframe_vs_full_decode_max": 0.02,
                            "probe_cli_vs_full_decode_max": 0.2},
                  "gop10s": {"exact_vs_full_decode_max": 0.15}}}


# --- the methods ---------------------------------------------------------------------------------------------

def run_vidclass(path: str, spec: SamplingSpec = SPEC) -> Clips:
    """The library path, in-process."""
    return sample_video(path, spec, LIMITS)


def _cv_open(path: str, threads: int) -> cv2.VideoCapture:
    return cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads] if threads > 0 else [])


def run_floor(path: str, indices: list[int], threads: int = 0) -> list[np.ndarray]:
    """The least any sampler must do: grab() to the last wanted frame, retrieve() only the wanted ones."""
    wanted, last = set(indices), max(indices)
    cap = _cv_open(path, threads)
    frames = []
    try:
        for n in range(last + 1):
            if not cap.grab():
                raise RuntimeError(f"{path}: stream ended at frame {n}, before {last}")
            if n in wanted:
                ok, bgr = cap.retrieve()
                if not ok:
                    raise RuntimeError(f"{path}: frame {n} grabs but does not retrieve")
                frames.append(bgr)
    finally:
        cap.release()
    return frames


def _opencv_pass(cap: cv2.VideoCapture, wanted: set[int], stop_after: int | None
                 ) -> tuple[int, dict[int, np.ndarray], float]:
    """The old `_decode_pass`: grab() every frame (64 failures in a row end it), read its timestamp,
    retrieve() and resize the wanted ones. Returns frames seen, {index: rgb}, last timestamp."""
    kept: dict[int, np.ndarray] = {}
    n, last_ts, misses = 0, 0.0, 0
    try:
        while stop_after is None or n <= stop_after:
            if not cap.grab():
                misses += 1
                if misses >= 64:
                    break
                continue
            misses = 0
            ts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            last_ts = ts if math.isfinite(ts) else last_ts
            if n in wanted:
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    break
                # the old resize_frame: resize the BGR frame, then convert the small result to RGB
                kept[n] = cv2.cvtColor(resize_frame(bgr, SPEC.size, SPEC.resize), cv2.COLOR_BGR2RGB)
            n += 1
    finally:
        cap.release()
    return n, kept, last_ts


def run_today_opencv(path: str) -> tuple[int, np.ndarray, np.ndarray]:
    """The previous release's sample_video (OpenCV, one FFmpeg thread), less its error reporting:
    returns (frames counted, indices [clips, T], RGB frames [clips, T, size, size, 3])."""
    cap = _cv_open(path, 1)
    header, header_fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
    fps_ok = math.isfinite(header_fps) and 0 < header_fps <= 1000
    fps_hint = header_fps if fps_ok else 25.0
    guess = sample_indices(header, SPEC, fps_hint) if 0 < header < 10**8 else np.zeros((0, 0), np.int64)
    n, kept, last_ts = _opencv_pass(cap, set(guess.ravel().tolist()), None)
    fps = header_fps if fps_ok else (n - 1) / last_ts if last_ts > 0 else 25.0
    indices = sample_indices(n, SPEC, fps)
    missing = set(indices.ravel().tolist()) - kept.keys()
    if missing:
        kept.update(_opencv_pass(_cv_open(path, 1), missing, max(missing))[1])
    return n, indices, np.stack([np.stack([kept[int(i)] for i in row]) for row in indices])


def run_original_post(path: str, folder: str) -> np.ndarray:
    """The post's recipe: every frame read, resized to 224², saved as JPEG; then 16 evenly spaced loaded back.

    FFmpeg decodes on one thread, as vidclass does (DecodeLimits(threads=1)): the post itself left OpenCV's
    default (a thread per core), which would make original_post_vs_vidclass compare thread counts, not recipes.
    """
    os.makedirs(folder)
    cap = _cv_open(path, 1)
    n = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            cv2.imwrite(os.path.join(folder, f"frame_{n:06d}.jpg"), cv2.resize(bgr, (POST_SIZE, POST_SIZE)))
            n += 1
    finally:
        cap.release()
    picks = np.linspace(0, n - 1, SPEC.num_frames).round().astype(int)
    return np.stack([cv2.imread(os.path.join(folder, f"frame_{i:06d}.jpg")) for i in picks])


def _open_single_thread(path: str):
    container = av.open(path)
    stream = container.streams.video[0]
    stream.codec_context.thread_type, stream.codec_context.thread_count = "SLICE", 1
    return container, stream


def full_decode(path: str) -> int:
    """Every frame of the video stream decoded by PyAV, one slice thread, no conversion; the frame count."""
    container, stream = _open_single_thread(path)
    with container:
        return sum(1 for _ in container.decode(stream))


def pyav_seek_loop(path: str, positions: list[int]) -> tuple[list[int], np.ndarray]:
    """Frames at `positions` the usual hand-written way: a demux pass for the timestamps, then for each
    seek to it (backward: to the keyframe before) and decode until a frame's pts reaches it. Returns the
    positions really got (from their pts) and the frames, RGB and resized as vidclass does."""
    container, stream = _open_single_thread(path)
    with container:
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None and p.size)
        got, frames = [], []
        for pos in positions:
            container.seek(pts[pos], stream=stream, backward=True)
            frame = next(f for f in container.decode(stream) if f.pts >= pts[pos])
            got.append(bisect.bisect_left(pts, frame.pts))
            frames.append(resize_frame(frame.to_ndarray(format="rgb24"), SPEC.size, SPEC.resize))
    return got, np.stack(frames)


def probe_cli(path: str) -> dict:
    """`vidclass probe PATH --json` in a fresh interpreter (this one's), start-up included; its JSON row."""
    run = subprocess.run([sys.executable, "-m", "vidclass.cli", "probe", path, "--json"], capture_output=True,
                         text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def demux_index(path: str) -> tuple[int, set[int]]:
    """Frame count and keyframe positions from the packets (untimed, for the checks)."""
    with av.open(path) as container:
        packets = sorted((p.pts, p.is_keyframe) for p in container.demux(video=0) if p.pts is not None and p.size)
    return len(packets), {i for i, (_, key) in enumerate(packets) if key}


# --- timing --------------------------------------------------------------------------------------------------

def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Wall-clock seconds of one call, and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def interleaved(paths: list[str], methods: dict[str, Callable[[str], Any]], repeats: int,
                after: Callable[[str, str], None] = lambda p, m: None):
    """Seconds and results of every method on every path, each repeat in a rotated method order;
    `after(path, method)` runs after each call, off the clock."""
    names = list(methods)
    times = {p: {m: [] for m in names} for p in paths}
    results = {p: {m: [] for m in names} for p in paths}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        log(f"repeat {r + 1}/{repeats}: order {order}")
        for path in paths:
            for name in order:
                seconds, result = timed(lambda: methods[name](path))
                times[path][name].append(seconds)
                results[path][name].append(result)
                after(path, name)
    return times, results


def medians(times: dict[str, list[float]], of=statistics.median) -> dict[str, float]:
    return {m: round(of(t), 4) for m, t in times.items()}


class Checks(dict):
    """Named correctness checks; a name checked several times passes only if it passed every time."""

    def __call__(self, name: str, ok: bool) -> None:
        self[name] = self.get(name, True) and bool(ok)


def bench_short(paths: list[str], repeats: int, workdir: str, check: Checks) -> list[dict]:
    worker = DecodeWorker()
    indices: dict[str, list[int]] = {}
    ref: dict[str, Clips] = {}
    for path in paths:  # warm-up, untimed: imports, the worker's start, page cache; also the floor's indices
        ref[path] = clips = run_vidclass(path)
        indices[path] = sorted(set(clips.indices.ravel().tolist()))
        warm = worker.sample(path, SPEC, LIMITS)
        check(f"{os.path.basename(path)}: isolated frames equal in-process",
              isinstance(warm, Clips) and np.array_equal(warm.frames, clips.frames))
    post_dir = os.path.join(workdir, "post-frames")
    methods = {"vidclass": run_vidclass, "vidclass_isolated": lambda p: worker.sample(p, SPEC, LIMITS),
               "today_opencv": run_today_opencv, "floor": lambda p: run_floor(p, indices[p], threads=1),
               "original_post": lambda p: run_original_post(p, post_dir)}

    def after(path: str, method: str) -> None:  # the post keeps its files: delete them off the clock
        if method == "original_post":
            shutil.rmtree(post_dir)

    try:
        times, results = interleaved(paths, methods, repeats, after)
    finally:
        worker.close()
        shutil.rmtree(post_dir, ignore_errors=True)
    per_video = []
    for p in paths:
        name, info = os.path.basename(p), ref[p].info
        check(f"{name}: isolated always Clips", all(isinstance(c, Clips) for c in results[p]["vidclass_isolated"]))
        check(f"{name}: today_opencv counts and picks alike", all(n == info.frames_decoded and np.array_equal(
            idx, ref[p].indices) for n, idx, _ in results[p]["today_opencv"]))
        old_frames = results[p]["today_opencv"][-1][2]  # 0 where OpenCV's BGR and PyAV's RGB convert alike
        diff = float(np.abs(old_frames.astype(np.int16) - ref[p].frames).mean())
        per_video.append({"video": name, "frames": info.frames_decoded, "last_sampled_index": indices[p][-1],
                          "mean_abs_pixel_diff_vs_today_opencv": round(diff, 3),
                          **medians(times[p]), "min": medians(times[p], min)})
    return per_video


def bench_long(videos: dict[str, str], repeats: int, check: Checks) -> dict[str, dict]:
    paths = list(videos.values())
    truth = {p: demux_index(p) for p in paths}
    targets = {p: run_vidclass(p).indices.ravel().tolist() for p in paths}  # warm-up; the seek loop's frames
    methods = {"full_decode": full_decode, "vidclass_exact": run_vidclass,
               "vidclass_keyframe": lambda p: run_vidclass(p, KEYFRAME_SPEC), "today_opencv": run_today_opencv,
               "pyav_seek_loop": lambda p: pyav_seek_loop(p, targets[p]), "probe_cli": probe_cli}
    times, results = interleaved(paths, methods, repeats)
    out = {}
    for label, p in videos.items():
        res, (packets, keys) = results[p], truth[p]
        frames = res["full_decode"][0]
        check(f"{label}: full_decode gives every packet's frame, every time", set(res["full_decode"]) == {packets})
        for exact, (got, seek_frames) in zip(res["vidclass_exact"], res["pyav_seek_loop"]):
            check(f"{label}: vidclass_exact picks and decodes what the seek loop fetched",
                  exact.indices.ravel().tolist() == got and np.array_equal(exact.frames[0], seek_frames))
        for kind in ("vidclass_exact", "vidclass_keyframe"):
            check(f"{label}: {kind} frames_decoded equals full_decode",
                  all(c.info.frames_decoded == frames for c in res[kind]))
        check(f"{label}: vidclass_keyframe frames are keyframes",
              all(set(c.indices.ravel().tolist()) <= keys for c in res["vidclass_keyframe"]))
        check(f"{label}: today_opencv counts and picks as vidclass_exact",
              all(n == frames and idx.ravel().tolist() == targets[p] for n, idx, _ in res["today_opencv"]))
        check(f"{label}: probe_cli frames_decoded equals full_decode",
              all(row["frames_decoded"] == frames for row in res["probe_cli"]))
        t, t_min = medians(times[p]), medians(times[p], min)
        out[label] = {"video": os.path.basename(p), "frames": frames, "keyframes": len(keys),
                      "mbit_per_s": round(os.path.getsize(p) * 8 / 1e6 / (frames / LONG_FPS), 3),
                      "full_decode_fps": round(frames / t["full_decode"]), **t, "min": t_min,
                      "ratios": long_ratios(t), "ratios_min": long_ratios(t_min)}
    return out


def long_ratios(t: dict[str, float]) -> dict[str, float]:
    full = t["full_decode"]
    return {"exact_vs_full_decode": round(t["vidclass_exact"] / full, 4),
            "keyframe_vs_full_decode": round(t["vidclass_keyframe"] / full, 4),
            "today_opencv_vs_full_decode": round(t["today_opencv"] / full, 3),
            "exact_vs_pyav_seek_loop": round(t["vidclass_exact"] / t["pyav_seek_loop"], 3),
            "probe_cli_vs_full_decode": round(t["probe_cli"] / full, 4)}


def summarize(per_video: list[dict], long: dict[str, dict], memory: dict, check: Checks, config: dict) -> dict:
    """The JSON document: machine, config, per-video medians, totals, ratios, goals and checks.

    Goals are judged on medians; the same figures from minima ride along (`total_min`, `ratios_min`):
    noise only ever adds time, so on a busy machine they show the undisturbed cost.
    """
    names = ["vidclass", "vidclass_isolated", "today_opencv", "floor", "original_post"]

    def ratios_of(total: dict[str, float]) -> dict[str, float]:
        return {"vidclass_vs_today_opencv": round(total["vidclass"] / total["today_opencv"], 3),
                "isolated_vs_today_opencv": round(total["vidclass_isolated"] / total["today_opencv"], 3),
                "vidclass_vs_floor": round(total["vidclass"] / total["floor"], 3),
                "original_post_vs_vidclass": round(total["original_post"] / total["vidclass"], 3)}

    total = {m: round(sum(v[m] for v in per_video), 4) for m in names}
    total_min = {m: round(sum(v["min"][m] for v in per_video), 4) for m in names}
    ratios = ratios_of(total)
    met = {"vidclass_vs_today_opencv": ratios["vidclass_vs_today_opencv"] <= GOALS["vidclass_vs_today_opencv_max"],
           "original_post_speedup": ratios["original_post_vs_vidclass"] >= GOALS["original_post_speedup_min"],
           "peak_rss_long_vs_clip": memory["long_vs_clip"] <= GOALS["peak_rss_long_vs_clip_max"]}
    for label, v in long.items():
        for goal, limit in GOALS["long"].get(label.split("_")[-1], {}).items():
            met[f"{label}: {goal.removesuffix('_max')}"] = v["ratios"][goal.removesuffix("_max")] <= limit
    machine = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "pyav": av.__version__,
               "opencv": cv2.__version__, "platform": platform.platform(),
               "load_avg_1m_after": round(os.getloadavg()[0], 2)}  # others' work on a shared machine
    return {"machine": machine, "config": config, "short": {"per_video": per_video, "total": total,
            "ratios": ratios, "total_min": total_min, "ratios_min": ratios_of(total_min)},
            "long": long, "peak_memory": memory, "goals": {**GOALS, "met": met},
            "checks": dict(check), "checks_passed": all(check.values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--long-minutes", type=float, nargs="+", default=[30.0, 10.0], help="one per long video")
    ap.add_argument("--long-gop", type=float, nargs="+", default=[2.0, 10.0], help="keyframe spacing, seconds")
    ap.add_argument("--long-scale", type=float, default=1.0, help="shrink the long videos (0.05: a smoke run)")
    ap.add_argument("--workdir", help="keep (and reuse) the test videos here; default: a temp dir, removed after")
    ap.add_argument("--out", help="also write the JSON document to this file")
    args = ap.parse_args(argv)
    if len(args.long_minutes) != len(args.long_gop):
        ap.error("--long-minutes and --long-gop need as many values each")
    workdir = args.workdir or tempfile.mkdtemp(prefix="vidclass-bench-")
    os.makedirs(workdir, exist_ok=True)
    check = Checks()
    try:
        start = time.perf_counter()
        paths = make_videos(workdir, args.videos, args.seconds)
        long_videos = {f"{m * args.long_scale:g}min_gop{g:g}s": make_long(workdir, m * args.long_scale, g)
                       for m, g in zip(args.long_minutes, args.long_gop)}
        making_s = time.perf_counter() - start
        config = {"videos": args.videos, "seconds": args.seconds, "width": 640, "height": 360, "fps": CLIP_FPS,
                  "codec": "h264 yuv420p veryfast, maxrate 1M bufsize 2M", "repeats": args.repeats,
                  "statistic": "median", "spec": SPEC.to_dict(), "decoder_threads": LIMITS.threads,
                  "opencv_ffmpeg_threads": 1,
                  "original_post_size": POST_SIZE, "sources": SOURCES[:args.videos], "long_source": LONG_SOURCE,
                  "long_fps": LONG_FPS, "long_scale": args.long_scale, "video_making_s": round(making_s, 1)}
        log("short clips")
        per_video = bench_short(paths, args.repeats, workdir, check)
        log("long videos")
        long = bench_long(long_videos, args.repeats, check)
        log("peak memory")
        memory = {"long": peak_rss_mib(next(iter(long_videos.values()))), "clip": peak_rss_mib(paths[0])}
        memory["long_vs_clip"] = round(memory["long"]["peak_sampling_mib"] / memory["clip"]["peak_sampling_mib"], 3)
        config["timing_s"] = round(time.perf_counter() - start - making_s, 1)
        result = summarize(per_video, long, memory, check, config)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    emit(result, args.out)
    return 0 if result["checks_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
