"""videos -> decoded, sampled, resized clips -> Model Garden SequenceExample shards per split.

    vidclass preprocess --input videos/ --output data/ [--num-frames 16 --size 112 ...] [beam flags]

The launcher discovers inputs, fixes labels and splits, and stages the task list as JSON lines; the
pipeline decodes each video in an isolated child process, writes shards, `videos.parquet` (one row per
good video) and `failures.parquet` (one row per unusable one) into a staging folder; the launcher then
checks the counts reconcile, writes `dataset.json` and swaps the result in, `_SUCCESS` last.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
import uuid
from typing import Iterator

import apache_beam as beam
import pyarrow as pa

from pipelines import common, runners
from pipelines.decode import FAILED, DecodeVideos
from pipelines.preprocess_report import finalize
from vidclass import dataset, discovery, errors, flags, lease, outdir, storage
from vidclass.labels import LabelMap, assign_split, parse_split_fractions
from vidclass.sampling import SamplingSpec
from vidclass.video import Clips, DecodeLimits

SHARD_TARGET_BYTES = 150e6


FAILURE_SCHEMA = pa.schema([("uri", pa.string()), ("video_id", pa.string()), ("label", pa.string()),
                            ("split", pa.string()), ("stage", pa.string()), ("error_code", pa.string()),
                            ("message", pa.string())])
VIDEO_SCHEMA = pa.schema([("video_id", pa.string()), ("uri", pa.string()), ("label", pa.string()),
                          ("label_index", pa.int64()), ("split", pa.string()), ("clips", pa.int64()),
                          ("frames_decoded", pa.int64()), ("header_frame_count", pa.int64()),
                          ("fps", pa.float64()), ("duration_s", pa.float64()), ("width", pa.int64()),
                          ("height", pa.int64()), ("codec", pa.string()), ("padded_frames", pa.int64()),
                          ("decode_errors", pa.int64()), ("substituted_frames", pa.int64())])


def add_arguments(parser) -> None:
    """vidclass's own flags; Beam's (`--runner`, `--project`, ...) pass through to Beam."""
    parser.add_argument("--input", required=True,
                        help="class folders, glob, manifest (.csv/.jsonl) or official split files")
    parser.add_argument("--output", required=True, help="dataset directory to write (local path or gs://, s3://)")
    parser.add_argument("--num-frames", "--num_frames", dest="num_frames", type=flags.integer(1, 1024), default=16)
    parser.add_argument("--size", type=flags.integer(8, 4096), default=112)
    parser.add_argument("--clips-per-video", "--clips_per_video", dest="clips_per_video", type=flags.integer(1, 1000),
                        default=1)
    parser.add_argument("--allow-large", "--allow_large", dest="allow_large", action="store_true",
                        help=f"accept clips over {flags.MAX_CLIP_BYTES >> 20} MB of raw frames (--num-frames x --size)")
    parser.add_argument("--stride", type=flags.integer(1), default=None,
                        help="frame step inside a clip; default spreads each clip over the whole video")
    parser.add_argument("--target-fps", "--target_fps", dest="target_fps", type=flags.number(0, 1000, low_open=True),
                        default=None)
    parser.add_argument("--resize", choices=("crop", "pad", "stretch"), default="crop")
    parser.add_argument("--seek", choices=("exact", "keyframe"), default="exact",
                        help="keyframe: each sampled frame snaps to its nearest keyframe (fast on long videos)")
    parser.add_argument("--split", default="train=0.8,val=0.1,test=0.1",
                        help="fractions for inputs without a given split, by a stable hash of the group")
    parser.add_argument("--split-number", "--split_number", dest="split_number", type=flags.integer(1, 99), default=1,
                        help="which official split (UCF101/HMDB51 list files)")
    parser.add_argument("--num-shards", "--num_shards", dest="num_shards", type=flags.integer(1, 100_000),
                        default=None, help="shards per split (default: sized to ~150 MB each)")
    parser.add_argument("--compression", choices=("none", "gzip"), default="none",
                        help="GZIP shrinks JPEG shards ~5%% but makes writing ~40x slower")
    parser.add_argument("--jpeg-quality", "--jpeg_quality", dest="jpeg_quality", type=flags.integer(1, 100), default=90)
    parser.add_argument("--force", action="store_true",
                        help="take over the output from another run's lease at once (only when that run is dead)")
    common.add_run_limits(parser)


def validate(opts) -> None:
    """Flag checks that need more than one flag."""
    flags.check_clip_size(opts.num_frames, opts.size, opts.clips_per_video, opts.allow_large)
    if opts.stride is not None and opts.target_fps is not None:
        raise errors.UsageError("give --stride or --target-fps, not both")


@dataclasses.dataclass(frozen=True)
class Task:
    """One video to preprocess, with its label index and split already fixed by the launcher."""

    uri: str
    video_id: str
    label: str
    label_index: int
    split: str


def encode_records(element: tuple[Task, Clips], spec: SamplingSpec, jpeg_quality: int) -> Iterator:
    """(task, clips) -> (split, SequenceExample bytes) per clip, plus one `videos` row on a side output."""
    from vidclass import schema  # TensorFlow is imported by the workers that encode, not by the launcher
    task, clips = element
    k = clips.frames.shape[0]
    for c in range(k):
        meta = schema.ClipMeta(video_id=task.video_id, uri=task.uri, label_index=task.label_index,
                               label=task.label, fps=clips.info.fps, frame_indices=clips.indices[c],
                               timestamps_us=clips.timestamps_us[c], clip_index=c, num_clips=k,
                               padded_frames=clips.padded_frames)
        yield task.split, schema.encode_clip(clips.frames[c], meta, jpeg_quality)
    info = clips.info
    yield beam.pvalue.TaggedOutput("videos", {
        "video_id": task.video_id, "uri": task.uri, "label": task.label, "label_index": task.label_index,
        "split": task.split, "clips": k, "frames_decoded": info.frames_decoded,
        "header_frame_count": info.header_frame_count, "fps": info.fps, "duration_s": info.duration_s,
        "width": info.width, "height": info.height, "codec": info.codec, "padded_frames": clips.padded_frames,
        "decode_errors": info.decode_errors, "substituted_frames": clips.substituted_frames})


def failure_row(task: Task | None, f: errors.Failure) -> dict:
    return {"uri": f.uri, "video_id": task.video_id if task else f.uri, "label": task.label if task else None,
            "split": task.split if task else None, "stage": f.stage, "error_code": f.code, "message": f.message}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the launcher decided before the pipeline runs."""

    staging: str
    spec: SamplingSpec
    limits: DecodeLimits
    shards: dict[str, int]
    compression: str | None
    jpeg_quality: int
    total: int
    run_token: str
    storage_conf: dict = dataclasses.field(default_factory=dict)  # the launcher's S3 settings, for workers


