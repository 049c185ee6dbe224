"""Per-video failures as values with a stable code, so one bad file becomes a row, never a dead job."""
from __future__ import annotations

import dataclasses

NOT_FOUND = "not_found"
UNREADABLE = "unreadable"
NO_VIDEO_STREAM = "no_video_stream"
NO_FRAMES = "no_frames"
TOO_LARGE = "too_large"
TIMEOUT = "timeout"
DECODER_CRASH = "decoder_crash"
BAD_LABEL = "bad_label"
DUPLICATE = "duplicate"  # a video id listed twice (manifests, split files): the first listing is kept

CODES = (NOT_FOUND, UNREADABLE, NO_VIDEO_STREAM, NO_FRAMES, TOO_LARGE, TIMEOUT, DECODER_CRASH, BAD_LABEL,
         DUPLICATE)


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why one video could not be used; `stage` says which step gave up (discover, decode, encode, infer)."""

    uri: str
    code: str
    message: str
    stage: str = "decode"

    def __post_init__(self):
        if self.code not in CODES:
            raise ValueError(f"unknown error code {self.code!r}")


class VideoError(Exception):
    """Raised inside the decoder and turned into a `Failure` at its boundary."""

    def __init__(self, code: str, uri: str, message: str):
        super().__init__(f"{uri}: {message}")
        self.code, self.uri, self.message = code, uri, message

    def failure(self, stage: str = "decode") -> Failure:
        return Failure(self.uri, self.code, self.message, stage)
