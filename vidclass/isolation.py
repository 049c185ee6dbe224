"""Run per-video decoding in a child process, so a blocked open or a crashing decoder costs one video.

A thread cannot stop OpenCV stuck inside `open()` on a stalled mount or a FIFO, and a segfault in a codec
kills whatever process it runs in. So each `DecodeWorker` owns one long-lived child (started once, reused
for every video), sends it a request, and waits at most `timeout_s`: on timeout the child is killed and
the video becomes a `timeout` error; if the child dies, a `decoder_crash` error. The next call starts a
fresh child. Remote fetches happen in the child too, so a stalled download is bounded the same way.
"""
from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable

from vidclass import errors
from vidclass.sampling import SamplingSpec
from vidclass.video import Clips, DecodeLimits

DEFAULT_TARGET = "vidclass.video:sample_video"
# FFmpeg and OpenCV print a line per damaged packet; over a large archive that drowns the real logs.
_READY = "ready"
_START_TIMEOUT_S = 120.0  # a cold machine importing OpenCV; separate from any video's own timeout
_QUIET_ENV = {"OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8"}


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _serve(read_fd: int, write_fd: int) -> None:
    """The child's loop: receive (target, args), answer with the result or a `Failure`."""
    requests, replies = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    _resolve(DEFAULT_TARGET)  # import the decoder before saying ready, so start-up is not billed to a video
    replies.send(_READY)
    while True:
        try:
            target, args = requests.recv()
        except EOFError:
            return
        uri = args[0] if args else "?"
        try:
            result: Any = _resolve(target)(*args)
        except errors.VideoError as e:
            result = e.failure()
        except MemoryError:
            result = errors.Failure(uri, errors.TOO_LARGE, "decoding ran out of memory")
        except Exception as e:  # a decoder bug on one file must not end the worker's service
            last = traceback.extract_tb(e.__traceback__)[-1]
            result = errors.Failure(uri, errors.DECODER_CRASH,
                                    f"{type(e).__name__}: {e} (at {os.path.basename(last.filename)}:{last.lineno})")
        replies.send(result)


class DecodeWorker:
    """One child process that decodes videos on request; not thread-safe (use one per thread)."""

    def __init__(self, target: str = DEFAULT_TARGET):
        self.target = target
        self._proc: subprocess.Popen | None = None
        self._requests: Connection | None = None
        self._replies: Connection | None = None

    def _start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        to_parent_r, to_parent_w = os.pipe()
        env = {**_QUIET_ENV, **os.environ}
        code = f"from vidclass.isolation import _serve; _serve({to_child_r}, {to_parent_w})"
        self._proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(to_child_r, to_parent_w),
                                      stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        os.close(to_child_r)
        os.close(to_parent_w)
        self._requests = Connection(to_child_w, readable=False)
        self._replies = Connection(to_parent_r, writable=False)
        if not self._replies.poll(_START_TIMEOUT_S) or self._replies.recv() != _READY:
            self.close()
            raise RuntimeError(f"the decoder process did not start within {_START_TIMEOUT_S:g} s")

    def close(self) -> None:
        """Stop the child (killed outright: it may be stuck in a system call that ignores anything gentler)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                try:
                    os.killpg(self._proc.pid, signal.SIGKILL)  # its own session: takes any helpers along
                except ProcessLookupError:
                    pass
            self._proc.wait()
        for conn in (self._requests, self._replies):
            if conn is not None:
                conn.close()
        self._proc = self._requests = self._replies = None

    def __enter__(self) -> "DecodeWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def call(self, timeout_s: float, uri: str, *args: Any) -> Any:
        """Run `target(uri, *args)` in the child; a `Failure` comes back for timeouts and crashes."""
        try:
            if self._proc is None or self._proc.poll() is not None:
                self.close()
                self._start()
            self._requests.send((self.target, (uri, *args)))
            if not self._replies.poll(timeout_s):
                self.close()
                return errors.Failure(uri, errors.TIMEOUT, f"no result after {timeout_s:g} s (decoding blocked "
                                      "or too slow); the decoder process was killed")
            return self._replies.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            code = self._proc.wait() if self._proc is not None else None
            self.close()
            how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
            return errors.Failure(uri, errors.DECODER_CRASH, f"the decoder process died ({how})")

    def sample(self, uri: str, spec: SamplingSpec, limits: DecodeLimits = DecodeLimits()) -> Clips | errors.Failure:
        """`video.sample_video` in the child, bounded by `limits.timeout_s`."""
        return self.call(limits.timeout_s, uri, spec, limits)


class WorkerPool:
    """One `DecodeWorker` per calling thread, for thread pools and multi-threaded Beam workers."""

    def __init__(self, target: str = DEFAULT_TARGET):
        self.target = target
        self._local = threading.local()
        self._all: list[DecodeWorker] = []
        self._lock = threading.Lock()

    def worker(self) -> DecodeWorker:
        w = getattr(self._local, "worker", None)
        if w is None:
            w = self._local.worker = DecodeWorker(self.target)
            with self._lock:
                self._all.append(w)
        return w

    def close(self) -> None:
        with self._lock:
            for w in self._all:
                w.close()
            self._all.clear()
