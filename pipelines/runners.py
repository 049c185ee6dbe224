"""Which Beam runner a pipeline runs on, with what settings, checked before any work is done.

On a laptop: Beam's FnApiRunner on threads, one per core. Beam 2.77's DirectRunner first tries to fetch and
start Prism from GitHub (offline: a failed download and a fall-back on every run; online: a different
engine that ignores the thread settings), so "DirectRunner" is run as the FnApiRunner it falls back to.

On a cluster, the pre-flight turns what would fail minutes (or a traceback of 118 lines) later into one
line and exit 2 before anything is written: local paths the workers cannot see, a cloud extra that is not
installed, a runner binary or job server that is not there.
"""
from __future__ import annotations

import importlib.util
import os
import urllib.request

from apache_beam.options.pipeline_options import (DirectOptions, FlinkRunnerOptions, GoogleCloudOptions,
                                                  JobServerOptions, PipelineOptions, PortableOptions,
                                                  PrismRunnerOptions, SparkRunnerOptions, StandardOptions)

from vidclass import errors, video

FN_API_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
_DIRECT = {"direct", "directrunner", "fnapirunner", FN_API_RUNNER.lower(), "switchingdirectrunner"}
_LOCAL_MASTERS = ("[auto]", "[local]", "localhost", "127.0.0.1", "local")
# scheme -> (modules vidclass's own access and Beam's IO need, the extra that installs them)
_SCHEME_NEEDS = {"s3": (("s3fs", "boto3"), "s3"), "gs": (("gcsfs", "google.cloud.storage"), "gcp")}


def runner_name(options: PipelineOptions) -> str:
    """The runner's short name, lower case: 'direct', 'prismrunner', 'flinkrunner', 'dataflowrunner'..."""
    runner = options.view_as(StandardOptions).runner
    name = str(runner if runner is not None else "direct").lower()
    return "direct" if name in _DIRECT else name.rsplit(".", 1)[-1]


def is_local(options: PipelineOptions) -> bool:
    """Runs on this machine: the FnApiRunner, Prism, or a Flink/Spark/portable job server on loopback."""
    name = runner_name(options)
    if name in ("direct", "prismrunner", "prism"):
        return True
    if name in ("flinkrunner", "flink"):
        return options.view_as(FlinkRunnerOptions).flink_master.split(":")[0] in _LOCAL_MASTERS
    if name in ("sparkrunner", "spark"):
        return options.view_as(SparkRunnerOptions).spark_master_url.startswith("local")
    if name in ("portablerunner", "portable"):
        endpoint = options.view_as(PortableOptions).job_endpoint or ""
        return endpoint.split(":")[0] in _LOCAL_MASTERS or endpoint in ("", "embed")
    return False


def laptop_defaults(options: PipelineOptions, flags: list[str]) -> None:
    """On the direct runner, use every core by default: threads, since decoding runs in child processes
    (measured: 2 threads 8.2 s vs 15.2 s in_memory for 40 videos)."""
    if runner_name(options) != "direct":
        return
    direct = options.view_as(DirectOptions)
    if not any(f.startswith("--direct_running_mode") for f in flags):
        direct.direct_running_mode = "multi_threading"
    if not any(f.startswith("--direct_num_workers") for f in flags):
        direct.direct_num_workers = os.cpu_count() or 1
    options.view_as(StandardOptions).runner = FN_API_RUNNER


def decoder_threads(options: PipelineOptions) -> int:
    """FFmpeg threads per video: one per video wherever several decode at once (every runner but a single
    direct worker)."""
    single = runner_name(options) == "direct" and (options.view_as(DirectOptions).direct_num_workers or 1) <= 1
    return video.decoder_threads(1 if single else 2)


def _scheme(path: str) -> str:
    return path.split("://", 1)[0].lower() if "://" in path else "file"


def _only_here(path: str) -> bool:
    """A path other machines cannot see: a plain local path or memory://. An explicit file:// URL says the
    user mounts it on every worker (NFS, a cluster file system), and is trusted."""
    return "://" not in path or _scheme(path) == "memory"


