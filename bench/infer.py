"""Inference benchmark: the Beam pipeline against the unavoidable work and a naive per-video loop.

    python bench/infer.py [--videos 24] [--seconds 10] [--repeats 3] [--batch-size 16] [--workdir DIR] [--out FILE]

Methods (whole passes; median of --repeats, interleaved, order rotated each repeat; wall and CPU seconds):
  pipe      pipelines.infer.run over all videos (DirectRunner, --direct_num_workers 2, multi_threading)
  pipe_one  the same over one video: the fixed start-up; per-video cost = (pipe - pipe_one) / (videos - 1)
  floor     bench/decode.py's decode floor per video, summed, + the model alone under tf.function on the
            pre-decoded clips (one tensor, batches of --batch-size): the unavoidable work, one thread
  loop      per video: sample_video, then model.predict(clip[None]) (what a naive user writes)
  chain     the pipeline's work without Beam, one thread: warm DecodeWorker (the pipeline's DecodeLimits),
            Predictor.prepare (JPEG round trip), the traced forward in batches: the pipeline's time in parts
One extra run (not in the medians) reads the pipeline's Beam metrics: batch sizes, model latency per batch.
Prints one JSON document on stdout; progress goes to stderr (the pipeline's own output is captured).
"""
from __future__ import annotations

import argparse, collections, contextlib, io, os, platform, shutil, statistics  # noqa: E401
import sys, tempfile, time  # noqa: E401
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import decode  # noqa: E402  bench/ is on sys.path when run as a script: decode's spec and floor
import media  # noqa: E402  the test videos, log and emit

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from pipelines import runners  # noqa: E402
from pipelines.infer import run as run_infer  # noqa: E402
from pipelines.infer_report import read_rows  # noqa: E402
from vidclass import bundle  # noqa: E402
from vidclass.video.isolation import DecodeWorker  # noqa: E402
from vidclass.labels import LabelMap  # noqa: E402
from vidclass.models import DEFAULT_MODEL, build_model  # noqa: E402
from vidclass.predict import Predictor  # noqa: E402
from vidclass.video import DecodeLimits, sample_video  # noqa: E402

SPEC, log = decode.SPEC, media.log
CLASSES, WORKERS = 10, 2
GOALS = {"pipeline_vs_floor_min": 0.8, "pipeline_vs_loop_min": 2.0}
BEAM_FLAGS = ["--direct_num_workers", str(WORKERS), "--direct_running_mode", "multi_threading"]
Cost = tuple[float, float]  # (wall s, CPU s)
PIPE_LIMITS = DecodeLimits(threads=runners.decoder_threads(PipelineOptions(BEAM_FLAGS)))  # the pipeline's decode
tf.get_logger().setLevel("ERROR")  # each run() builds a new Predictor, hence a new trace: TF would warn of retracing


def cpu_seconds(pids: tuple[int, ...] = ()) -> float:
    """CPU seconds so far of this process, its reaped children and the live processes `pids` (Linux)."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            total += sum(map(int, f.read().rsplit(")", 1)[1].split()[11:13])) / os.sysconf("SC_CLK_TCK")
    return total


def measure(fn: Callable[[], object], pids: tuple[int, ...] = (), into: list[Cost] | None = None
            ) -> tuple[Cost, object]:
    """(wall, CPU) seconds of one call (also appended to `into`), and its result."""
    w0, c0 = time.perf_counter(), cpu_seconds(pids)
    result = fn()
    cost = time.perf_counter() - w0, cpu_seconds(pids) - c0
    if into is not None:
        into.append(cost)
    return cost, result


def make_bundle(model_dir: str) -> None:
    """The default model (untrained: speed only) at the default spec, saved as a bundle as train.py does."""
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, bundle.MODEL_FILE)
    build_model(DEFAULT_MODEL, CLASSES, SPEC).save(path)
    bundle.write(model_dir, bundle.Bundle(
        labels=LabelMap(tuple(f"class{c}" for c in range(CLASSES))), spec=SPEC, model_name=DEFAULT_MODEL,
        model_config={"frames": SPEC.num_frames}, model_frames=SPEC.num_frames,
        model_version=bundle.file_hash(path)))


def pipeline(inp: str, model_dir: str, out: str, batch: int, expect: int, test_pipeline=None) -> None:
    """One `run()` into a fresh `out`, stderr captured (shown on failure); checks one ok row per video."""
    shutil.rmtree(out, ignore_errors=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = run_infer(["--input", inp, "--model-dir", model_dir, "--output", out, "--batch-size", str(batch),
                            *BEAM_FLAGS], test_pipeline)
    rows = read_rows(out, ["status"]) if status == 0 else []
    if len(rows) != expect or any(r["status"] != "ok" for r in rows):
        raise RuntimeError(f"pipeline: status {status}, {len(rows)} rows of {expect}:\n{err.getvalue()[-3000:]}")


class Capturing(beam.Pipeline):
    """A pipeline that keeps its result, so the run's Beam metrics can be read after `run()` returns."""

    def run(self, test_runner_api="AUTO"):
        self.result = super().run(test_runner_api)
        return self.result


