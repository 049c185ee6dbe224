"""The command line as a careless or hostile user meets it: nonsense flags are refused before any work, with
one line naming the flag and the reason and exit status 2, never a traceback; library noise stays out."""
from __future__ import annotations

import concurrent.futures
import subprocess
import sys

import pytest

from videos import barcode_video

BAD_FLAGS = [
    # (argv, a word the one line must contain)
    (["probe", "x.mp4", "--timeout", "nan"], "--timeout"),
    (["probe", "x.mp4", "--timeout", "-1"], "--timeout"),
    (["probe", "x.mp4", "--size", "3000"], "--allow-large"),
    (["probe", "x.mp4", "--num-frames", "0"], "--num-frames"),
    (["predict", "x.mp4", "--model-dir", "m", "--top-k", "0"], "--top-k"),
    (["predict", "x.mp4", "--model-dir", "m", "--top-k", "-2"], "--top-k"),
    (["predict", "x.mp4", "--model-dir", "m", "--segment-stride", "5"], "--segment-seconds"),
    (["predict", "x.mp4", "--model-dir", "m", "--segment-seconds", "inf"], "--segment-seconds"),
    (["train", "--data", "d", "--model-dir", "m", "--epochs", "0"], "--epochs"),
    (["train", "--data", "d", "--model-dir", "m", "--learning-rate", "nan"], "--learning-rate"),
    (["train", "--data", "d", "--model-dir", "m", "--model-config", "[1, 2]"], "--model-config"),
    (["preprocess", "--input", "i", "--output", "o", "--jpeg-quality", "101"], "--jpeg-quality"),
    (["preprocess", "--input", "i", "--output", "o", "--jpeg-quality", "-5"], "--jpeg-quality"),
    (["preprocess", "--input", "i", "--output", "o", "--size", "3000"], "--allow-large"),
    (["preprocess", "--input", "i", "--output", "o", "--clips-per-video", "0"], "--clips-per-video"),
    (["preprocess", "--input", "i", "--output", "o", "--max-error-rate", "1.5"], "--max-error-rate"),
    (["preprocess", "--input", "i", "--output", "o", "--num-shard", "4"], "did you mean"),
    (["preprocess", "--input", "i", "--output", "o", "--num-shards", "-3"], "--num-shards"),
    (["infer", "--input", "i", "--model-dir", "m", "--output", "o", "--batch-size", "0"], "--batch-size"),
    (["infer", "--input", "i", "--model-dir", "m", "--output", "o", "--timeout", "nan"], "--timeout"),
    (["infer", "--input", "i", "--model-dir", "m", "--output", "o", "--segment-stride", "3"], "--segment-seconds"),
]


def _vidclass(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidclass.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_bad_flags_are_one_line_and_exit_2():
    """Each nonsense value is refused at parse time: exit 2, no traceback, the flag named in the last line."""
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda case: _vidclass(*case[0]), BAD_FLAGS))
    problems = []
    for (argv, word), proc in zip(BAD_FLAGS, results):
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
        if proc.returncode != 2 or "Traceback" in proc.stderr or word not in last:
            problems.append(f"{' '.join(argv)}: exit {proc.returncode}, stderr {proc.stderr[-400:]!r}")
    assert not problems, "\n".join(problems)


def test_unusable_inputs_are_one_line(tmp_path):
    """A missing model, an unfinished dataset and a missing input are one line each, exit 2, and the
    TensorFlow start-up chatter (cuInit, oneDNN, absl) stays out of the terminal."""
    video = barcode_video(tmp_path / "v.mp4", 10)
    (tmp_path / "ds").mkdir()
    cases = [
        (["predict", str(video), "--model-dir", str(tmp_path / "nomodel")], "not a model bundle"),
        (["evaluate", "--data", str(tmp_path / "ds"), "--model-dir", str(tmp_path / "m")], "_SUCCESS"),
        (["inspect", str(tmp_path / "ds")], "_SUCCESS"),
        (["preprocess", "--input", str(tmp_path / "nothing"), "--output", str(tmp_path / "o")], "not found"),
    ]
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        results = list(ex.map(lambda case: _vidclass(*case[0], timeout=300), cases))
    for (argv, word), proc in zip(cases, results):
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and word in lines[0], (argv, proc.stderr)


