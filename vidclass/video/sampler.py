"""Decode one video and sample its clips: path or URL in, RGB uint8 `[clips, T, H, W, 3]` out.

Pure (no Beam, no TensorFlow): the same functions serve preprocessing, `probe`, `predict` and the Beam
pipelines, so training and serving sample alike. The index (`index.py`) says how many frames the stream
really holds; `sample_indices` picks positions from that count; the reader (`reader.py`) decodes just
those. A wanted frame that does not decode is replaced by the nearest one that does, and counted.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import av
import numpy as np

from vidclass import errors
from vidclass.resize import resize_frame
from vidclass.sampling import SamplingSpec, padded_frames, sample_indices
from vidclass.video.clips import Clips, DecodeLimits, VideoInfo
from vidclass.video.reader import VideoReader, quarter_turns
from vidclass.video.source import local_copy

_SEARCH_ROUNDS = 6  # substitutes are looked for 1, 2, 4, ... 32 frames away before a frame is given up


def sample_video(uri: str, spec: SamplingSpec, limits: DecodeLimits = DecodeLimits()) -> Clips:
    """Decode `uri` and return its clips per `spec`; raises `VideoError` with a stable code."""
    with local_copy(uri) as path, VideoReader(path, uri, limits) as reader:
        clips = _sample(reader, spec, 0, len(reader.index))
        info = video_info(reader)
        if info.frames_decoded < limits.min_frames:
            raise errors.VideoError(errors.NO_FRAMES, uri, f"only {info.frames_decoded} frames decode; at least "
                                    f"{limits.min_frames} required")
        return dataclasses.replace(clips, info=info)


@dataclasses.dataclass(frozen=True)
class Window:
    """A stretch of a video's timeline, in seconds from its first frame: [start_s, end_s)."""

    index: int
    start_s: float
    end_s: float


@dataclasses.dataclass(frozen=True)
class WindowClips:
    """One window's clips, or why it has none; `info` is what is known of the whole video so far."""

    window: Window
    clips: Clips | None
    failure: errors.Failure | None
    info: VideoInfo


def windows(duration_s: float, seconds: float, stride_s: float | None = None) -> list[Window]:
    """Cut a timeline into windows of `seconds` every `stride_s` (default: back to back, so they tile it
    without gaps or overlaps). The last window ends at the end of the video, so it may be shorter."""
    stride = stride_s or seconds
    if seconds <= 0 or stride <= 0:
        raise ValueError(f"window length and stride must be > 0, got {seconds}, {stride}")
    duration_s = round(duration_s, 6)  # 19.9 s + 1/10 s must be 20 s, not a hair over it (an empty window)
    out, k = [], 0
    while True:
        start = k * stride
        if start >= duration_s and out:
            break
        out.append(Window(k, round(start, 6), round(min(start + seconds, duration_s), 6)))
        if start + seconds >= duration_s:
            break
        k += 1
    return out


def sample_windows(uri: str, spec: SamplingSpec, seconds: float, stride_s: float | None = None,
                   limits: DecodeLimits = DecodeLimits(), group: int = 8) -> Iterator[WindowClips]:
    """Each window of the video sampled with `spec` inside it, `group` windows decoded at a time: memory
    stays bounded however long the video. A window where nothing decodes is a failure of that window."""
    with local_copy(uri) as path, VideoReader(path, uri, limits) as reader:
        index = reader.index
        cuts = windows(index.duration_s(reader.container_fps), seconds, stride_s)
        for g in range(0, len(cuts), group):
            batch = cuts[g:g + group]
            bounds = [index.window(w.start_s, w.end_s) for w in batch]
            plans = [_plan(reader, spec, a, b) if b > a else None for a, b in bounds]
            frames = _fetch(reader, [p for p in plans if p is not None], spec)
            for w, (a, b), plan in zip(batch, bounds, plans):
                try:
                    if plan is None:
                        raise errors.VideoError(errors.NO_FRAMES, uri, f"no frame in {w.start_s:g}-{w.end_s:g} s")
                    clips, failure = _assemble(reader, plan, frames, a, b, _converter(spec)), None
                except errors.VideoError as e:
                    clips, failure = None, e.failure()
                yield WindowClips(w, clips, failure, video_info(reader))


def cut_off_windows(info: VideoInfo, seconds: float, stride_s: float | None, done: int,
                    failure: errors.Failure) -> list[WindowClips]:
    """The windows after the first `done` that a failure mid-video (a timeout, a crash) cut off, each as a
    failed window: the timeline stays whole, and the windows already scored keep the video labelled."""
    cut = errors.Failure(failure.uri, failure.code, f"{failure.message} (after {done} windows)", failure.stage)
    return [WindowClips(w, None, cut, info) for w in windows(info.duration_s, seconds, stride_s)[done:]]