def beam_metrics(inp: str, model_dir: str, out: str, batch: int, n: int) -> dict:
    """RunInference's and DecodeVideos' metrics from one extra pipeline run (same flags)."""
    p = Capturing(options=PipelineOptions([*BEAM_FLAGS, "--runner", "DirectRunner"]))
    pipeline(inp, model_dir, out, batch, n, p)
    res = p.result.metrics().query(beam.metrics.MetricsFilter().with_namespace("vidclass"))
    dists = {d.key.metric.name: d.committed for d in res["distributions"]}
    return {k: {"count": d.count, "mean": round(d.mean, 1), "min": d.min, "max": d.max} for k, d in dists.items()}


def bench(paths: list[str], dirs: dict[str, str], batch: int, repeats: int) -> dict:
    """(wall, CPU) medians per method and per stage of floor and chain; one-off start-up costs; Beam metrics."""
    clips = [sample_video(p, SPEC) for p in paths]
    indices = {p: sorted(set(c.indices.ravel().tolist())) for p, c in zip(paths, clips)}
    x = np.concatenate([c.frames for c in clips]).astype(np.float32)  # the pre-decoded clips tensor
    once = {"load_model_s": measure(lambda: bundle.load_model(dirs["model"]))[0][0]}
    (once["predictor_init_s"], _), pred = measure(lambda: Predictor(dirs["model"], batch))
    once["first_forward_trace_s"] = measure(lambda: pred._forward(tf.constant(x[:batch])))[0][0]
    worker = DecodeWorker()
    once["decoder_child_start_s"] = measure(lambda: worker.sample(paths[0], SPEC))[0][0] - min(
        measure(lambda: worker.sample(paths[0], SPEC))[0][0] for _ in range(3))
    stages: dict[str, list[Cost]] = collections.defaultdict(list)

    def forward(inputs: np.ndarray) -> None:
        for i in range(0, len(inputs), batch):
            pred._forward(tf.constant(inputs[i:i + batch])).numpy()

    def floor() -> None:
        measure(lambda: [decode.run_floor(p, indices[p]) for p in paths], into=stages["floor_decode"])
        measure(lambda: forward(x), into=stages["floor_model"])

    def loop() -> None:
        for p in paths:
            pred.model.predict(sample_video(p, SPEC).frames[0][None], verbose=0)

    def chain() -> None:
        got = measure(lambda: [worker.sample(p, SPEC, PIPE_LIMITS).frames for p in paths], (worker._proc.pid,),
                      stages["chain_decode_isolated"])[1]
        prepared = measure(lambda: np.concatenate([pred.prepare(c) for c in got]),
                           into=stages["chain_jpeg_round_trip"])[1]
        measure(lambda: forward(prepared), into=stages["chain_model"])

    n = len(paths)
    methods: dict[str, Callable[[], object]] = {
        "pipe": lambda: pipeline(dirs["input"], dirs["model"], dirs["out"], batch, n),
        "pipe_one": lambda: pipeline(dirs["one"], dirs["model"], dirs["out"], batch, 1),
        "floor": floor, "loop": loop, "chain": chain}
    log("warm-up: one pass of each method, untimed")
    once["first_pass_wall_s"] = {name: round(measure(fn)[0][0], 3) for name, fn in methods.items()}
    stages.clear()
    names, times = list(methods), {m: [] for m in methods}
    try:
        for r in range(repeats):
            for name in names[r % len(names):] + names[:r % len(names)]:
                (wall, cpu), _ = measure(methods[name], (worker._proc.pid,) if name == "chain" else (), times[name])
                log(f"repeat {r + 1}/{repeats}: {name:9} wall {wall:6.2f} s, cpu {cpu:6.2f} s")
        log("one more pipeline run, for Beam's metrics")
        metrics = beam_metrics(dirs["input"], dirs["model"], dirs["out"], batch, n)
    finally:
        worker.close()
    med = lambda costs: tuple(round(statistics.median(c[i] for c in costs), 3) for i in (0, 1))  # noqa: E731
    return {"methods": {m: med(t) for m, t in times.items()}, "stages": {k: med(v) for k, v in stages.items()},
            "once": {k: v if isinstance(v, dict) else round(v, 3) for k, v in once.items()}, "beam_metrics": metrics}


