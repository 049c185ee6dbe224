"""Decoding and sampling real files: the right frames, the right shapes, and errors as values."""
import os
import pathlib
import subprocess
import sys
import tempfile

import fsspec
import numpy as np
import pytest

from videos import barcode_video, fifo, read_index, text_file, truncated_copy
from vidclass import errors
from vidclass.video.isolation import DecodeWorker, WorkerPool
from vidclass.resize import resize_frame
from vidclass.sampling import SamplingSpec
from vidclass.video import DecodeLimits, sample_video

TESTS = pathlib.Path(__file__).parent


@pytest.fixture(scope="module")
def clip40(tmp_path_factory):
    return barcode_video(tmp_path_factory.mktemp("v") / "bar40.mp4", 40)


def _indices_read_back(clips):
    return [[read_index(f) for f in clip] for clip in clips.frames]


def test_sampled_frames_are_the_frames_named_by_indices(clip40):
    """What comes out is exactly the decoded frames the sampler chose, in order, as RGB uint8."""
    spec = SamplingSpec(num_frames=8, clips_per_video=2, size=64)
    clips = sample_video(str(clip40), spec)
    assert clips.frames.shape == (2, 8, 64, 64, 3) and clips.frames.dtype == np.uint8
    assert _indices_read_back(clips) == clips.indices.tolist()
    assert clips.info.frames_decoded == 40 and clips.info.fps == pytest.approx(25)
    assert clips.info.duration_s == pytest.approx(1.6, abs=0.05)
    assert clips.timestamps_us.tolist()[0][1] == clips.indices[0][1] * 40_000


def test_rgb_channel_order(tmp_path):
    """Frames come out RGB, not BGR: a red video stays red."""
    from vidclass.video.writer import write_video
    frames = np.zeros((5, 64, 64, 3), np.uint8)
    frames[..., 0] = 220
    clips = sample_video(str(write_video(tmp_path / "red.avi", frames, codec="mjpeg", pix_fmt="yuvj420p")),
                         SamplingSpec(num_frames=2))
    r, g, b = clips.frames[..., 0].mean(), clips.frames[..., 1].mean(), clips.frames[..., 2].mean()
    assert r > 180 and g < 40 and b < 40


@pytest.mark.parametrize("n,pad", [(1, 15), (3, 13)])
def test_short_videos_repeat_frames_and_report_padding(tmp_path, n, pad):
    """1- and 3-frame videos fill 16 slots by repeating real frames, and say how many were repeated."""
    clips = sample_video(str(barcode_video(tmp_path / f"f{n}.mp4", n)), SamplingSpec(num_frames=16))
    assert clips.padded_frames == pad
    assert sorted(set(_indices_read_back(clips)[0])) == list(range(n))


@pytest.mark.parametrize("policy", ["crop", "pad", "stretch"])
def test_resize_policies_give_square_frames(policy):
    """All policies give size×size; crop keeps the centre, pad adds bars, stretch keeps the edges."""
    bgr = np.zeros((90, 160, 3), np.uint8)
    bgr[:, :30] = 255  # a white strip at the left edge, outside the centre square
    out = resize_frame(bgr, 32, policy)
    assert out.shape == (32, 32, 3)
    left = out[16, 0].mean()
    assert (left < 10) if policy == "crop" else (left > 200)
    if policy == "pad":
        assert out[0].max() == 0 and out[-1].max() == 0  # letterbox bars top and bottom


