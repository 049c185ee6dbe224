"""The composite steps of `infer`: carry over what an earlier run scored, score whole videos, score timelines.

Elements are small typed dataclasses keyed by video; each step has a stable CamelCase label. The model
runs inside Beam's `RunInference` with `VideoClipsHandler`, which loads the bundle once per worker.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Iterator, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference

from pipelines.decode import FAILED, VIDEO_INFO, WINDOW_FAILED, DecodeVideos, DecodeWindows
from vidclass import errors, predictions, storage
from vidclass.predictions import Scores, Stamp, VideoRef
from vidclass.sampling import SamplingSpec
from vidclass.video import DecodeLimits, VideoInfo, Window


@dataclasses.dataclass(frozen=True)
class ScoringPlan:
    """What every scoring step needs from the launcher (all of it picklable, none of it launcher-only)."""

    model_dir: str
    stamp: Stamp
    spec: SamplingSpec
    limits: DecodeLimits
    batch_size: int
    embeddings: bool
    total: int
    segment_seconds: float | None = None
    segment_stride: float | None = None
    storage_conf: dict = dataclasses.field(default_factory=dict)  # the launcher's S3 settings, for workers


@dataclasses.dataclass(frozen=True)
class Unit:
    """The key riding through RunInference beside a video's (or a window's) clips."""

    video: VideoRef
    info: VideoInfo
    num_clips: int
    window: Window | None = None


class VideoClipsHandler(ModelHandler[np.ndarray, Scores, Any]):
    """Examples are one video's (or window's) clips, uint8 [K, T, S, S, 3]; predictions their mean `Scores`.

    Beam's stock TF handler calls the model eagerly (1.5-2.6x slower, measured) and starts batching at 1;
    this one uses `vidclass.predict.Predictor` (traced once) and fixed batch sizes."""

    def __init__(self, model_dir: str, videos_per_batch: int, clips_per_call: int, embeddings: bool,
                 storage_conf: dict | None = None):
        # Batches start at a quarter of the target: the DirectRunner hands each thread a fixed share, and
        # full-size batches held all model work until a thread's last decode (a CPU forward gains little
        # from batches over ~4: 28.6 vs 21.9 ms per clip at 1 vs 16, measured).
        super().__init__(min_batch_size=max(1, videos_per_batch // 4), max_batch_size=videos_per_batch)
        self.model_dir, self.clips_per_call, self.embeddings = model_dir, clips_per_call, embeddings
        self.storage_conf = storage_conf or {}

    def load_model(self):
        from vidclass.predict import Predictor
        storage.apply_worker_config(self.storage_conf)
        return Predictor(self.model_dir, self.clips_per_call, self.embeddings)

    def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None) -> Iterable[Scores]:
        return model.score(batch)

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return int(sum(x.nbytes for x in batch))  # the default pickles the whole batch just to count it

    def get_metrics_namespace(self) -> str:
        return "vidclass"


@beam.ptransform_fn
def Score(units, plan: ScoringPlan):  # pylint: disable=invalid-name
    """(Unit, clips) -> (Unit, Scores), batches of videos per model call."""
    per_batch = max(1, plan.batch_size // plan.spec.clips_per_video)
    return units | "RunInference" >> RunInference(KeyedModelHandler(
        VideoClipsHandler(plan.model_dir, per_batch, plan.batch_size, plan.embeddings, plan.storage_conf)))


def _carry_or_score(element: tuple[str, dict[str, list]]) -> Iterator:
    """A video's task joined with PRIOR_OUT's row: same content -> carry the row over; else score it."""
    _, joined = element
    for task in joined["task"]:
        prior = [r for r in joined["prior"] if task.fingerprint and r["content_fingerprint"] == task.fingerprint]
        if prior:
            yield beam.pvalue.TaggedOutput("carried", predictions.conform({**prior[0], "video_uri": task.uri}))
        else:
            yield task


def _segments_of_carried(element: tuple[str, dict[str, list]]) -> Iterator[dict]:
    _, joined = element
    if joined["carried"]:
        uri = joined["carried"][0]["video_uri"]
        for row in joined["segments"]:
            yield predictions.conform({**row, "video_uri": uri}, predictions.SEGMENT_COLUMNS)


@beam.ptransform_fn
def CarryOver(tasks, prior: str, model_version: str, segments: bool):  # pylint: disable=invalid-name
    """-> (tasks still to score, rows carried from `prior`, their segment rows). A video is carried over when
    `prior` scored it with this model and its content fingerprint is unchanged."""
    root = prior.rstrip("/")
    rows = (tasks.pipeline
            | "ReadPrior" >> beam.io.ReadFromParquet(f"{root}/{predictions.PREDICTIONS}-*.parquet")
            | "ScoredByThisModel" >> beam.Filter(lambda r, v: r["status"] == "ok" and r["model_version"] == v,
                                                 model_version)
            | "KeyPrior" >> beam.Map(lambda r: (r["video_id"], r)))
    joined = ({"task": tasks | "KeyTask" >> beam.Map(lambda t: (t.video_id, t)), "prior": rows}
              | "JoinPrior" >> beam.CoGroupByKey()
              | "CarryOrScore" >> beam.FlatMap(_carry_or_score).with_outputs("carried", main="todo"))
    if not segments:
        return joined.todo, joined.carried, None
    prior_segments = (tasks.pipeline
                      | "ReadPriorSegments" >> beam.io.ReadFromParquet(f"{root}/{predictions.SEGMENTS}-*.parquet")
                      | "KeyPriorSegments" >> beam.Map(lambda r: (r["video_id"], r)))
    carried_segments = ({"carried": joined.carried | "KeyCarried" >> beam.Map(lambda r: (r["video_id"], r)),
                         "segments": prior_segments}
                        | "JoinSegments" >> beam.CoGroupByKey()
                        | "SegmentsOfCarried" >> beam.FlatMap(_segments_of_carried))
    return joined.todo, joined.carried, carried_segments


@beam.ptransform_fn
def ScoreVideos(tasks, plan: ScoringPlan):  # pylint: disable=invalid-name
    """tasks -> one prediction row each: decoded whole, scored, or an error row."""
    stamp = plan.stamp
    decoded = (tasks
               | "Spread" >> beam.Reshuffle()  # fan out: without it one bundle decodes everything serially
               | "DecodeAndSample" >> beam.ParDo(DecodeVideos(plan.spec, plan.limits, "infer", plan.total,
                                                              plan.stamp.run_id, plan.storage_conf)
                                                 ).with_outputs(FAILED, main="ok"))
    scored = (decoded.ok
              | "KeyByVideo" >> beam.MapTuple(lambda t, c: (Unit(t, c.info, c.frames.shape[0]), c.frames))
              | "Score" >> Score(plan)
              | "OkRows" >> beam.MapTuple(lambda u, s: predictions.ok_row(u.video, s, u.info, u.num_clips, stamp)))
    failed = decoded[FAILED] | "ErrorRows" >> beam.MapTuple(lambda t, f: predictions.error_row(t, f, stamp))
    return (scored, failed) | "VideoRows" >> beam.Flatten()


def _video_row(element: tuple[str, dict[str, list]], stamp: Stamp) -> Iterator[dict]:
    """A video's row from its windows: the mean over the scored ones (`num_segments` counts them all)."""
    _, joined = element
    for task, info, windows in joined["info"]:
        parts = joined["parts"]
        if not parts:
            yield predictions.error_row(task, errors.Failure(task.uri, errors.NO_FRAMES, f"none of its {windows} "
                                                             "windows could be decoded"), stamp)
            continue
        scores = Scores.mean([s for _, s, _ in sorted(parts, key=lambda p: p[0])])
        yield predictions.ok_row(task, scores, info, sum(k for _, _, k in parts), stamp, num_segments=windows)


