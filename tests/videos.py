"""Tiny videos the tests make themselves: each frame carries its own index as a barcode of horizontal bands.

The bands span the full width, so the index survives a centre crop of a landscape frame, a resize and lossy
codecs; `read_index` turns a decoded (even resized) frame back into the number that was written. Videos are
encoded with PyAV's bundled encoders (`vidclass.video.writer`): no system ffmpeg is needed.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vidclass.video.writer import write_video

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


def barcode_frames(n: int, height: int = 96, width: int = 128, period: int | None = None) -> np.ndarray:
    return np.stack([barcode_frame(i % period if period else i, height, width) for i in range(n)])


def barcode_video(path: Path, n: int, height: int = 96, width: int = 128, fps: float = 25.0,
                  **encoder) -> Path:
    """`n` barcode frames as H.264 MP4 (or whatever `encoder` keywords of `write_video` say)."""
    return write_video(path, barcode_frames(n, height, width), fps, **encoder)


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


def decodable_positions(path: Path) -> tuple[int, list[int]]:
    """(packets, positions of the frames a plain PyAV decode of every packet gives): the reference a
    sampler's claims about a damaged file are checked against."""
    import av
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        packets = sorted(p.pts for p in c.demux(stream) if p.size and not p.is_discard)
    got = []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        try:
            for p in c.demux(stream):
                try:
                    got.extend(f.pts for f in p.decode())
                except av.error.FFmpegError:
                    pass
        except av.error.FFmpegError:
            pass
    where = {pts: i for i, pts in enumerate(packets)}
    return len(packets), sorted(where[t] for t in got if t in where)
