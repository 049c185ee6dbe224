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
