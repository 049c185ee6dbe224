"""The `vidclass` command. Parses arguments and hands Beam's own flags through untouched.

Subcommand modules are imported only when used: `probe` must not wait for TensorFlow, and only the
pipeline subcommands import Beam.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from vidclass import errors, flags, quiet, runtime

PIPELINES = {"preprocess": "videos -> TFRecord shards per split (Beam)",
             "infer": "videos -> one Parquet prediction row per video (Beam)",
             "demo": "the whole chain on a synthetic dataset made on the spot"}


def _add_probe(sub) -> None:
    p = sub.add_parser("probe", help="decode videos as the pipelines would and report what each holds")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="files, folders (searched recursively) or globs")
    p.add_argument("--num-frames", type=flags.integer(1, 1024), default=16)
    p.add_argument("--size", type=flags.integer(8, 4096), default=112)
    p.add_argument("--clips-per-video", type=flags.integer(1, 1000), default=1)
    p.add_argument("--stride", type=flags.integer(1), default=None,
                   help="frame step in a clip (default: spread over video)")
    p.add_argument("--seek", choices=("exact", "keyframe"), default="exact",
                   help="keyframe: each sampled frame snaps to its nearest keyframe (fast on long videos)")
    p.add_argument("--timeout", type=flags.number(0, low_open=True), default=60.0,
                   help="seconds per video before it is a timeout error")
    p.add_argument("--workers", type=flags.integer(1, 256), default=os.cpu_count() or 1)
    p.add_argument("--json", action="store_true", help="one JSON object per video on stdout")


def _add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="contact sheet and counts of a preprocessed dataset")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--out", default=None, help="PNG path (default DATASET/contact_sheet.png)")
    p.add_argument("--split", default=None, help="split to show (default: train, else the first)")
    p.add_argument("--per-class", type=flags.integer(1, 100), default=3, help="clips shown per class")
    p.add_argument("--frames", type=flags.integer(1, 64), default=8, help="frames shown per clip")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on a dataset; writes a model bundle; resumable")
    p.add_argument("--data", required=True, metavar="DATASET")
    p.add_argument("--model-dir", required=True, metavar="MODEL_DIR")
    p.add_argument("--model", default="r2plus1d", help="r2plus1d (default), frame_cnn, cnn_gru, c3d, mobilenet_gru")
    p.add_argument("--epochs", type=flags.integer(1, 100000), default=30)
    p.add_argument("--batch-size", type=flags.integer(1, 4096), default=8)
    p.add_argument("--learning-rate", type=flags.number(0, 10, low_open=True), default=1e-3)
    p.add_argument("--label-smoothing", type=flags.number(0, 0.99), default=0.1)
    p.add_argument("--class-weights", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--frames", type=flags.integer(1, 1024), default=None,
                   help="frames the model takes (default: all of a clip)")
    p.add_argument("--patience", type=flags.integer(1), default=8, help="early-stopping patience in epochs")
    p.add_argument("--val-fraction", type=flags.number(0, 0.9), default=0.1,
                   help="without a val split, validate on this share of train's groups (0: no validation)")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips (direction-sensitive classes)")
    p.add_argument("--no-crop", action="store_true", help="no random crops")
    p.add_argument("--no-color", action="store_true", help="no brightness/contrast jitter")
    p.add_argument("--no-temporal-jitter", action="store_true", help="always the centre frames")
    p.add_argument("--mixed-precision", action="store_true")
    p.add_argument("--strategy", choices=("default", "mirrored", "multi_worker"), default="default")
    p.add_argument("--weights", default=None, help="local ImageNet weights file for mobilenet_gru")
    p.add_argument("--model-config", type=flags.json_object, default={},
                   help="JSON of model options, e.g. '{\"width\": 2}'")
    p.add_argument("--no-cache", action="store_true", help="do not cache records in memory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace a finished model in MODEL_DIR")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, per-class scores and confusion matrix on a split")
    p.add_argument("--data", required=True, metavar="DATASET")
    p.add_argument("--model-dir", required=True, metavar="MODEL_DIR")
    p.add_argument("--split", default="test")
    p.add_argument("--batch-size", type=flags.integer(1, 4096), default=16)
    p.add_argument("--json", action="store_true", help="one JSON object with the results on stdout")


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="label a handful of videos without Beam (same decode and model path)")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="files, folders (searched recursively) or globs")
    p.add_argument("--model-dir", required=True, metavar="MODEL_DIR")
    p.add_argument("--top-k", type=flags.integer(1, 1000), default=5)
    p.add_argument("--batch-size", type=flags.integer(1, 4096), default=16, help="clips per model call")
    p.add_argument("--timeout", type=flags.number(0, low_open=True), default=300.0, help="seconds per video")
    p.add_argument("--workers", type=flags.integer(1, 256), default=os.cpu_count() or 1, help="videos decoded at once")
    p.add_argument("--segment-seconds", type=flags.number(0, 86400, low_open=True), default=None,
                   help="label each window of this many seconds: a timeline per video")
    p.add_argument("--segment-stride", type=flags.number(0, 86400, low_open=True), default=None,
                   help="seconds between window starts (default: the window length, so windows tile)")
    p.add_argument("--embeddings", action="store_true", help="add the model's pooled features to each row")
    p.add_argument("--plot", default=None, metavar="PNG", help="draw the timelines (with --segment-seconds)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per video on stdout (with segments: each window's row, then the video's)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vidclass", description="Batch video classification on TF and Beam.")
    sub = ap.add_subparsers(dest="command", required=True)
    _add_probe(sub)
    for name, help_text in PIPELINES.items():
        # every flag, vidclass's and Beam's, goes to the pipeline's own parser
        sub.add_parser(name, help=help_text, add_help=False).add_argument("-h", "--help", action="store_true")
    _add_inspect(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    return ap


def _train(args) -> int:
    from vidclass.data import Augment
    from vidclass.train import TrainConfig, train
    model_config = dict(args.model_config)
    if args.weights:
        model_config["weights"] = args.weights
    cfg = TrainConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                      learning_rate=args.learning_rate, label_smoothing=args.label_smoothing,
                      class_weights=args.class_weights, frames=args.frames, patience=args.patience,
                      augment=Augment(crop=not args.no_crop, flip=not args.no_flip, color=not args.no_color,
                                      temporal=not args.no_temporal_jitter),
                      mixed_precision=args.mixed_precision, strategy=args.strategy, model_config=model_config,
                      cache=not args.no_cache, seed=args.seed, val_fraction=args.val_fraction)
    train(args.data, args.model_dir, cfg, overwrite=args.overwrite)
    return 0


def _evaluate(args) -> int:
    from vidclass.evaluate import evaluate, report
    result = evaluate(args.data, args.model_dir, args.split, args.batch_size)
    if args.json:
        print(json.dumps(result))
    else:
        print(report(result))
    print(f"evaluate: confusion_matrix.png/.csv and metrics.json in {args.model_dir}", file=sys.stderr)
    return 0


def _validate(args) -> None:
    """Checks that need more than one flag: a `UsageError` (one line, exit 2)."""
    if args.command == "probe":
        flags.check_clip_size(args.num_frames, args.size, args.clips_per_video)
    if args.command == "predict":
        if args.segment_stride is not None and args.segment_seconds is None:
            raise errors.UsageError("--segment-stride needs --segment-seconds")
        if args.plot and args.segment_seconds is None:
            raise errors.UsageError("--plot draws a timeline: it needs --segment-seconds")


def _dispatch(args, extra: list[str]) -> int:
    if args.command in PIPELINES:
        import importlib
        return importlib.import_module(f"pipelines.{args.command}").main(extra, args.help)
    if extra:
        parser().error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "probe":
        from vidclass import probe
        return probe.main(args)
    if args.command == "inspect":
        from vidclass import contact_sheet
        return contact_sheet.main(args)
    if args.command == "train":
        return _train(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "predict":
        from vidclass import predict_cli
        return predict_cli.main(args)
    raise AssertionError(args.command)


def _os_error(e: BaseException) -> OSError | None:
    """The OSError behind an exception, however deep a library wrapped it (Beam re-raises worker errors)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError) and e.errno is not None:
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; every failure of the run ends in one line on stderr and a named exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("-v", "--verbose") for a in argv)
    argv = [a for a in argv if a not in ("-v", "--verbose")]
    quiet.install(verbose)
    runtime.private_scratch()  # before TensorFlow, Keras, matplotlib or Beam is imported
    args, extra = parser().parse_known_args(argv)
    name = f"vidclass {args.command}"
    try:
        _validate(args)
        return int(_dispatch(args, extra))
    except errors.RunError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return int(e.status)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return int(errors.Exit.INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - the last boundary: one line, the traceback only when asked
        if verbose:
            raise
        os_error = _os_error(e)
        if os_error is not None:
            where = f": {os_error.filename}" if os_error.filename else ""
            print(f"{name}: error: {os_error.strerror or os_error}{where}", file=sys.stderr)
        else:
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            print(f"{name}: error: {type(e).__name__}: {first} (run again with --verbose for the traceback)",
                  file=sys.stderr)
        return int(errors.Exit.FAILED)


if __name__ == "__main__":
    sys.exit(main())
