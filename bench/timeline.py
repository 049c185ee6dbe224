"""Long-video labelling benchmark: memory of `--segment-seconds` runs stays bounded whatever the video's length.

    python bench/timeline.py [--long-minutes 30] [--short-seconds 10] [--segment-seconds 60]
                             [--fine-segment-seconds 10] [--workdir DIR] [--out result.json]

The issue's goal: a 30-minute video labelled in 60-s windows peaks within 1.5x the RSS of a 10-s video's run.
Videos (bench/media.py, cached in --workdir): 640x360 25 fps H.264 of testsrc2 at 1 Mb/s, a keyframe every
2 s, one of --short-seconds and one of --long-minutes. Model: an untrained r2plus1d (8 classes, 16 frames of
112x112) written as a bundle the way train.py does (embedding layer and width included): memory and time only.

Runs, each its own fresh interpreter (so every peak is that run's alone) calling vidclass.cli.main, one video each:
  infer_short / infer_long   vidclass infer --input DIR --model-dir M --output O --segment-seconds 60
                             --embeddings --direct_num_workers 1        (DIR holds just that video)
  infer_long_fine            the same on the long video with --fine-segment-seconds (10: 180 windows for 30 min)
  predict_short / predict_long  vidclass predict VIDEO --model-dir M --segment-seconds 60
Per run: wall seconds (interpreter start and TF import included), the CLI process's peak RSS (its own VmHWM,
written by the wrapper as it exits), its decoder processes' peaks (DecodeWorker children: a grandchild of this
bench, VmHWM polled every --poll s from /proc), the largest RSS of the whole process tree summed at one poll,
and the rows written (segments-*.parquet and predictions-*.parquet read back; predict's table lines).
Ratios: long_vs_short peaks (goal <= 1.5), fine_vs_coarse (the number of windows must not drive memory; judged
when the coarse run has >= 16 windows, a full model batch: 30 vs 180 at 30 min), and seconds per window (whole
run, and marginal: the long run less the short one over the windows they differ by).
One JSON document goes to stdout, progress to stderr; the exit status is 1 if a check fails.
"""
from __future__ import annotations

import argparse
import glob
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile

import pyarrow.parquet as pq

import media  # bench/media.py: the videos, emit, log, watch_tree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
MODEL, CLASSES, FRAMES, SIZE = "r2plus1d", 8, 16, 112
GOP_S = 2.0
BATCH = 16  # infer's and predict's default --batch-size: windows per model call (infer's batches start at 4)
# The goal, and this bench's own for the many-windows run (judged only when the coarse run already
# fills a model batch: below that, more windows mean bigger batches, whose activations are bounded by BATCH).
GOALS = {"long_vs_short_peak_rss_max": 1.5, "fine_vs_coarse_peak_rss_max": 1.1}
# The CLI as the console script runs it, in a fresh interpreter; its own peak goes to argv[1] as it ends.
_WRAP = """import sys
from vidclass import cli
try:
    code = cli.main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as out:
        out.write(next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1])
sys.exit(code)"""
_BUNDLE = f"""import sys
sys.path[:0] = [{BENCH!r}, {ROOT!r}]
import timeline
timeline.make_bundle(sys.argv[1])"""


def make_bundle(model_dir: str) -> None:
    """An untrained model saved as a bundle with train.py's fields (run in a child: TF stays out of the bench)."""
    from vidclass import bundle
    from vidclass.labels import LabelMap
    from vidclass.models import build_model
    from vidclass.models.embedding import embedding_layer, embedding_width
    from vidclass.sampling import SamplingSpec

    spec = SamplingSpec(num_frames=FRAMES, size=SIZE)
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, bundle.MODEL_FILE)
    model = build_model(MODEL, CLASSES, spec)
    model.save(path)
    layer = embedding_layer(model)
    bundle.write(model_dir, bundle.Bundle(
        labels=LabelMap(tuple(f"class{c}" for c in range(CLASSES))), spec=spec, model_name=MODEL,
        model_config={"frames": FRAMES}, model_frames=FRAMES, model_version=bundle.file_hash(path),
        embedding_layer=layer, embedding_width=embedding_width(model, layer)))


def make_video(workdir: str, seconds: float) -> str:
    """The test video of `seconds` (made once per --workdir); a 30-min one is decode.py's long-30min-gop2s."""
    if seconds % 60 == 0:
        return media.make_long(workdir, seconds / 60, GOP_S)
    return media.encode(os.path.join(workdir, f"long-{seconds:g}s-gop{GOP_S:g}s-1M.mp4"), media.LONG_SOURCE,
                        media.LONG_FPS, seconds, GOP_S)


