"""Start and stop local Beam engines as real processes on 127.0.0.1, for tests and experiments.

Everything here starts processes that live only inside a ``with`` block:

* :func:`flink_cluster` -- a standalone Flink session cluster: one JobManager and N TaskManagers, each its
  own JVM, configured from a fresh conf dir under ``workdir``; ready once the REST API's ``/overview``
  counts N TaskManagers.
* :func:`job_server` -- Beam's Flink job server (``FlinkJobServerDriver``), which turns a portable Beam
  pipeline into a Flink job and submits it to the cluster's REST endpoint.
* :func:`worker_pool` -- a Beam Python SDK worker pool (``worker_pool_main``) for the ``EXTERNAL``
  environment (no Docker). Fine for Prism and for a single TaskManager; NOT for several TaskManagers on
  one host: they all number their harnesses ``1-1``, ``2-1``, ... and the shared pool then stops one
  TaskManager's harness when the other one is done with its own, and the job hangs.
* :func:`prism` -- Beam's Prism runner as a separate job-service process (optional: ``PrismRunner`` can
  also start the binary itself, see :func:`prism_pipeline_args`).

Flink pipelines default to the ``PROCESS`` environment instead (:func:`process_environment_args`): each
TaskManager starts its own Python SDK harnesses with ``engines/beam_boot.sh`` -> ``sdk_worker_boot.py``,
a Docker-free stand-in for the SDK container's boot program.

Each process runs in its own process group (its own session), logs to a file under ``workdir``, and is
stopped with its whole group (SIGTERM, then SIGKILL) when the block exits, whatever happened in it; on a
start-up failure the error carries the tail of the relevant log. :func:`leftover_processes` lists anything
still alive in the groups this module started, which is how the tests check that nothing is left behind.

Artifacts (the Flink distribution, the job-server jar, the prism binary) come from ``engines/fetch.sh``
into ``.engines/`` at the repository root; :func:`find_artifacts` locates them. The module imports only the
standard library, so tests can import it without Beam or vidclass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any, Iterator, Sequence

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
#: Where ``engines/fetch.sh`` puts everything; override with ``VIDCLASS_ENGINES_DIR``.
ENGINES_DIR = pathlib.Path(os.environ.get("VIDCLASS_ENGINES_DIR", REPO_ROOT / ".engines"))

#: Versions fetched by ``engines/fetch.sh`` (keep the two in step). Beam's Flink job server is not served
#: by the registry reachable here at any version; fetch.sh builds it from the runner artifact at 2.62.0,
#: the newest whose whole dependency tree resolves, and it speaks the same portability API (job service,
#: artifact staging, Fn API) as the 2.77.0 Python SDK.
FLINK_VERSION = "1.19.3"
BEAM_VERSION = "2.77.0"
JOB_SERVER_FALLBACK_BEAM_VERSION = "2.62.0"
#: Job-server jars in order of preference: Beam's own at the SDK's version (if Maven ever serves it), then
#: the one fetch.sh builds from the 2.62.0 runner artifact.
JOB_SERVER_JAR_NAMES = tuple(
    f"beam-runners-flink-1.19-job-server-{v}.jar" for v in (BEAM_VERSION, JOB_SERVER_FALLBACK_BEAM_VERSION)
)

LOOPBACK = "127.0.0.1"

#: The command of the PROCESS environment (a shell wrapper around ``sdk_worker_boot.py``).
BOOT_COMMAND = pathlib.Path(__file__).resolve().parent / "beam_boot.sh"

# The JVM flags Flink's own config.yaml passes on Java 17 (module opens for Kryo and friends); the job
# server needs the same ones because it runs Flink's client and serializes the job graph.
JAVA17_OPENS = (
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED "
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED "
    "--add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED "
    "--add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED "
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED "
    "--add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED "
    "--add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED "
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED "
    "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED"
)


class EngineError(RuntimeError):
    """A process of an engine failed to start, died, or did not become ready in time."""


# --------------------------------------------------------------------------------------------------
# Artifacts


@dataclasses.dataclass(frozen=True)
class Artifacts:
    """Paths of what ``engines/fetch.sh`` installs."""

    flink_home: pathlib.Path
    job_server_jar: pathlib.Path
    prism: pathlib.Path

    def missing(self) -> list[str]:
        """Human-readable list of the artifacts that are not there (empty when all are)."""
        out = []
        if not (self.flink_home / "bin" / "jobmanager.sh").is_file() or not any(
            (self.flink_home / "lib").glob("flink-dist-*.jar")
        ):
            out.append(f"Flink distribution ({self.flink_home})")
        if not self.job_server_jar.is_file():
            out.append(f"Beam Flink job-server jar ({self.job_server_jar})")
        if not (self.prism.is_file() and os.access(self.prism, os.X_OK)):
            out.append(f"prism binary ({self.prism})")
        return out


def find_artifacts(engines_dir: os.PathLike[str] | str | None = None) -> Artifacts:
    """Where the artifacts are (or would be) under ``engines_dir`` (default :data:`ENGINES_DIR`)."""
    root = pathlib.Path(engines_dir) if engines_dir is not None else ENGINES_DIR
    jars = [root / name for name in JOB_SERVER_JAR_NAMES]
    return Artifacts(
        flink_home=root / f"flink-{FLINK_VERSION}",
        job_server_jar=next((j for j in jars if j.is_file()), jars[-1]),
        prism=root / "bin" / "prism",
    )


# --------------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the usual small race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: os.PathLike[str] | str, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


# Process groups started by this module in this interpreter (for leftover checks).
_STARTED_GROUPS: set[int] = set()


@dataclasses.dataclass
class ManagedProcess:
    """One started process (and its process group), with its log file."""

    name: str
    argv: list[str]
    log: pathlib.Path
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def pgid(self) -> int:
        # start_new_session=True makes the child a session and group leader: pgid == pid.
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        return tail(self.log, lines)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the whole process group, wait, then SIGKILL whatever is left of the group."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                self.popen.poll()
                if not _group_members({self.pgid}):
                    break
                time.sleep(0.1)
            else:
                continue
            break
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILLed above
            pass


def _load_prctl() -> Any:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (ImportError, OSError, AttributeError):  # not Linux/glibc: no parent-death signal
        return None


# Resolved once in the parent: the child between fork and exec must not import anything (another thread
# of the parent may have held the import lock at fork time).
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the launching thread dies (Linux), so that a killed test
    run (SIGKILL, or SIGTERM with no cleanup) leaves no JVM behind. The setting survives exec. It is tied
    to the *thread* that started the process: start engines from a thread that outlives them (pytest's
    main thread does)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def start_process(
    name: str,
    argv: Sequence[str],
    log: pathlib.Path,
    env: dict[str, str] | None = None,
    cwd: os.PathLike[str] | str | None = None,
) -> ManagedProcess:
    """Start ``argv`` in a new session (its own process group), stdout+stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%H:%M:%S')} starting {name}: {' '.join(argv)}\n".encode())
        out.flush()
        popen = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    _STARTED_GROUPS.add(popen.pid)
    return ManagedProcess(name=name, argv=list(argv), log=log, popen=popen)


