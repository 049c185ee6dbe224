"""The decode steps of both pipelines: thin DoFns over `vidclass.video.isolation`.

`DecodeVideos` gives each video's clips; `DecodeWindows` streams a long video's timeline window by window
(the child answers each group of windows as it decodes them), so no element ever holds a whole video.
"""
from __future__ import annotations

import time
from typing import Any, Iterator

import apache_beam as beam

from pipelines.common import Progress
from vidclass import errors, storage
from vidclass.sampling import SamplingSpec
from vidclass.video import Clips, DecodeLimits, VideoInfo, WindowClips, cut_off_windows
from vidclass.video.isolation import WINDOWS_TARGET, WorkerPool

FAILED = "failed"
WINDOW_FAILED = "window_failed"
VIDEO_INFO = "video_info"
_NS = "vidclass"


class DecodeVideos(beam.DoFn):
    """(task with `.uri`) -> (task, Clips) on the main output, or (task, Failure) on `failed`.

    Each DoFn instance owns decoder child processes (one per thread), started in `setup` and reused, so a
    hang or crash costs one video and the process start-up is paid once per worker, not per video.
    """

    def __init__(self, spec: SamplingSpec, limits: DecodeLimits, what: str = "decode", total: int = 0,
                 run_token: str = "", storage_conf: dict | None = None):
        self.spec, self.limits, self.what, self.total, self.run_token = spec, limits, what, total, run_token
        self.storage_conf = storage_conf or {}  # the launcher's S3 settings: workers may not have its flags
        self._ok = beam.metrics.Metrics.counter(_NS, "videos_ok")
        self._failed = beam.metrics.Metrics.counter(_NS, "videos_failed")
        self._frames = beam.metrics.Metrics.counter(_NS, "frames_decoded")
        self._decode_ms = beam.metrics.Metrics.distribution(_NS, "decode_ms")

    def setup(self) -> None:
        storage.apply_worker_config(self.storage_conf)  # before the decoder children inherit the environment
        self._pool = WorkerPool()
        self._progress = _progress_for(self.what, self.total, self.run_token)

    def process(self, task: Any) -> Iterator[Any]:
        start = time.monotonic()
        out = self._pool.worker().sample(task.uri, self.spec, self.limits)
        self._decode_ms.update(int((time.monotonic() - start) * 1000))
        if isinstance(out, errors.Failure):
            self._failed.inc()
            beam.metrics.Metrics.counter(_NS, f"failed_{out.code}").inc()
            self._progress.tick(failed=True)
            yield beam.pvalue.TaggedOutput(FAILED, (task, out))
            return
        assert isinstance(out, Clips)
        self._ok.inc()
        self._frames.inc(out.info.frames_decoded)
        self._progress.tick()
        yield task, out

    def teardown(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()


class DecodeWindows(DecodeVideos):
    """(task) -> one `(task, WindowClips)` per decoded window on the main output, `(task, WindowClips)` on
    `window_failed` for a window that did not decode, then `(task, VideoInfo, windows)` on `video_info`;
    or `(task, Failure)` on `failed` when the video itself cannot be decoded (then nothing else)."""

    def __init__(self, spec: SamplingSpec, limits: DecodeLimits, seconds: float, stride: float | None,
                 total: int = 0, run_token: str = "", storage_conf: dict | None = None):
        super().__init__(spec, limits, "infer", total, run_token, storage_conf)
        self.seconds, self.stride = seconds, stride
        self.target = WINDOWS_TARGET  # what the decoder child runs (a test may point it at a crashing one)

    def process(self, task: Any) -> Iterator[Any]:
        start = time.monotonic()
        info: VideoInfo | None = None
        windows = 0
        for item in self._pool.worker().sample_windows(task.uri, self.spec, self.seconds, self.stride, self.limits,
                                                       target=self.target):
            if isinstance(item, errors.Failure):
                if info is None:  # before any window: the video's own failure, and no timeline
                    self._failed.inc()
                    self._progress.tick(failed=True)
                    yield beam.pvalue.TaggedOutput(FAILED, (task, item))
                    return
                # mid-video (a timeout, a crash): the windows it cut off are failed windows of a whole timeline
                for lost in cut_off_windows(info, self.seconds, self.stride, windows, item):
                    windows += 1
                    yield beam.pvalue.TaggedOutput(WINDOW_FAILED, (task, lost))
                break
            assert isinstance(item, WindowClips)
            info, windows = item.info, windows + 1
            yield (task, item) if item.clips is not None else beam.pvalue.TaggedOutput(WINDOW_FAILED, (task, item))
        self._decode_ms.update(int((time.monotonic() - start) * 1000))
        self._ok.inc()
        self._frames.inc(info.frames_decoded if info else 0)
        self._progress.tick()
        yield beam.pvalue.TaggedOutput(VIDEO_INFO, (task, info, windows))


_PROGRESS: dict[str, Progress] = {}


def _progress_for(what: str, total: int, run_token: str) -> Progress:
    """One progress line per run and process, however many DoFn instances the runner makes."""
    return _PROGRESS.setdefault(run_token, Progress(what, total))
