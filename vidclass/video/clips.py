"""What decoding takes and gives: per-video limits, what was learned about a video, and its sampled clips."""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class DecodeLimits:
    """Per-video bounds; a video past one becomes a `too_large` or `timeout` error, never a stalled job."""

    timeout_s: float = 300.0
    max_pixels: int = 4096 * 2304   # checked on every decoded frame, not only the first
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
    """What decoding learned about a video.

    frames_decoded: frames of the stream's packet index less those the decoder was seen to reject, so
      never a frame that is known not to decode (exact whenever the whole stream was decoded, which is
      the case for short videos); header_frame_count: what the container claims.
    decode_errors: packets the decoder rejected among those it was given.
    """

    uri: str
    frames_decoded: int
    header_frame_count: int | None
    fps: float
    duration_s: float
    width: int
    height: int
    codec: str
    decode_errors: int = 0


@dataclasses.dataclass(frozen=True)
class Clips:
    """The sampled clips of one video (or one window of it).

    padded_frames: repeated slots per clip (videos shorter than a clip), the most over clips.
    substituted_frames: wanted frames that did not decode and were replaced by the nearest frame that did
      (`indices` names the frames really used).
    """

    info: VideoInfo
    frames: np.ndarray         # uint8 [clips, T, size, size, 3], RGB
    indices: np.ndarray        # int64 [clips, T]: position of each frame in the stream's frame index
    timestamps_us: np.ndarray  # int64 [clips, T]: from the frames' own presentation timestamps
    padded_frames: int
    substituted_frames: int = 0
