"""After the infer pipeline: check one row per input video, swap the output in, summarise the run."""
from __future__ import annotations

import collections
import sys

import fsspec
import pyarrow.parquet as pq

from pipelines.common import TASKS_FILE
from vidclass import outdir


def read_rows(directory: str, columns: list[str] | None = None) -> list[dict]:
    """All prediction rows of an output (or staging) folder."""
    fs, root = fsspec.core.url_to_fs(directory)
    rows: list[dict] = []
    for path in sorted(fs.glob(f"{root.rstrip('/')}/predictions-*.parquet")):
        with fs.open(path, "rb") as f:
            rows.extend(pq.read_table(f, columns=columns).to_pylist())
    return rows


def finalize(opts, plan, inputs: int, elapsed: float) -> int:
    """Commit the predictions when every input has exactly one row; exit status per the error share."""
    from pipelines.infer import OWNED
    rows = read_rows(plan.staging, ["video_id", "status", "error_code", "run_id"])
    ids = collections.Counter(r["video_id"] for r in rows)
    duplicated = [v for v, n in ids.items() if n > 1]
    if len(rows) != inputs or duplicated:
        raise RuntimeError(f"conservation broken: {inputs} videos in, {len(rows)} rows out "
                           f"(duplicated ids: {duplicated[:5]}); staging left in {plan.staging}")
    failed = collections.Counter(r["error_code"] for r in rows if r["status"] != "ok")
    carried = sum(r["run_id"] != plan.run_id for r in rows)
    scored = len(rows) - sum(failed.values()) - carried
    error_rate = sum(failed.values()) / max(1, len(rows))
    ok = scored + carried > 0 and error_rate <= opts.max_error_rate
    outdir.commit(opts.output, plan.staging, OWNED, keep_out=(TASKS_FILE,), success=ok)
    lines = [f"infer: done in {elapsed:.1f} s: {len(rows)} videos -> {scored} scored, {sum(failed.values())} "
             f"failed, {carried} carried over from {plan.prior or '-'} "
             f"({(scored + sum(failed.values())) / max(elapsed, 1e-9):.1f} videos/s)"]
    lines += [f"  failed {code}: {n}" for code, n in sorted(failed.items())]
    lines.append(f"  output: {opts.output}/predictions-*.parquet (run {plan.run_id}, model "
                 f"{plan.bundle.model_version})")
    print("\n".join(lines), file=sys.stderr)
    if not ok:
        print(f"infer: FAILED: {error_rate:.1%} of videos could not be scored (limit --max-error-rate "
              f"{opts.max_error_rate:.1%}); rows are written without _SUCCESS", file=sys.stderr)
    return 0 if ok else 1
