"""What can go wrong, typed: per-video failures as values with a stable code (one bad file becomes a row,
never a dead job), and run-level errors with named exit statuses (one line from the CLI, never a traceback).
"""
from __future__ import annotations

import dataclasses
import enum

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


# --- run-level errors: the whole command fails, with one line and a named exit status --------------------

class Exit(enum.IntEnum):
    """The exit statuses of every `vidclass` command (README "Exit statuses")."""

    OK = 0            # the run completed (per-video errors are rows, not failures)
    FAILED = 1        # the run itself failed: too many bad videos, no input found, storage gave out
    USAGE = 2         # what the user gave cannot work: a bad flag, an unusable model or dataset, a busy output
    INTERRUPTED = 130  # Ctrl-C


class RunError(Exception):
    """A fault of the whole run, told in one line; library code raises these, only the CLI prints them."""

    status = Exit.FAILED


class UsageError(RunError):
    """A flag, path or runner choice that cannot work; nothing has been written."""

    status = Exit.USAGE


class InputError(UsageError):
    """An `--input` that cannot be read as videos: missing, an empty glob, a malformed manifest or split file."""


class ModelError(UsageError):
    """A model bundle that cannot be used: missing, unloadable, or not matching its own bundle.json."""


class DatasetError(UsageError):
    """A dataset directory that cannot be used: unfinished (no _SUCCESS), unreadable, or inconsistent."""


class OutputBusy(UsageError):
    """Another run holds the output directory's lease."""


class RunFailed(RunError):
    """The run ran but its result is not trustworthy (error share, a check before _SUCCESS)."""