def _group_members(pgids: set[int]) -> list[tuple[int, int, str]]:
    """(pid, pgid, cmdline) of every live, non-zombie process whose group is in ``pgids``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
            # pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
            fields = stat[stat.rindex(")") + 2 :].split()
            state, pgrp = fields[0], int(fields[2])
            if pgrp not in pgids or state == "Z":
                continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            found.append((int(entry.name), pgrp, cmd))
        except (OSError, ValueError, IndexError):
            continue
    return found


def leftover_processes() -> list[tuple[int, int, str]]:
    """Live processes (pid, pgid, cmdline) in any process group this module started in this interpreter.

    Empty once every context manager has exited: the tests assert exactly that.
    """
    return _group_members(set(_STARTED_GROUPS))


def _stop_all(processes: Sequence[ManagedProcess]) -> None:
    for p in reversed(processes):
        p.stop()


def _wait_until(
    what: str,
    ready: Any,
    processes: Sequence[ManagedProcess],
    timeout: float,
    interval: float = 0.5,
) -> Any:
    """Poll ``ready()`` until it returns a truthy value; raise with log tails if a process dies or time runs out."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        for p in processes:
            if not p.alive():
                raise EngineError(
                    f"{p.name} exited with status {p.popen.returncode} while waiting for {what}; "
                    f"last lines of {p.log}:\n{p.tail()}"
                )
        try:
            value = ready()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - any failure just means "not ready yet"
            last_error = e
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name} ({p.log}):\n{p.tail(25)}" for p in processes)
            raise EngineError(
                f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error!r})\n{tails}"
            )
        time.sleep(interval)