def preflight(options: PipelineOptions, paths: dict[str, str | None]) -> None:
    """Refuse (`UsageError`) what cannot work on this runner, before anything is read or written.

    paths: flag -> value, for every path the workers read or write (`--input`, `--output`, ...)."""
    given = {flag: p for flag, p in paths.items() if p}
    gcp = options.view_as(GoogleCloudOptions)
    for flag, value in (("--temp_location", gcp.temp_location), ("--staging_location", gcp.staging_location)):
        if value:
            given[flag] = value
    name = runner_name(options)
    if not is_local(options):
        local = {flag: p for flag, p in given.items() if _only_here(p)}
        if local:
            flag, path = next(iter(local.items()))
            raise errors.UsageError(f"{flag} {path} is a path on this machine, but --runner "
                                    f"{options.view_as(StandardOptions).runner} runs on machines that cannot see it: "
                                    "use gs://, s3:// or another store they share (file:///... for a file "
                                    "system mounted on every worker)")
    for flag, path in given.items():
        needs, extra = _SCHEME_NEEDS.get(_scheme(path), ((), ""))
        missing = [m for m in needs if importlib.util.find_spec(m.split(".")[0]) is None]
        if missing:
            raise errors.UsageError(f"{flag} {path}: {_scheme(path)}:// needs {', '.join(missing)}; install the "
                                    f"extra: pip install 'vidclass[{extra}]'")
    if name in ("dataflowrunner", "dataflow"):
        _dataflow(options)
    elif name in ("prismrunner", "prism"):
        _prism(options)
    elif name in ("flinkrunner", "flink"):
        _flink(options)


def _dataflow(options: PipelineOptions) -> None:
    if importlib.util.find_spec("apitools") is None or importlib.util.find_spec("google.cloud.storage") is None:
        raise errors.UsageError("--runner DataflowRunner needs Beam's GCP extra: pip install 'vidclass[gcp]'")
    gcp = options.view_as(GoogleCloudOptions)
    for flag, value in (("--project", gcp.project), ("--region", gcp.region), ("--temp_location", gcp.temp_location)):
        if not value:
            raise errors.UsageError(f"--runner DataflowRunner needs {flag}")


def _prism(options: PipelineOptions) -> None:
    from apache_beam.runners.portability.prism_runner import PrismJobServer
    location = options.view_as(PrismRunnerOptions).prism_location
    if location and "://" not in location and not os.access(location, os.X_OK):
        raise errors.UsageError(f"--prism_location {location}: no executable prism binary there")
    cached = os.path.join(PrismJobServer.BIN_CACHE, "prism")
    if not location and not os.access(cached, os.X_OK):
        raise errors.UsageError("--runner PrismRunner needs a prism binary: build one with `go install "
                                "github.com/apache/beam/sdks/v2/go/cmd/prism@v2.77.0` and pass --prism_location "
                                "$(go env GOPATH)/bin/prism (README 'Running on Prism')")


def _flink(options: PipelineOptions) -> None:
    flink = options.view_as(FlinkRunnerOptions)
    jar = flink.flink_job_server_jar
    if jar and "://" not in jar and not os.path.isfile(jar):
        raise errors.UsageError(f"--flink_job_server_jar {jar}: no such file")
    if options.view_as(PortableOptions).job_endpoint:
        return  # a job server the user started: Beam reports if it does not answer
    if not jar and not _cached_job_server_jar(flink):
        raise errors.UsageError("--runner FlinkRunner needs Beam's Flink job server jar: pass "
                                "--flink_job_server_jar (fetch it with `engines/fetch.sh`, README 'Running on Flink')")
    master = flink.flink_master
    if master not in ("[auto]", "[local]"):
        try:
            urllib.request.urlopen(f"http://{master}/overview", timeout=5).read()
        except OSError as e:
            raise errors.UsageError(f"--flink_master {master}: no Flink REST API answers there ({e})") from None


def _cached_job_server_jar(flink: FlinkRunnerOptions) -> bool:
    """Whether Beam already has the job server jar it would otherwise download from Maven Central."""
    from apache_beam.utils.subprocess_server import JavaJarServer
    folder = JavaJarServer.JAR_CACHE if not flink.view_as(JobServerOptions).jar_cache_dir else \
        flink.view_as(JobServerOptions).jar_cache_dir
    version = flink.flink_version
    return os.path.isdir(folder) and any(f"flink-{version}-job-server" in name for name in os.listdir(folder))