def mib(kib: float | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


def run_cli(name: str, argv: list[str], workdir: str, poll_s: float) -> dict:
    """`vidclass ARGV` in a fresh interpreter, watched: wall, return code, peaks, the descendants seen."""
    peak_file, logs = os.path.join(workdir, f"{name}.peak"), os.path.join(workdir, f"{name}.std")
    media.log(f"{name}: vidclass {' '.join(argv)}")
    with open(logs + "out", "w") as out, open(logs + "err", "w") as err:
        w = media.watch_tree([sys.executable, "-c", _WRAP, peak_file, *argv], poll_s, cwd=ROOT, stdout=out,
                             stderr=err, env={**os.environ, "PYTHONPATH": ROOT})
    if w["returncode"] != 0:
        with open(logs + "err") as f:
            media.log(f"{name}: exit status {w['returncode']}:\n{f.read()[-3000:]}")
    procs = w["processes"]
    top = next((p for p in procs.values() if p["depth"] == 0), {})
    with open(peak_file) as f:
        own = int(f.read() or 0) or None
    decoders = [p for p in procs.values() if p["depth"] > 0 and "-c" in p["cmd"].split()]
    media.log(f"{name}: {w['wall_s']:.1f} s, peak {mib(own)} MiB, decoders {[mib(p['peak_kib']) for p in decoders]}")
    return {"returncode": w["returncode"], "wall_s": round(w["wall_s"], 2), "peak_rss_mib": mib(own),
            "peak_rss_polled_mib": mib(top.get("peak_kib")),
            "decoder_peak_rss_mib": mib(max((p["peak_kib"] for p in decoders), default=None)),
            "decoder_processes": len(decoders), "tree_rss_max_mib": mib(w["tree_rss_max_kib"]),
            "descendants": [{"depth": p["depth"], "peak_rss_mib": mib(p["peak_kib"]), "cmd": p["cmd"][:80]}
                            for p in procs.values() if p["depth"] > 0]}


def read_rows(out: str, kind: str, columns: list[str]) -> list[dict]:
    """`columns` of every row in OUT's `kind`-*.parquet files (kind: predictions or segments)."""
    files = sorted(glob.glob(os.path.join(out, "**", f"{kind}-*.parquet"), recursive=True))
    return [row for f in files for row in pq.read_table(f, columns=columns).to_pylist()]


def infer(name: str, video: str, model: str, seg: float, windows: int, workdir: str, poll_s: float,
          check: dict) -> dict:
    """One `vidclass infer` run over a folder holding just `video`; its rows read back and checked."""
    inp, out = os.path.join(workdir, f"in-{os.path.basename(video)}"), os.path.join(workdir, f"out-{name}")
    if not os.path.exists(inp):
        os.makedirs(inp)
        os.link(video, os.path.join(inp, os.path.basename(video)))
    shutil.rmtree(out, ignore_errors=True)
    r = run_cli(name, ["infer", "--input", inp, "--model-dir", model, "--output", out, "--segment-seconds",
                       f"{seg:g}", "--embeddings", "--direct_num_workers", "1"], workdir, poll_s)
    segs = read_rows(out, "segments", ["status", "embedding"]) if r["returncode"] == 0 else []
    videos = read_rows(out, "predictions", ["status", "num_segments"]) if r["returncode"] == 0 else []
    r.update(windows=windows, segment_rows=len(segs), segment_rows_ok=sum(s["status"] == "ok" for s in segs),
             prediction_rows=len(videos), embedding_width=len(segs[0]["embedding"] or []) if segs else 0)
    check[f"{name}: exit status 0"] = r["returncode"] == 0
    check[f"{name}: {windows} segment rows, all ok, each with an embedding"] = (
        r["segment_rows_ok"] == windows == len(segs) and all(s["embedding"] for s in segs))
    check[f"{name}: one video row of {windows} segments"] = [(v["status"], v["num_segments"]) for v in videos] == [
        ("ok", windows)]
    return r


def predict(name: str, video: str, model: str, seg: float, windows: int, workdir: str, poll_s: float,
            check: dict) -> dict:
    """One `vidclass predict VIDEO --segment-seconds` run; the windows counted in its printed timeline."""
    r = run_cli(name, ["predict", video, "--model-dir", model, "--segment-seconds", f"{seg:g}"], workdir, poll_s)
    with open(os.path.join(workdir, f"{name}.stdout")) as f:
        lines = f.read().splitlines()
    r.update(windows=windows, timeline_lines=sum(1 for line in lines if line.startswith("  ")))
    check[f"{name}: exit status 0"] = r["returncode"] == 0
    check[f"{name}: {windows} windows in the timeline, none an error"] = (
        r["timeline_lines"] == windows and not any("ERROR" in line for line in lines))
    return r


def summarize(runs: dict[str, dict], check: dict, config: dict) -> dict:
    """The JSON document: machine, config, runs, ratios, goals and checks."""
    ratio = lambda a, b: round(a / b, 3) if a and b else None  # noqa: E731
    ratios: dict[str, dict] = {}
    for tool in ("infer", "predict"):
        s, lg = runs[f"{tool}_short"], runs[f"{tool}_long"]
        ratios[f"{tool}_long_vs_short"] = {k: ratio(lg[k], s[k]) for k in
                                           ("peak_rss_mib", "decoder_peak_rss_mib", "tree_rss_max_mib", "wall_s")}
        ratios[f"{tool}_seconds_per_window"] = {
            "short": round(s["wall_s"] / s["windows"], 3), "long": round(lg["wall_s"] / lg["windows"], 3),
            "marginal": round((lg["wall_s"] - s["wall_s"]) / max(1, lg["windows"] - s["windows"]), 3)}
    fine, coarse = runs["infer_long_fine"], runs["infer_long"]
    ratios["infer_fine_vs_coarse"] = {k: ratio(fine[k], coarse[k]) for k in
                                      ("peak_rss_mib", "decoder_peak_rss_mib", "tree_rss_max_mib", "wall_s")}
    ratios["infer_fine_seconds_per_window"] = round(fine["wall_s"] / fine["windows"], 3)
    ratios["infer_fine_marginal_seconds_per_extra_window"] = round(
        (fine["wall_s"] - coarse["wall_s"]) / max(1, fine["windows"] - coarse["windows"]), 3)
    ok = lambda v, limit: v is not None and v <= limit  # noqa: E731
    met = {f"{t}_long_vs_short_{k}": ok(ratios[f"{t}_long_vs_short"][k], GOALS["long_vs_short_peak_rss_max"])
           for t in ("infer", "predict") for k in ("peak_rss_mib", "tree_rss_max_mib")}
    full = coarse["windows"] >= BATCH  # else the runs differ in batch size too: not judged (None)
    met.update({f"infer_fine_vs_coarse_{k}": ok(ratios["infer_fine_vs_coarse"][k],
                                                GOALS["fine_vs_coarse_peak_rss_max"]) if full else None
                for k in ("peak_rss_mib", "tree_rss_max_mib")})
    machine = {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
               "load_avg_1m_after": round(os.getloadavg()[0], 2)}
    note = ("peak_rss_mib is the CLI process's own VmHWM (TensorFlow, Beam, the model, the windows in flight); "
            "decoder_peak_rss_mib the largest VmHWM of its DecodeWorker children, polled; tree_rss_max_mib the "
            "largest sum of VmRSS over the whole tree at one poll. Up to "
            f"{BATCH} windows go through the model at once, so a run's peak may grow with its windows up to "
            f"{BATCH} (bigger batches), not beyond. wall_s includes the interpreter's start and the imports "
            "(several seconds), hence the marginal seconds per window.")
    return {"machine": machine, "config": config, "runs": runs, "ratios": ratios, "note": note,
            "goals": {**GOALS, "met": met}, "checks": check, "checks_passed": all(check.values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--long-minutes", type=float, default=30.0, help="the long video (3: a quicker run)")
    ap.add_argument("--short-seconds", type=float, default=10.0, help="the short video")
    ap.add_argument("--segment-seconds", type=float, default=60.0)
    ap.add_argument("--fine-segment-seconds", type=float, default=10.0, help="the many-windows run on the long video")
    ap.add_argument("--poll", type=float, default=0.05, help="seconds between reads of the process tree's memory")
    ap.add_argument("--workdir", help="keep (and reuse) the test videos here; default: a temp dir, removed after")
    ap.add_argument("--out", help="also write the JSON document to this file")
    args = ap.parse_args(argv)
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="vidclass-bench-timeline-"))
    os.makedirs(workdir, exist_ok=True)
    check: dict[str, bool] = {}
    try:
        short, long = make_video(workdir, args.short_seconds), make_video(workdir, args.long_minutes * 60)
        model = os.path.join(workdir, "model")
        media.log("making the model bundle (untrained)")
        subprocess.run([sys.executable, "-c", _BUNDLE, model], check=True, cwd=ROOT, capture_output=True)
        count = lambda seconds, seg: math.ceil(round(seconds, 6) / seg)  # noqa: E731  back-to-back windows
        seg, fine, long_s = args.segment_seconds, args.fine_segment_seconds, args.long_minutes * 60
        plan = {"infer_short": (infer, short, seg, count(args.short_seconds, seg)),
                "infer_long": (infer, long, seg, count(long_s, seg)),
                "infer_long_fine": (infer, long, fine, count(long_s, fine)),
                "predict_short": (predict, short, seg, count(args.short_seconds, seg)),
                "predict_long": (predict, long, seg, count(long_s, seg))}
        runs = {name: fn(name, video, model, s, n, workdir, args.poll, check)
                for name, (fn, video, s, n) in plan.items()}
        config = {"short_seconds": args.short_seconds, "long_minutes": args.long_minutes, "width": 640, "height": 360,
                  "fps": media.LONG_FPS, "gop_s": GOP_S, "source": media.LONG_SOURCE, "codec": "h264 yuv420p veryfast,"
                  " maxrate 1M", "segment_seconds": seg, "fine_segment_seconds": fine, "model": MODEL,
                  "classes": CLASSES, "spec": {"num_frames": FRAMES, "size": SIZE}, "poll_s": args.poll,
                  "videos": {"short": os.path.basename(short), "long": os.path.basename(long)}}
        result = summarize(runs, check, config)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    media.emit(result, args.out)
    return 0 if result["checks_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
