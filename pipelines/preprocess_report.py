"""After the preprocess pipeline: write `dataset.json`, verify the staged dataset, swap it in, summarise.

Runs in the launcher, from the files the pipeline staged (exact, unlike metrics that a retried bundle
can count twice). Nothing is committed unless the staged files hold what `dataset.json` says
(`vidclass.verify`): a failed check is `RunFailed` (exit 1), no `_SUCCESS`, the staging folder kept.
"""
from __future__ import annotations

import collections
import sys
from typing import Any

import fsspec
import pyarrow.parquet as pq

from pipelines.common import TASKS_FILE
from vidclass import dataset, errors, outdir, storage, verify
from vidclass.labels import LabelMap
from vidclass.lease import Lease


def _read_table(url: str) -> list[dict[str, Any]]:
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        return []
    with fs.open(path, "rb") as f:
        return pq.read_table(f).to_pylist()


def _decode_ms(result) -> float | None:
    """Mean decode time per video from Beam's metrics, where the runner reports distributions."""
    try:
        dists = result.metrics().query()["distributions"]
        ds = [d.committed or d.attempted for d in dists if d.key.metric.name == "decode_ms"]
        return ds[0].mean if ds and ds[0] else None
    except Exception:  # metrics are a nicety; never fail a finished run over them
        return None


def finalize(opts, plan, labels: LabelMap, tasks: list, discover_failures: list, result, elapsed: float,
             lease: Lease) -> int:
    """Write dataset.json and labels.txt into staging, verify, commit the directory, print the summary."""
    videos = _read_table(f"{plan.staging}/{dataset.VIDEOS}")
    failures = _read_table(f"{plan.staging}/{dataset.FAILURES}")
    per_split: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    clips: collections.Counter = collections.Counter()
    for v in videos:
        per_split[v["split"]][v["label"]] += 1
        clips[v["split"]] += v["clips"]
    splits = {s: dataset.SplitInfo(tuple(dataset.shard_name(s, i, n, plan.compression) for i in range(n)),
                                   sum(per_split[s].values()), clips[s], dict(sorted(per_split[s].items())))
              for s, n in sorted(plan.shards.items())}
    by_code = collections.Counter(f["error_code"] for f in failures)
    info = dataset.DatasetInfo(spec=plan.spec, labels=labels, splits=splits, failures_by_code=dict(by_code),
                               inputs=len(tasks) + len(discover_failures), compression=plan.compression,
                               jpeg_quality=plan.jpeg_quality, source=storage.redact(opts.input))
    with fsspec.open(f"{plan.staging}/{dataset.DATASET_JSON}", "w") as f:
        f.write(info.to_json())
    with fsspec.open(f"{plan.staging}/{dataset.LABELS_TXT}", "w") as f:
        f.write(labels.to_text())
    problems = verify.dataset_problems(plan.staging, [t.video_id for t in tasks], len(discover_failures))
    if problems:
        raise errors.RunFailed(f"the staged dataset does not hold what dataset.json says: {'; '.join(problems[:3])}"
                               f"{'; ...' if len(problems) > 3 else ''}; nothing committed, staging kept in "
                               f"{plan.staging}")
    error_rate = len(failures) / max(1, info.inputs)
    ok = bool(videos) and error_rate <= opts.max_error_rate
    outdir.commit(opts.output, plan.staging, dataset.OWNED, lease, keep_out=(TASKS_FILE,), success=ok)
    _summary(opts, info, elapsed, _decode_ms(result))
    if not videos:
        print("preprocess: FAILED: no video could be used; see failures.parquet", file=sys.stderr)
    elif not ok:
        print(f"preprocess: FAILED: {error_rate:.1%} of videos are unusable, above --max-error-rate "
              f"{opts.max_error_rate:.1%}; the dataset is written without _SUCCESS, see failures.parquet",
              file=sys.stderr)
    return 0 if ok else 1


def _summary(opts, info: dataset.DatasetInfo, elapsed: float, decode_ms: float | None) -> None:
    """One screen: what went in, what came out, where it is."""
    good = sum(s.videos for s in info.splits.values())
    lines = [f"preprocess: done in {elapsed:.1f} s: {info.inputs} inputs -> {good} videos written, "
             f"{info.failures} failed" + (f" ({good / max(elapsed, 1e-9):.1f} videos/s"
                                          + (f", {decode_ms:.0f} ms decode/video)" if decode_ms else ")"))]
    for name, s in info.splits.items():
        lines.append(f"  {name:6} {s.videos:7} videos {s.clips:8} clips  {len(s.shards)} shard(s)")
    for code, n in sorted(info.failures_by_code.items()):
        lines.append(f"  failed {code}: {n}")
    lines.append(f"  classes: {len(info.labels)}; sampling: {info.spec.to_json()}")
    lines.append(f"  output: {opts.output} (check it: vidclass inspect {opts.output})")
    print("\n".join(lines), file=sys.stderr)