@pytest.mark.parametrize("flag", ["--verbose"])
def test_verbose_shows_what_quiet_hides(tmp_path, flag):
    """--verbose lets the libraries speak (and gives the traceback of an unexpected error)."""
    proc = _vidclass("predict", str(tmp_path / "v.mp4"), "--model-dir", str(tmp_path / "m"), flag, timeout=300)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) > 1


def test_tensorflow_start_up_lines_stay_out_even_when_tf_logging_is_turned_up(tmp_path):
    """With TF_CPP_MIN_LOG_LEVEL=0 (a common shell setting) TensorFlow's start-up lines, cuInit's among
    them in absl's pre-init format (seconds since the epoch), still stay out of the terminal."""
    import os
    import datasets
    datasets.motion_dataset(tmp_path / "ds", {"train": 1})  # a finished dataset of 2 clips, without Beam
    proc = subprocess.run([sys.executable, "-m", "vidclass.cli", "inspect", str(tmp_path / "ds")],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert proc.returncode == 0 and proc.stderr.strip().splitlines() == [
        f"contact sheet (train, 2 clips): {tmp_path / 'ds' / 'contact_sheet.png'}"], proc.stderr


def test_no_leftovers_in_tmpdir_or_home(tmp_path):
    """A run writes nothing outside its output: no Beam temp folders left in $TMPDIR, no keras.json,
    matplotlib cache or Beam cache in $HOME."""
    import os
    for c in ("a", "b"):
        (tmp_path / "in" / c).mkdir(parents=True)
        for i in range(2):
            barcode_video(tmp_path / "in" / c / f"{i}.mp4", 8)
    tmp, home = tmp_path / "tmp", tmp_path / "home"
    tmp.mkdir()
    home.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "HOME": str(home)}
    for argv in (["preprocess", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "ds"), "--num-frames", "4",
                  "--size", "32", "--split", "train=1"],
                 ["inspect", str(tmp_path / "ds")]):
        proc = subprocess.run([sys.executable, "-m", "vidclass.cli", *argv], capture_output=True, text=True,
                              timeout=300, env=env, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert not list(tmp.iterdir()), list(tmp.iterdir())
    assert not list(home.iterdir()), [str(p) for p in home.rglob("*")]


def test_runner_preflight_is_one_line_before_any_work(tmp_path):
    """Runners that cannot work are refused in seconds, before a file is written: the DataflowRunner with
    local paths (its workers cannot see them), Prism without a binary (offline it would try GitHub), a Flink
    master that does not answer."""
    import os
    import time
    (tmp_path / "in" / "a").mkdir(parents=True)
    base = ["preprocess", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    cases = [
        (["--runner", "DataflowRunner", "--project", "p", "--region", "r", "--temp_location", "gs://b/t"],
         "--input"),
        (["--runner", "PrismRunner"], "--prism_location"),
        (["--runner", "PrismRunner", "--prism_location", str(tmp_path / "no-prism")], "no executable prism"),
        (["--runner", "FlinkRunner", "--flink_master", "127.0.0.1:9", "--flink_job_server_jar",
          str(tmp_path / "in")], "no such file"),
    ]
    env = {**os.environ, "HOME": str(tmp_path / "home")}  # no cached prism binary in ~/.apache_beam
    for extra, word in cases:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "vidclass.cli", *base, *extra], capture_output=True, text=True,
                              timeout=120, env=env, stdin=subprocess.DEVNULL)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and word in lines[0], (extra, proc.stderr)
        assert time.monotonic() - started < 60
        assert not (tmp_path / "out").exists(), "a refused run wrote something"
