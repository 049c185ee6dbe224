"""The `vidclass` command. Parses arguments and hands Beam's own flags through untouched.

Subcommand modules are imported only when used: `probe` must not wait for TensorFlow, and only the
pipeline subcommands import Beam.
"""
from __future__ import annotations

import argparse
import os
import sys


def _add_probe(sub) -> None:
    p = sub.add_parser("probe", help="decode videos as the pipelines would and report what each holds")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="files, folders (searched recursively) or globs")
    p.add_argument("--num-frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--clips-per-video", type=int, default=1)
    p.add_argument("--stride", type=int, default=None, help="frame step in a clip (default: spread over video)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per video before it is a timeout error")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--json", action="store_true", help="one JSON object per video on stdout")


def _add_passthrough(sub, name: str, help: str) -> None:
    """Pipeline subcommands: every flag (vidclass's and Beam's) goes to the pipeline's own parser."""
    p = sub.add_parser(name, help=help, add_help=False)
    p.add_argument("-h", "--help", action="store_true")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vidclass", description="Batch video classification on TF and Beam.")
    sub = ap.add_subparsers(dest="command", required=True)
    _add_probe(sub)
    _add_passthrough(sub, "preprocess", "videos -> TFRecord shards per split (Beam)")
    return ap


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter (oneDNN, CUDA probes) buries the summaries users need to read.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args, extra = parser().parse_known_args(argv)
    if args.command in ("probe",) and extra:
        parser().error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "preprocess":
        from pipelines import preprocess
        return preprocess.main(extra, args.help)
    if args.command == "probe":
        from vidclass import probe
        return probe.main(args)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
