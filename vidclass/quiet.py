"""Keep library chatter out of the terminal, so the run's own lines are what a user reads.

TensorFlow's C++ start-up lines (`E0000 ... failed call to cuInit` on every command of a CPU machine,
oneDNN and absl notices) ignore TF_CPP_MIN_LOG_LEVEL in TF 2.21, and Beam warns about optional modules on
import. Unless `--verbose`: Python loggers are set to ERROR, and standard error (file descriptor 2, which
C++ code writes to directly, as do child processes that inherit it) passes through a filter thread that
drops absl-format info/warning lines and the known CPU-machine noise; everything else goes through.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading

# absl's prefix: "W1208 06:11:42.123456  4055 file.cc:52] ", or before absl::InitializeLog() is called
# (TensorFlow's first lines) "E0000 00:00:1796710011.214260  4055 file.cc:52] ": seconds since the epoch.
_PREFIX = rb"\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] "
_ABSL = re.compile(rb"^[IW]" + _PREFIX)
_ABSL_ERROR = re.compile(rb"^E" + _PREFIX)
_NOISE = (b"All log messages before absl::InitializeLog() is called", b"failed call to cuInit",
          b"Could not find cuda drivers", b"Unable to register cu", b"oneDNN custom operations",
          b"rebuild TensorFlow with the appropriate compiler flags", b"To enable the following instructions",
          b"This TensorFlow binary is optimized")
_installed = False


def _is_noise(line: bytes) -> bool:
    return bool(_ABSL.match(line)) or (any(n in line for n in _NOISE)
                                       and (bool(_ABSL_ERROR.match(line)) or not line[:1].isalpha()
                                            or line.startswith((b"WARNING: All log", b"To enable", b"I0000"))))


def install(verbose: bool) -> None:
    """Quiet this process (and the children it starts) unless `verbose`; idempotent."""
    global _installed
    if verbose or _installed:
        return
    _installed = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger().setLevel(logging.ERROR)
    for name in ("apache_beam", "tensorflow", "absl", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        real = os.dup(2)
        read, write = os.pipe()
    except OSError:
        return  # no usable stderr (a daemon): nothing to filter
    os.dup2(write, 2)
    os.close(write)
    filtered = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace", closefd=True)
    sys.stderr = filtered

    def pump() -> None:
        pending = b""
        while chunk := os.read(read, 65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = b"".join(line + b"\n" for line in lines if not _is_noise(line))
            if out:
                os.write(real, out)
        if pending and not _is_noise(pending):
            os.write(real, pending)

    thread = threading.Thread(target=pump, name="vidclass-stderr-filter", daemon=True)
    thread.start()

    def restore() -> None:
        """At exit: stop writing into the pipe and let the pump drain it, so no last line is lost."""
        try:
            filtered.flush()
        except (OSError, ValueError):
            pass
        sys.stderr = sys.__stderr__
        os.dup2(real, 2)  # with `filtered` closed too, no writer of the pipe is left in this process
        try:
            filtered.close()
        except (OSError, ValueError):
            pass
        thread.join(timeout=2)

    atexit.register(restore)