def _java_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if "JAVA_HOME" not in env:
        java = shutil.which("java")
        if java:
            env["JAVA_HOME"] = str(pathlib.Path(java).resolve().parent.parent)
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------------------------------
# Flink


@dataclasses.dataclass
class FlinkCluster:
    """A running standalone Flink session cluster."""

    flink_home: pathlib.Path
    workdir: pathlib.Path
    conf_dir: pathlib.Path
    rest_port: int
    rpc_port: int
    jobmanager: ManagedProcess
    taskmanagers: list[ManagedProcess]

    @property
    def rest_url(self) -> str:
        return f"http://{LOOPBACK}:{self.rest_port}"

    @property
    def master(self) -> str:
        """``host:port`` of the REST endpoint: what Beam calls ``--flink_master`` / ``--flink-master``."""
        return f"{LOOPBACK}:{self.rest_port}"

    @property
    def processes(self) -> list[ManagedProcess]:
        return [self.jobmanager, *self.taskmanagers]

    def rest(self, path: str, timeout: float = 5.0) -> Any:
        """GET ``path`` from the REST API, decoded from JSON."""
        with urllib.request.urlopen(self.rest_url + path, timeout=timeout) as r:
            return json.loads(r.read().decode())

    def overview(self) -> dict[str, Any]:
        """``/overview``: taskmanagers, slots-total, jobs-finished, ..."""
        overview: dict[str, Any] = self.rest("/overview")
        return overview

    def jobs(self) -> list[dict[str, Any]]:
        """``/jobs/overview``: every job this cluster knows, newest first."""
        return sorted(self.rest("/jobs/overview")["jobs"], key=lambda j: -j.get("start-time", 0))

    def job_taskmanagers(self, job_id: str) -> set[str]:
        """IDs of the TaskManagers that ran at least one subtask of ``job_id``."""
        ids: set[str] = set()
        for vertex in self.rest(f"/jobs/{job_id}")["vertices"]:
            info = self.rest(f"/jobs/{job_id}/vertices/{vertex['id']}/taskmanagers")
            for tm in info.get("taskmanagers", []):
                if tm.get("taskmanager-id"):
                    ids.add(tm["taskmanager-id"])
        return ids


