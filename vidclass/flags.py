"""argparse types that refuse nonsense at parse time, with the flag and the reason in one line.

`--timeout nan`, `--jpeg-quality 101`, `--top-k 0` or `--size 3000` used to crash a run hours in, or be
silently replaced; argparse now stops them before any work (exit 2), as it does an unknown flag.
"""
from __future__ import annotations

import argparse
import json
import math
from typing import Any, Callable

from vidclass import errors
from vidclass.dataset import JPEG_BYTES_PER_PIXEL

# A clip over this many raw bytes (frames x size^2 x 3) is refused unless --allow-large: 16 frames at
# 1152 px; `--size 3000` made 432 MB clips and 3.4 GB of shards for six videos.
MAX_CLIP_BYTES = 64 << 20


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An int in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {_range(low, high)}, got {value}")
        return value
    return parse


def number(low: float | None = None, high: float | None = None, low_open: bool = False) -> Callable[[str], float]:
    """A finite float in [low, high] (or (low, high] when `low_open`): no nan, no inf."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a finite number {_range(low, high, low_open)}, got {text}")
        return value
    return parse


def json_object(text: str) -> dict[str, Any]:
    """A JSON object, e.g. '{"width": 2}'."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object like '{{\"width\": 2}}', got {text!r}")
    return value


def _range(low: float | None, high: float | None, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}" if not low_open else f"> {low:g} and <= {high:g}"
    if low is not None:
        return f"> {low:g}" if low_open else f">= {low:g}"
    return f"<= {high:g}"


def check_clip_size(num_frames: int, size: int, clips: int = 1, allow_large: bool = False) -> None:
    """Refuse clips whose raw frames would exceed MAX_CLIP_BYTES (memory in training and inference, and
    shards on disk) unless `allow_large`; the message gives the estimate."""
    raw = num_frames * size * size * 3
    if raw > MAX_CLIP_BYTES and not allow_large:
        jpeg = raw / 3 * clips * JPEG_BYTES_PER_PIXEL
        raise errors.UsageError(f"--num-frames {num_frames} x --size {size} makes {raw / 2**20:.0f} MB clips (x{clips} "
                                f"per video; ~{jpeg / 2**20:.0f} MB of JPEG per video): above the "
                                f"{MAX_CLIP_BYTES >> 20} MB sanity bound; pass --allow-large if you mean it")
