"""Decode targets that fail the way real decoders do, for the isolation tests (run inside the child)."""
import os
import signal
import time


def segfault(uri, *args):
    """Die the way a codec bug does: SIGSEGV, no Python exception, no reply."""
    os.kill(os.getpid(), signal.SIGSEGV)


def raise_error(uri, *args):
    raise RuntimeError("boom in decoder")


def sleep_forever(uri, *args):
    time.sleep(3600)


def windows_then_segfault(uri, spec, seconds, stride, limits, group=8):
    """A decoder that gives the first two windows of a real video, then dies as a codec bug would."""
    from vidclass.video import sample_windows
    for i, item in enumerate(sample_windows(uri, spec, seconds, stride, limits, group)):
        if i == 2:
            os.kill(os.getpid(), signal.SIGSEGV)
        yield item
