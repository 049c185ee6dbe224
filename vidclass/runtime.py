"""A command's own scratch space: every temp file and library config of a run under one folder, removed after.

Left alone, each run left ~6 empty Beam temp folders in $TMPDIR and wrote `~/.keras/keras.json` and a
matplotlib font cache under $HOME: a worker that runs thousands of jobs fills its disk, and a read-only home
breaks the run. The CLI calls `private_scratch()` before importing any of those libraries: TMPDIR (for this
process and its children), KERAS_HOME and MPLCONFIGDIR all point into one `vidclass-run-*` folder under
the system temp folder, which is removed at exit.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_ENV_DIRS = {"KERAS_HOME": "keras", "MPLCONFIGDIR": "matplotlib"}


def private_scratch() -> str:
    """Point temp files and library config of this process (and its children) into a fresh folder; returns
    it. Idempotent within a process."""
    existing = os.environ.get("VIDCLASS_RUN_DIR")
    if existing and os.path.isdir(existing):
        return existing
    root = tempfile.mkdtemp(prefix="vidclass-run-", dir=tempfile.gettempdir())
    os.environ["VIDCLASS_RUN_DIR"] = root
    tmp = os.path.join(root, "tmp")
    os.makedirs(tmp)
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = tmp
    for var, name in _ENV_DIRS.items():
        if var not in os.environ:  # a user's own setting wins
            path = os.path.join(root, name)
            os.makedirs(path)
            os.environ[var] = path
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root