def _flink_config(
    workdir: pathlib.Path, rest_port: int, rpc_port: int, slots: int, parallelism: int,
    jobmanager_memory: str, taskmanager_memory: str, extra: dict[str, Any] | None,
) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "jobmanager.rpc.address": LOOPBACK,
        "jobmanager.rpc.port": rpc_port,
        "jobmanager.bind-host": LOOPBACK,
        "jobmanager.memory.process.size": jobmanager_memory,
        "jobmanager.execution.failover-strategy": "region",
        "taskmanager.host": LOOPBACK,
        "taskmanager.bind-host": LOOPBACK,
        "taskmanager.numberOfTaskSlots": slots,
        "taskmanager.memory.process.size": taskmanager_memory,
        # Beam's batch translation has many operators, each with network buffers in every slot: the default
        # 10% of a small TaskManager's memory runs out at 2 slots ("Insufficient number of network buffers").
        # Beam's batch translation deploys ~13 blocking result partitions into one slot at once, each taking
        # 512 buffers of 32 KB: at 1280m and 25%, a preprocess of 8 videos failed with "Insufficient number
        # of network buffers: required 512, but only 499 available" (bench/engines.py).
        "taskmanager.memory.network.fraction": 0.35,
        "taskmanager.memory.managed.fraction": 0.3,
        "cluster.evenly-spread-out-slots": True,
        "parallelism.default": parallelism,
        "rest.address": LOOPBACK,
        "rest.bind-address": LOOPBACK,
        "rest.port": rest_port,
        "blob.server.port": "0",
        "io.tmp.dirs": str(workdir / "tmp"),
        "web.tmpdir": str(workdir / "web"),
        "web.upload.dir": str(workdir / "web-upload"),
        # --flink_submit_uber_jar uploads a copy of the ~160 MB job-server jar; the default limit is 100 MiB.
        "rest.server.max-content-length": 512 * 1024 * 1024,
        # Tests want a failing job to fail, not to be retried forever.
        "restart-strategy.type": "none",
        "env.java.opts.all": f"{JAVA17_OPENS} -Djava.io.tmpdir={workdir / 'tmp'}",
    }
    conf.update(extra or {})
    return conf


