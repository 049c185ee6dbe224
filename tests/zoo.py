"""A codec zoo: real and broken videos, each with what vidclass must report for it.

Good videos carry barcode frames (see `videos.py`) wherever the codec keeps them readable, so a test can
check that the frames a sampler returns are the frames it says it returned. Every file is made with PyAV's
bundled encoders (libx264, libx265, libvpx-vp9, SVT-AV1, mpeg4, mjpeg): no system ffmpeg. Where a count
depends on encoder details (truncated and corrupted files) the expectation is a range, and damaged files
are also checked against a plain decode of every packet (`videos.decodable_positions`).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import fractions
import os
from pathlib import Path
from typing import Callable

import av
import numpy as np

from videos import barcode_frames, barcode_video, fifo, text_file, truncated_copy
from vidclass.video.writer import write_video

LONG_PERIOD = 1000  # the 10-minute video repeats a 1000-frame barcode segment


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One zoo video and what `sample_video`/`probe` must say about it (at 16 frames per clip)."""

    path: Path
    status: str = "ok"
    error_code: str | None = None
    frames: int | tuple[int, int] | None = None  # frames_decoded: exact, or an inclusive (min, max)
    readback: str | None = None       # "exact": barcodes equal the sampled indices; "shifted": by a constant
    index_period: int | None = None   # barcodes repeat every this many frames
    turns: int = 0                    # np.rot90 turns that undo the display rotation before reading barcodes
    header_lies: bool | None = None   # header_frame_count != frames_decoded (None: not checked)
    padded_frames: int | None = None
    size: tuple[int, int] | None = None  # (width, height) as reported
    codec: str | None = None          # codec name as reported
    gray: bool = False                # a gray source: decoded frames are still 3 channels, all equal
    damaged: bool = False             # check every claim against a plain decode of every packet
    message: str | None = None        # a word the error message must contain
    slow: bool = False                # long to make or decode: only in `make test-all`

    def frames_ok(self, n: int | None) -> bool:
        if self.frames is None:
            return True
        if isinstance(self.frames, tuple):
            return n is not None and self.frames[0] <= n <= self.frames[1]
        return n == self.frames


# --- good videos: one per codec/container, 2 s of 128x96 barcodes at 25 fps ------------------------------

_CODECS: dict[str, tuple[str, str, str]] = {  # name: (encoder, pixel format, codec name decoders report)
    "h264.mp4": ("libx264", "yuv420p", "h264"),
    "hevc.mkv": ("libx265", "yuv420p", "hevc"),
    "hevc10.mp4": ("libx265", "yuv420p10le", "hevc"),
    "vp9.webm": ("libvpx-vp9", "yuv420p", "vp9"),
    "av1.mkv": ("libsvtav1", "yuv420p", "av1"),
    "mjpeg.avi": ("mjpeg", "yuvj420p", "mjpeg"),
    "mpeg4.avi": ("mpeg4", "yuv420p", "mpeg4"),
    "mpeg4.mov": ("mpeg4", "yuv420p", "mpeg4"),
    "h264.mkv": ("libx264", "yuv420p", "h264"),
    "h264.mov": ("libx264", "yuv420p", "h264"),
    "gray.mp4": ("libx264", "gray", "h264"),
}


def _codec(name: str, encoder: str, pix_fmt: str, codec: str) -> Callable[[Path], ZooEntry]:
    def make(root: Path) -> ZooEntry:
        path = write_video(root / name, barcode_frames(50), 25, codec=encoder, pix_fmt=pix_fmt)
        return ZooEntry(path, frames=50, readback="exact", header_lies=False, size=(128, 96), codec=codec,
                        gray=pix_fmt == "gray")
    return make


def _rotated(root: Path) -> ZooEntry:
    # A phone held upright: landscape pixels, a display matrix turning them a quarter clockwise.
    path = write_video(root / "rotated90.mp4", barcode_frames(50), 25, rotation=-90)
    # Frames come out as displayed (portrait) and the size is reported as displayed.
    return ZooEntry(path, frames=50, readback="exact", turns=1, header_lies=False, size=(96, 128))


def _vfr(name: str) -> Callable[[Path], ZooEntry]:
    def make(root: Path) -> ZooEntry:
        # 30 frames at 10 fps, then 30 at 50 fps (milliseconds)
        pts = [100 * i for i in range(30)] + [3000 + 20 * i for i in range(30)]
        path = write_video(root / name, barcode_frames(60), 50, pts=pts, time_base=fractions.Fraction(1, 1000))
        # MP4 stores its sample count; Matroska has none, and duration x rate guesses another number.
        return ZooEntry(path, frames=60, readback="exact", header_lies=name.endswith(".mkv"), size=(128, 96))
    return make