@beam.ptransform_fn
def WriteShards(records, plan: Plan):  # pylint: disable=invalid-name
    """(split, bytes) -> `{split}-SSSSS-of-NNNNN.tfrecord` files, one set per split."""
    splits = sorted(plan.shards)
    parts = records | "BySplit" >> beam.Partition(lambda kv, n: splits.index(kv[0]), len(splits))
    for split, part in zip(splits, parts):
        _ = (part | f"Bytes_{split}" >> beam.Values()
             | f"Write_{split}" >> beam.io.WriteToTFRecord(
                 f"{plan.staging}/{split}", file_name_suffix=".tfrecord" + (".gz" if plan.compression else ""),
                 num_shards=plan.shards[split], shard_name_template="-SSSSS-of-NNNNN",
                 compression_type="gzip" if plan.compression else "uncompressed"))


def build(tasks, plan: Plan, discover_failures=None) -> None:
    """Add the pipeline's steps to a PCollection of `Task`s (tests may feed `beam.Create`)."""
    decoded = (tasks
               | "Spread" >> beam.Reshuffle()  # fan out: without it one bundle decodes everything serially
               | "DecodeAndSample" >> beam.ParDo(DecodeVideos(plan.spec, plan.limits, "preprocess", plan.total,
                                                              plan.run_token, plan.storage_conf)
                                                 ).with_outputs(FAILED, main="ok"))
    encoded = decoded.ok | "EncodeClips" >> beam.FlatMap(encode_records, plan.spec, plan.jpeg_quality
                                                         ).with_outputs("videos", main="records")
    _ = encoded.records | "WriteShards" >> WriteShards(plan)
    _ = encoded.videos | "WriteVideos" >> beam.io.WriteToParquet(
        f"{plan.staging}/{dataset.VIDEOS.removesuffix('.parquet')}", VIDEO_SCHEMA, file_name_suffix=".parquet",
        num_shards=1, shard_name_template="")
    failures = decoded[FAILED] | "FailureRows" >> beam.MapTuple(failure_row)
    if discover_failures is not None:
        failures = (failures, discover_failures) | "AllFailures" >> beam.Flatten()
    _ = failures | "WriteFailures" >> beam.io.WriteToParquet(
        f"{plan.staging}/{dataset.FAILURES.removesuffix('.parquet')}", FAILURE_SCHEMA, file_name_suffix=".parquet",
        num_shards=1, shard_name_template="")


