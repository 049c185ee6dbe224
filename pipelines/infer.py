"""videos -> decode and sample as in training -> RunInference -> exactly one Parquet row per video.

    vidclass infer --input ARCHIVE --model-dir MODEL --output OUT [--run-id ID] [--skip-scored PRIOR_OUT]

The model bundle's SamplingSpec decides decoding, so inference samples exactly as training did. Each
video travels as one element (its K clips together) through a keyed `RunInference`, whose handler
loads `model.keras` once per worker and scores batches of clips under one traced function. Videos that
cannot be decoded still get their row (`status='error'`). With `--skip-scored`, videos PRIOR_OUT scored
with the same model and content carry their earlier row over instead of being decoded again.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from typing import Any, Iterable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference

from pipelines import common
from pipelines.decode import FAILED, DecodeVideos
from pipelines.infer_report import finalize
from vidclass import bundle, discovery, errors, outdir, predictions
from vidclass.video import DecodeLimits, VideoInfo

ROWS_PER_SHARD = 500_000


def _not_beam_memory_noise(record: logging.LogRecord) -> bool:
    """Beam 2.77 loses its `resource` module when an optional import beside it fails, then warns about
    memory on every batch: noise that buries the run's own output."""
    return "Resource module is not available" not in record.getMessage()


logging.getLogger().addFilter(_not_beam_memory_noise)
OWNED = ("predictions-*.parquet",)


def add_arguments(parser) -> None:
    """vidclass's own flags; Beam's (`--runner`, `--project`, ...) pass through to Beam."""
    parser.add_argument("--input", required=True, help="folder (searched recursively), glob, manifest or class folders")
    parser.add_argument("--model-dir", "--model_dir", dest="model_dir", required=True,
                        help="model bundle from `vidclass train`")
    parser.add_argument("--output", required=True, help="folder for predictions-*.parquet and _SUCCESS")
    parser.add_argument("--run-id", "--run_id", dest="run_id", default=None,
                        help="names this run in every row (default: a UTC timestamp)")
    parser.add_argument("--skip-scored", "--skip_scored", dest="skip_scored", default=None,
                        help="an earlier OUT: videos it scored (same id, content, model) keep that row")
    parser.add_argument("--clips-per-video", "--clips_per_video", dest="clips_per_video", type=int,
                        default=None, help="clips averaged per video (default: as in training)")
    parser.add_argument("--top-k", "--top_k", dest="top_k", type=int, default=5)
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=16,
                        help="clips per model call")
    common.add_run_limits(parser)


@dataclasses.dataclass(frozen=True)
class Task:
    """One video to score; `fingerprint` identifies its content for `--skip-scored`."""

    uri: str
    video_id: str
    true_label: str | None = None
    fingerprint: str = ""


@dataclasses.dataclass(frozen=True)
class Scored:
    """The key that rides through RunInference beside a video's clips."""

    task: Task
    info: VideoInfo
    num_clips: int


