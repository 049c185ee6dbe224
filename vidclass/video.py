"""Decode one video and sample its clips: path or URL in, RGB uint8 `[clips, T, H, W, 3]` out.

Pure (no Beam, no TensorFlow): the same function serves preprocessing, training-time tools, `probe`,
`predict` and the Beam pipelines. It raises `VideoError`; `isolation` runs it in a child process so a
hang or a decoder crash costs one video, not the job.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tempfile
from typing import Iterator

import cv2
import fsspec
import numpy as np

from vidclass import containers, errors
from vidclass.resize import resize_frame
from vidclass.sampling import SamplingSpec, padded_frames, sample_indices

_SANE_COUNT = 10**8  # headers report -2^63 for images and garbage for broken files
_END_AFTER_MISSES = 64  # consecutive failed grabs that mean the stream has ended


@dataclasses.dataclass(frozen=True)
class DecodeLimits:
    """Per-video bounds; a video past one becomes a `too_large` or `timeout` error, never a stalled job."""

    timeout_s: float = 300.0
    max_pixels: int = 4096 * 2304
    max_duration_s: float = 4 * 3600.0
    min_frames: int = 1
    # FFmpeg decode threads per video; 0 leaves FFmpeg's choice. Where one decoder already runs per core
    # (pipelines, probe), 1 is faster: a second thread per video costs ~15% more CPU and fights the others.
    threads: int = 0


def decoder_threads(concurrent_videos: int) -> int:
    """`DecodeLimits.threads` for a caller decoding this many videos at once: one thread per video when
    several run side by side (a second per video cost ~15% more CPU and contended for the cores,
    measured), FFmpeg's own choice for a lone decoder."""
    return 1 if concurrent_videos > 1 else 0


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What decoding learned about a video; `frames_decoded` is counted, `header_frame_count` is claimed."""

    uri: str
    frames_decoded: int
    header_frame_count: int | None
    fps: float
    duration_s: float
    width: int
    height: int
    codec: str


@dataclasses.dataclass(frozen=True)
class Clips:
    """The sampled clips of one video; `padded_frames` counts repeated slots per clip (too-short videos)."""

    info: VideoInfo
    frames: np.ndarray         # uint8 [clips, T, size, size, 3], RGB
    indices: np.ndarray        # int64 [clips, T]: decoded-frame index of each frame
    timestamps_us: np.ndarray  # int64 [clips, T]
    padded_frames: int


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[str]:
    """A local path OpenCV can open; remote bytes go to a temp file that is removed whatever happens."""
    if is_local(uri):
        path = uri[len("file://"):] if uri.startswith("file://") else uri
        if not os.path.exists(path):
            raise errors.VideoError(errors.NOT_FOUND, uri, "no such file")
        if os.path.isdir(path):
            raise errors.VideoError(errors.UNREADABLE, uri, "is a directory, not a video file")
        yield path
        return
    fs, path = fsspec.core.url_to_fs(uri)
    try:
        if not fs.exists(path):
            raise errors.VideoError(errors.NOT_FOUND, uri, "no such object")
    except (OSError, PermissionError) as e:
        raise errors.VideoError(errors.UNREADABLE, uri, f"cannot reach storage: {e}") from e
    suffix = os.path.splitext(path)[1][:10]
    fd, tmp = tempfile.mkstemp(prefix="vidclass-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out, fs.open(path, "rb") as src:
            while chunk := src.read(8 << 20):
                out.write(chunk)
        yield tmp
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def _fourcc(cap: cv2.VideoCapture) -> str:
    code = int(cap.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
    text = "".join(chr((code >> 8 * i) & 0xFF) for i in range(4))
    return text.strip("\x00 ") if text.isprintable() and code else "unknown"


def _open(path: str, uri: str, threads: int = 0) -> cv2.VideoCapture:
    params = [cv2.CAP_PROP_N_THREADS, threads] if threads > 0 else []
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        raise containers.diagnose_unopenable(path, uri)
    return cap


def _decode_pass(path: str, uri: str, wanted: set[int], spec: SamplingSpec, limits: DecodeLimits,
                 fps_hint: float, stop_after: int | None, cap: cv2.VideoCapture | None = None
                 ) -> tuple[int, dict[int, tuple[np.ndarray, int]], float]:
    """One sequential pass: `grab()` every frame, `retrieve()` and resize only the wanted ones.

    Returns frames seen, {index: (rgb, timestamp_us)} and the last timestamp in seconds. Memory stays
    flat: only the wanted frames are kept, already resized. Takes over (and releases) `cap` if given.
    """
    cap = cap or _open(path, uri, limits.threads)
    kept: dict[int, tuple[np.ndarray, int]] = {}
    n, last_ts, misses = 0, 0.0, 0
    try:
        while stop_after is None or n <= stop_after:
            if not cap.grab():
                # grab() also fails on a packet the decoder rejects mid-stream; the frames after it still
                # decode. Only a run of failures means the end (at the real end each try is instant).
                misses += 1
                if misses >= _END_AFTER_MISSES:
                    break
                continue
            misses = 0
            ts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            last_ts = ts if math.isfinite(ts) else last_ts
            if max(last_ts, n / fps_hint) > limits.max_duration_s:
                raise errors.VideoError(errors.TOO_LARGE, uri,
                                        f"longer than the {limits.max_duration_s:g} s limit")
            if n in wanted:
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    # A frame that grabs but will not convert: treat the stream as ending here.
                    break
                if bgr.shape[0] * bgr.shape[1] > limits.max_pixels:
                    raise errors.VideoError(errors.TOO_LARGE, uri, f"{bgr.shape[1]}x{bgr.shape[0]} frames exceed "
                                            f"the {limits.max_pixels} pixel limit")
                kept[n] = (resize_frame(bgr, spec.size, spec.resize), int(round(last_ts * 1e6)))
            n += 1
    finally:
        cap.release()
    return n, kept, last_ts


def sample_video(uri: str, spec: SamplingSpec, limits: DecodeLimits = DecodeLimits()) -> Clips:
    """Decode `uri` and return its clips per `spec`; raises `VideoError` with a stable code.

    Frames are counted by decoding to the end of the stream (headers lie: a VFR Matroska file claimed 3x its
    frames, truncated files claim frames that never decode). The header count only guesses which frames
    to keep on the way; where the guess was wrong, a second pass fetches the frames the real count asks for.
    """
    with local_copy(uri) as path:
        cap = _open(path, uri, limits.threads)
        header = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        header_fps = cap.get(cv2.CAP_PROP_FPS)
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        codec = _fourcc(cap)
        if width * height > limits.max_pixels:
            cap.release()
            raise errors.VideoError(errors.TOO_LARGE, uri,
                                    f"{width}x{height} frames exceed the {limits.max_pixels} pixel limit")
        header_count = header if 0 < header < _SANE_COUNT else None
        fps_ok = math.isfinite(header_fps) and 0 < header_fps <= 1000
        fps_hint = header_fps if fps_ok else 25.0
        guess = sample_indices(header_count, spec, fps_hint) if header_count else np.zeros((0, 0), np.int64)
        n, kept, last_ts = _decode_pass(path, uri, set(guess.ravel().tolist()), spec, limits, fps_hint, None, cap)
        if n == 0:
            raise errors.VideoError(errors.NO_FRAMES, uri, f"opens (codec {codec!r}, header claims "
                                    f"{header_count or 0} frames) but no frame decodes; this OpenCV/FFmpeg build "
                                    "may lack the decoder, or the stream is corrupt")
        if n < limits.min_frames:
            raise errors.VideoError(errors.NO_FRAMES, uri,
                                    f"only {n} frames decode; at least {limits.min_frames} required")
        fps = header_fps if fps_ok else (n - 1) / last_ts if last_ts > 0 else 25.0
        indices = sample_indices(n, spec, fps)
        missing = set(indices.ravel().tolist()) - kept.keys()
        if missing:
            _, more, _ = _decode_pass(path, uri, missing, spec, limits, fps_hint, max(missing))
            kept.update(more)
            still = missing - more.keys()
            if still:
                raise errors.VideoError(errors.NO_FRAMES, uri, f"frames {sorted(still)[:5]} decoded once but "
                                        "not on a second read: the stream is not stable")
    first = kept[int(indices.flat[0])][0]
    frames = np.stack([np.stack([kept[int(i)][0] for i in row]) for row in indices])
    stamps = np.array([[kept[int(i)][1] for i in row] for row in indices], np.int64)
    duration = max(last_ts + 1.0 / fps, n / fps) if last_ts > 0 else n / fps
    info = VideoInfo(uri=uri, frames_decoded=n, header_frame_count=header if header_count else None,
                     fps=float(fps), duration_s=float(duration), width=width or first.shape[1],
                     height=height or first.shape[0], codec=codec)
    return Clips(info, frames, indices, stamps, padded_frames(indices))
