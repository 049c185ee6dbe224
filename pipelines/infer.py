"""videos -> decode and sample as in training -> RunInference -> exactly one Parquet row per video.

    vidclass infer --input ARCHIVE --model-dir MODEL --output OUT [--run-id ID] [--skip-scored PRIOR_OUT]
                   [--segment-seconds S [--segment-stride S2]] [--embeddings]

The model bundle's SamplingSpec decides decoding, so inference samples exactly as training did. Each
video (or, with `--segment-seconds`, each window of its timeline) travels as one keyed element through
`RunInference`, whose handler loads `model.keras` once per worker. Videos that cannot be decoded still
get their row (`status='error'`). With `--skip-scored`, videos PRIOR_OUT scored with the same model,
content and settings carry their earlier rows over instead of being decoded again.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time

import apache_beam as beam

from pipelines import common, runners
from pipelines.infer_report import finalize
from pipelines.scoring import CarryOver, ScoreTimelines, ScoreVideos, ScoringPlan
from vidclass import bundle, discovery, errors, flags, lease, outdir, predictions, storage
from vidclass.predictions import ScoringConfig, Stamp, VideoRef
from vidclass.video import DecodeLimits

ROWS_PER_SHARD = 500_000
VIDEOS_PER_SEGMENT_SHARD = 2_000  # ~100 windows a video: ~200k segment rows a shard


def _not_beam_memory_noise(record: logging.LogRecord) -> bool:
    """Beam 2.77 loses its `resource` module when an optional import beside it fails, then warns about
    memory on every batch: noise that buries the run's own output."""
    return "Resource module is not available" not in record.getMessage()


logging.getLogger().addFilter(_not_beam_memory_noise)


def add_arguments(parser) -> None:
    """vidclass's own flags; Beam's (`--runner`, `--project`, ...) pass through to Beam."""
    parser.add_argument("--input", required=True, help="folder (searched recursively), glob, manifest or class folders")
    parser.add_argument("--model-dir", "--model_dir", dest="model_dir", required=True,
                        help="model bundle from `vidclass train`")
    parser.add_argument("--output", required=True, help="folder for predictions-*.parquet and _SUCCESS")
    parser.add_argument("--run-id", "--run_id", dest="run_id", default=None,
                        help="names this run in every row (default: a UTC timestamp)")
    parser.add_argument("--skip-scored", "--skip_scored", dest="skip_scored", default=None,
                        help="an earlier OUT: videos it scored (same id, content, model, settings) keep their rows")
    parser.add_argument("--clips-per-video", "--clips_per_video", dest="clips_per_video", type=flags.integer(1, 1000),
                        default=None, help="clips averaged per video or window (default: as in training)")
    parser.add_argument("--segment-seconds", "--segment_seconds", dest="segment_seconds",
                        type=flags.number(0, 86400, low_open=True), default=None,
                        help="also label each window of this many seconds: segments-*.parquet, a timeline per video")
    parser.add_argument("--segment-stride", "--segment_stride", dest="segment_stride",
                        type=flags.number(0, 86400, low_open=True), default=None,
                        help="seconds between window starts (default: the window length, so windows tile)")
    parser.add_argument("--embeddings", action="store_true",
                        help="add the model's pooled feature vector (`embedding`) to every row")
    parser.add_argument("--top-k", "--top_k", dest="top_k", type=flags.integer(1, 1000), default=5)
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=flags.integer(1, 4096), default=16,
                        help="clips per model call")
    parser.add_argument("--force", action="store_true",
                        help="take over the output from another run's lease at once (only when that run is dead)")
    common.add_run_limits(parser)


