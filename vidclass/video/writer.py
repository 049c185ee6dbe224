"""Encode RGB frames into a video file with PyAV's bundled encoders, so nothing needs a system ffmpeg.

The demo, the tests and the benchmarks make their own videos here: H.264 MP4 by default, and every other
codec PyAV's wheels carry (HEVC 8/10-bit, VP9, AV1 by SVT-AV1, MPEG-4, MJPEG) in mp4, mkv, webm, avi and
mov. Keyframe spacing (`gop`), timestamps (`pts`, for variable frame rate) and a display rotation can be
set, because those are what the decoder has to get right.
"""
from __future__ import annotations

import fractions
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import av
import numpy as np

# Per-codec defaults that keep encoding fast and quiet; `options` given by the caller win.
_CODEC_OPTIONS: dict[str, dict[str, str]] = {
    "libx264": {"preset": "veryfast", "crf": "20"},
    "libx265": {"preset": "ultrafast", "x265-params": "log-level=error"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0"},
    "libsvtav1": {"preset": "10"},  # 11 and up write streams dav1d rejects in part (measured)
    "mpeg4": {"qscale": "3"},
    "mjpeg": {"qscale": "3"},
}
os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner per encoder otherwise; errors still show
_GOP_OPTIONS = {"libx264": ("g", "keyint_min"), "libx265": ("g",), "libvpx-vp9": ("g",), "libsvtav1": ("g",),
                "mpeg4": ("g",)}


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray] | np.ndarray, fps: float = 25.0,
                codec: str = "libx264", pix_fmt: str = "yuv420p", gop: int | None = None,
                options: Mapping[str, str] | None = None, pts: Sequence[int] | None = None,
                time_base: fractions.Fraction | None = None, rotation: int = 0,
                container_options: Mapping[str, str] | None = None) -> Path:
    """Encode RGB uint8 frames [H, W, 3] to `path` (the container follows the suffix); returns the path.

    gop: a keyframe every `gop` frames exactly (scene-cut keyframes off), as archive encoders do.
    pts/time_base: per-frame presentation timestamps, for variable frame rate; default constant `fps`.
    rotation: display rotation in degrees (90, 180, 270) written as the stream's display matrix.
    container_options: muxer options, e.g. {"movflags": "+faststart"} for an MP4 with its index up front.
    """
    path = Path(path)
    rate = fractions.Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", options=dict(container_options or {})) as container:
        stream = None
        for i, rgb in enumerate(frames):
            if stream is None:
                stream = _add_stream(container, codec, rate, rgb.shape[1], rgb.shape[0], pix_fmt, gop,
                                     options, time_base if pts is not None else None, rotation)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = int(pts[i]), stream.codec_context.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"no frames to write to {path}")
        for packet in stream.encode():
            container.mux(packet)
    return path


def _add_stream(container, codec: str, rate: fractions.Fraction, width: int, height: int, pix_fmt: str,
                gop: int | None, options: Mapping[str, str] | None, time_base: fractions.Fraction | None,
                rotation: int):
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    if time_base is not None:
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
    opts = dict(_CODEC_OPTIONS.get(codec, {}))
    if gop:
        for key in _GOP_OPTIONS.get(codec, ("g",)):
            opts[key] = str(gop)
        if codec == "libx264":
            opts["sc_threshold"] = "0"
        elif codec == "libx265":
            opts["x265-params"] += f":keyint={gop}:min-keyint={gop}:scenecut=0"
        elif codec == "libsvtav1":
            opts["svtav1-params"] = f"keyint={gop}"
    opts.update(options or {})
    stream.options = opts
    if rotation:
        stream.set_display_rotation(rotation)
    return stream
