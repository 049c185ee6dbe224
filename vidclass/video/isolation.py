"""Run per-video decoding in a child process, so a blocked open or a crashing decoder costs one video.

A thread cannot stop FFmpeg stuck inside `open()` on a stalled mount or a FIFO, and a segfault in a codec
kills whatever process it runs in. So each `DecodeWorker` owns one long-lived child (started once, reused
for every video), sends it a request, and waits at most `timeout_s` for each answer: on timeout the child
is killed and the video becomes a `timeout` error; if the child dies, a `decoder_crash` error. The next
call starts a fresh child. Remote fetches happen in the child too, so a stalled download is bounded the
same way, and their temp copies go to a scratch folder of the worker's own that the parent empties after
a kill (the child's own cleanup never runs then). A target that is a generator streams its items back
one message each (the windows of a long video), so no answer has to hold a whole video.
"""
from __future__ import annotations

import importlib
import inspect
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable, Iterator

from vidclass import errors
from vidclass.sampling import SamplingSpec
from vidclass.video.clips import Clips, DecodeLimits
from vidclass.video.source import SCRATCH_ENV

DEFAULT_TARGET = "vidclass.video:sample_video"
WINDOWS_TARGET = "vidclass.video:sample_windows"
_READY = "ready"
_END = "end"  # after the last item of a streamed answer
_START_TIMEOUT_S = 120.0  # a cold machine importing PyAV and OpenCV; separate from any video's own timeout


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _failure(uri: str, e: BaseException) -> errors.Failure:
    """What an exception inside the decoder means for its video."""
    if isinstance(e, errors.VideoError):
        return e.failure()
    if isinstance(e, MemoryError):
        return errors.Failure(uri, errors.TOO_LARGE, "decoding ran out of memory")
    last = traceback.extract_tb(e.__traceback__)[-1]
    return errors.Failure(uri, errors.DECODER_CRASH,
                          f"{type(e).__name__}: {e} (at {os.path.basename(last.filename)}:{last.lineno})")


def _serve(read_fd: int, write_fd: int) -> None:
    """The child's loop: receive (target, args), answer with the result or a `Failure`; a generator
    target's items go one message each, then `_END` (a failure mid-way is the last item)."""
    import av.logging  # FFmpeg prints a line per damaged packet; over an archive that drowns the real logs
    av.logging.set_level(av.logging.PANIC)
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
            fn = _resolve(target)
            if inspect.isgeneratorfunction(fn):
                for item in fn(*args):
                    replies.send(item)
                result: Any = _END
            else:
                result = fn(*args)
        except Exception as e:  # a decoder bug on one file must not end the worker's service
            result = _failure(uri, e)
        replies.send(result)


class DecodeWorker:
    """One child process that decodes videos on request; not thread-safe (use one per thread)."""

    def __init__(self, target: str = DEFAULT_TARGET):
        self.target = target
        self._proc: subprocess.Popen | None = None
        self._requests: Connection | None = None
        self._replies: Connection | None = None
        self._scratch: str | None = None

    def _start(self) -> None:
        to_child_r, to_child_w = os.pipe()
        to_parent_r, to_parent_w = os.pipe()
        self._scratch = tempfile.mkdtemp(prefix="vidclass-decoder-")
        env = {**os.environ, SCRATCH_ENV: self._scratch}
        code = f"from vidclass.video.isolation import _serve; _serve({to_child_r}, {to_parent_w})"
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
        if self._scratch is not None:  # temp copies of a killed child, whose own cleanup never ran
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._proc = self._requests = self._replies = self._scratch = None

    def __enter__(self) -> "DecodeWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def call(self, timeout_s: float, uri: str, *args: Any, target: str | None = None) -> Any:
        """Run `target(uri, *args)` in the child; a `Failure` comes back for timeouts and crashes."""
        try:
            self._send(target or self.target, uri, args)
            return self._receive(timeout_s, uri)
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            return self._died(uri)

    def stream(self, timeout_s: float, uri: str, *args: Any, target: str) -> Iterator[Any]:
        """Items of the generator `target(uri, *args)` as the child makes them, each within `timeout_s`;
        a timeout or crash ends the stream with one `Failure` item."""
        try:
            self._send(target, uri, args)
            while True:
                item = self._receive(timeout_s, uri)
                if isinstance(item, str) and item == _END:
                    return
                yield item
                if isinstance(item, errors.Failure):
                    return
        except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
            yield self._died(uri)
        except GeneratorExit:  # the caller stopped listening: the child may still be sending
            self.close()
            raise

    def _send(self, target: str, uri: str, args: tuple) -> None:
        if self._proc is None or self._proc.poll() is not None:
            self.close()
            self._start()
        self._requests.send((target, (uri, *args)))

    def _receive(self, timeout_s: float, uri: str) -> Any:
        if not self._replies.poll(timeout_s):
            self.close()
            return errors.Failure(uri, errors.TIMEOUT, f"no result after {timeout_s:g} s (decoding blocked "
                                  "or too slow); the decoder process was killed")
        return self._replies.recv()

    def _died(self, uri: str) -> errors.Failure:
        code = self._proc.wait() if self._proc is not None else None
        self.close()
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        return errors.Failure(uri, errors.DECODER_CRASH, f"the decoder process died ({how})")

    def sample(self, uri: str, spec: SamplingSpec, limits: DecodeLimits = DecodeLimits()) -> Clips | errors.Failure:
        """`video.sample_video` in the child, bounded by `limits.timeout_s`."""
        return self.call(limits.timeout_s, uri, spec, limits)

    def sample_windows(self, uri: str, spec: SamplingSpec, seconds: float, stride_s: float | None,
                       limits: DecodeLimits = DecodeLimits(), group: int = 8,
                       target: str = WINDOWS_TARGET) -> Iterator[Any]:
        """`video.sample_windows` in the child: `WindowClips` items; a `Failure` ends the stream (for the
        video when it comes first, else for the windows not yet given)."""
        return self.stream(limits.timeout_s, uri, spec, seconds, stride_s, limits, group, target=target)


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