def test_resize_large_reduction_matches_area_closely():
    """The LINEAR+2:1 AREA shortcut stays close to INTER_AREA's result on a 720p frame."""
    import cv2
    rng = np.random.default_rng(0)
    rgb = cv2.GaussianBlur(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8), (9, 9), 3)
    ours = resize_frame(rgb, 112, "crop").astype(float)
    ref = cv2.resize(rgb[:, 280:1000], (112, 112), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(ours - ref).mean() < 2.0


def _code(uri, spec=SamplingSpec(), limits=DecodeLimits()):
    with pytest.raises(errors.VideoError) as e:
        sample_video(str(uri), spec, limits)
    assert str(uri) in str(e.value)
    return e.value.code


def test_bad_inputs_have_specific_codes(tmp_path, clip40):
    """Missing, empty, text and truncated-before-index files each get their own stable code."""
    assert _code(tmp_path / "missing.mp4") == errors.NOT_FOUND
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert _code(tmp_path / "empty.mp4") == errors.UNREADABLE
    assert _code(text_file(tmp_path / "notes.mp4")) == errors.UNREADABLE
    assert _code(tmp_path) == errors.UNREADABLE  # a directory
    # a plain MP4 writer puts the moov atom last: cutting the file loses the index
    assert _code(truncated_copy(clip40, tmp_path / "cut.mp4", 0.5)) == errors.UNREADABLE


def test_limits_make_too_large_errors(clip40):
    """Pixel and duration limits turn oversized videos into `too_large`, before or while decoding."""
    assert _code(clip40, limits=DecodeLimits(max_pixels=64 * 64)) == errors.TOO_LARGE
    assert _code(clip40, limits=DecodeLimits(max_duration_s=0.5)) == errors.TOO_LARGE
    assert _code(clip40, limits=DecodeLimits(min_frames=41)) == errors.NO_FRAMES


def test_remote_uri_goes_through_a_temp_file_that_is_removed(clip40, tmp_path, monkeypatch):
    """fsspec URLs decode via a local temp copy, removed after success and after failure."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fs = fsspec.filesystem("memory")
    fs.pipe("/vc-test/a.mp4", clip40.read_bytes())
    fs.pipe("/vc-test/bad.mp4", b"not a video at all")
    try:
        clips = sample_video("memory://vc-test/a.mp4", SamplingSpec(num_frames=4))
        assert clips.info.frames_decoded == 40
        assert _code("memory://vc-test/bad.mp4") == errors.UNREADABLE
        assert _code("memory://vc-test/none.mp4") == errors.NOT_FOUND
        assert not list(tmp_path.glob("vidclass-*"))
    finally:
        fs.rm("/vc-test", recursive=True)


def test_fifo_open_that_blocks_forever_becomes_timeout(tmp_path, clip40):
    """A FIFO named x.mp4 blocks FFmpeg's open(); the worker is killed at the timeout and reused after."""
    with DecodeWorker() as worker:
        out = worker.sample(str(fifo(tmp_path / "x.mp4")), SamplingSpec(), DecodeLimits(timeout_s=1.5))
        assert isinstance(out, errors.Failure) and out.code == errors.TIMEOUT
        assert "x.mp4" in out.uri
        again = worker.sample(str(clip40), SamplingSpec(num_frames=4))
        assert again.info.frames_decoded == 40


def test_decoder_crash_costs_one_video_not_the_caller(clip40, monkeypatch):
    """A segfault in the decoder process is a `decoder_crash` value; the caller lives on."""
    monkeypatch.setenv("PYTHONPATH", str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with DecodeWorker("crashers:segfault") as worker:
        out = worker.call(10, "boom.mp4")
        assert out.code == errors.DECODER_CRASH and "SIGSEGV" in out.message
    with DecodeWorker("crashers:raise_error") as worker:
        out = worker.call(10, "boom.mp4")
        assert out.code == errors.DECODER_CRASH and "boom in decoder" in out.message


def test_worker_pool_gives_each_thread_its_own_worker(clip40):
    """Threads never share a child process (a shared pipe would mix up answers)."""
    import concurrent.futures
    pool = WorkerPool()
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            outs = list(ex.map(lambda _: pool.worker().sample(str(clip40), SamplingSpec(num_frames=4)), range(6)))
        assert all(o.info.frames_decoded == 40 for o in outs)
        assert 1 <= len(pool._all) <= 2
    finally:
        pool.close()


def test_decode_path_does_not_import_tensorflow():
    """Decoder children and `probe` start fast: the decode path must not pull in TensorFlow or Beam."""
    code = ("import sys, vidclass.video.isolation, vidclass.probe, vidclass.cli, vidclass.video; "
            "print(any(m.split('.')[0] in ('tensorflow', 'apache_beam') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_killed_remote_fetch_leaves_no_temp_copy(tmp_path, monkeypatch):
    """A remote video whose download stalls: the decoder child is killed at the timeout, before its own
    cleanup can run, and the part it had copied is removed by the parent (it used to stay in /tmp, one file
    per timeout, until a worker's disk filled)."""
    import http.server
    import threading

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            self.send_header("Content-Length", str(64 << 20))
            self.send_header("Content-Type", "video/mp4")
            self.end_headers()

        def do_GET(self):
            self.do_HEAD()
            self.wfile.write(b"\0" * (1 << 20))  # a first megabyte, then nothing
            self.wfile.flush()
            stop.wait(30)

        def log_message(self, *args):
            pass

    stop = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where a child's temp files would go
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    try:
        with DecodeWorker() as worker:
            out = worker.sample(f"http://127.0.0.1:{server.server_port}/stuck.mp4", SamplingSpec(),
                                DecodeLimits(timeout_s=4))
            assert isinstance(out, errors.Failure) and out.code == errors.TIMEOUT
            left = [p for p in tmp_path.rglob("*") if p.is_file()]
            assert not left, f"temp copies left behind: {left}"
    finally:
        stop.set()
        server.shutdown()


def test_pixel_limit_holds_for_every_frame_not_only_the_first(tmp_path):
    """A stream that switches mid-way from 64x48 to 320x240 (two H.264 streams back to back, as a broken
    muxer or a hostile upload makes them) is refused as too_large once a frame over the limit decodes; the
    first frames' size alone would have let it through. Without a limit it decodes whole, 2 s at 25 fps."""
    from vidclass.video.writer import write_video
    from videos import barcode_frames
    small = write_video(tmp_path / "a.h264", barcode_frames(20, 48, 64), 25)
    large = write_video(tmp_path / "b.h264", barcode_frames(20, 240, 320), 25)
    switch = tmp_path / "switch.h264"
    switch.write_bytes(small.read_bytes() + large.read_bytes())
    assert _code(switch, SamplingSpec(num_frames=8), DecodeLimits(max_pixels=64 * 48 * 4)) == errors.TOO_LARGE
    clips = sample_video(str(switch), SamplingSpec(num_frames=8))
    assert clips.info.frames_decoded == 40 and clips.info.duration_s == pytest.approx(1.6, abs=0.05)
