"""`vidclass predict VIDEO... --model-dir M`: a handful of files scored without Beam, the way `infer` does.

Same decoding (in isolated child processes), same model path, same rows: with `--segment-seconds` each
video's timeline is printed (`--json`: its window rows, then its video row) and `--plot` draws it.
"""
from __future__ import annotations

import concurrent.futures
import json
import sys
from typing import Any

import numpy as np

from vidclass import errors, timeline
from vidclass.predict import Predictor
from vidclass.predictions import Scores, Stamp, VideoRef, error_row, ok_row, segment_row, to_json_row
from vidclass.probe import expand_inputs
from vidclass.video import DecodeLimits, WindowClips, cut_off_windows, decoder_threads
from vidclass.video.isolation import WorkerPool

WINDOWS_PER_CALL = 8  # windows scored together: bounded memory on long videos, batched model calls


def score_video(uri: str, predictor: Predictor, pool: WorkerPool, limits: DecodeLimits, stamp: Stamp) -> dict:
    """One video, whole: its row."""
    video = VideoRef(uri, uri)
    out = pool.worker().sample(uri, predictor.bundle.spec, limits)
    if isinstance(out, errors.Failure):
        return error_row(video, out, stamp)
    (scores,) = predictor.score([out.frames])
    return ok_row(video, scores, out.info, out.frames.shape[0], stamp)


def score_timeline(uri: str, predictor: Predictor, pool: WorkerPool, limits: DecodeLimits, stamp: Stamp,
                   seconds: float, stride: float | None) -> tuple[dict, list[dict], list[np.ndarray | None]]:
    """One video window by window: its row (the mean over windows), the window rows, a thumbnail each."""
    video = VideoRef(uri, uri)
    rows: list[dict] = []
    thumbs: list[np.ndarray | None] = []
    parts: list[Scores] = []
    clips_used = 0
    info = None
    pending: list[WindowClips] = []

    def flush() -> None:
        nonlocal clips_used
        good = [w for w in pending if w.clips is not None]
        scored = dict(zip((w.window.index for w in good), predictor.score([w.clips.frames for w in good])))
        for w in pending:
            if w.clips is None:
                rows.append(segment_row(video, w.window, stamp, failure=w.failure))
                thumbs.append(None)
                continue
            k = w.clips.frames.shape[0]
            rows.append(segment_row(video, w.window, stamp, scored[w.window.index], k))
            thumbs.append(w.clips.frames[0, w.clips.frames.shape[1] // 2])
            parts.append(scored[w.window.index])
            clips_used += k
        pending.clear()

    for item in pool.worker().sample_windows(uri, predictor.bundle.spec, seconds, stride, limits):
        if isinstance(item, errors.Failure):
            if info is None:  # the video's own failure: no timeline
                return error_row(video, item, stamp), [], []
            pending.extend(cut_off_windows(info, seconds, stride, len(rows) + len(pending), item))
            break
        pending.append(item)
        info = item.info
        if len(pending) >= WINDOWS_PER_CALL:
            flush()
    flush()
    if not parts:
        codes = {r["error_code"] for r in rows} or {errors.NO_FRAMES}
        failure = errors.Failure(uri, sorted(codes)[0], f"no window of the video could be scored ({len(rows)} windows)")
        return error_row(video, failure, stamp), rows, thumbs
    return ok_row(video, Scores.mean(parts), info, clips_used, stamp, num_segments=len(rows)), rows, thumbs


def _table(rows: list[dict]) -> str:
    lines = [f"{'status':6} {'label':20} {'score':>6}  {'top-k':40} video"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"{'ERROR':6} {r['error_code']:20} {'':>6}  {r['error_message'][:40]:40} {r['video_uri']}")
        else:
            topk = ", ".join(f"{n} {s:.2f}" for n, s in zip(r["top_k_labels"], r["top_k_scores"]))
            lines.append(f"{'ok':6} {r['label'][:20]:20} {r['score']:6.3f}  {topk[:40]:40} {r['video_uri']}")
    return "\n".join(lines)


def main(args: Any) -> int:
    """Score the videos; print a table (or JSON rows), draw the timelines when asked."""
    predictor = Predictor(args.model_dir, args.batch_size, embeddings=args.embeddings)
    b = predictor.bundle
    uris = expand_inputs(args.videos)
    stamp = Stamp(b.labels, b.model_version, "predict", args.top_k)
    limits = DecodeLimits(timeout_s=args.timeout, threads=decoder_threads(args.workers))
    pool = WorkerPool()
    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, args.workers)) as ex:
            if args.segment_seconds:
                results = list(ex.map(lambda u: score_timeline(u, predictor, pool, limits, stamp,
                                                               args.segment_seconds, args.segment_stride), uris))
            else:
                results = [(row, [], []) for row in ex.map(lambda u: score_video(u, predictor, pool, limits, stamp),
                                                           uris)]
    finally:
        pool.close()
    for video_row, seg_rows, _ in results:
        if args.json:
            for r in [*seg_rows, video_row]:
                print(json.dumps(to_json_row(r)))
        elif args.segment_seconds:
            print(timeline.table(video_row, seg_rows))
    if not args.json and not args.segment_seconds:
        print(_table([r for r, _, _ in results]))
    if args.plot:
        timeline.plot(results, b.labels.to_list(), args.plot)
        print(f"predict: timeline drawn in {args.plot}", file=sys.stderr)
    failed = sum(r["status"] != "ok" for r, _, _ in results)
    print(f"predict: {len(results)} videos, {len(results) - failed} scored, {failed} failed "
          f"(model {b.model_name} {b.model_version})", file=sys.stderr)
    return 0