def _trimmed(root: Path) -> ZooEntry:
    """What `ffmpeg -ss 1.1 -c copy` makes: the GOP from the keyframe before the cut, shifted so the cut is
    at 0, under an edit list that hides the frames before it. The header counts every sample."""
    src = write_video(root / "trim-src.mp4", barcode_frames(100), 25, gop=50)
    path = root / "trimmed_editlist.mp4"
    with av.open(str(src)) as inp, av.open(str(path), "w") as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream_from_template(s_in)
        shift = int(round(1.1 / float(s_in.time_base)))
        for packet in inp.demux(s_in):
            if packet.size == 0:
                continue
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = s_out
            out.mux(packet)
    src.unlink()
    return ZooEntry(path, frames=(60, 80), readback="shifted", header_lies=True)


def _huge(root: Path) -> ZooEntry:
    path = write_video(root / "4k.mp4", barcode_frames(3, 2160, 3840), 25, options={"preset": "ultrafast"})
    return ZooEntry(path, frames=3, readback="exact", padded_frames=13, size=(3840, 2160))


def _long_gop(name: str, encoder: str, pix_fmt: str = "yuv420p") -> Callable[[Path], ZooEntry]:
    """1500 frames with a keyframe every 100 (B-frames, open GOPs for HEVC): sampling seeks here."""
    def make(root: Path) -> ZooEntry:
        path = write_video(root / name, barcode_frames(1500, 48, 64, period=LONG_PERIOD), 25, codec=encoder,
                           pix_fmt=pix_fmt, gop=100)
        return ZooEntry(path, frames=1500, readback="exact", index_period=LONG_PERIOD, header_lies=False,
                        size=(64, 48))
    return make


def ten_minutes_frames(n: int = 18000):
    """The 10-minute video's frames (64x48, a 1000-frame barcode segment repeated), made lazily."""
    segment = barcode_frames(LONG_PERIOD, 48, 64)
    return (segment[i % LONG_PERIOD] for i in range(n))


def _ten_minutes(root: Path) -> ZooEntry:
    """18,000 frames at 64x48 and 30 fps, a keyframe every 10 s."""
    path = write_video(root / "ten_minutes.mp4", ten_minutes_frames(), 30, gop=300, options={"preset": "ultrafast"})
    return ZooEntry(path, frames=18000, readback="exact", index_period=LONG_PERIOD, header_lies=False,
                    size=(64, 48), slow=True)


def ten_seconds(root: Path) -> Path:
    """The 10-minute video's frame size and rate, 10 s long: the baseline for its memory test."""
    return write_video(root / "ten_seconds.mp4", ten_minutes_frames(300), 30, gop=300,
                       options={"preset": "ultrafast"})


def _one_frame(root: Path) -> ZooEntry:
    return ZooEntry(barcode_video(root / "one_frame.mp4", 1), frames=1, readback="exact", padded_frames=15)


def _three_frames(root: Path) -> ZooEntry:
    return ZooEntry(barcode_video(root / "three_frames.mp4", 3), frames=3, readback="exact", padded_frames=13)


# --- broken files --------------------------------------------------------------------------------------

_FASTSTART = {"movflags": "+faststart"}


def _truncated(root: Path) -> ZooEntry:
    # moov up front (faststart), so the cut file still opens and its header lists all 100 frames; the
    # index ends where the data does, and the frame cut through the middle must not be claimed.
    full = barcode_video(root / "trunc-src.mp4", 100, container_options=_FASTSTART)
    path = truncated_copy(full, root / "truncated.mp4", 0.5)
    full.unlink()
    return ZooEntry(path, frames=(5, 60), readback="exact", header_lies=True, damaged=True)


def _corrupt(root: Path) -> ZooEntry:
    # 512 random bytes in the middle of the frame data. It must neither crash nor hang, and decoding must
    # go on past the damaged packets: frames after them are intact.
    full = barcode_video(root / "corrupt-src.mp4", 100, container_options=_FASTSTART)
    data = bytearray(full.read_bytes())
    full.unlink()
    mid = len(data) // 2
    data[mid:mid + 512] = np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes()
    path = root / "corrupt_middle.mp4"
    path.write_bytes(bytes(data))
    return ZooEntry(path, frames=(80, 100), damaged=True)