@contextlib.contextmanager
def flink_cluster(
    workdir: os.PathLike[str] | str,
    taskmanagers: int = 2,
    slots: int = 1,
    *,
    flink_home: os.PathLike[str] | str | None = None,
    parallelism: int | None = None,
    jobmanager_memory: str = "1024m",
    taskmanager_memory: str = "2560m",
    config: dict[str, Any] | None = None,
    timeout: float = 120.0,
) -> Iterator[FlinkCluster]:
    """Run a Flink session cluster: one JobManager and ``taskmanagers`` TaskManagers, each a separate JVM.

    All of it binds to 127.0.0.1 on free ports; conf, logs and temp files live under ``workdir``. The
    block is entered once ``/overview`` reports ``taskmanagers`` registered TaskManagers; on exit every
    process group is stopped. ``slots`` is per TaskManager; with the default 1 slot each, a job of
    parallelism 2 is spread over two TaskManagers. ``config`` adds or overrides Flink options.
    """
    workdir = pathlib.Path(workdir).resolve()
    home = pathlib.Path(flink_home) if flink_home else find_artifacts().flink_home
    if not (home / "bin" / "jobmanager.sh").is_file():
        raise EngineError(f"no Flink distribution at {home}: run engines/fetch.sh")
    conf_dir, log_dir = workdir / "conf", workdir / "log"
    for d in (conf_dir, log_dir, workdir / "tmp", workdir / "web", workdir / "web-upload"):
        d.mkdir(parents=True, exist_ok=True)
    # Start from the distribution's conf (log4j files), then write our own config.yaml. Flink 1.19
    # reads config.yaml as standard YAML; JSON scalars are valid YAML, so json.dumps quotes safely.
    for f in (home / "conf").iterdir():
        if f.is_file() and f.name not in ("config.yaml", "flink-conf.yaml"):
            shutil.copy2(f, conf_dir / f.name)
    rest_port, rpc_port = free_port(), free_port()
    conf = _flink_config(
        workdir, rest_port, rpc_port, slots, parallelism or taskmanagers * slots,
        jobmanager_memory, taskmanager_memory, config,
    )
    (conf_dir / "config.yaml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in conf.items()))

    # TMPDIR reaches the SDK harnesses the TaskManagers start (they inherit the TaskManager's environment):
    # their semi-persistent dirs, which a killed harness cannot clean up, stay inside workdir.
    env = _java_env({"FLINK_CONF_DIR": str(conf_dir), "FLINK_LOG_DIR": str(log_dir),
                     "FLINK_PID_DIR": str(workdir), "TMPDIR": str(workdir / "tmp"),
                     "BEAM_BOOT_LOG_DIR": str(log_dir)})
    started: list[ManagedProcess] = []
    try:
        jm = start_process("flink-jobmanager", [str(home / "bin" / "jobmanager.sh"), "start-foreground"],
                           log_dir / "jobmanager.out", env=env, cwd=workdir)
        started.append(jm)
        tms = []
        for i in range(taskmanagers):
            tm = start_process(
                f"flink-taskmanager-{i + 1}",
                [str(home / "bin" / "taskmanager.sh"), "start-foreground",
                 f"-Dtaskmanager.resource-id=tm-{i + 1}"],
                log_dir / f"taskmanager-{i + 1}.out", env=env, cwd=workdir,
            )
            started.append(tm)
            tms.append(tm)
        cluster = FlinkCluster(home, workdir, conf_dir, rest_port, rpc_port, jm, tms)
        _wait_until(
            f"{taskmanagers} TaskManagers registered at {cluster.rest_url}/overview",
            lambda: cluster.overview().get("taskmanagers") == taskmanagers,
            started, timeout,
        )
        yield cluster
    finally:
        _stop_all(started)


# --------------------------------------------------------------------------------------------------
# Beam's Flink job server


@dataclasses.dataclass
class JobServer:
    """A running Beam job server (job service + artifact staging service)."""

    process: ManagedProcess
    job_port: int
    artifact_port: int

    @property
    def endpoint(self) -> str:
        """What Beam calls ``--job_endpoint``."""
        return f"{LOOPBACK}:{self.job_port}"


@contextlib.contextmanager
def job_server(
    jar: os.PathLike[str] | str,
    flink_master: str,
    workdir: os.PathLike[str] | str,
    *,
    java: str = "java",
    heap: str = "768m",
    timeout: float = 90.0,
) -> Iterator[JobServer]:
    """Run Beam's ``FlinkJobServerDriver`` from ``jar`` against ``flink_master`` (``host:rest_port``).

    Staged artifacts go under ``workdir/artifacts`` (the TaskManagers read them from there, which works
    because they share this machine's disk); the log is ``workdir/job-server.log``. The expansion service
    is disabled. Entered once the job port accepts connections.
    """
    workdir = pathlib.Path(workdir).resolve()
    jar = pathlib.Path(jar)
    if not jar.is_file():
        raise EngineError(f"no job-server jar at {jar}: run engines/fetch.sh")
    (workdir / "artifacts").mkdir(parents=True, exist_ok=True)
    job_port, artifact_port = free_port(), free_port()
    argv = [
        java, f"-Xmx{heap}", *JAVA17_OPENS.split(), f"-Djava.io.tmpdir={workdir / 'tmp'}",
        "-jar", str(jar),
        f"--flink-master={flink_master}",
        f"--job-host={LOOPBACK}", f"--job-port={job_port}", f"--artifact-port={artifact_port}",
        "--expansion-port=-1",
        f"--artifacts-dir={workdir / 'artifacts'}",
    ]
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    proc = start_process("beam-flink-job-server", argv, workdir / "job-server.log", env=_java_env(), cwd=workdir)
    try:
        _wait_until(f"the job server on {LOOPBACK}:{job_port}",
                    lambda: port_open(job_port) and port_open(artifact_port), [proc], timeout)
        yield JobServer(proc, job_port, artifact_port)
    finally:
        proc.stop()


# --------------------------------------------------------------------------------------------------
# Python SDK worker pool (EXTERNAL environment)


@dataclasses.dataclass
class WorkerPool:
    """A running ``apache_beam.runners.worker.worker_pool_main``."""

    process: ManagedProcess
    port: int

    @property
    def endpoint(self) -> str:
        """What Beam calls ``--environment_config`` for ``--environment_type=EXTERNAL``."""
        return f"localhost:{self.port}"


@contextlib.contextmanager
def worker_pool(
    workdir: os.PathLike[str] | str,
    *,
    python: str | None = None,
    env: dict[str, str] | None = None,
    boot: bool = False,
    timeout: float = 60.0,
) -> Iterator[WorkerPool]:
    """Run a Beam Python SDK worker pool with ``python`` (default: this interpreter).

    The pool starts one SDK harness subprocess per ``StartWorker`` request, as the bare command
    ``python -c ...`` found on ``PATH``: so ``PATH`` is set to start with ``python``'s directory, or the
    harnesses would run whatever ``python`` the shell finds (a different environment, no Beam). The
    harnesses share the pool's process group, so stopping the pool stops them too. Note that the pool
    listens on all interfaces (``[::]:port``); Beam has no flag to bind it to loopback only.

    One pool must serve one runner process: Flink TaskManagers sharing a pool collide on worker ids (see
    the module docstring); use :func:`process_environment_args` for them.
    """
    workdir = pathlib.Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    python = python or sys.executable
    port = free_port()
    penv = dict(os.environ)
    penv.update(env or {})
    bindir = str(pathlib.Path(python).parent)
    penv["PATH"] = bindir + os.pathsep + penv.get("PATH", "")
    argv = [python, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"]
    if boot:
        # Harnesses through the boot stand-in: it fetches the ProvisionInfo, so each harness gets the
        # pipeline options (Beam's own S3/GCS filesystems need them); the bare pool starts SdkHarness
        # without any, as it does in Beam 2.77.
        penv["BEAM_BOOT_PYTHON"] = python
        argv.append(f"--container_executable={BOOT_COMMAND}")
    proc = start_process("beam-worker-pool", argv, workdir / f"worker-pool-{port}.log", env=penv, cwd=workdir)
    try:
        _wait_until(f"the worker pool on port {port}", lambda: port_open(port), [proc], timeout)
        yield WorkerPool(proc, port)
    finally:
        proc.stop()


# --------------------------------------------------------------------------------------------------
# Prism


@dataclasses.dataclass
class Prism:
    """A running Prism job service."""

    process: ManagedProcess
    job_port: int

    @property
    def endpoint(self) -> str:
        return f"localhost:{self.job_port}"


@contextlib.contextmanager
def prism(
    workdir: os.PathLike[str] | str,
    binary: os.PathLike[str] | str | None = None,
    *,
    log_level: str = "info",
    timeout: float = 60.0,
) -> Iterator[Prism]:
    """Run Prism as a standalone job service (``--job_port``, no web UI), logging to ``workdir/prism.log``.

    Pipelines reach it with ``prism_pipeline_args(job_endpoint=p.endpoint)``. Useful to share one Prism
    across many pipelines or processes; a single launcher can instead let ``PrismRunner`` start its own.
    """
    workdir = pathlib.Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    binary = pathlib.Path(binary) if binary else find_artifacts().prism
    if not binary.is_file():
        raise EngineError(f"no prism binary at {binary}: run engines/fetch.sh")
    port = free_port()
    argv = [str(binary), f"--job_port={port}", f"--log_level={log_level}", "--log_kind=text",
            "--serve_http=false"]
    proc = start_process("prism", argv, workdir / "prism.log", cwd=workdir)
    try:
        _wait_until(f"prism on port {port}", lambda: port_open(port), [proc], timeout)
        yield Prism(proc, port)
    finally:
        proc.stop()


# --------------------------------------------------------------------------------------------------
# Beam flags


def process_environment_args(
    python: str | None = None, pythonpath: Sequence[os.PathLike[str] | str] = ()
) -> list[str]:
    """``--environment_type=PROCESS`` flags: each TaskManager starts its own Python SDK harnesses with
    ``engines/beam_boot.sh`` (-> ``sdk_worker_boot.py``) under ``python`` (default: this interpreter).

    Code the harness unpickles must be importable there: installed in ``python``'s environment (as
    vidclass is, editable) or in a directory listed in ``pythonpath`` (e.g. a test's own folder, which
    pytest puts on the launcher's ``sys.path`` only)."""
    env = {"BEAM_BOOT_PYTHON": python or sys.executable}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(pathlib.Path(p).resolve()) for p in pythonpath)
    config = {"command": str(BOOT_COMMAND), "env": env}
    return ["--environment_type=PROCESS", f"--environment_config={json.dumps(config)}"]


def external_environment_args(worker_pool_endpoint: str) -> list[str]:
    """``--environment_type=EXTERNAL`` flags for a :func:`worker_pool`."""
    return ["--environment_type=EXTERNAL", f"--environment_config={worker_pool_endpoint}"]


def flink_pipeline_args(
    job_endpoint: str,
    *,
    parallelism: int = 2,
    environment: Sequence[str] | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """Beam Python flags that run a pipeline on the Flink cluster behind ``job_endpoint`` (a :func:`job_server`).

    ``PortableRunner`` talks to the already-running job server (no jar download, no JVM per pipeline).
    ``environment`` defaults to :func:`process_environment_args` (robust with several TaskManagers on one
    host); :func:`external_environment_args` is the alternative for one TaskManager per host.
    ``--environment_cache_millis`` keeps a TaskManager's harness alive between the stages of a job.
    """
    return [
        "--runner=PortableRunner",
        f"--job_endpoint={job_endpoint}",
        *(process_environment_args() if environment is None else environment),
        f"--parallelism={parallelism}",
        "--environment_cache_millis=10000",
        *extra,
    ]


def flink_runner_args(
    flink_master: str,
    job_server_jar: os.PathLike[str] | str,
    *,
    parallelism: int = 2,
    environment: Sequence[str] | None = None,
    submit_uber_jar: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """Beam flags for ``FlinkRunner`` when no job server runs: Beam starts the jar itself (a JVM per
    launcher process), or with ``submit_uber_jar`` packs the pipeline into a copy of the jar and uploads
    it to Flink's REST API (no job server at all, but ~160 MB uploaded per pipeline).
    ``--flink_job_server_jar`` must point at a local jar or Beam tries to download one from Maven Central.
    """
    args = [
        "--runner=FlinkRunner",
        f"--flink_master={flink_master}",
        f"--flink_job_server_jar={job_server_jar}",
        *(process_environment_args() if environment is None else environment),
        f"--parallelism={parallelism}",
        *extra,
    ]
    if submit_uber_jar:
        args.append("--flink_submit_uber_jar")
    return args


def prism_pipeline_args(
    prism_binary: os.PathLike[str] | str | None = None,
    *,
    job_endpoint: str | None = None,
    environment_type: str = "LOOPBACK",
    worker_pool_endpoint: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """Beam Python flags for Prism, never downloading anything.

    With ``job_endpoint`` (a :func:`prism` process) the pipeline goes there; otherwise ``PrismRunner``
    starts ``prism_binary`` itself (a local, non-zip path is used as is: nothing is fetched from GitHub).
    ``LOOPBACK`` runs the SDK harness inside the launching process; ``EXTERNAL`` needs a worker pool.
    """
    binary = pathlib.Path(prism_binary) if prism_binary else find_artifacts().prism
    args = ["--runner=PrismRunner", f"--prism_location={binary}"]
    if job_endpoint:
        args.append(f"--job_endpoint={job_endpoint}")
    if environment_type == "EXTERNAL":
        if not worker_pool_endpoint:
            raise ValueError("EXTERNAL needs worker_pool_endpoint")
        args += ["--environment_type=EXTERNAL", f"--environment_config={worker_pool_endpoint}"]
    else:
        args.append(f"--environment_type={environment_type}")
    return [*args, *extra]
