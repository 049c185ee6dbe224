"""Session fixtures that start real Beam engines (engines/cluster.py) for the `engines` tests.

Run with ``pytest -m engines tests/engines`` after ``engines/fetch.sh``; the default ``pytest`` run
deselects these tests (pytest.ini). Without the artifacts in ``.engines/`` they are skipped, saying which
are missing. Every process started here is stopped at the end of the session, and the last fixture to
close fails the session if any of them is still alive.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Iterator

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from engines import cluster  # noqa: E402


def _engines_selected(config: pytest.Config) -> bool:
    """Whether the -m expression asks for the engines tests specifically: true for a test marked only
    `engines`, false for an unmarked one. So `-m engines` selects them, while the default
    `-m "not slow and not engines"` and a catch-all like `-m "slow or not slow"` do not."""
    expr = config.getoption("markexpr", default="") or ""
    if not expr:
        return False
    try:
        from _pytest.mark.expression import Expression

        compiled = Expression.compile(expr)

        def evaluate(marks: set[str]) -> bool:
            return bool(compiled.evaluate(lambda name, **kwargs: name in marks))

        return evaluate({"engines"}) and not evaluate(set())
    except Exception:  # noqa: BLE001 - an unknown pytest internals change: fall back on a plain reading
        return "engines" in expr and "not engines" not in expr


def pytest_ignore_collect(collection_path: pathlib.Path, config: pytest.Config) -> bool | None:
    # Not even imported (no Beam import, no fixtures) unless the engines tests were asked for.
    if collection_path.suffix == ".py" and not _engines_selected(config):
        return True
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything in this folder needs the engines: mark it, whatever the test forgot.
    for item in items:
        if HERE in pathlib.Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.engines)


@pytest.fixture(scope="session")
def artifacts() -> cluster.Artifacts:
    found = cluster.find_artifacts()
    missing = found.missing()
    if missing:
        pytest.skip("engine artifacts missing (run engines/fetch.sh): " + "; ".join(missing))
    return found


@pytest.fixture(scope="session")
def no_leftovers() -> Iterator[None]:
    """Requested first by the engine fixtures, so it closes last: then nothing may be left running."""
    yield
    left = cluster.leftover_processes()
    if left:
        for pid, _, _ in left:
            try:
                import os
                import signal

                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        pytest.fail(f"processes left running after the engines stopped: {left}")


@pytest.fixture(scope="session")
def flink(artifacts, no_leftovers, tmp_path_factory) -> Iterator[tuple[cluster.FlinkCluster, cluster.JobServer]]:
    """A Flink cluster (JobManager + 2 TaskManagers, 1 slot each) and Beam's job server in front of it."""
    workdir = tmp_path_factory.mktemp("flink")
    with cluster.flink_cluster(workdir / "cluster", taskmanagers=2, slots=1,
                               flink_home=artifacts.flink_home) as fc:
        with cluster.job_server(artifacts.job_server_jar, fc.master, workdir / "job-server") as js:
            yield fc, js


@pytest.fixture(scope="session")
def flink_args(flink) -> list[str]:
    """Pipeline flags for the `flink` fixture: PortableRunner, PROCESS harnesses, parallelism 2."""
    _, js = flink
    return cluster.flink_pipeline_args(
        js.endpoint, parallelism=2, environment=cluster.process_environment_args(pythonpath=[HERE])
    )


@pytest.fixture(scope="session")
def prism(artifacts, no_leftovers, tmp_path_factory) -> Iterator[cluster.Prism]:
    """A Prism job service started from the fetched binary (a process this session owns and stops)."""
    with cluster.prism(tmp_path_factory.mktemp("prism"), artifacts.prism) as p:
        yield p


@pytest.fixture(scope="session")
def prism_args(artifacts, prism) -> list[str]:
    """PrismRunner against the `prism` fixture, SDK harness inside this process (LOOPBACK)."""
    return cluster.prism_pipeline_args(artifacts.prism, job_endpoint=prism.endpoint, environment_type="LOOPBACK")
