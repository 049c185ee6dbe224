"""Beam Python pipelines on real engines: a multi-process Flink cluster (portable runner) and Prism.

Deselected by default (marker `engines`); run with ``pytest -m engines tests/engines`` after
``engines/fetch.sh``. What each test proves:

* the pipeline's output is exactly right (read back after the run);
* ``wait_until_finish()`` returns only once the engine reports the job finished (Flink's REST API agrees);
* ``result.metrics().query()`` returns the DoFn's counters and distributions;
* on Flink, the job was spread over both TaskManagers (each JVM ran subtasks of it);
* the project's kinds of IO (TFRecord, Parquet, RunInference with a per-worker model) run there too.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import time

import pytest

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

import smoke_pipelines as sp

pytestmark = [pytest.mark.engines, pytest.mark.timeout(900)]

N_LINES = 100
N_RECORDS = 40


def _run(args: list[str], build) -> tuple[beam.runners.runner.PipelineResult, float]:
    started = time.monotonic()
    p = beam.Pipeline(options=PipelineOptions(args))
    build(p)
    result = p.run()
    state = result.wait_until_finish()
    assert state == PipelineState.DONE, f"pipeline ended in {state}"
    return result, time.monotonic() - started


def _check_text_run(tmp_path: pathlib.Path, args: list[str]):
    lines = sp.input_lines(N_LINES)
    sp.write_input(str(tmp_path / "in" / "lines.txt"), lines)
    out = str(tmp_path / "out" / "sums")
    result, seconds = _run(args, lambda p: sp.build_text_pipeline(p, str(tmp_path / "in" / "lines.txt"), out))
    assert sp.read_text_outputs(out) == sp.expected_sums(lines)
    assert sp.counter(result, "lines") == N_LINES
    pids = sp.distribution(result, "child_pid")
    assert pids and sum(d.count for d in pids) == N_LINES
    return result, seconds


def _check_io_run(tmp_path: pathlib.Path, args: list[str]):
    tfr, pq = str(tmp_path / "tfr" / "records"), str(tmp_path / "pq" / "rows")
    result, seconds = _run(args, lambda p: sp.build_io_pipeline(p, N_RECORDS, tfr, pq))
    assert sorted(sp.read_tfrecords(tfr)) == sorted(f"id{i:03d}={i}".encode() for i in range(N_RECORDS))
    rows = sp.read_parquet_rows(pq)
    assert rows == [{"key": f"id{i:03d}", "value": i, "prediction": 2 * i} for i in range(N_RECORDS)]
    assert sp.counter(result, "inferences") == N_RECORDS
    # RunInference's own metrics (namespace BeamML_<handler class>) come back too.
    assert sp.counter(result, "num_inferences", namespace=None) == N_RECORDS
    return result, seconds


# --- Flink --------------------------------------------------------------------------------------------


def test_flink_cluster_has_two_taskmanagers(flink):
    fc, _ = flink
    overview = fc.overview()
    assert overview["taskmanagers"] == 2
    assert overview["flink-version"].startswith("1.19")
    assert len(fc.taskmanagers) == 2 and all(p.alive() for p in fc.processes)
    # Separate JVMs: distinct process ids, each its own process group.
    assert len({p.pid for p in fc.processes}) == 3


def _new_finished_job(fc, before: set[str]) -> dict:
    jobs = [j for j in fc.jobs() if j["jid"] not in before]
    assert len(jobs) == 1, f"expected one new Flink job, got {jobs}"
    return jobs[0]


def test_flink_text_pipeline(flink, flink_args, tmp_path):
    fc, _ = flink
    before = {j["jid"] for j in fc.jobs()}
    _check_text_run(tmp_path, flink_args)
    job = _new_finished_job(fc, before)
    # wait_until_finish() returned only after Flink finished the job.
    assert job["state"] == "FINISHED", job
    assert job["tasks"]["failed"] == 0 and job["tasks"]["finished"] == job["tasks"]["total"]
    # Parallelism 2 over two 1-slot TaskManagers: both ran subtasks of this job.
    assert fc.job_taskmanagers(job["jid"]) == {"tm-1", "tm-2"}
    assert fc.overview()["taskmanagers"] == 2


def test_flink_project_ios(flink, flink_args, tmp_path):
    fc, _ = flink
    before = {j["jid"] for j in fc.jobs()}
    _check_io_run(tmp_path, flink_args)
    assert _new_finished_job(fc, before)["state"] == "FINISHED"


# --- Prism --------------------------------------------------------------------------------------------


def test_prism_text_pipeline(prism_args, tmp_path):
    _check_text_run(tmp_path, prism_args)


def test_prism_project_ios(prism_args, tmp_path):
    _check_io_run(tmp_path, prism_args)


def test_prism_runner_starts_fetched_binary_offline(artifacts, tmp_path):
    """PrismRunner starting prism itself from --prism_location, in a fresh process with no network
    (a network namespace with only loopback, when `unshare` works here): nothing is downloaded."""
    script = tmp_path / "run_prism.py"
    script.write_text(
        "import sys\n"
        f"sys.path[:0] = [{str(pathlib.Path(__file__).parent)!r}, {str(pathlib.Path(__file__).parents[2])!r}]\n"
        "import apache_beam as beam\n"
        "from apache_beam.options.pipeline_options import PipelineOptions\n"
        "from engines import cluster\n"
        "import smoke_pipelines as sp\n"
        "out = sys.argv[1]\n"
        "p = beam.Pipeline(options=PipelineOptions(cluster.prism_pipeline_args()))\n"
        "p | beam.Create(sp.input_lines(20)) | beam.ParDo(sp.EchoThroughChild()) | beam.GroupByKey()"
        " | beam.MapTuple(sp.format_sum) | beam.io.WriteToText(out)\n"
        "r = p.run(); print('STATE', r.wait_until_finish()); print('LINES', sp.counter(r, 'lines'))\n"
    )
    out = str(tmp_path / "out" / "sums")
    cmd = [sys.executable, str(script), out]
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        cmd = [unshare, "-n", "sh", "-c", 'ip link set lo up 2>/dev/null || true; exec "$@"', "sh", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "STATE DONE" in proc.stdout and "LINES 20" in proc.stdout, proc.stdout
    assert str(artifacts.prism) in proc.stderr  # Beam logs the command it started
    assert "Downloading prism" not in proc.stderr
    assert sp.read_text_outputs(out) == sp.expected_sums(sp.input_lines(20))