def _garbage_packets(root: Path) -> ZooEntry:
    """Two packets of a long-GOP stream overwritten with noise: the decoder rejects or conceals them, the
    frames after still decode, and seeking past them must not lose track of positions."""
    full = barcode_video(root / "garbage-src.mp4", 400, gop=100)
    with av.open(str(full)) as c:
        spans = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    data = bytearray(full.read_bytes())
    full.unlink()
    rng = np.random.default_rng(1)
    for pos, size in (spans[150], spans[260]):
        data[pos:pos + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    path = root / "garbage_packets.mp4"
    path.write_bytes(bytes(data))
    return ZooEntry(path, frames=(300, 400), damaged=True)


def _audio_only(root: Path) -> ZooEntry:
    path = root / "audio_only.mp4"
    with av.open(str(path), "w") as c:
        stream = c.add_stream("aac", rate=44100)
        t = np.arange(44100, dtype=np.float32) / 44100
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        for i in range(0, tone.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, i:i + 1024], format="fltp", layout="mono")
            frame.sample_rate = 44100
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    return ZooEntry(path, "error", "no_video_stream", message="audio")


def _no_moov(root: Path) -> ZooEntry:
    # A plain MP4 writer puts moov last; cutting the file in half leaves ftyp + part of mdat.
    full = barcode_video(root / "nomoov-src.mp4", 50)
    path = truncated_copy(full, root / "no_moov.mp4", 0.5)
    full.unlink()
    return ZooEntry(path, "error", "unreadable", message="moov")


def _empty(root: Path) -> ZooEntry:
    path = root / "empty.mp4"
    path.write_bytes(b"")
    return ZooEntry(path, "error", "unreadable", message="empty")


def _text(root: Path) -> ZooEntry:
    return ZooEntry(text_file(root / "text.mp4"), "error", "unreadable", message="text")


def _missing(root: Path) -> ZooEntry:
    return ZooEntry(root / "missing.mp4", "error", "not_found", message="no such")


def _fifo(root: Path) -> ZooEntry:
    # Opening a FIFO nobody writes blocks forever: only the per-video timeout ends it.
    return ZooEntry(fifo(root / "fifo.mp4"), "error", "timeout", message="killed")


MAKERS: dict[str, Callable[[Path], ZooEntry]] = {
    **{name: _codec(name, *args) for name, args in _CODECS.items()},
    "rotated90.mp4": _rotated,
    "vfr.mp4": _vfr("vfr.mp4"),
    "vfr.mkv": _vfr("vfr.mkv"),
    "trimmed_editlist.mp4": _trimmed,
    "4k.mp4": _huge,
    "long_gop_h264.mp4": _long_gop("long_gop_h264.mp4", "libx264"),
    "long_gop_hevc.mkv": _long_gop("long_gop_hevc.mkv", "libx265"),
    "long_gop_vp9.webm": _long_gop("long_gop_vp9.webm", "libvpx-vp9"),
    "ten_minutes.mp4": _ten_minutes,
    "one_frame.mp4": _one_frame,
    "three_frames.mp4": _three_frames,
    "truncated.mp4": _truncated,
    "corrupt_middle.mp4": _corrupt,
    "garbage_packets.mp4": _garbage_packets,
    "audio_only.mp4": _audio_only,
    "no_moov.mp4": _no_moov,
    "empty.mp4": _empty,
    "text.mp4": _text,
    "missing.mp4": _missing,
    "fifo.mp4": _fifo,
}
SLOW = {"ten_minutes.mp4"}


def build_zoo(root: Path, slow: bool = False, workers: int = 2) -> dict[str, ZooEntry]:
    """Make every zoo video under `root`; entries marked slow only when `slow`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    todo = {name: make for name, make in MAKERS.items() if slow or name not in SLOW}
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as ex:  # encoders release the GIL
        made = dict(zip(todo, ex.map(lambda make: make(root), todo.values())))
    assert all(entry.path.name == name for name, entry in made.items()), "zoo names and files disagree"
    return made


if __name__ == "__main__":  # make a zoo to look at: python tests/zoo.py DIR
    import sys
    for name, entry in build_zoo(Path(sys.argv[1]), slow=True).items():
        print(f"{name:22} {os.path.getsize(entry.path) if entry.path.is_file() else '-':>9} {entry}")