def shard_counts(tasks: list[Task], spec: SamplingSpec, num_shards: int) -> dict[str, int]:
    """Shards per split: as asked, or enough for ~150 MB each from the expected JPEG size."""
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t.split] = counts.get(t.split, 0) + 1
    per_record = spec.num_frames * spec.size * spec.size * dataset.JPEG_BYTES_PER_PIXEL
    return {s: num_shards or max(1, math.ceil(n * spec.clips_per_video * per_record / SHARD_TARGET_BYTES))
            for s, n in counts.items()}


def plan_tasks(opts) -> tuple[list[Task], list[errors.Failure], LabelMap, str]:
    """Discover inputs and fix each one's label index and split (given, or by a stable group hash)."""
    found = discovery.discover(opts.input, labelled=True, split_number=opts.split_number)
    labels = LabelMap.from_names(found.labels())
    fractions = parse_split_fractions(opts.split)
    tasks = [Task(v.uri, v.video_id, v.label, labels.index(v.label),
                  v.split or assign_split(v.group or v.video_id, fractions)) for v in found.inputs]
    return tasks, list(found.failures), labels, found.form


def run(argv: list[str] | None = None, test_pipeline: beam.Pipeline | None = None) -> int:
    """Preprocess; returns the exit status (0 when the run completed, even with per-video failures)."""
    opts, options = common.parse("vidclass preprocess", list(sys.argv[1:] if argv is None else argv), add_arguments,
                                 validate)
    runners.preflight(options, {"--input": opts.input, "--output": opts.output})
    spec = SamplingSpec(num_frames=opts.num_frames, clips_per_video=opts.clips_per_video, stride=opts.stride,
                        target_fps=opts.target_fps, size=opts.size, resize=opts.resize, seek=opts.seek)
    started = time.monotonic()
    tasks, discover_failures, labels, form = plan_tasks(opts)
    if not tasks:
        raise errors.RunFailed(f"no usable videos found in {opts.input} ({len(discover_failures)} rows refused)")
    print(f"preprocess: {len(tasks)} videos, {len(labels)} classes ({form}) -> {storage.redact(opts.output)}",
          file=sys.stderr)
    command = lease.describe_command("vidclass preprocess", "--input", opts.input)  # named to a second run
    with lease.acquire(opts.output, command, force=opts.force) as held:
        staging = outdir.begin(opts.output, held)
        limits = DecodeLimits(timeout_s=opts.timeout, threads=runners.decoder_threads(options))
        plan = Plan(staging, spec, limits, shard_counts(tasks, spec, opts.num_shards),
                    None if opts.compression == "none" else opts.compression, opts.jpeg_quality, len(tasks),
                    uuid.uuid4().hex, storage.worker_config())
        pipeline = test_pipeline or beam.Pipeline(options=options)
        task_pc = common.stage_tasks(pipeline, staging, tasks, Task)
        refused = pipeline | "DiscoverFailures" >> beam.Create([failure_row(None, f) for f in discover_failures])
        build(task_pc, plan, refused)
        result = pipeline.run()
        result.wait_until_finish()
        return finalize(opts, plan, labels, tasks, discover_failures, result, time.monotonic() - started, held)


def main(flags: list[str], want_help: bool = False) -> int:
    """`vidclass preprocess`: vidclass's flags and Beam's together."""
    return common.main("vidclass preprocess", __doc__, add_arguments, run, flags, want_help)


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(run())