def validate(opts) -> None:
    """Flag checks that need more than one flag."""
    if opts.segment_stride is not None and opts.segment_seconds is None:
        raise errors.UsageError("--segment-stride needs --segment-seconds")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the launcher decided before the pipeline runs."""

    staging: str
    scoring: ScoringPlan
    config: ScoringConfig
    shards: int
    segment_shards: int
    prior: str | None
    refused: tuple[errors.Failure, ...] = ()


def _with_fingerprint(task: VideoRef, storage_conf: dict) -> VideoRef:
    storage.apply_worker_config(storage_conf)
    return dataclasses.replace(task, fingerprint=predictions.content_fingerprint(task.uri))


def build(tasks, plan: Plan) -> None:
    """Add the scoring steps to a PCollection of `VideoRef` tasks."""
    stamp, segments = plan.scoring.stamp, plan.config.segment_seconds is not None
    tasks = tasks | "Fingerprint" >> beam.Map(_with_fingerprint, plan.scoring.storage_conf)
    carried = carried_segments = None
    if plan.prior:
        tasks, carried, carried_segments = tasks | "CarryOver" >> CarryOver(plan.prior, stamp.model_version, segments)
    if segments:
        rows, segment_rows = tasks | "ScoreTimelines" >> ScoreTimelines(plan.scoring)
    else:
        rows, segment_rows = tasks | "ScoreVideos" >> ScoreVideos(plan.scoring), None
    refused = tasks.pipeline | "DiscoverFailures" >> beam.Create(
        [predictions.error_row(VideoRef(f.uri, f.uri), f, stamp) for f in plan.refused])
    all_rows = [rows, refused, *([carried] if carried is not None else [])]
    _ = (all_rows | "AllRows" >> beam.Flatten()
         | "WritePredictions" >> beam.io.WriteToParquet(
             f"{plan.staging}/{predictions.PREDICTIONS}", predictions.SCHEMA, file_name_suffix=".parquet",
             num_shards=plan.shards, shard_name_template="-SSSSS-of-NNNNN"))
    if segments:
        all_segments = [segment_rows, *([carried_segments] if carried_segments is not None else [])]
        _ = (all_segments | "AllSegments" >> beam.Flatten()
             | "WriteSegments" >> beam.io.WriteToParquet(
                 f"{plan.staging}/{predictions.SEGMENTS}", predictions.SEGMENT_SCHEMA, file_name_suffix=".parquet",
                 num_shards=plan.segment_shards, shard_name_template="-SSSSS-of-NNNNN"))


def plan_tasks(input_spec: str, b: bundle.Bundle) -> tuple[list[VideoRef], list[errors.Failure]]:
    """Discover videos; class subfolders named like the model's labels (or a manifest) give `true_label`,
    so scoring a labelled set doubles as an evaluation. Rows discovery refused come back as failures."""
    found = discovery.discover(input_spec, labelled=False)
    tasks = [VideoRef(v.video_id, v.uri, v.label) for v in found.inputs]
    heads = {t.video_id.split("/")[0] for t in tasks if t.video_id.count("/") == 1}
    if found.form == "archive" and tasks and all(t.video_id.count("/") == 1 for t in tasks) \
            and heads <= set(b.labels.names):
        tasks = [dataclasses.replace(t, true_label=t.video_id.split("/")[0]) for t in tasks]
    return tasks, list(found.failures)


def _prior(opts, config: ScoringConfig) -> str | None:
    """The `--skip-scored` output to carry rows from, if it was scored with the same settings."""
    if not opts.skip_scored:
        return None
    before = predictions.read_scoring_config(opts.skip_scored)
    legacy = ScoringConfig(config.clips_per_video, config.top_k)
    if before != config and not (before is None and config == legacy):
        print(f"infer: note: {opts.skip_scored} was scored with other settings ({before.to_dict() if before else '?'}"
              f" vs {config.to_dict()}): every video is scored again", file=sys.stderr)
        return None
    return opts.skip_scored


def run(argv: list[str] | None = None, test_pipeline: beam.Pipeline | None = None) -> int:
    """Score the videos; returns the exit status (0 when the run completed, even with per-video errors)."""
    opts, options = common.parse("vidclass infer", list(sys.argv[1:] if argv is None else argv), add_arguments,
                                 validate)
    runners.preflight(options, {"--input": opts.input, "--model-dir": opts.model_dir, "--output": opts.output,
                                "--skip-scored": opts.skip_scored})
    started = time.monotonic()
    b = bundle.load(opts.model_dir)
    bundle.load_model(opts.model_dir)  # fail here, loudly, not on every worker
    if opts.skip_scored and not outdir.is_finished(opts.skip_scored):
        raise errors.UsageError(f"--skip-scored {opts.skip_scored} is not a finished output (no _SUCCESS)")
    tasks, refused = plan_tasks(opts.input, b)
    if not tasks and not refused:
        raise errors.RunFailed(f"no videos found in {opts.input}")
    spec = dataclasses.replace(b.spec, clips_per_video=opts.clips_per_video or b.spec.clips_per_video)
    run_id = opts.run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    config = ScoringConfig(spec.clips_per_video, opts.top_k, opts.segment_seconds,
                           opts.segment_stride if opts.segment_seconds else None, opts.embeddings)
    print(f"infer: {len(tasks) + len(refused)} videos with {b.model_name} {b.model_version} (run {run_id}) "
          f"-> {storage.redact(opts.output)}", file=sys.stderr)
    command = lease.describe_command("vidclass infer", "--input", opts.input)  # named to a second run
    with lease.acquire(opts.output, command, force=opts.force) as held:
        staging = outdir.begin(opts.output, held)
        limits = DecodeLimits(timeout_s=opts.timeout, threads=runners.decoder_threads(options))
        scoring = ScoringPlan(opts.model_dir, Stamp(b.labels, b.model_version, run_id, opts.top_k), spec, limits,
                              opts.batch_size, opts.embeddings, len(tasks), config.segment_seconds,
                              config.segment_stride, storage.worker_config())
        plan = Plan(staging, scoring, config, max(1, math.ceil(len(tasks) / ROWS_PER_SHARD)),
                    max(1, math.ceil(len(tasks) / VIDEOS_PER_SEGMENT_SHARD)), _prior(opts, config), tuple(refused))
        pipeline = test_pipeline or beam.Pipeline(options=options)
        task_pc = common.stage_tasks(pipeline, staging, tasks, VideoRef)
        build(task_pc, plan)
        result = pipeline.run()
        result.wait_until_finish()
        return finalize(opts, plan, len(tasks) + len(refused), time.monotonic() - started, held)


def main(flags: list[str], want_help: bool = False) -> int:
    """`vidclass infer`: vidclass's flags and Beam's together."""
    return common.main("vidclass infer", __doc__, add_arguments, run, flags, want_help)


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(run())