@beam.ptransform_fn
def ScoreTimelines(tasks, plan: ScoringPlan):  # pylint: disable=invalid-name
    """tasks -> (one prediction row each, one segment row per window). Windows travel through the model in
    bounded groups; a video's row is the mean of its scored windows."""
    stamp = plan.stamp
    decoded = (tasks
               | "Spread" >> beam.Reshuffle()
               | "DecodeWindows" >> beam.ParDo(DecodeWindows(
                   plan.spec, plan.limits, plan.segment_seconds, plan.segment_stride, plan.total,
                   plan.stamp.run_id, plan.storage_conf)).with_outputs(FAILED, WINDOW_FAILED, VIDEO_INFO, main="ok"))
    scored = (decoded.ok
              | "KeyByWindow" >> beam.MapTuple(lambda t, w: (Unit(t, w.info, w.clips.frames.shape[0], w.window),
                                                             w.clips.frames))
              | "Score" >> Score(plan))
    ok_segments = scored | "OkSegmentRows" >> beam.MapTuple(
        lambda u, s: predictions.segment_row(u.video, u.window, stamp, s, u.num_clips))
    bad_segments = decoded[WINDOW_FAILED] | "ErrorSegmentRows" >> beam.MapTuple(
        lambda t, w: predictions.segment_row(t, w.window, stamp, failure=w.failure))
    parts = scored | "KeyParts" >> beam.MapTuple(lambda u, s: (u.video.video_id, (u.window.index, s, u.num_clips)))
    infos = decoded[VIDEO_INFO] | "KeyInfo" >> beam.Map(lambda e: (e[0].video_id, e))
    whole = ({"parts": parts, "info": infos} | "JoinWindows" >> beam.CoGroupByKey()
             | "VideoFromWindows" >> beam.FlatMap(_video_row, stamp))
    failed = decoded[FAILED] | "ErrorRows" >> beam.MapTuple(lambda t, f: predictions.error_row(t, f, stamp))
    return ((whole, failed) | "VideoRows" >> beam.Flatten(),
            (ok_segments, bad_segments) | "SegmentRows" >> beam.Flatten())
