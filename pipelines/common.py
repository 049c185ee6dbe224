"""What both pipelines need from Beam: flag checking, the staged task list, progress on stderr.

Runner choice and its checks live in `runners.py`."""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import sys
import threading
import time

import apache_beam as beam
import fsspec
from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from pipelines import runners
from vidclass import errors, flags, storage


def reject_unknown_flags(flags: list[str], ours: tuple[str, ...] = ()) -> None:
    """Beam only warns about flags it does not know and drops them; a typo like `--num-shard 4` would
    then silently do nothing. Fail instead, with a suggestion."""
    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    _, unknown = parser.parse_known_args(flags)
    bad = [a for a in unknown if a.startswith("-")]
    if bad:
        known = [*ours, *(o for a in parser._actions for o in a.option_strings)]  # pylint: disable=protected-access
        hints = [f"{b} (did you mean {m[0]}?)" if (m := difflib.get_close_matches(b.split("=")[0], known, 1))
                 else b for b in bad]
        raise errors.UsageError(f"unrecognized arguments: {', '.join(hints)}")


def parse(prog: str, flags: list[str], add_arguments, validate=None) -> tuple[argparse.Namespace, PipelineOptions]:
    """vidclass's flags by our own parser, the rest by Beam's (checked, so a typo is an error).

    Our flags are not a PipelineOptions subclass on purpose: Beam parses every subclass in the process
    on every PipelineOptions it makes, so two pipelines' `--input` would collide, and workers would
    be sent flags they never use."""
    parser = argparse.ArgumentParser(prog=prog, allow_abbrev=False)
    add_arguments(parser)
    ours, rest = parser.parse_known_args(flags)
    if validate is not None:
        validate(ours)  # checks across flags: a UsageError, one line and exit 2 from the CLI
    reject_unknown_flags(rest, tuple(o for a in parser._actions for o in a.option_strings))
    options = PipelineOptions(rest)
    storage.configure_from_beam(options)  # Beam's --s3_* flags configure vidclass's own file access too
    runners.laptop_defaults(options, rest)
    return ours, options


def main(prog: str, doc: str, add_arguments, run, flags: list[str], want_help: bool) -> int:
    """A pipeline subcommand: its help (ours, then a pointer to Beam's), or the run itself."""
    if want_help:
        print_help(prog, doc, add_arguments)
        return 0
    return run(flags)


def print_help(prog: str, doc: str, add_arguments) -> None:
    """Help for a pipeline subcommand: its own flags, then a pointer to Beam's."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.strip().splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(parser)
    parser.print_help()
    print("\nBeam's own flags pass through: --runner (default DirectRunner on all cores), "
          "--direct_num_workers, --direct_running_mode,\n--project, --region, --temp_location, "
          "--setup_file, --sdk_container_image, ... (see README 'Running on Dataflow').")


class Progress:
    """Videos done / total on stderr, at most every few seconds; shared by the threads of one process."""

    def __init__(self, what: str, total: int, every_s: float = 3.0):
        self.what, self.total, self.every_s = what, total, every_s
        self.done = self.failed = 0
        self._start = self._last = time.monotonic()
        self._lock = threading.Lock()

    def tick(self, failed: bool = False) -> None:
        with self._lock:
            self.done += 1
            self.failed += failed
            now = time.monotonic()
            if now - self._last < self.every_s and self.done != self.total:
                return
            self._last = now
            rate = self.done / max(now - self._start, 1e-9)
            print(f"{self.what}: {self.done}/{self.total or '?'} videos ({self.failed} failed), "
                  f"{rate:.1f} videos/s", file=sys.stderr, flush=True)


TASKS_FILE = "tasks.jsonl"


def add_run_limits(parser: argparse.ArgumentParser) -> None:
    """The per-video and per-run failure limits both pipelines take."""
    parser.add_argument("--timeout", type=flags.number(0, low_open=True), default=300.0,
                        help="seconds per video before it is a timeout")
    parser.add_argument("--max-error-rate", "--max_error_rate", dest="max_error_rate", type=flags.number(0, 1),
                        default=0.5,
                        help="fail the run when a larger share of videos cannot be used")


def stage_tasks(pipeline: beam.Pipeline, staging: str, tasks: list, task_cls: type):
    """The launcher's task list, written as JSON lines under the run's staging folder and read back as a
    PCollection: an in-graph `Create` of a Kinetics-size list would exceed Dataflow's job-graph limit."""
    with fsspec.open(f"{staging}/{TASKS_FILE}", "w") as f:
        f.writelines(json.dumps(dataclasses.asdict(t)) + "\n" for t in tasks)
    return (pipeline | "ReadTasks" >> beam.io.ReadFromText(f"{staging}/{TASKS_FILE}")
            | "ParseTasks" >> beam.Map(lambda line: task_cls(**json.loads(line))))