def video_info(reader: VideoReader) -> VideoInfo:
    """What the reader knows of the whole video: frames less those seen not to decode, rate, size."""
    index = reader.index
    fps = index.fps(reader.container_fps)
    width, height = reader.display_size()
    return VideoInfo(uri=reader.uri, frames_decoded=len(index) - len(reader.missing),
                     header_frame_count=reader.header_frames, fps=float(fps),
                     duration_s=float(index.duration_s(reader.container_fps)), width=width, height=height,
                     codec=reader.codec, decode_errors=reader.decode_errors)


@dataclasses.dataclass(frozen=True)
class _Plan:
    planned: np.ndarray  # [clips, T] positions the sampler asked for
    fetch: np.ndarray    # the same, snapped to keyframes in keyframe mode


def _plan(reader: VideoReader, spec: SamplingSpec, a: int, b: int) -> _Plan:
    """Positions for frames [a, b) of the stream, planned from the index's count and rate."""
    index = reader.index
    planned = sample_indices(b - a, spec, index.fps(reader.container_fps)) + a
    fetch = planned
    if spec.seek == "keyframe":
        keys = index.key_positions
        inside = keys[(keys >= a) & (keys < b)]
        if len(inside):  # a window without a keyframe keeps its exact frames
            snap = np.searchsorted(inside, planned)
            lo, hi = inside[np.clip(snap - 1, 0, len(inside) - 1)], inside[np.clip(snap, 0, len(inside) - 1)]
            fetch = np.where(np.abs(planned - lo) <= np.abs(hi - planned), lo, hi)
    return _Plan(planned, fetch)


def _sample(reader: VideoReader, spec: SamplingSpec, a: int, b: int) -> Clips:
    plan = _plan(reader, spec, a, b)
    return _assemble(reader, plan, _fetch(reader, [plan], spec), a, b, _converter(spec))


def _fetch(reader: VideoReader, plans: list[_Plan], spec: SamplingSpec) -> dict[int, tuple[np.ndarray, int]]:
    """Decode every position the plans name, in one pass through the stream."""
    if not plans:
        return {}
    wanted = np.unique(np.concatenate([p.fetch.ravel() for p in plans]))
    return reader.read(wanted, _converter(spec), keyframes_only=spec.seek == "keyframe"
                       and all(reader.index.keyframe[wanted]))


def _assemble(reader: VideoReader, plan: _Plan, frames: dict[int, tuple[np.ndarray, int]], a: int, b: int,
              convert: Callable[[av.VideoFrame], np.ndarray]) -> Clips:
    """Clips from decoded frames; a wanted frame that did not decode is replaced by the nearest frame in
    [a, b) that does (`substituted_frames`), and a window where none does is a `no_frames` error."""
    used = plan.fetch.copy()
    substituted = 0
    for pos in np.unique(plan.fetch):
        if int(pos) in frames:
            continue
        sub = _substitute(reader, int(pos), a, b, frames, convert)
        if sub is None:
            raise errors.VideoError(errors.NO_FRAMES, reader.uri, f"no frame decodes near frame {pos} (of "
                                    f"{len(reader.index)} indexed, {reader.decode_errors} packets rejected)")
        used[plan.fetch == pos] = sub
        substituted += int((plan.fetch == pos).sum())
    index = reader.index
    stamps = np.array([[int(round((frames[int(p)][1] - index.pts[0]) * float(index.time_base) * 1e6))
                        if frames[int(p)][1] >= 0 else int(round(float(index.seconds(int(p))) * 1e6))
                        for p in row] for row in used], np.int64)
    stack = np.stack([np.stack([frames[int(p)][0] for p in row]) for row in used])
    return Clips(video_info(reader), stack, used.astype(np.int64), stamps, padded_frames(plan.planned - a),
                 substituted)


def _substitute(reader: VideoReader, pos: int, a: int, b: int, frames: dict[int, tuple[np.ndarray, int]],
                convert: Callable[[av.VideoFrame], np.ndarray]) -> int | None:
    """The nearest position in [a, b) to `pos` whose frame decodes (decoding it if needed), or None."""
    for r in (2 ** k for k in range(_SEARCH_ROUNDS)):
        near = sorted((p for p in range(max(a, pos - r), min(b, pos + r + 1)) if p not in reader.missing),
                      key=lambda p: (abs(p - pos), p))
        have = [p for p in near if p in frames]
        todo = [p for p in near if p not in frames]
        if todo:
            frames.update(reader.read(np.array(todo), convert))
        found = [p for p in near if p in frames]
        if found or have:
            return min(found or have, key=lambda p: (abs(p - pos), p))
        if a >= pos - r and b <= pos + r + 1:
            break
    return None


def _converter(spec: SamplingSpec) -> Callable[[av.VideoFrame], np.ndarray]:
    """Decoded frame -> RGB `size`x`size`: the display rotation applied first, then the resize policy."""
    def convert(frame: av.VideoFrame) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24")
        turns = quarter_turns(frame)
        if turns:
            rgb = np.rot90(rgb, turns)
        return resize_frame(np.ascontiguousarray(rgb), spec.size, spec.resize)
    return convert