class VideoClipsHandler(ModelHandler[np.ndarray, np.ndarray, Any]):
    """Examples are one video's clips (uint8 [K, T, S, S, 3]); predictions its mean class probabilities.

    Beam's stock TF handler calls the model eagerly (1.5-2.6x slower, measured) and starts batching at 1;
    this one uses `vidclass.predict.Predictor` (traced once) and fixed batch sizes."""

    def __init__(self, model_dir: str, videos_per_batch: int, clips_per_call: int):
        # Batches start at a quarter of the target: the DirectRunner hands each thread a fixed share, and
        # full-size batches held all model work until a thread's last decode (a CPU forward gains little
        # from batches over ~4: 28.6 vs 21.9 ms per clip at 1 vs 16, measured).
        super().__init__(min_batch_size=max(1, videos_per_batch // 4), max_batch_size=videos_per_batch)
        self.model_dir, self.clips_per_call = model_dir, clips_per_call

    def load_model(self):
        from vidclass.predict import Predictor
        return Predictor(self.model_dir, self.clips_per_call)

    def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None) -> Iterable[np.ndarray]:
        return model.video_probs(batch)

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return int(sum(x.nbytes for x in batch))  # the default pickles the whole batch just to count it

    def get_metrics_namespace(self) -> str:
        return "vidclass"


def with_fingerprint(task: Task) -> Task:
    return dataclasses.replace(task, fingerprint=predictions.content_fingerprint(task.uri))


def carry_or_score(element: tuple[str, dict[str, list]]) -> Iterable:
    """Join of a video's task with PRIOR_OUT's row: same content -> carry the row over; else score it."""
    _, joined = element
    for task in joined["task"]:
        prior = [r for r in joined["prior"] if r["content_fingerprint"] == task.fingerprint and task.fingerprint]
        if prior:
            yield beam.pvalue.TaggedOutput("carried", {**prior[0], "video_uri": task.uri})
        else:
            yield task


@dataclasses.dataclass(frozen=True)
class Plan:
    staging: str
    model_dir: str
    bundle: bundle.Bundle
    spec: Any
    limits: DecodeLimits
    run_id: str
    top_k: int
    batch_size: int
    shards: int
    total: int
    prior: str | None
    refused: tuple[errors.Failure, ...] = ()


def build(tasks, plan: Plan) -> None:
    """Add the scoring steps to a PCollection of `Task`s."""
    b = plan.bundle
    tasks = tasks | "Fingerprint" >> beam.Map(with_fingerprint)
    rows_carried = []
    if plan.prior:
        prior = (tasks.pipeline
                 | "ReadPrior" >> beam.io.ReadFromParquet(f"{plan.prior.rstrip('/')}/predictions-*.parquet")
                 | "ScoredByThisModel" >> beam.Filter(
                     lambda r, v: r["status"] == "ok" and r["model_version"] == v, b.model_version)
                 | "KeyPrior" >> beam.Map(lambda r: (r["video_id"], r)))
        joined = ({"task": tasks | "KeyTask" >> beam.Map(lambda t: (t.video_id, t)), "prior": prior}
                  | "JoinPrior" >> beam.CoGroupByKey()
                  | "CarryOrScore" >> beam.FlatMap(carry_or_score).with_outputs("carried", main="todo"))
        tasks, rows_carried = joined.todo, [joined.carried]
    decoded = (tasks
               | "Spread" >> beam.Reshuffle()
               | "DecodeAndSample" >> beam.ParDo(DecodeVideos(plan.spec, plan.limits, "infer", plan.total,
                                                              plan.run_id)).with_outputs(FAILED, main="ok"))
    per_batch = max(1, plan.batch_size // plan.spec.clips_per_video)
    scored = (decoded.ok
              | "KeyByVideo" >> beam.MapTuple(lambda t, c: (Scored(t, c.info, c.frames.shape[0]), c.frames))
              | "RunInference" >> RunInference(KeyedModelHandler(
                  VideoClipsHandler(plan.model_dir, per_batch, plan.batch_size)))
              | "OkRows" >> beam.MapTuple(lambda s, probs: predictions.ok_row(
                  s.task.video_id, s.task.uri, probs, b.labels, plan.top_k, s.info, s.num_clips,
                  b.model_version, plan.run_id, s.task.true_label, s.task.fingerprint)))
    failed = decoded[FAILED] | "ErrorRows" >> beam.MapTuple(lambda t, f: predictions.error_row(
        t.video_id, f, b.model_version, plan.run_id, t.true_label, t.fingerprint))
    refused = tasks.pipeline | "DiscoverFailures" >> beam.Create([predictions.error_row(
        f.uri, f, b.model_version, plan.run_id) for f in plan.refused])
    _ = ((scored, failed, refused, *rows_carried) | "AllRows" >> beam.Flatten()
         | "WritePredictions" >> beam.io.WriteToParquet(
             f"{plan.staging}/predictions", predictions.SCHEMA, file_name_suffix=".parquet",
             num_shards=plan.shards, shard_name_template="-SSSSS-of-NNNNN"))


def plan_tasks(input_spec: str, b: bundle.Bundle) -> tuple[list[Task], list[errors.Failure]]:
    """Discover videos; class subfolders named like the model's labels (or a manifest) give `true_label`,
    so scoring a labelled set doubles as an evaluation. Rows discovery refused come back as failures."""
    found = discovery.discover(input_spec, labelled=False)
    tasks = [Task(v.uri, v.video_id, v.label) for v in found.inputs]
    heads = {t.video_id.split("/")[0] for t in tasks if t.video_id.count("/") == 1}
    if found.form == "archive" and tasks and all(t.video_id.count("/") == 1 for t in tasks) \
            and heads <= set(b.labels.names):
        tasks = [dataclasses.replace(t, true_label=t.video_id.split("/")[0]) for t in tasks]
    return tasks, list(found.failures)


def run(argv: list[str] | None = None, test_pipeline: beam.Pipeline | None = None) -> int:
    """Score the videos; returns the exit status (0 when the run completed, even with per-video errors)."""
    opts, options = common.parse("vidclass infer", list(sys.argv[1:] if argv is None else argv), add_arguments)
    started = time.monotonic()
    try:
        b = bundle.load(opts.model_dir)
        bundle.load_model(opts.model_dir)  # fail here, loudly, not on every worker
    except Exception as e:  # noqa: BLE001 - any load failure is the same systemic fault for the user
        print(f"infer: FAILED: cannot load the model in {opts.model_dir}: {e}", file=sys.stderr)
        return 2
    if opts.skip_scored and not outdir.is_finished(opts.skip_scored):
        print(f"infer: FAILED: --skip-scored {opts.skip_scored} is not a finished output (no _SUCCESS)",
              file=sys.stderr)
        return 2
    tasks, refused = plan_tasks(opts.input, b)
    if not tasks and not refused:
        print(f"infer: FAILED: no videos found in {opts.input}", file=sys.stderr)
        return 1
    spec = dataclasses.replace(b.spec, clips_per_video=opts.clips_per_video or b.spec.clips_per_video)
    run_id = opts.run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    print(f"infer: {len(tasks) + len(refused)} videos with {b.model_name} {b.model_version} (run {run_id}) "
          f"-> {opts.output}", file=sys.stderr)
    staging = outdir.begin(opts.output)
    limits = DecodeLimits(timeout_s=opts.timeout, threads=common.decoder_threads(options))
    plan = Plan(staging, opts.model_dir, b, spec, limits, run_id, opts.top_k,
                opts.batch_size, max(1, math.ceil(len(tasks) / ROWS_PER_SHARD)), len(tasks), opts.skip_scored,
                tuple(refused))
    pipeline = test_pipeline or beam.Pipeline(options=options)
    task_pc = common.stage_tasks(pipeline, staging, tasks, Task)
    build(task_pc, plan)
    result = pipeline.run()
    result.wait_until_finish()
    return finalize(opts, plan, len(tasks) + len(refused), time.monotonic() - started)


def main(flags: list[str], want_help: bool = False) -> int:
    """`vidclass infer`: vidclass's flags and Beam's together."""
    return common.main("vidclass infer", __doc__, add_arguments, run, flags, want_help)


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(run())
