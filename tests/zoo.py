"""A codec zoo: real and broken videos, each with what vidclass must report for it.

Good videos carry barcode frames (see `videos.py`) wherever the codec keeps them readable, so a test can
check that the frames a sampler returns are the frames it says it returned. The expectations were
measured with Debian 12's ffmpeg (5.1) for encoding and opencv-python-headless 5.0 for decoding; where a
count depends on encoder details (truncated and corrupted files) the expectation is a range.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np

from videos import HAVE_FFMPEG, barcode_frames, barcode_video, ffmpeg_encode, fifo, text_file, truncated_copy

H264 = ("-c:v", "libx264", "-pix_fmt", "yuv420p")
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
    gray: bool = False                # a gray source: decoded frames are still 3 channels, all equal
    message: str | None = None        # a word the error message must contain
    slow: bool = False                # long to make or decode: only in `make test-all`

    def frames_ok(self, n: int | None) -> bool:
        if self.frames is None:
            return True
        if isinstance(self.frames, tuple):
            return n is not None and self.frames[0] <= n <= self.frames[1]
        return n == self.frames


def _run_ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-nostdin", "-loglevel", "error", *args], check=True, timeout=300,
                   stdin=subprocess.DEVNULL)


@functools.lru_cache(maxsize=1)
def encoders() -> frozenset[str]:
    """Encoder names this ffmpeg offers; entries whose encoder is missing are left out, not failed."""
    if not HAVE_FFMPEG:
        return frozenset()
    out = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=60).stdout
    return frozenset(line.split()[1] for line in out.splitlines() if len(line.split()) > 1 and line[:1] == " ")


def _encoder_of(args: tuple[str, ...]) -> str | None:
    return args[args.index("-c:v") + 1] if "-c:v" in args else None


# --- good videos: one per codec/container, 2 s of 128x96 barcodes at 25 fps ------------------------------

_CODECS: dict[str, tuple[str, ...]] = {
    "h264.mp4": H264,
    "hevc10.mp4": ("-c:v", "libx265", "-pix_fmt", "yuv420p10le", "-x265-params", "log-level=error"),
    "vp9.webm": ("-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-deadline", "realtime", "-cpu-used", "8"),
    "mjpeg.avi": ("-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "3"),
    "mpeg4.avi": ("-c:v", "mpeg4", "-q:v", "3"),
    "mpeg4.mov": ("-c:v", "mpeg4", "-q:v", "3"),
    "h264.mkv": H264,
    "h264.mov": H264,
    "gray.mp4": ("-c:v", "libx264", "-pix_fmt", "gray"),
}


def _codec(name: str, args: tuple[str, ...]) -> Callable[[Path], ZooEntry]:
    def make(root: Path) -> ZooEntry:
        path = ffmpeg_encode(root / name, barcode_frames(50), 25, args=args)
        return ZooEntry(path, frames=50, readback="exact", header_lies=False, size=(128, 96),
                        gray=name.startswith("gray"))
    return make


def _av1(root: Path) -> ZooEntry:
    # This OpenCV wheel's FFmpeg has no software AV1 decoder: the file opens and yields no frame.
    path = ffmpeg_encode(root / "av1.mkv", barcode_frames(50), 25,
                         args=("-c:v", "libaom-av1", "-cpu-used", "8", "-pix_fmt", "yuv420p"))
    return ZooEntry(path, "error", "no_frames", message="decoder")


def _rotated(root: Path) -> ZooEntry:
    # ffmpeg 5.1 drops `rotate` when encoding but writes it as a display matrix on a stream copy.
    plain = ffmpeg_encode(root / "rotated-src.mp4", barcode_frames(50), 25, args=H264)
    path = root / "rotated90.mp4"
    _run_ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(path))
    plain.unlink()
    # OpenCV applies the matrix: frames come out portrait and the size is reported as displayed.
    return ZooEntry(path, frames=50, readback="exact", turns=-1, header_lies=False, size=(96, 128))


_VFR = "setpts='if(lt(N,30),N*0.1,3+(N-30)*0.02)/TB'"  # 30 frames at 10 fps, then 30 at 50 fps


def _vfr(name: str) -> Callable[[Path], ZooEntry]:
    def make(root: Path) -> ZooEntry:
        path = ffmpeg_encode(root / name, barcode_frames(60), 50, args=("-vf", _VFR, "-vsync", "vfr", *H264))
        # MP4 stores its sample count and OpenCV reports it; Matroska has none, so OpenCV guesses
        # duration x 50 fps = 180 for the 60 frames there.
        return ZooEntry(path, frames=60, readback="exact", header_lies=name.endswith(".mkv"), size=(128, 96))
    return make


def _trimmed(root: Path) -> ZooEntry:
    # `ffmpeg -ss 1.1 -c copy` keeps the GOP from the keyframe before the cut under an edit list: the
    # header counts those samples, the decoder hides the ones before the edit.
    src = ffmpeg_encode(root / "trim-src.mp4", barcode_frames(100), 25, args=(*H264, "-g", "50"))
    path = root / "trimmed_editlist.mp4"
    _run_ffmpeg("-ss", "1.1", "-i", str(src), "-c", "copy", str(path))
    src.unlink()
    return ZooEntry(path, frames=(60, 80), readback="shifted", header_lies=True)


def _huge(root: Path) -> ZooEntry:
    path = ffmpeg_encode(root / "4k.mp4", barcode_frames(3, 2160, 3840), 25, args=(*H264, "-preset", "ultrafast"))
    return ZooEntry(path, frames=3, readback="exact", padded_frames=13, size=(3840, 2160))


def _ten_minutes(root: Path) -> ZooEntry:
    """18,000 frames at 64x48 and 30 fps: one 1000-frame barcode segment, stream-copied 18 times."""
    seg = ffmpeg_encode(root / "long-seg.mp4", barcode_frames(LONG_PERIOD, 48, 64), 30,
                        args=(*H264, "-preset", "ultrafast"))
    listing = root / "long-seg.txt"
    listing.write_text(f"file '{seg.name}'\n" * 18)
    path = root / "ten_minutes.mp4"
    _run_ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(path))
    seg.unlink()
    listing.unlink()
    return ZooEntry(path, frames=18000, readback="exact", index_period=LONG_PERIOD, header_lies=False,
                    size=(64, 48))


def ten_seconds(root: Path) -> Path:
    """The 10-minute video's frame size and rate, 10 s long: the baseline for its memory test."""
    return ffmpeg_encode(root / "ten_seconds.mp4", barcode_frames(300, 48, 64), 30,
                         args=(*H264, "-preset", "ultrafast"))


