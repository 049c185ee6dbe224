"""An open video stream that hands out the frames at given index positions, decoding as little as it can.

For each wanted frame it seeks to the keyframe at or before it only when that keyframe lies far enough
past what is already decoded (`StreamIndex.seek_target`), else it decodes forward: short clips decode
in one pass, long recordings in a few short runs after seeks (0.026x a full decode for 16 frames of a
30-minute video, measured). It never claims a frame that did not decode: a position it decoded through
without getting a frame goes into `missing`, and every packet the decoder rejected counts in
`decode_errors`. The sampler decides what to do about a missing frame.
"""
from __future__ import annotations

from typing import Callable, Iterator

import av
import numpy as np

from vidclass import errors
from vidclass.video import containers
from vidclass.video.clips import DecodeLimits
from vidclass.video.index import StreamIndex, build_index

# In keyframe mode the decoder skips every other frame, so going forward costs only demuxing (~12 us a
# packet here) and a seek pays off only across long gaps.
SEEK_GAIN_PACKETS = 256


class VideoReader:
    """One video file opened for sampling: its index, what the container says, and `read(positions)`."""

    def __init__(self, path: str, uri: str, limits: DecodeLimits):
        self.path, self.uri, self.limits = path, uri, limits
        container = containers.open_input(path, uri)
        try:
            stream = containers.video_stream(container, uri)
            self.stream_index = stream.index
            ctx = stream.codec_context
            self.codec = getattr(ctx.codec, "canonical_name", None) or ctx.name or "unknown"  # av1, not libdav1d
            self._check_pixels(ctx.width, ctx.height)
            self.header_frames = int(stream.frames) if 0 < (stream.frames or 0) < 10**8 else _estimate(container, stream)
            self.container_fps = float(stream.average_rate or stream.guessed_rate or 0) or None
            self.index = build_index(container, stream, uri, limits.max_duration_s)
        except BaseException:
            container.close()
            raise
        if not len(self.index):
            container.close()
            raise errors.VideoError(errors.NO_FRAMES, uri, f"opens (codec {self.codec!r}) but its video stream "
                                    "holds no frame data")
        self.missing: set[int] = set()
        self._rejected: set[int] = set()
        # The indexing container is kept and sought back to the start for the first decode: a second
        # av.open costs ~2 ms, a few percent of a short clip's whole decode.
        self._container = container if self.index.timed and self.index.keyframe[:1].all() else None
        if self._container is None:
            container.close()
        self._frames: Iterator[tuple[int | None, av.VideoFrame]] | None = None
        self._pos = -1          # position of the last frame the decoder gave (-1: none yet)
        self._keyframes_only = False
        # Frames before this pts that no other frame references are not decoded at all (skip_frame NONREF):
        # on the way from a keyframe to a wanted frame they cost time and are never shown (42% less decode
        # to 16 frames of a 10-min video with 10-s GOPs, same frames, measured). None: decode everything.
        self._skip_below: int | None = None
        self._size: tuple[int, int] | None = None  # (width, height) as displayed, from the first frame

    @property
    def decode_errors(self) -> int:
        """Packets the decoder rejected (each counted once, however often it was read)."""
        return len(self._rejected)

    def display_size(self) -> tuple[int, int]:
        """(width, height) as a player shows the frames: after the display rotation."""
        if self._size is None:
            self.read(np.array([int(self.index.key_positions[0]) if self.index.keyframe.any() else 0]),
                      lambda f: np.zeros(0, np.uint8))
        return self._size or (0, 0)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = self._frames = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read(self, positions: np.ndarray, convert: Callable[[av.VideoFrame], np.ndarray],
             keyframes_only: bool = False) -> dict[int, tuple[np.ndarray, int]]:
        """{position: (convert(frame), pts)} for the wanted `positions` that decode.

        keyframes_only: the positions are keyframes and the decoder may skip every other frame.
        """
        todo = sorted({int(p) for p in positions})
        wanted = set(todo)
        got: dict[int, tuple[np.ndarray, int]] = {}
        if keyframes_only != self._keyframes_only or self._frames is None:
            self._keyframes_only = keyframes_only
            self._restart(None)
        full = not keyframes_only and self._pos < 0 and self.index.full_pass_pays(np.array(todo))
        if full:  # one pass through everything: no seek, and every frame that does not decode is seen
            todo = [*todo, len(self.index) - 1]
        for target in todo:
            if target in got or target in self.missing:
                continue
            self._go_to(target, full)
            self._skip_below = None if full or keyframes_only else int(self.index.pts[target])
            for pos, frame in self._frames:
                if pos in wanted and pos not in got:
                    got[pos] = (convert(frame), int(frame.pts if frame.pts is not None else -1))
                if pos >= target:
                    break
            else:  # the stream ended before the target: nothing from here on decodes
                self.missing.update(p for p in range(max(self._pos + 1, 0), len(self.index))
                                    if not keyframes_only or self.index.keyframe[p])
                break
            if pos > target:  # the decoder went past the target without giving it
                self.missing.add(target)
        return got

    # --- moving through the stream ---------------------------------------------------------------------

    def _go_to(self, target: int, full: bool = False) -> None:
        """Seek when that saves decoding (or when the target lies behind us), else keep decoding forward."""
        if full and target > self._pos:
            return
        if target <= self._pos:
            self._restart(self.index.keyframe_at_or_before(target))
            return
        if self._keyframes_only:
            key = target if self.index.timed and target - self._pos > SEEK_GAIN_PACKETS else None
        else:
            key = self.index.seek_target(target, self._pos)
        if key is not None:
            self._restart(key)

    def _restart(self, key: int | None) -> None:
        """Decode from keyframe `key` (from the start when None); a seek that overshoots is retried from
        the start, so a demuxer that lands past the asked keyframe cannot make frames look missing."""
        if key is None and self._container is not None and self._frames is None:
            key = 0  # the indexing container, at its end: seek it back to the first frame (a keyframe)
            containers.configure_decoder(self._container.streams[self.stream_index], self.limits.threads,
                                         self._keyframes_only)
        if self._container is None or key is None:
            self.close()
            self._frames, self._pos = self._decoded(self._reopen(), None), -1
            return
        stream = self._container.streams[self.stream_index]
        self._container.seek(int(self.index.pts[key]), stream=stream, backward=True, any_frame=False)
        stream.codec_context.flush_buffers()  # a drained decoder stays at its end until flushed
        self._frames, self._pos = self._decoded(stream, key), key - 1

    def _reopen(self) -> av.video.stream.VideoStream:
        """A fresh container on the file, its video stream's decoder set up: the stream."""
        self._container = containers.open_input(self.path, self.uri)
        stream = self._container.streams[self.stream_index]
        containers.configure_decoder(stream, self.limits.threads, self._keyframes_only)
        return stream

    def _decoded(self, stream, key: int | None) -> Iterator[tuple[int | None, av.VideoFrame]]:
        """(position, frame) for every frame the decoder gives from here, recording what it skips."""
        first = True
        for frame in self._raw_frames(stream):
            self._check_pixels(frame.width, frame.height)
            if self._size is None:
                turned = quarter_turns(frame) % 2
                self._size = (frame.height, frame.width) if turned else (frame.width, frame.height)
            pos = self.index.position_of(frame.pts)
            if pos is None:
                pos = self._pos + 1  # a frame without a usable timestamp: the next in order
            if first and key is not None and pos > key and not self._keyframes_only:
                # landed past the keyframe asked for: start over from the beginning, once
                self._container.close()
                self._pos = -1
                yield from self._decoded(self._reopen(), None)
                return
            first = False
            if pos <= self._pos:
                continue  # a frame before the one asked for (the seek landed early): not new
            if not self._keyframes_only and self._skip_below is None:  # a gap is a missing frame only when
                self.missing.update(range(self._pos + 1, pos))     # nothing was skipped on purpose
            self._pos = pos
            yield pos, frame

    def _raw_frames(self, stream) -> Iterator[av.VideoFrame]:
        """Decoded frames from the current read position; rejected packets are counted, not fatal."""
        try:
            for packet in self._container.demux(stream):
                try:
                    if not self._keyframes_only:
                        below = self._skip_below is not None and packet.pts is not None
                        skip = below and packet.pts < self._skip_below
                        stream.codec_context.skip_frame = "NONREF" if skip else "DEFAULT"
                    frames = packet.decode()
                except av.error.FFmpegError:
                    if packet.size:
                        self._rejected.add(int(packet.pts if packet.pts is not None else -len(self._rejected) - 1))
                    continue
                yield from frames
        except av.error.FFmpegError:
            pass  # the data ends here
        try:
            yield from stream.decode(None)  # drain what the decoder still holds
        except av.error.FFmpegError:
            pass

    def _check_pixels(self, width: int, height: int) -> None:
        if (width or 0) * (height or 0) > self.limits.max_pixels:
            raise errors.VideoError(errors.TOO_LARGE, self.uri, f"{width}x{height} frames exceed the "
                                    f"{self.limits.max_pixels} pixel limit")


def quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns the display matrix asks for (np.rot90's k), 0..3."""
    return int(round((frame.rotation or 0) / 90)) % 4


def _estimate(container, stream) -> int | None:
    """The header's frame count where it stores none (Matroska): duration x rate, as players estimate."""
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / av.time_base
    else:
        return None
    return int(round(seconds * float(rate))) or None if rate else None
