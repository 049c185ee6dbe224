"""Runs that meet at one output: real `vidclass preprocess`/`infer` processes started side by side while a
reader polls the folder many times a second; a killed run's stale lease; a shard damaged before commit.

The reader is what issue 12 saw fail: with `_SUCCESS` present it read labels.txt with 3 classes beside a
dataset.json with 8, and listed shards that did not exist. Here every read it makes while `_SUCCESS` exists
must be whole.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines import infer, preprocess
from vidclass import dataset, errors, lease, synthetic, verify
from vidclass.data import Augment
from vidclass.train import TrainConfig, train

FEW = ("move_left", "grow", "shrink")
SMALL = ["--num-frames", "4", "--size", "32"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two inputs a torn read would tell apart: 3 classes, and all 8."""
    root = tmp_path_factory.mktemp("concurrency")
    synthetic.write_dataset(root / "few", 4, classes=FEW, num_frames=12, height=48, width=64, seed=1)
    synthetic.write_dataset(root / "many", 2, num_frames=12, height=48, width=64, seed=2)
    return root


def _cli(*args, env=None):
    """`python -m vidclass.cli ...` as a user would start it, in its own process group (so a kill takes
    its decoder children too)."""
    return subprocess.Popen([sys.executable, "-m", "vidclass.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, **(env or {})})


def dataset_problems(out: Path) -> list[str]:
    """What an outside reader finds wrong with a dataset it trusts because `_SUCCESS` is there."""
    info = dataset.DatasetInfo.from_json((out / dataset.DATASET_JSON).read_text())
    problems = []
    labels = (out / dataset.LABELS_TXT).read_text().splitlines()
    if labels != info.labels.to_list():
        problems.append(f"labels.txt has {len(labels)} classes, dataset.json {len(info.labels)}")
    listed = {name for s in info.splits.values() for name in s.shards}
    if listed != {p.name for p in out.glob("*.tfrecord")}:
        problems.append(f"shards listed {sorted(listed)} vs present {sorted(p.name for p in out.glob('*.tfrecord'))}")
    for split, s in info.splits.items():
        records = sum(verify.count_records(str(out / name)) for name in s.shards)
        if records != s.clips:
            problems.append(f"{split}: {records} records, dataset.json says {s.clips} clips")
    videos = pq.read_table(out / dataset.VIDEOS).to_pylist()
    counted = sum(s.videos for s in info.splits.values())
    if len(videos) != counted:
        problems.append(f"videos.parquet has {len(videos)} rows, dataset.json {counted}")
    if {v["label"] for v in videos} - set(labels):
        problems.append("videos.parquet names labels that labels.txt lacks")
    return problems


def predictions_problems(out: Path) -> list[str]:
    """What an outside reader finds wrong with predictions it trusts because `_SUCCESS` is there."""
    run = json.loads((out / "run.json").read_text())
    rows = pq.read_table([str(p) for p in sorted(out.glob("predictions-*.parquet"))]).to_pylist()
    problems = []
    if len(rows) != run["counts"]["videos"] or len({r["video_id"] for r in rows}) != len(rows):
        problems.append(f"{len(rows)} rows, run.json counts {run['counts']['videos']}")
    if {r["run_id"] for r in rows} != {run["run_id"]}:
        problems.append(f"rows of runs {sorted({r['run_id'] for r in rows})} beside run.json of {run['run_id']}")
    return problems


class PollingReader(threading.Thread):
    """Reads the output every few milliseconds; whenever `_SUCCESS` exists, checks it whole."""

    def __init__(self, out: Path, check):
        super().__init__(daemon=True)
        self.out, self.check = out, check
        self.stop, self.polls, self.trusted, self.torn = threading.Event(), 0, 0, []

    def run(self):
        while not self.stop.is_set():
            self.polls += 1
            if (self.out / "_SUCCESS").exists():
                self.trusted += 1
                try:
                    problems = self.check(self.out)
                except Exception as e:  # noqa: BLE001 - a file listed but gone is a torn read too
                    problems = [f"{type(e).__name__}: {e}"]
                if problems:
                    self.torn.append(problems)
            time.sleep(0.005)


def _race(out: Path, check, runs: list[list], settle_s: float = 1.5):
    """Start the runs at once with a reader polling `out`; return (processes' (rc, stderr), reader)."""
    reader = PollingReader(out, check)
    reader.start()
    procs = [_cli(*args) for args in runs]
    results = []
    for p in procs:
        _, err = p.communicate(timeout=600)
        results.append((p.returncode, err, p.pid))
    time.sleep(settle_s)  # the reader also reads the finished output, many times
    reader.stop.set()
    reader.join()
    return results, reader


def _loser_line(results):
    """Exactly one run failed with exit 2; its one error line; and the winner's pid."""
    codes = sorted(rc for rc, _, _ in results)
    assert codes == [0, 2], [(rc, err[-1500:]) for rc, err, _ in results]
    (_, err, _), = [r for r in results if r[0] == 2]
    (_, _, winner_pid), = [r for r in results if r[0] == 0]
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0], winner_pid


def test_two_preprocess_runs_one_output(inputs, tmp_path):
    """Two preprocess runs into one --output at the same time: one writes, the other stops at once with exit 2
    and a line naming the holder; a reader polling all along never trusts a torn dataset."""
    out = tmp_path / "ds"
    results, reader = _race(out, dataset_problems, [
        ["preprocess", "--input", inputs / "few", "--output", out, *SMALL, "--direct_num_workers", "1"],
        ["preprocess", "--input", inputs / "many", "--output", out, *SMALL, "--direct_num_workers", "1"]])
    line, winner = _loser_line(results)
    assert "is being written by another run: vidclass preprocess --input" in line
    assert f"pid {winner} on {os.uname().nodename}, started 20" in line
    assert reader.torn == [] and reader.trusted >= 5, (reader.torn[:3], reader.trusted, reader.polls)
    assert dataset_problems(out) == []
    assert not [p.name for p in out.iterdir() if p.name.startswith((".staging", "beam-temp", lease.LEASE))]


@pytest.fixture(scope="module")
def model(inputs, tmp_path_factory):
    """A briefly trained bundle for the infer races."""
    root = tmp_path_factory.mktemp("model")
    assert preprocess.run(["--input", str(inputs / "few"), "--output", str(root / "ds"), *SMALL,
                           "--split", "train=0.7,test=0.3"]) == 0
    train(str(root / "ds"), str(root / "model"), TrainConfig(model="frame_cnn", epochs=1, augment=Augment.none()))
    return root / "model"


def test_two_infer_runs_one_output(inputs, model, tmp_path):
    """The same for infer: one run's rows, one run.json, never rows of two runs beside `_SUCCESS`."""
    out = tmp_path / "scores"
    results, reader = _race(out, predictions_problems, [
        ["infer", "--input", inputs / "few", "--model-dir", model, "--output", out, "--run-id", "A",
         "--direct_num_workers", "1"],
        ["infer", "--input", inputs / "many", "--model-dir", model, "--output", out, "--run-id", "B",
         "--direct_num_workers", "1"]])
    line, winner = _loser_line(results)
    assert "is being written by another run: vidclass infer --input" in line and f"pid {winner} " in line
    assert reader.torn == [] and reader.trusted >= 5, (reader.torn[:3], reader.trusted, reader.polls)
    assert predictions_problems(out) == []


def test_killed_runs_lease_expires_then_next_run_takes_over(inputs, tmp_path):
    """A preprocess run killed mid-way leaves its lease and staging folder: the next run is refused while
    the lease is fresh, and once it expired takes the output over and clears the dead run's leftovers."""
    out = tmp_path / "ds"
    victim = _cli("preprocess", "--input", inputs / "many", "--output", out, *SMALL, "--direct_num_workers", "1",
                  env={lease.TTL_ENV: "6"})
    deadline = time.monotonic() + 120
    while not list(out.glob(".staging-*")) and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.communicate()
    killed_at = time.time()
    leftovers = list(out.glob(".staging-*"))
    assert leftovers and (out / lease.LEASE).exists() and not (out / "_SUCCESS").exists()
    with pytest.raises(errors.OutputBusy, match=f"pid {victim.pid} "):
        preprocess.run(["--input", str(inputs / "few"), "--output", str(out), *SMALL])
    time.sleep(max(0.0, killed_at + 6.2 - time.time()))
    assert preprocess.run(["--input", str(inputs / "few"), "--output", str(out), *SMALL]) == 0
    assert not any(p.exists() for p in leftovers) and not (out / lease.LEASE).exists()
    assert dataset_problems(out) == [] and len(dataset.load(str(out)).labels) == len(FEW)


HOLDER = textwrap.dedent("""
    import os, sys, time
    from vidclass import lease, outdir
    held = lease.acquire(sys.argv[1], "vidclass preprocess --input /elsewhere")  # the default, long TTL
    staging = outdir.begin(sys.argv[1], held)
    open(os.path.join(staging, "train-00000-of-00001.tfrecord"), "wb").write(b"half a shard")
    print("HELD", flush=True)
    time.sleep(600)
""")


def test_force_takes_a_dead_runs_output_at_once(inputs, tmp_path):
    """A run killed with the default two-minute TTL: without --force the output is busy; --force takes it now."""
    out = tmp_path / "ds"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    assert holder.stdout.readline().strip() == "HELD"
    os.killpg(holder.pid, signal.SIGKILL)
    holder.communicate()
    with pytest.raises(errors.OutputBusy, match="--input /elsewhere.*--force"):
        preprocess.run(["--input", str(inputs / "few"), "--output", str(out), *SMALL])
    assert preprocess.run(["--input", str(inputs / "few"), "--output", str(out), *SMALL, "--force"]) == 0
    assert not list(out.glob(".staging-*")) and not (out / lease.LEASE).exists()
    assert dataset_problems(out) == []


@pytest.mark.parametrize("value", ["-3", "0", "many"])
def test_nonsense_shard_counts_are_refused_before_any_work(inputs, tmp_path, capsys, value):
    out = tmp_path / "ds"
    with pytest.raises(SystemExit) as stop:
        preprocess.run(["--input", str(inputs / "few"), "--output", str(out), "--num-shards", value])
    assert stop.value.code == 2 and "--num-shards" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_a_damaged_shard_fails_the_run_without_success(inputs, tmp_path, monkeypatch, damage):
    """A shard cut short or gone between the pipeline and the commit: RunFailed (exit 1), nothing committed."""
    real = verify.dataset_problems

    def damaged_first(staging, *args):
        shard = sorted(Path(staging).glob("train-*.tfrecord"))[0]
        if damage == "delete":
            shard.unlink()
        else:
            shard.write_bytes(shard.read_bytes()[:-100])
        return real(staging, *args)
    monkeypatch.setattr(verify, "dataset_problems", damaged_first)
    out = tmp_path / "ds"
    with pytest.raises(errors.RunFailed, match="missing" if damage == "delete" else "cut short") as failed:
        preprocess.run(["--input", str(inputs / "few"), "--output", str(out), *SMALL])
    assert failed.value.status == errors.Exit.FAILED
    assert not (out / "_SUCCESS").exists() and not (out / dataset.DATASET_JSON).exists()
    assert not (out / lease.LEASE).exists()  # released: the next run may go


def test_a_lost_predictions_shard_fails_infer(inputs, model, tmp_path, monkeypatch):
    """infer: a predictions file gone from staging before the commit is RunFailed, no `_SUCCESS`."""
    real = verify.parquet_shard_problems

    def lose_rows(directory, kind, count):
        for p in Path(directory).glob(f"{kind}-*.parquet"):
            p.unlink()
        return real(directory, kind, count)
    monkeypatch.setattr(verify, "parquet_shard_problems", lose_rows)
    out = tmp_path / "scores"
    with pytest.raises(errors.RunFailed, match="predictions shard predictions-00000-of-00001.parquet is missing"):
        infer.run(["--input", str(inputs / "few"), "--model-dir", str(model), "--output", str(out)])
    assert not (out / "_SUCCESS").exists() and not list(out.glob("predictions-*"))
