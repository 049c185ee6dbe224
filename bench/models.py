"""Model-compute benchmark: the zoo's training step and forward pass with TensorFlow's oneDNN CPU kernels on
(what vidclass sets) and off (what TensorFlow picks by itself on CPUs without AVX-512 VNNI/BF16 or AMX).

    python bench/models.py [--models r2plus1d,frame_cnn,...] [--frames 16] [--size 112] [--batch-size 8]
                           [--steps 3] [--rounds 2] [--out FILE]

TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it loads, so each measurement is a fresh process with the
switch in its environment; the two settings alternate round by round so drift on a shared machine hits both
alike. Per model: seconds per `train_on_batch` (Adam + categorical cross-entropy, as train.py compiles) and
per `predict_on_batch`, after one untimed step (the trace), medians over rounds of the mean of `--steps`
steps. Prints one JSON document on stdout; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

import media  # bench/ is on sys.path when run as a script: log and emit

# One measurement, in a process of its own: argv = model frames size batch steps; prints JSON.
_MEASURE = """import json, sys, time
import numpy as np
import vidclass  # noqa: F401  as the CLI: sets the switch unless the environment already has it
import keras
from tensorflow.python.util import _pywrap_util_port
from vidclass.models import build_model
from vidclass.sampling import SamplingSpec
name, frames, size, batch, steps = sys.argv[1], *map(int, sys.argv[2:6])
keras.utils.set_random_seed(0)
model = build_model(name, 10, SamplingSpec(num_frames=frames, size=size))
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
x = np.random.default_rng(0).random((batch, frames, size, size, 3), dtype=np.float32)
y = np.eye(10, dtype=np.float32)[np.arange(batch) % 10]
def per_step(step):
    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps
train = per_step(lambda: model.train_on_batch(x, y))
forward = per_step(lambda: model.predict_on_batch(x))
print(json.dumps({"onednn": bool(_pywrap_util_port.IsMklEnabled()), "train_s": train, "forward_s": forward}))
"""


def measure(model: str, onednn: bool, args: argparse.Namespace) -> dict:
    """Seconds per training step and per forward pass of `model`, in a fresh process."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1" if onednn else "0", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", _MEASURE, model, str(args.frames), str(args.size),
                          str(args.batch_size), str(args.steps)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="r2plus1d,c3d,cnn_gru,mobilenet_gru,frame_cnn")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per measurement, after one untimed")
    ap.add_argument("--rounds", type=int, default=2, help="measurements per model and setting (medians)")
    ap.add_argument("--out", help="also write the JSON document to this file")
    args = ap.parse_args(argv)
    models = {}
    for name in args.models.split(","):
        runs: dict[bool, list[dict]] = {True: [], False: []}
        for r in range(args.rounds):
            for onednn in ((True, False) if r % 2 == 0 else (False, True)):
                media.log(f"{name}: round {r + 1}, oneDNN {'on' if onednn else 'off'}")
                got = measure(name, onednn, args)
                if got["onednn"] != onednn:
                    raise SystemExit(f"bench/models.py: TensorFlow ignored TF_ENABLE_ONEDNN_OPTS for {name}")
                runs[onednn].append(got)
        med = {k: {m: statistics.median(g[m] for g in runs[k]) for m in ("train_s", "forward_s")}
               for k in (True, False)}
        models[name] = {
            "train_step_s": {"onednn": round(med[True]["train_s"], 4), "tf_default_kernels": round(med[False]["train_s"], 4)},
            "forward_s": {"onednn": round(med[True]["forward_s"], 4), "tf_default_kernels": round(med[False]["forward_s"], 4)},
            "train_speedup": round(med[False]["train_s"] / med[True]["train_s"], 2),
            "forward_speedup": round(med[False]["forward_s"] / med[True]["forward_s"], 2),
        }
    with open("/proc/cpuinfo") as f:  # Linux, as every bench here
        cpu_flags = f.read()
    media.emit({
        "bench": "models",
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "avx512_vnni": "avx512_vnni" in cpu_flags, "amx": "amx_tile" in cpu_flags},
        "input": {"frames": args.frames, "size": args.size, "batch_size": args.batch_size, "steps": args.steps,
                  "rounds": args.rounds},
        "models": models,
        "note": "speedup = TensorFlow's own choice of kernels (oneDNN off on this CPU) / oneDNN on, as vidclass "
                "sets it; on CPUs with AVX-512 VNNI/BF16 or AMX TensorFlow turns oneDNN on itself, and both equal",
    }, args.out)


if __name__ == "__main__":
    main()
