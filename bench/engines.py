"""Per-video cost of `preprocess` and `infer` on each engine here: DirectRunner, Prism, a Flink cluster.

    python bench/engines.py [--sizes 8,64] [--seconds 10] [--repeats 2] [--engines direct,prism,flink]
                            [--workdir DIR] [--out FILE]

What a user needs to plan a cluster: for each engine and pipeline, the fixed start-up of a run (intercept) and
the marginal cost of one more video (slope), in wall seconds and in CPU seconds of every process involved.

Videos (bench/media.py, cached in --workdir): --seconds long 640x360 30 fps H.264 clips of lavfi sources at
1 Mb/s (Kinetics clips are 10 s of ~340p), hard-linked into 3 class folders; the run of N videos reads the
first N (a subset keeps its ids, hence its splits). Model: an untrained r2plus1d bundle (8 classes, 16 frames
of 112x112, bench/timeline.py's make_bundle): speed only. Preprocess writes 16x112x112 JPEG q90 clips, the
same spec, so the records measured here are the ones a Kinetics run would write.

Engines, all started once for the whole bench by engines/cluster.py (its processes stop when it ends):
  direct  Beam's FnApiRunner in this process, --direct_num_workers 2 --direct_running_mode multi_threading
          (the laptop default on 2 cores)
  prism   a prism job service + a Python SDK worker pool: --runner PrismRunner --job_endpoint ...
          --environment_type EXTERNAL. Prism asks the pool for ONE harness per environment
          (--sdk_worker_parallelism is ignored by Prism 2.77) and runs up to 8 bundles on its threads, splitting
          slow bundles; so it is left at its default
  flink   a JobManager + 2 TaskManagers (1 slot each) + Beam's Flink job server: --runner PortableRunner
          --job_endpoint ... --environment_type PROCESS --parallelism 2 (one harness per TaskManager); the
          TaskManagers get 2560m and 35% network memory (FLINK_TM: cluster.py's 1280m ran out of network buffers)
The code measured is a copy of vidclass/ and pipelines/ taken when the bench starts (first on the path of the
launcher, the harnesses and the decoders), so edits made to the tree meanwhile cannot mix two versions.
Each run is `pipelines.preprocess.run([...])` / `pipelines.infer.run([...])` in this process (the launcher,
TensorFlow already imported), checked (exit 0, `_SUCCESS`, one row per video); an untimed warm-up run of each
pipeline on each engine comes first (Flink's first job is slower). Runs are interleaved: for each repeat, size
and pipeline the engines take turns, their order rotated.

Measures per run: wall seconds of run(); CPU seconds of this process and everything it started, from /proc
polled every --poll s, each process followed by (pid, start time) even after it is re-parented, by role
(launcher, decoder, prism, worker_pool, sdk_harness, flink_jobmanager, flink_taskmanager, job_server): a run's
cpu_s counts its engine's roles only (the other engines idle beside it: cpu_s_other_engines_idle); the largest
RSS of its engine's processes at one poll (the launcher, with TensorFlow, included); on Flink the job's own
duration from the REST API and how many TaskManagers ran it.
Per engine and pipeline (medians over repeats): intercept and slope from the two sizes (slope = (T_big -
T_small) / (big - small), intercept = T_small - small x slope), videos/s at the margin, cores busy at the margin
(CPU slope / wall slope) and the ratios engine/direct. From the direct runner's largest dataset: bytes per
TFRecord clip and per JPEG frame (what sizes shards), by source.
One JSON document goes to stdout, progress to stderr; a run that fails its check is recorded with its error and
the others go on; the exit status is then 1 (also if any engine process outlives the bench).
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import glob
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _snapshot_code() -> str:
    """A copy of vidclass/ and pipelines/ as they are now, first on the path of this process and of every process
    it starts (decoders, harnesses): others may edit the tree while the bench runs, and a harness that imports a
    newer file than the launcher pickled from fails. Removed at exit."""
    dest = tempfile.mkdtemp(prefix="vidclass-bench-engines-code-")
    for pkg in ("vidclass", "pipelines"):
        shutil.copytree(os.path.join(ROOT, pkg), os.path.join(dest, pkg), ignore=shutil.ignore_patterns("__pycache__"))
    atexit.register(shutil.rmtree, dest, True)
    sys.path.insert(0, dest)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (dest, os.environ.get("PYTHONPATH")) if p)
    return dest


CODE = _snapshot_code()
import media  # noqa: E402  bench/ is on sys.path when run as a script: the videos, log and emit
import timeline  # noqa: E402  its make_bundle: an untrained r2plus1d bundle with train.py's fields

import apache_beam as beam  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import tensorflow as tf  # noqa: E402

from engines import cluster  # noqa: E402  the repository's engines/ (ROOT precedes bench/ on sys.path), not this file
from pipelines import infer, preprocess  # noqa: E402
from pipelines.infer_report import read_rows  # noqa: E402
from vidclass import schema  # noqa: E402

log = media.log
CLASSES = ("class_a", "class_b", "class_c")
PIPELINES = ("preprocess", "infer")
DIRECT_FLAGS = ["--direct_num_workers", "2", "--direct_running_mode", "multi_threading"]
PREPROCESS_FLAGS = ["--num-frames", str(timeline.FRAMES), "--size", str(timeline.SIZE)]  # the bundle's spec
# engines/cluster.py's TaskManagers (1280m, network fraction 0.25: 6656 buffers of 32 KB) are enough for the tests'
# tiny sets, but a preprocess job of 8 videos in 3 splits failed on them: Beam's batch translation deploys many
# tasks into one slot at once, each blocking result partition takes taskmanager.network.sort-shuffle.min-buffers
# (512), and Flink answered "Insufficient number of network buffers: required 512, but only 499 available".
# Bigger TaskManagers with more network memory (~700 MB: ~22k buffers) here.
FLINK_TM = {"taskmanager_memory": "2560m", "config": {"taskmanager.memory.network.fraction": 0.35}}  # now cluster.py's defaults
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# --- CPU and memory of a process tree ---------------------------------------------------------------------------

ROLES = {  # the processes each engine's work runs in ("other": anything unrecognised, counted for every engine)
    "direct": {"launcher", "decoder", "other"},
    "prism": {"launcher", "decoder", "other", "prism", "worker_pool", "sdk_harness"},
    "flink": {"launcher", "decoder", "other", "flink_jobmanager", "flink_taskmanager", "job_server", "sdk_harness"},
}


def _role(pid: int, cmd: str) -> str:
    """What a process is, from its command line."""
    if pid == os.getpid():
        return "launcher"
    for needle, role in (("isolation import _serve", "decoder"), ("TaskManagerRunner", "flink_taskmanager"),
                         ("StandaloneSessionClusterEntrypoint", "flink_jobmanager"), ("job-server", "job_server"),
                         ("worker_pool_main", "worker_pool"), ("sdk_worker_boot", "sdk_harness"),
                         ("sdk_worker_main", "sdk_harness"), ("SdkHarness", "sdk_harness"), ("prism", "prism")):
        if needle in cmd:
            return role
    return "other"


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


class TreeCpu:
    """CPU seconds (own user + system) and RSS of this process and all its descendants, by role, from /proc.

    Each process is followed by (pid, start time) from when it is first seen until it ends, even when it is
    re-parented (a harness killed before its decoder children), and keeps its last reading after it ends;
    so a process's CPU between its last poll and its end (at most `every_s`) is not counted, nor a process
    that lives less than `every_s`. A process's role comes from its command line, read again while it is
    "other" (Flink's scripts exec java). `reading()` polls at once and returns a copy to subtract from later.
    """

    def __init__(self, every_s: float):
        self.every_s = every_s
        self.cpu: dict[tuple[int, int], float] = {}
        self.roles: dict[tuple[int, int], str] = {}
        self.focus: set[str] | None = None
        self.rss_max = 0
        self.rss_max_by_role: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "TreeCpu":
        self.poll()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.poll()

    def poll(self) -> None:
        stats: dict[int, tuple[int, int, float, int]] = {}  # pid -> ppid, start, cpu s, rss bytes
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            # after "(comm)": state ppid ... utime stime ... starttime vsize rss
            stats[int(name)] = (int(fields[1]), int(fields[19]), (int(fields[11]) + int(fields[12])) / CLK,
                                int(fields[21]) * PAGE)
        with self._lock:
            tracked = {pid for pid, (_, start, _, _) in stats.items() if (pid, start) in self.cpu}
            tracked.add(os.getpid())
            grew = True
            while grew:  # descendants not seen yet: a parent is tracked
                new = {pid for pid, (ppid, _, _, _) in stats.items() if pid not in tracked and ppid in tracked}
                tracked |= new
                grew = bool(new)
            rss: dict[str, int] = {}
            for pid in tracked:
                if pid not in stats:
                    continue
                _, start, cpu, mem = stats[pid]
                key = (pid, start)
                if self.roles.get(key, "other") == "other":
                    self.roles[key] = _role(pid, _cmdline(pid))
                self.cpu[key] = cpu
                rss[self.roles[key]] = rss.get(self.roles[key], 0) + mem
            self.rss_max = max(self.rss_max, sum(v for r, v in rss.items() if self.focus is None or r in self.focus))
            for r, v in rss.items():
                self.rss_max_by_role[r] = max(self.rss_max_by_role.get(r, 0), v)

    def reading(self) -> dict[tuple[int, int], float]:
        self.poll()
        with self._lock:
            return dict(self.cpu)

    def reset(self, focus: set[str] | None) -> None:
        """Peak RSS from now on, of the processes in the roles `focus` (None: all)."""
        with self._lock:
            self.focus, self.rss_max, self.rss_max_by_role = focus, 0, {}

    def since(self, before: dict[tuple[int, int], float]) -> dict[str, float]:
        """CPU seconds by role since `before` (a `reading()`)."""
        after = self.reading()
        by_role: dict[str, float] = {}
        for key, cpu in after.items():
            d = cpu - before.get(key, 0.0)
            if d > 0:
                role = self.roles.get(key, "other")
                by_role[role] = by_role.get(role, 0.0) + d
        return by_role


# --- inputs -----------------------------------------------------------------------------------------------------

def make_inputs(workdir: str, paths: list[str], sizes: list[int]) -> dict[int, str]:
    """For each size N, a folder of the first N videos in 3 class folders (a video's class is fixed by its place)."""
    dirs = {}
    for n in sizes:
        root = os.path.join(workdir, f"input-{n}")
        for i, path in enumerate(paths[:n]):
            media.link_or_copy(path, os.path.join(root, CLASSES[i % len(CLASSES)], os.path.basename(path)))
        dirs[n] = root
    return dirs


# --- engines ----------------------------------------------------------------------------------------------------

class Engines:
    """Every engine's processes, started once (inside `stack`), and each engine's Beam flags."""

    def __init__(self, names: list[str], workdir: str, stack: contextlib.ExitStack):
        self.flags: dict[str, list[str]] = {}
        self.flink: cluster.FlinkCluster | None = None
        self.versions: dict[str, object] = {"apache_beam_python": beam.__version__}
        self.startup_s: dict[str, float] = {}
        art = cluster.find_artifacts()
        if "direct" in names:
            self.flags["direct"] = list(DIRECT_FLAGS)
        if "prism" in names:
            if not art.prism.is_file():
                raise SystemExit(f"no prism at {art.prism}: run engines/fetch.sh")
            t = time.perf_counter()
            pr = stack.enter_context(cluster.prism(os.path.join(workdir, "prism"), art.prism))
            pool = stack.enter_context(cluster.worker_pool(os.path.join(workdir, "pool"), env={"PYTHONPATH": CODE}))
            self.startup_s["prism_and_worker_pool"] = round(time.perf_counter() - t, 2)
            self.flags["prism"] = cluster.prism_pipeline_args(art.prism, job_endpoint=pr.endpoint,
                                                              environment_type="EXTERNAL",
                                                              worker_pool_endpoint=pool.endpoint)
            self.versions["prism"] = _prism_version(str(art.prism))
        if "flink" in names:
            if art.missing():
                raise SystemExit("engine artifacts missing (run engines/fetch.sh): " + "; ".join(art.missing()))
            t = time.perf_counter()
            fc = stack.enter_context(cluster.flink_cluster(os.path.join(workdir, "flink"), taskmanagers=2, slots=1,
                                                           flink_home=art.flink_home, **FLINK_TM))
            self.startup_s["flink_cluster_2tm"] = round(time.perf_counter() - t, 2)
            t = time.perf_counter()
            js = stack.enter_context(cluster.job_server(art.job_server_jar, fc.master,
                                                        os.path.join(workdir, "job-server")))
            self.startup_s["flink_job_server"] = round(time.perf_counter() - t, 2)
            self.flink = fc
            self.flags["flink"] = cluster.flink_pipeline_args(
                js.endpoint, parallelism=2, environment=cluster.process_environment_args(pythonpath=[CODE]))
            overview = fc.overview()
            self.versions.update({
                "flink": fc.rest("/config").get("flink-version", cluster.FLINK_VERSION),
                "flink_job_server_jar": art.job_server_jar.name,
                "flink_job_server_beam": art.job_server_jar.stem.rsplit("-", 1)[-1],
                "flink_taskmanagers": overview.get("taskmanagers"), "flink_slots": overview.get("slots-total")})
        self.versions["java"] = _first_line(["java", "-version"]) if "flink" in names else None
        self.names = [n for n in ("direct", "prism", "flink") if n in self.flags]

    def flink_job_ids(self) -> set[str]:
        return {j["jid"] for j in self.flink.jobs()} if self.flink else set()

    def flink_job(self, before: set[str]) -> dict:
        """Duration (s) and TaskManagers of the one job that appeared since `before`."""
        jobs = [j for j in self.flink.jobs() if j["jid"] not in before]
        if len(jobs) != 1:
            return {"jobs": len(jobs)}
        j = jobs[0]
        detail = self.flink.rest(f"/jobs/{j['jid']}")
        return {"state": j["state"], "job_s": round(detail.get("duration", 0) / 1000, 2),
                "taskmanagers": len(self.flink.job_taskmanagers(j["jid"]))}


def _prism_version(binary: str) -> str:
    try:
        out = subprocess.run(["go", "version", "-m", binary], capture_output=True, text=True, timeout=30).stdout
        return next(line.split()[2] for line in out.splitlines() if "github.com/apache/beam/sdks/v2" in line
                    and line.split()[0] == "mod")
    except (OSError, StopIteration, IndexError, subprocess.SubprocessError):
        return f"v{cluster.BEAM_VERSION} (go version -m unavailable)"


def _code_state() -> dict:
    """Which code ran: the commit, and the files of vidclass/ and pipelines/ that differed from it (snapshotted)."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted": [line[3:] for line in git("status", "--short", "--", "vidclass", "pipelines").splitlines()],
            "snapshot": "vidclass/ and pipelines/ copied at start, first on every process's path"}


def _first_line(cmd: list[str]) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (r.stderr or r.stdout).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return None


# --- runs -------------------------------------------------------------------------------------------------------

def run_pipeline(pipeline: str, input_dir: str, n: int, model: str, out: str, flags: list[str], logfile: str) -> None:
    """One pipeline run into a fresh `out`, its stderr captured into `logfile`; checked: exit 0, `_SUCCESS`,
    one record row (preprocess) or one ok prediction row (infer) per video."""
    shutil.rmtree(out, ignore_errors=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        if pipeline == "preprocess":
            status = preprocess.run(["--input", input_dir, "--output", out, *PREPROCESS_FLAGS, *flags])
        else:
            status = infer.run(["--input", input_dir, "--model-dir", model, "--output", out, *flags])
    with open(logfile, "a") as f:
        f.write(f"=== {pipeline} {n} -> {out}: status {status}\n{err.getvalue()}\n")
    problem = f"exit status {status}" if status != 0 else None
    if problem is None and not os.path.exists(os.path.join(out, "_SUCCESS")):
        problem = "no _SUCCESS"
    if problem is None:
        if pipeline == "preprocess":
            rows = pq.read_table(os.path.join(out, "videos.parquet"), columns=["video_id"]).num_rows
        else:
            rows = sum(r["status"] == "ok" for r in read_rows(out, ["status"]))
        problem = None if rows == n else f"{rows} rows of {n}"
    if problem:
        raise RuntimeError(f"{pipeline} of {n} videos into {out}: {problem}:\n{err.getvalue()[-3000:]}")


def timed_run(eng: Engines, cpu: TreeCpu, engine: str, pipeline: str, n: int, dirs: dict, model: str,
              workdir: str) -> dict:
    """One run on one engine, measured: wall, CPU (all and by role), peak tree RSS, Flink's own job figures."""
    out = os.path.join(workdir, "out", f"{engine}-{pipeline}-{n}")
    jobs = eng.flink_job_ids() if engine == "flink" else set()
    cpu.reset(ROLES[engine])
    before = cpu.reading()
    t = time.perf_counter()
    run_pipeline(pipeline, dirs[n], n, model, out, eng.flags[engine], os.path.join(workdir, "runs.log"))
    wall = time.perf_counter() - t
    by_role = cpu.since(before)
    mine = sum(v for k, v in by_role.items() if k in ROLES[engine])
    mib = lambda b: round(b / 2**20, 1)  # noqa: E731
    r = {"engine": engine, "pipeline": pipeline, "videos": n, "wall_s": round(wall, 3), "cpu_s": round(mine, 3),
         "cpu_s_other_engines_idle": round(sum(by_role.values()) - mine, 3),
         "cpu_s_by_role": {k: round(v, 2) for k, v in sorted(by_role.items())},
         "rss_max_mib": mib(cpu.rss_max),
         "rss_max_mib_by_role": {k: mib(v) for k, v in sorted(cpu.rss_max_by_role.items()) if k in ROLES[engine]},
         "load_avg_1m_after": round(os.getloadavg()[0], 2)}
    if engine == "flink":
        r["flink"] = eng.flink_job(jobs)
    return r


def fit(small: tuple[int, float], big: tuple[int, float]) -> tuple[float, float]:
    """(intercept, slope) of the line through two (videos, seconds) points."""
    slope = (big[1] - small[1]) / (big[0] - small[0])
    return small[1] - small[0] * slope, slope


def summarize(runs: list[dict], engines: list[str], sizes: list[int]) -> tuple[dict, dict]:
    """Per engine and pipeline: median wall/CPU per size, intercept and slope; ratios engine/direct."""
    lo, hi = min(sizes), max(sizes)
    ok = [r for r in runs if "error" not in r]

    def med(e: str, p: str, n: int, get: Callable[[dict], float]) -> float | None:
        got = [get(r) for r in ok if (r["engine"], r["pipeline"], r["videos"]) == (e, p, n)]
        return statistics.median(got) if got else None

    def line(e: str, p: str, get: Callable[[dict], float]) -> tuple[dict, float | None, float | None]:
        at = {n: med(e, p, n, get) for n in sizes}
        if at[lo] is None or at[hi] is None:
            return at, None, None
        return at, *fit((lo, at[lo]), (hi, at[hi]))

    r2 = lambda x, d=2: None if x is None else round(x, d)  # noqa: E731
    res: dict = {}
    for e in engines:
        for p in PIPELINES:
            walls, wi, ws = line(e, p, lambda r: r["wall_s"])
            cpus, ci, cs = line(e, p, lambda r: r["cpu_s"])
            res.setdefault(e, {})[p] = {
                "wall_s": {str(n): r2(w) for n, w in walls.items()},
                "cpu_s": {str(n): r2(c) for n, c in cpus.items()},
                "startup_wall_s": r2(wi), "per_video_wall_s": r2(ws, 3),
                "startup_cpu_s": r2(ci), "per_video_cpu_s": r2(cs, 3),
                "videos_per_s_marginal": round(1 / ws, 3) if ws and ws > 0 else None,
                "cores_busy_marginal": round(cs / ws, 2) if ws and cs and ws > 0 else None,
                "videos_per_s_end_to_end": {str(n): round(n / w, 3) if w else None for n, w in walls.items()},
                "rss_max_mib": {str(n): r2(med(e, p, n, lambda r: r["rss_max_mib"]), 0) for n in sizes},
                "per_video_cpu_s_by_role": {  # where the marginal CPU goes (slope of each role's CPU)
                    role: r2(line(e, p, lambda r, role=role: r["cpu_s_by_role"].get(role, 0.0))[2], 3)
                    for role in sorted(ROLES[e])},
                "failed_runs": sum("error" in r for r in runs if (r["engine"], r["pipeline"]) == (e, p))}
            if e == "flink":  # the Flink job alone (REST API), without the launcher's planning and checks
                jobs, ji, js = line(e, p, lambda r: r["flink"].get("job_s", float("nan")))
                res[e][p].update({"flink_job_s": {str(n): r2(j) for n, j in jobs.items()},
                                  "flink_job_startup_s": r2(ji), "flink_job_per_video_s": r2(js, 3)})
    ratios: dict = {}
    if "direct" in res:
        for e in engines:
            if e == "direct":
                continue
            for p in PIPELINES:
                d, x = res["direct"][p], res[e][p]
                div = lambda a, b: round(a / b, 2) if a is not None and b else None  # noqa: E731
                ratios.setdefault(f"{e}_vs_direct", {})[p] = {
                    "per_video_wall": div(x["per_video_wall_s"], d["per_video_wall_s"]),
                    "per_video_cpu": div(x["per_video_cpu_s"], d["per_video_cpu_s"]),
                    "startup_wall_extra_s": r2(None if x["startup_wall_s"] is None or d["startup_wall_s"] is None
                                               else x["startup_wall_s"] - d["startup_wall_s"]),
                    f"wall_{hi}_videos": div(x["wall_s"][str(hi)], d["wall_s"][str(hi)])}
    return res, ratios


def record_sizes(dataset_dir: str, paths: list[str]) -> dict:
    """Bytes per TFRecord clip and per JPEG frame in a finished dataset, in all and by lavfi source."""
    shards = sorted(glob.glob(os.path.join(dataset_dir, "*.tfrecord")))
    by_name = {os.path.basename(p): i for i, p in enumerate(paths)}
    rec, frame, by_source = [], [], {}
    for raw in tf.data.TFRecordDataset(shards):
        parsed = schema.parse_clip(raw, decode_frames=False)
        size = len(raw.numpy())
        jpegs = [len(j) for j in parsed["jpeg"].numpy()]
        rec.append(size)
        frame += jpegs
        vid = os.path.basename(parsed["video_id"].numpy().decode())
        source = media.SOURCES[by_name[vid] % len(media.SOURCES)].split(",")[0].split("=")[0] \
            + (" +noise" if "noise" in media.SOURCES[by_name[vid] % len(media.SOURCES)] else "")
        by_source.setdefault(source, []).append(size)
    mean = statistics.mean(rec)
    return {"clips": len(rec), "shard_bytes": sum(os.path.getsize(s) for s in shards),
            "record_bytes_mean": round(mean), "record_bytes_median": round(statistics.median(rec)),
            "record_bytes_min": min(rec), "record_bytes_max": max(rec),
            "jpeg_frame_bytes_mean": round(statistics.mean(frame)), "frames_per_clip": len(frame) // len(rec),
            "record_bytes_mean_by_source": {k: round(statistics.mean(v)) for k, v in sorted(by_source.items())},
            "clips_per_150MB_shard": round(150e6 / mean),
            "record_bytes_per_pixel": round(mean / (timeline.FRAMES * timeline.SIZE ** 2), 3),
            "pipeline_estimate_bytes_per_record": round(timeline.FRAMES * timeline.SIZE ** 2
                                                        * preprocess.JPEG_BYTES_PER_PIXEL),
            "source_bytes_mean": round(statistics.mean(os.path.getsize(p) for p in paths))}


# --- main -------------------------------------------------------------------------------------------------------

def bench(args, workdir: str) -> dict:
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    names = [e.strip() for e in args.engines.split(",") if e.strip()]
    if len(sizes) != 2 or sizes[0] < 1:
        raise SystemExit("--sizes takes two video counts, e.g. 8,32")
    started, code = time.perf_counter(), _code_state()
    paths = media.make_videos(workdir, sizes[-1], args.seconds)
    dirs = make_inputs(workdir, paths, [*sizes, 2])
    model = os.path.join(workdir, "model")
    if not os.path.exists(os.path.join(model, "bundle.json")):
        log("making the model bundle (untrained r2plus1d)")
        timeline.make_bundle(model)
    load_before = round(os.getloadavg()[0], 2)
    runs: list[dict] = []
    warmup: dict = {}
    with contextlib.ExitStack() as stack, TreeCpu(args.poll) as cpu:
        log(f"starting engines: {', '.join(names)}")
        eng = Engines(names, os.path.join(workdir, "engines"), stack)
        log(f"engines up: {eng.startup_s}")
        for e in eng.names:
            for p in PIPELINES:
                try:
                    r = timed_run(eng, cpu, e, p, 2, dirs, model, workdir)
                except RuntimeError as exc:
                    warmup[f"{e}/{p}"] = {"error": str(exc)[-1500:]}
                    log(f"warm-up {e:6} {p:10} FAILED: {str(exc).splitlines()[0][:300]}")
                    continue
                warmup[f"{e}/{p}"] = {k: r[k] for k in ("wall_s", "cpu_s")}
                log(f"warm-up {e:6} {p:10} 2 videos: wall {r['wall_s']:6.1f} s, cpu {r['cpu_s']:6.1f} s")
        turn = 0
        for rep in range(args.repeats):
            for n in sizes:
                for p in PIPELINES:
                    order = eng.names[turn % len(eng.names):] + eng.names[:turn % len(eng.names)]
                    turn += 1
                    for e in order:
                        try:
                            r = timed_run(eng, cpu, e, p, n, dirs, model, workdir)
                        except RuntimeError as exc:  # recorded; the other runs go on, the exit status is 1
                            runs.append({"engine": e, "pipeline": p, "videos": n, "repeat": rep,
                                         "error": str(exc)[-1500:]})
                            log(f"repeat {rep + 1}/{args.repeats}: {e:6} {p:10} {n:3} videos: FAILED: "
                                f"{str(exc).splitlines()[0][:300]}")
                            continue
                        r["repeat"] = rep
                        runs.append(r)
                        log(f"repeat {rep + 1}/{args.repeats}: {e:6} {p:10} {n:3} videos: wall {r['wall_s']:6.1f} s, "
                            f"cpu {r['cpu_s']:6.1f} s, rss {r['rss_max_mib']:7.0f} MiB "
                            f"{r.get('flink', '')}")
        engine_names, startup, versions = eng.names, eng.startup_s, eng.versions
    log("engines stopped")
    left = cluster.leftover_processes()
    results, ratios = summarize(runs, engine_names, sizes)
    sizes_info = None
    if "direct" in engine_names:
        ds = os.path.join(workdir, "out", f"direct-preprocess-{sizes[-1]}")
        try:
            run_pipeline("preprocess", dirs[sizes[-1]], sizes[-1], model, ds, DIRECT_FLAGS,
                         os.path.join(workdir, "runs.log"))
            sizes_info = record_sizes(ds, paths)
        except RuntimeError as exc:
            sizes_info = {"error": str(exc)[-1500:]}
    shutil.rmtree(os.path.join(workdir, "out"), ignore_errors=True)
    if not any("error" in r for r in [*runs, *warmup.values()]):  # kept for its logs when something failed
        shutil.rmtree(os.path.join(workdir, "engines"), ignore_errors=True)  # Flink keeps a 150 MB jar per job per TM
    machine = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__,
               "platform": platform.platform(), "load_avg_1m_before": load_before,
               "load_avg_1m_after": round(os.getloadavg()[0], 2)}
    config = {"code": code, "sizes": sizes, "seconds": args.seconds, "width": 640, "height": 360, "fps": media.CLIP_FPS,
              "codec": "h264 yuv420p veryfast, maxrate 1M", "repeats": args.repeats, "statistic": "median",
              "model": timeline.MODEL, "classes": timeline.CLASSES, "frames": timeline.FRAMES, "size": timeline.SIZE,
              "preprocess_flags": PREPROCESS_FLAGS, "infer_flags": "defaults (--batch-size 16, --top-k 5)",
              "engine_flags": {e: [f for f in flags if not f.startswith("--environment_config")]
                               for e, flags in ((e, eng.flags[e]) for e in engine_names)},
              "flink_taskmanagers": {"count": 2, "slots": 1, **FLINK_TM}, "poll_s": args.poll}
    note = ("Wall and CPU per run of run() in this process, TensorFlow already imported (a fresh `vidclass` "
            "process adds ~9 s of imports on every engine). CPU counts every process of the tree (launcher, "
            "decoders, JVMs, prism, worker pool, harnesses); idle JVM heartbeats included. startup_* is the "
            "intercept and per_video_* the slope of the line through the two sizes: on the portable engines the "
            "intercept holds job submission, staging, a harness that imports TensorFlow per job and, for infer, "
            "loading the model. The machine is shared (other work ran beside it): CPU figures move less than "
            "wall ones. cores_busy_marginal = per-video CPU / per-video wall.")
    return {"machine": machine, "versions": versions, "config": config, "engine_startup_s": startup,
            "warmup_2_videos": warmup, "results": results, "ratios": ratios, "records": sizes_info, "runs": runs,
            "leftover_processes": [c for _, _, c in left], "bench_wall_s": round(time.perf_counter() - started, 1),
            "note": note}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="8,64", help="two video counts: the line through them gives start-up and "
                                                    "per-video cost")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each test video")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--engines", default="direct,prism,flink")
    ap.add_argument("--poll", type=float, default=0.25, help="seconds between /proc readings of the process tree")
    ap.add_argument("--workdir", help="keep (and reuse) the test videos and the model here; default: a temp dir")
    ap.add_argument("--out", help="also write the JSON document to this file")
    args = ap.parse_args(argv)
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="vidclass-bench-engines-"))
    os.makedirs(workdir, exist_ok=True)
    tf.get_logger().setLevel("ERROR")
    try:
        result = bench(args, workdir)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    media.emit(result, args.out)
    failed = any("error" in r for r in [*result["runs"], *result["warmup_2_videos"].values()])
    return 1 if result["leftover_processes"] or failed else 0


if __name__ == "__main__":
    sys.exit(main())
