"""`vidclass probe`: dataset QA. What each video really holds, and exactly why the broken ones fail.

Runs the production sampler (same child-process isolation, same limits) so what probe reports is what
preprocessing and inference will do with the file.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import sys
from typing import Any, Iterable, Iterator, TextIO

from vidclass import errors
from vidclass.sampling import SamplingSpec
from vidclass.video import Clips, DecodeLimits, decoder_threads, is_local
from vidclass.video.isolation import WorkerPool

FIELDS = ("uri", "status", "error_code", "error_message", "frames_decoded", "header_frame_count",
          "decode_errors", "fps", "duration_s", "width", "height", "codec", "sampled_indices", "padded_frames",
          "substituted_frames")


def expand_inputs(args: Iterable[str]) -> list[str]:
    """Files as given (even odd ones: a FIFO named x.mp4 must be reported, not skipped); folders and
    globs searched recursively for videos."""
    uris: list[str] = []
    for arg in args:
        is_dir = os.path.isdir(arg) if is_local(arg) else False
        if is_dir or any(c in arg for c in "*?["):
            from vidclass import discovery
            uris.extend(v.uri for v in discovery.discover(arg, labelled=False).inputs)
        else:
            uris.append(arg)
    return uris


def record(uri: str, outcome: Clips | errors.Failure) -> dict[str, Any]:
    """One probe row: the fields of FIELDS, None where an error left them unknown."""
    row: dict[str, Any] = dict.fromkeys(FIELDS)
    row["uri"] = uri
    if isinstance(outcome, errors.Failure):
        row.update(status="error", error_code=outcome.code, error_message=outcome.message)
        return row
    info = outcome.info
    row.update(status="ok", frames_decoded=info.frames_decoded, header_frame_count=info.header_frame_count,
               decode_errors=info.decode_errors, fps=round(info.fps, 3), duration_s=round(info.duration_s, 3),
               width=info.width, height=info.height, codec=info.codec, sampled_indices=outcome.indices.tolist(),
               padded_frames=outcome.padded_frames, substituted_frames=outcome.substituted_frames)
    return row


def probe(uris: list[str], spec: SamplingSpec, limits: DecodeLimits, workers: int) -> Iterator[dict[str, Any]]:
    """Rows in input order, computed `workers` at a time (each in its own decoder process)."""
    pool = WorkerPool()
    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as ex:
            yield from ex.map(lambda u: record(u, pool.worker().sample(u, spec, limits)), uris)
    finally:
        pool.close()


def _table_line(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return f"{'ERROR':6} {row['error_code']:16} {row['uri']}: {row['error_message']}"
    frames = f"{row['frames_decoded']}/{row['header_frame_count'] if row['header_frame_count'] is not None else '?'}"
    return (f"{'ok':6} {frames:>11} {row['decode_errors']:>4} {row['fps']:>7.2f} {row['duration_s']:>8.2f}s "
            f"{str(row['width']) + 'x' + str(row['height']):>10} {row['codec']:>6} "
            f"{row['padded_frames']:>4}  {row['uri']}")


def write(rows: Iterable[dict[str, Any]], as_json: bool, out: TextIO = sys.stdout) -> dict[str, int]:
    """Stream rows to `out` (JSON lines or a table); returns counts by status/error code."""
    counts: dict[str, int] = {}
    if not as_json:
        print(f"{'status':6} {'frames/hdr':>11} {'errs':>4} {'fps':>7} {'duration':>9} {'size':>10} {'codec':>6} "
              f"{'pad':>4}  uri", file=out)
    for row in rows:
        key = row["status"] if row["status"] == "ok" else row["error_code"]
        counts[key] = counts.get(key, 0) + 1
        print(json.dumps(row) if as_json else _table_line(row), file=out, flush=True)
    return counts


def main(args) -> int:
    spec = SamplingSpec(num_frames=args.num_frames, size=args.size, clips_per_video=args.clips_per_video,
                        stride=args.stride, seek=args.seek)
    limits = DecodeLimits(timeout_s=args.timeout, threads=decoder_threads(args.workers))
    uris = expand_inputs(args.videos)
    if not uris:
        raise errors.RunFailed(f"no videos found in {' '.join(args.videos)}")
    counts = write(probe(uris, spec, limits, args.workers), args.json)
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    print(f"probe: {len(uris)} videos ({summary})", file=sys.stderr)
    return 0