def summarize(b: dict, n: int, config: dict) -> dict:
    """The JSON document: machine, config, results (wall and CPU), ratios and goals."""
    m, st = b["methods"], b["stages"]
    ms = lambda s: round(1000 * s / n, 1)  # noqa: E731  total seconds -> ms per video
    pv = [(m["pipe"][i] - m["pipe_one"][i]) / (n - 1) for i in (0, 1)]  # (wall, CPU) s/video, start-up excluded
    startup = m["pipe_one"][0] - pv[0]
    vps = {"pipeline": n / m["pipe"][0], "pipeline_startup_excluded": 1 / pv[0],
           **{k: n / m[k][0] for k in ("floor", "loop", "chain")}}
    results = {
        "seconds_median": {k: {"wall": w, "cpu": c} for k, (w, c) in m.items()},
        "videos_per_s": {k: round(v, 3) for k, v in vps.items()},
        "cores_busy": {k: round(c / w, 2) for k, (w, c) in m.items()},
        "pipeline": {"startup_s": round(startup, 3), "startup_share_of_run": round(startup / m["pipe"][0], 3),
                     "per_video_ms": round(1000 * pv[0], 1), "per_video_cpu_ms": round(1000 * pv[1], 1)},
        "ms_per_video": {**{k: {"wall": ms(w), "cpu": ms(c)} for k, (w, c) in st.items()},
                         "loop": {"wall": ms(m["loop"][0]), "cpu": ms(m["loop"][1])}},
        # CPU the pipeline spends per video beyond the same work without Beam (decode child, JPEG, model)
        "beam_overhead_cpu_ms_per_video": round(1000 * pv[1] - ms(m["chain"][1]), 1),
        "startup_parts": b["once"], "beam_metrics": b["beam_metrics"]}
    r = lambda a, c: round(a / c, 3)  # noqa: E731
    ratios = {}
    for tag, pipe_vps, pipe_cpu in (("", vps["pipeline"], m["pipe"][1] / n),  # pipe_cpu: CPU s per video
                                    ("_startup_excluded", 1 / pv[0], pv[1])):
        ratios[f"pipeline_vs_floor{tag}"] = r(pipe_vps, vps["floor"])
        ratios[f"pipeline_vs_floor{tag}_per_core"] = r(pipe_vps / WORKERS, vps["floor"])
        ratios[f"pipeline_vs_floor{tag}_per_cpu_second"] = r(m["floor"][1] / n, pipe_cpu)
        ratios[f"pipeline_vs_loop{tag}"] = r(pipe_vps, vps["loop"])
    ratios["chain_vs_floor"] = r(vps["chain"], vps["floor"])
    met = {tag.lstrip("_") or "end_to_end": {k: ratios[f"pipeline_vs_{k}{tag}"] >= GOALS[f"pipeline_vs_{k}_min"]
                                           for k in ("floor", "loop")} for tag in ("", "_startup_excluded")}
    machine = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__,
               "apache_beam": beam.__version__, "platform": platform.platform(),
               "load_avg_1m_after": round(os.getloadavg()[0], 2)}
    note = (f"floor, loop and chain run one video at a time in one thread (FFmpeg may still decode on 2 threads; "
            f"cores_busy shows the cores each got); the pipeline runs {WORKERS} worker threads. *_per_core divides "
            f"the pipeline's videos/s by {WORKERS}; *_per_cpu_second compares videos per CPU second (this process + "
            "decoder children). Goals are judged end to end (start-up included), as a user sees a run; "
            "_startup_excluded is the steady state.")
    return {"machine": machine, "config": config, "results": results, "ratios": ratios, "note": note,
            "goals": {**GOALS, "met": met}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workdir", help="keep (and reuse) the test videos here; default: a temp dir, removed after")
    ap.add_argument("--out", help="also write the JSON document to this file")
    args = ap.parse_args(argv)
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="vidclass-bench-infer-"))
    os.makedirs(workdir, exist_ok=True)
    try:
        paths = media.make_videos(workdir, args.videos, args.seconds)
        dirs = {k: os.path.join(workdir, k) for k in ("input", "model", "out")}
        shutil.rmtree(dirs["input"], ignore_errors=True)
        os.makedirs(dirs["input"])
        for p in paths:  # a folder of just the videos; the one-video run reads the first file alone
            os.link(p, os.path.join(dirs["input"], os.path.basename(p)))
        dirs["one"] = os.path.join(dirs["input"], os.path.basename(paths[0]))
        log("making the model bundle")
        make_bundle(dirs["model"])
        config = {"videos": args.videos, "seconds": args.seconds, "width": 640, "height": 360, "fps": 30,
                  "codec": "h264 yuv420p veryfast, maxrate 1M", "repeats": args.repeats, "statistic": "median",
                  "batch_size": args.batch_size, "model": DEFAULT_MODEL, "classes": CLASSES, "spec": SPEC.to_dict(),
                  "beam_flags": BEAM_FLAGS, "load_avg_1m_before": round(os.getloadavg()[0], 2)}
        result = summarize(bench(paths, dirs, args.batch_size, args.repeats), len(paths), config)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    media.emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
