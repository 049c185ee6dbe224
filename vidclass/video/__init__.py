"""The video part: everything between a video's URI and its sampled RGB clips.

    source.py      local path or remote URL -> a local file (remote copies in a scratch folder)
    containers.py  open a file with FFmpeg (PyAV), or say exactly why it cannot be opened
    index.py       the stream's frame index from its packets: count, timestamps, keyframes, when to seek
    reader.py      decode the frames at given index positions: seek or decode forward, count rejections
    sampler.py     `sample_video` / `sample_windows`: plan positions with `vidclass.sampling`, assemble clips
    isolation.py   run any of it in a child process that a timeout kills and a crash cannot take along
    writer.py      encode frames with PyAV (tests, demo and bench make their own videos)

Pure: no Beam, no TensorFlow.
"""
from vidclass.video.clips import Clips, DecodeLimits, VideoInfo, decoder_threads
from vidclass.video.sampler import Window, WindowClips, cut_off_windows, sample_video, sample_windows, windows
from vidclass.video.source import is_local, local_copy

__all__ = ["Clips", "DecodeLimits", "VideoInfo", "Window", "WindowClips", "cut_off_windows", "decoder_threads", "is_local",
           "local_copy", "sample_video", "sample_windows", "windows"]