def _one_frame(root: Path) -> ZooEntry:
    return ZooEntry(barcode_video(root / "one_frame.mp4", 1), frames=1, readback="exact", padded_frames=15)


def _three_frames(root: Path) -> ZooEntry:
    return ZooEntry(barcode_video(root / "three_frames.mp4", 3), frames=3, readback="exact", padded_frames=13)


# --- broken files --------------------------------------------------------------------------------------

def _truncated(root: Path) -> ZooEntry:
    # moov up front (faststart), so the cut file still opens; decoding stops at the cut, well before the
    # 100 frames the header lists (21 here, as ffprobe counts: decoding goes on past a failed grab()).
    full = ffmpeg_encode(root / "trunc-src.mp4", barcode_frames(100), 25, args=(*H264, "-movflags", "+faststart"))
    path = truncated_copy(full, root / "truncated.mp4", 0.5)
    full.unlink()
    return ZooEntry(path, frames=(5, 50), readback="exact", header_lies=True)


def _corrupt(root: Path) -> ZooEntry:
    # 512 random bytes in the middle of the frame data. It must neither crash nor hang, and decoding must
    # go on past the damaged packets: frames after them are intact (ffprobe decodes 90 of 100).
    full = ffmpeg_encode(root / "corrupt-src.mp4", barcode_frames(100), 25, args=(*H264, "-movflags", "+faststart"))
    data = bytearray(full.read_bytes())
    full.unlink()
    mid = len(data) // 2
    data[mid:mid + 512] = np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes()
    path = root / "corrupt_middle.mp4"
    path.write_bytes(bytes(data))
    return ZooEntry(path, frames=(80, 100))


def _audio_only(root: Path) -> ZooEntry:
    path = root / "audio_only.mp4"
    _run_ffmpeg("-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", str(path))
    return ZooEntry(path, "error", "no_video_stream", message="audio")


def _no_moov(root: Path) -> ZooEntry:
    # OpenCV's own mp4 writer puts moov last; cutting the file in half leaves ftyp + part of mdat.
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


MAKERS: dict[str, tuple[Callable[[Path], ZooEntry], str | None]] = {
    **{name: (_codec(name, args), _encoder_of(args)) for name, args in _CODECS.items()},
    "av1.mkv": (_av1, "libaom-av1"),
    "rotated90.mp4": (_rotated, "libx264"),
    "vfr.mp4": (_vfr("vfr.mp4"), "libx264"),
    "vfr.mkv": (_vfr("vfr.mkv"), "libx264"),
    "trimmed_editlist.mp4": (_trimmed, "libx264"),
    "4k.mp4": (_huge, "libx264"),
    "ten_minutes.mp4": (_ten_minutes, "libx264"),
    "one_frame.mp4": (_one_frame, None),
    "three_frames.mp4": (_three_frames, None),
    "truncated.mp4": (_truncated, "libx264"),
    "corrupt_middle.mp4": (_corrupt, "libx264"),
    "audio_only.mp4": (_audio_only, "aac"),
    "no_moov.mp4": (_no_moov, None),
    "empty.mp4": (_empty, None),
    "text.mp4": (_text, None),
    "missing.mp4": (_missing, None),
    "fifo.mp4": (_fifo, None),
}
NEEDS_FFMPEG = {name for name, (_, encoder) in MAKERS.items() if encoder is not None}


def build_zoo(root: Path, slow: bool = False, workers: int = 2) -> dict[str, ZooEntry]:
    """Make every zoo video this machine can make under `root`; without ffmpeg (or one of its encoders)
    those entries are left out. Entries marked slow are dropped unless `slow`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    have = encoders()
    todo = {name: make for name, (make, enc) in MAKERS.items() if enc is None or enc in have}
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as ex:  # ffmpeg runs outside the GIL
        made = dict(zip(todo, ex.map(lambda make: make(root), todo.values())))
    assert all(entry.path.name == name for name, entry in made.items()), "zoo names and files disagree"
    return {name: entry for name, entry in made.items() if slow or not entry.slow}


if __name__ == "__main__":  # make a zoo to look at: python tests/zoo.py DIR
    import sys
    for name, entry in build_zoo(Path(sys.argv[1]), slow=True).items():
        print(f"{name:22} {os.path.getsize(entry.path) if entry.path.is_file() else '-':>9} {entry}")
