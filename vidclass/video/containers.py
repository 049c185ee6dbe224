"""Opening a video file for decoding, and saying exactly why one cannot be opened.

FFmpeg's answer to a bad file is a generic "Invalid data"; users fixing a dataset need to know whether it
was empty, audio only, an MP4 cut short before its moov atom, or not a video at all, so the first bytes
are sniffed for that.
"""
from __future__ import annotations

import os
import re
import struct

import av

from vidclass import errors

_SNIFF_BYTES = 4 << 20
_MKV_VIDEO = re.compile(rb"\x86[\x80-\xff]V_")
_MKV_AUDIO = re.compile(rb"\x86[\x80-\xff]A_")


def _mp4_boxes(data: bytes) -> list[bytes]:
    """Top-level box types of an ISO-BMFF (mp4/mov) file, as far as the sniffed bytes reach."""
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size == 1 and pos + 16 <= len(data):
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
        boxes.append(kind)
        if size < 8:
            break
        pos += size
    return boxes


def _mp4_handlers(path: str, data: bytes) -> set[bytes]:
    """Track handler types ('vide', 'soun', ...) named in the moov box, wherever it sits in the file."""
    handlers = {data[i + 12:i + 16] for i in (m.start() for m in re.finditer(rb"hdlr", data))}
    if handlers or os.path.getsize(path) <= len(data):
        return handlers
    with open(path, "rb") as f:  # moov at the end of a large file
        f.seek(max(0, os.path.getsize(path) - _SNIFF_BYTES))
        tail = f.read()
    return {tail[i + 12:i + 16] for i in (m.start() for m in re.finditer(rb"hdlr", tail))}


def diagnose_unopenable(path: str, uri: str) -> errors.VideoError:
    """The most specific error for a file that exists but that OpenCV's FFmpeg backend refuses to open."""
    size = os.path.getsize(path)
    if size == 0:
        return errors.VideoError(errors.UNREADABLE, uri, "empty file (0 bytes)")
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
        if b"moov" not in _mp4_boxes(head) and b"moov" not in head:
            tail_has_moov = False
            if size > len(head):
                with open(path, "rb") as f:
                    f.seek(size - _SNIFF_BYTES)
                    tail_has_moov = b"moov" in f.read()
            if not tail_has_moov:
                return errors.VideoError(errors.UNREADABLE, uri,
                                         "MP4/MOV without a moov atom: the file was cut short or never finalised")
        handlers = _mp4_handlers(path, head)
        if b"vide" not in handlers and b"soun" in handlers:
            return errors.VideoError(errors.NO_VIDEO_STREAM, uri, "MP4/MOV with audio tracks only, no video track")
        return errors.VideoError(errors.UNREADABLE, uri, "MP4/MOV that FFmpeg cannot open (damaged index?)")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        if _MKV_AUDIO.search(head) and not _MKV_VIDEO.search(head):
            return errors.VideoError(errors.NO_VIDEO_STREAM, uri, "Matroska/WebM with audio tracks only")
        return errors.VideoError(errors.UNREADABLE, uri, "Matroska/WebM that FFmpeg cannot open")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return errors.VideoError(errors.UNREADABLE, uri, "AVI that FFmpeg cannot open (cut short or damaged?)")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE" or head[:4] in (b"fLaC",) or head[:3] == b"ID3" \
            or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return errors.VideoError(errors.NO_VIDEO_STREAM, uri, "an audio file (WAV/FLAC/MP3), no video stream")
    if head[:4] == b"OggS" and b"theora" not in head:
        return errors.VideoError(errors.NO_VIDEO_STREAM, uri, "Ogg file without a Theora video stream")
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head[:512]) / max(1, min(len(head), 512))
    what = "a text file" if printable > 0.95 else "not a container FFmpeg recognises"
    return errors.VideoError(errors.UNREADABLE, uri, f"cannot be opened as a video: {what}")


def open_input(path: str, uri: str) -> av.container.InputContainer:
    """Open a file for demuxing; a file FFmpeg refuses becomes the most specific `VideoError`."""
    try:
        return av.open(path, "r", metadata_errors="ignore")
    except PermissionError as e:
        raise errors.VideoError(errors.UNREADABLE, uri, f"permission denied: {e.strerror}") from None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        raise diagnose_unopenable(path, uri) from None


def video_stream(container: av.container.InputContainer, uri: str) -> av.video.stream.VideoStream:
    """The video stream to sample (the first, as players pick); audio-only files are `no_video_stream`."""
    streams = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise errors.VideoError(errors.NO_VIDEO_STREAM, uri, f"no video stream (streams: {', '.join(kinds)})")
    return streams[0]


def configure_decoder(stream: av.video.stream.VideoStream, threads: int, keyframes_only: bool) -> None:
    """Threads per video (1 where videos decode side by side; FFmpeg's choice for a lone decoder) and,
    for keyframe sampling, a decoder that skips every frame but keyframes.

    Slice threads only: frame threading lost the last two decodable frames of a truncated file and moved
    decode errors to other packets (measured), so the counts a QA run reports would depend on the
    machine's core count."""
    ctx = stream.codec_context
    ctx.thread_count, ctx.thread_type = max(0, threads), "SLICE"
    if keyframes_only:
        ctx.skip_frame = "NONKEY"
