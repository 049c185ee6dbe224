"""After the infer pipeline: check one row per input video (and a whole timeline per segmented video),
write `run.json`, swap the output in, summarise the run."""
from __future__ import annotations

import collections
import sys

import fsspec
import pyarrow.parquet as pq

from pipelines.common import TASKS_FILE
from vidclass import outdir, predictions


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


def finalize(opts, plan, inputs: int, elapsed: float) -> int:
    """Commit the rows when every input has exactly one (and its timeline is whole); exit status per the
    error share."""
    rows = read_rows(plan.staging, ["video_id", "status", "error_code", "run_id", "num_segments"])
    ids = collections.Counter(r["video_id"] for r in rows)
    duplicated = [v for v, n in ids.items() if n > 1]
    if len(rows) != inputs or duplicated:
        raise RuntimeError(f"conservation broken: {inputs} videos in, {len(rows)} rows out "
                           f"(duplicated ids: {duplicated[:5]}); staging left in {plan.staging}")
    segments = []
    if plan.config.segment_seconds is not None:
        segments = read_rows(plan.staging, ["video_id", "segment_index", "status"], predictions.SEGMENTS)
        broken = _timeline_problems(rows, segments)
        if broken:
            raise RuntimeError(f"timelines broken for {len(broken)} videos ({broken[:5]}): segment rows do not "
                               f"match num_segments; staging left in {plan.staging}")
    run_id = plan.scoring.stamp.run_id
    failed = collections.Counter(r["error_code"] for r in rows if r["status"] != "ok")
    carried = sum(r["run_id"] != run_id for r in rows)
    scored = len(rows) - sum(failed.values()) - carried
    error_rate = sum(failed.values()) / max(1, len(rows))
    ok = scored + carried > 0 and error_rate <= opts.max_error_rate
    counts = {"videos": len(rows), "scored": scored, "failed": sum(failed.values()), "carried": carried,
              "segments": len(segments), "failed_segments": sum(s["status"] != "ok" for s in segments)}
    predictions.write_run_json(plan.staging, plan.scoring.stamp, plan.config, counts)
    outdir.commit(opts.output, plan.staging, predictions.OWNED, keep_out=(TASKS_FILE,), success=ok)
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
