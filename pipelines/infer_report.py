"""After the infer pipeline: check one row per input video (and a whole timeline per segmented video),
write `run.json`, swap the output in, summarise the run.

A failed check is `RunFailed` (exit 1): nothing is committed, no `_SUCCESS`, the staging folder is kept."""
from __future__ import annotations

import collections
import sys

import fsspec
import pyarrow.parquet as pq

from pipelines.common import TASKS_FILE
from vidclass import errors, outdir, predictions, verify
from vidclass.lease import Lease


def read_rows(directory: str, columns: list[str] | None = None, kind: str = predictions.PREDICTIONS) -> list[dict]:
    """All prediction (or segment) rows of an output or staging folder."""
    fs, root = fsspec.core.url_to_fs(directory)
    rows: list[dict] = []
    for path in sorted(fs.glob(f"{root.rstrip('/')}/{kind}-*.parquet")):
        with fs.open(path, "rb") as f:
            rows.extend(pq.read_table(f, columns=columns).to_pylist())
    return rows


def _timeline_problems(rows: list[dict], segments: list[dict]) -> list[str]:
    """Each segmented video has exactly windows 0..num_segments-1; videos without a timeline have none."""
    windows: dict[str, list[int]] = collections.defaultdict(list)
    for s in segments:
        windows[s["video_id"]].append(s["segment_index"])
    problems = []
    for r in rows:
        want = list(range(r["num_segments"] or 0))
        if sorted(windows.pop(r["video_id"], [])) != want:
            problems.append(r["video_id"])
    return problems + sorted(windows)


def _check(problems: list[str], staging: str) -> None:
    if problems:
        raise errors.RunFailed(f"{'; '.join(problems[:3])}{'; ...' if len(problems) > 3 else ''}; nothing "
                               f"committed, staging kept in {staging}")


def finalize(opts, plan, inputs: int, elapsed: float, lease: Lease) -> int:
    """Commit the rows when every input has exactly one (and its timeline is whole) in exactly the shard
    files the run wrote; exit status per the error share."""
    segmented = plan.config.segment_seconds is not None
    _check(verify.parquet_shard_problems(plan.staging, predictions.PREDICTIONS, plan.shards)
           + (verify.parquet_shard_problems(plan.staging, predictions.SEGMENTS, plan.segment_shards)
              if segmented else []), plan.staging)
    rows = read_rows(plan.staging, ["video_id", "status", "error_code", "run_id", "num_segments"])
    ids = collections.Counter(r["video_id"] for r in rows)
    duplicated = [v for v, n in ids.items() if n > 1]
    if len(rows) != inputs or duplicated:
        _check([f"conservation broken: {inputs} videos in, {len(rows)} rows out (duplicated ids: "
                f"{duplicated[:5]})"], plan.staging)
    segments = []
    if segmented:
        segments = read_rows(plan.staging, ["video_id", "segment_index", "status"], predictions.SEGMENTS)
        broken = _timeline_problems(rows, segments)
        if broken:
            _check([f"timelines broken for {len(broken)} videos ({broken[:5]}): segment rows do not match "
                    "num_segments"], plan.staging)
    run_id = plan.scoring.stamp.run_id
    failed = collections.Counter(r["error_code"] for r in rows if r["status"] != "ok")
    carried = sum(r["run_id"] != run_id for r in rows)
    scored = len(rows) - sum(failed.values()) - carried
    error_rate = sum(failed.values()) / max(1, len(rows))
    ok = scored + carried > 0 and error_rate <= opts.max_error_rate
    counts = {"videos": len(rows), "scored": scored, "failed": sum(failed.values()), "carried": carried,
              "segments": len(segments), "failed_segments": sum(s["status"] != "ok" for s in segments)}
    predictions.write_run_json(plan.staging, plan.scoring.stamp, plan.config, counts)
    outdir.commit(opts.output, plan.staging, predictions.OWNED, lease, keep_out=(TASKS_FILE,), success=ok)
    lines = [f"infer: done in {elapsed:.1f} s: {len(rows)} videos -> {scored} scored, {sum(failed.values())} "
             f"failed, {carried} carried over from {plan.prior or '-'} "
             f"({(scored + sum(failed.values())) / max(elapsed, 1e-9):.1f} videos/s)"]
    lines += [f"  failed {code}: {n}" for code, n in sorted(failed.items())]
    if segments:
        lines.append(f"  timeline: {len(segments)} windows of {plan.config.segment_seconds:g} s "
                     f"({counts['failed_segments']} could not be decoded) in segments-*.parquet")
    lines.append(f"  output: {opts.output}/predictions-*.parquet (run {run_id}, model "
                 f"{plan.scoring.stamp.model_version})")
    print("\n".join(lines), file=sys.stderr)
    if not ok:
        print(f"infer: FAILED: {error_rate:.1%} of videos could not be scored (limit --max-error-rate "
              f"{opts.max_error_rate:.1%}); rows are written without _SUCCESS", file=sys.stderr)
    return 0 if ok else 1
