"""Tiny videos the tests make themselves: each frame carries its own index as a barcode of horizontal bands.

The bands span the full width, so the index survives a centre crop of a landscape frame, a resize and lossy
codecs; `read_index` turns a decoded (even resized) frame back into the number that was written.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np

BITS = 10  # up to 1024 distinct frames; longer videos wrap, which tests of long files do not read back


def barcode_frame(index: int, height: int = 96, width: int = 128, color=(40, 160, 220)) -> np.ndarray:
    """An RGB frame whose bands spell `index` in binary (top band = most significant bit)."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = color
    band = height / BITS
    for bit in range(BITS):
        on = (index >> (BITS - 1 - bit)) & 1
        frame[int(round(bit * band)):int(round((bit + 1) * band)), :, :] = 235 if on else 20
    # a colour block in the middle keeps the frame from being pure gray
    frame[:, width // 2 - 4:width // 2 + 4] = color
    return frame


def read_index(frame: np.ndarray) -> int:
    """The index a `barcode_frame` spells, read from the band centres of any-size frame."""
    gray = frame.mean(axis=2)
    h = gray.shape[0]
    value = 0
    for bit in range(BITS):
        row = gray[int((bit + 0.5) * h / BITS)]
        value = (value << 1) | int(np.median(row) > 128)
    return value


def barcode_frames(n: int, height: int = 96, width: int = 128) -> np.ndarray:
    return np.stack([barcode_frame(i, height, width) for i in range(n)])


def write_cv2(path: Path, frames: np.ndarray, fps: float = 25.0, fourcc: str = "mp4v") -> Path:
    """Write RGB frames with OpenCV's own encoder (mp4v, MJPG, XVID, VP90 work in opencv-python-headless)."""
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return Path(path)


def barcode_video(path: Path, n: int, height: int = 96, width: int = 128, fps: float = 25.0,
                  fourcc: str = "mp4v") -> Path:
    return write_cv2(path, barcode_frames(n, height, width), fps, fourcc)


HAVE_FFMPEG = shutil.which("ffmpeg") is not None


def ffmpeg_encode(path: Path, frames: np.ndarray, fps: float = 25.0, args: tuple[str, ...] = (),
                  input_args: tuple[str, ...] = ()) -> Path:
    """Pipe RGB frames through Debian's ffmpeg with encoder `args` (e.g. '-c:v', 'libx264')."""
    h, w = frames.shape[1:3]
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", str(fps), *input_args, "-i", "-", *args, str(path)]
    subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), check=True, timeout=300)
    return Path(path)


def text_file(path: Path, text: str = "this is not a video\n") -> Path:
    Path(path).write_text(text)
    return Path(path)


def truncated_copy(src: Path, dst: Path, keep: float = 0.5) -> Path:
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep)])
    return Path(dst)


def fifo(path: Path) -> Path:
    """A named pipe nobody writes to: opening it for reading blocks forever."""
    os.mkfifo(path)
    return Path(path)
