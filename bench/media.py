"""Shared plumbing of the benches: output, test videos and memory readings. No timing, no methods.

It owns
  * emit / log        the one JSON document on stdout (and --out), progress on stderr;
  * the test videos   lavfi sources (run by PyAV's filter graphs: no ffmpeg binary needed) encoded by libx264
                      veryfast capped at 1 Mb/s: short clips (make_videos) and long videos with a fixed GOP
                      (make_long), each cached under the bench's --workdir by a name that says what it is;
  * peak memory       read from the kernel's own accounting (/proc/PID/status VmHWM, VmRSS) of the process
                      measured, never ru_maxrss: peak_rss_mib (a fresh process sampling one video) and
                      watch_tree (a command and every process it starts, polled while they run).

bench/decode.py, infer.py, preprocess.py and timeline.py import it (bench/ is on sys.path when one runs).
"""
from __future__ import annotations

import fractions
import json
import os
import shutil
import subprocess
import sys
import time

import av
from av.video.frame import PictureType

import vidclass  # noqa: F401  imported before any bench imports TensorFlow, as the CLI does (TF's CPU kernels)

ENCODE = {"preset": "veryfast", "maxrate": "1M", "bufsize": "2M"}
# Varied content so the decoder does real work: synthetic patterns, fractals, cellular automata, noise.
# Bitrate is capped at 1 Mb/s, what 360p web video (the sources of UCF101, HMDB51, Kinetics) carries;
# uncapped, the noise sources reach 8 Mb/s and the run measures FFmpeg's H.264 decoder, not the pipeline.
CLIP_FPS = 30
SOURCES = [
    "testsrc2=size=640x360:rate=30",
    "mandelbrot=size=640x360:rate=30",
    "testsrc2=size=640x360:rate=30,noise=alls=30:allf=t+u",
    "mandelbrot=size=640x360:rate=30,noise=alls=20:allf=t",
    "life=size=640x360:rate=30:mold=10:ratio=0.3:death_color=#C83232:life_color=#00ff00",
    "cellauto=size=640x360:rate=30:rule=110,noise=alls=15:allf=t+u",
]
LONG_FPS = 25
LONG_SOURCE = f"testsrc2=size=640x360:rate={LONG_FPS}"  # moving pattern and counter: ~0.7 Mb/s at a 2-s GOP


def emit(result: dict, out: str | None) -> None:
    """The bench's one JSON document: on stdout, and in `out` when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- making the videos --------------------------------------------------------------------------------------

def lavfi_frames(chain: str, count: int):
    """`count` yuv420p frames from a lavfi filter chain such as "testsrc2=size=640x360:rate=30,noise=alls=20"."""
    graph = av.filter.Graph()
    nodes = [graph.add(name, args) for name, _, args in (part.partition("=") for part in chain.split(","))]
    nodes += [graph.add("format", "yuv420p"), graph.add("buffersink")]
    for a, b in zip(nodes, nodes[1:]):
        a.link_to(b)
    graph.configure()
    for _ in range(count):
        yield nodes[-1].pull()


def encode(path: str, chain: str, fps: int, seconds: float, gop_s: float | None = None) -> str:
    """H.264 mp4 of `seconds` of `chain` at `path` (reused when there); a keyframe every `gop_s` seconds
    exactly when given, else x264's default (keyint 250, scene cuts)."""
    if os.path.exists(path):
        return path
    log(f"making {path}")
    tmp = path + ".part.mp4"
    with av.open(tmp, "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        keyint = str(round(gop_s * fps)) if gop_s else None
        stream.options = {**ENCODE, **({"g": keyint, "keyint_min": keyint, "sc_threshold": "0"} if keyint else {})}
        for i, frame in enumerate(lavfi_frames(chain, round(seconds * fps))):
            frame.pts, frame.time_base = i, fractions.Fraction(1, fps)
            frame.pict_type = PictureType.NONE  # lavfi marks every frame I, which x264 obeys: all keyframes
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    os.replace(tmp, path)
    return path


def make_videos(workdir: str, count: int, seconds: float) -> list[str]:
    """Create (or reuse) `count` 640x360 30 fps H.264 clips of `seconds` each in `workdir`."""
    return [encode(os.path.join(workdir, f"clip-{i:02d}-{seconds:g}s-1M.mp4"), SOURCES[i % len(SOURCES)],
                   CLIP_FPS, seconds) for i in range(count)]


def make_long(workdir: str, minutes: float, gop_s: float) -> str:
    """Create (or reuse) a 640x360 25 fps H.264 video of `minutes` with a keyframe every `gop_s` seconds."""
    return encode(os.path.join(workdir, f"long-{minutes:g}min-gop{gop_s:g}s-1M.mp4"), LONG_SOURCE, LONG_FPS,
                  minutes * 60, gop_s)


# --- peak memory ---------------------------------------------------------------------------------------------

def status_kib(pid: int | str, key: str) -> int | None:
    """A kB field (VmHWM, VmRSS) of /proc/PID/status; None once the process is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith(key + ":")), None)
    except (FileNotFoundError, ProcessLookupError):
        return None


# Not ru_maxrss: a child started by subprocess (vfork + exec) inherits its parent's high-water mark there
# (526 MiB in a child of a 500 MiB parent, measured). The kernel's VmHWM of the child's own memory is used,
# reset after the imports (clear_refs 5), so the peak is that of sampling, not of importing OpenCV.
_RSS = """import sys
def kib(key): return int(next(l for l in open('/proc/self/status') if l.startswith(key)).split()[1])
from vidclass.sampling import SamplingSpec
from vidclass.video import DecodeLimits, sample_video
imports, base = kib('VmHWM'), kib('VmRSS')
open('/proc/self/clear_refs', 'w').write('5')
sample_video(sys.argv[1], SamplingSpec(num_frames=16, size=112), DecodeLimits(threads=1))
print(imports, base, kib('VmHWM'))"""


def peak_rss_mib(path: str) -> dict[str, float]:
    """Resident memory of a fresh process that samples `path` (vidclass exact): its peak while importing,
    its size after, its peak while sampling, and what sampling added."""
    imports, base, peak = (int(k) / 1024 for k in subprocess.run(
        [sys.executable, "-c", _RSS, path], capture_output=True, text=True, check=True).stdout.split())
    return {"peak_importing_mib": round(imports, 1), "after_imports_mib": round(base, 1),
            "peak_sampling_mib": round(peak, 1), "sampling_added_mib": round(peak - base, 1)}


def _children() -> dict[int, list[int]]:
    """ppid -> pids, from one scan of /proc."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(name))
    return kids


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def watch_tree(cmd: list[str], every_s: float = 0.05, **popen) -> dict:
    """Run `cmd` to its end, polling it and every process under it: its exit code, wall seconds and,
    per process seen, its depth (0: `cmd` itself), command line and last VmHWM read (the kernel's peak,
    so a poll just before a process ends holds all of it but the last `every_s`); and the largest VmRSS
    summed over the tree at one poll (what the processes held at the same time)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, **popen)
    seen: dict[int, dict] = {}
    tree_max = 0
    while proc.poll() is None:
        kids, level, total = _children(), [(proc.pid, 0)], 0
        while level:
            pid, depth = level.pop()
            level += [(k, depth + 1) for k in kids.get(pid, [])]
            hwm, rss = status_kib(pid, "VmHWM"), status_kib(pid, "VmRSS")
            if hwm is None:
                continue
            if pid not in seen:
                seen[pid] = {"depth": depth, "cmd": _cmdline(pid)[:160]}
            seen[pid]["peak_kib"] = hwm
            total += rss or 0
        tree_max = max(tree_max, total)
        time.sleep(every_s)
    wall = time.perf_counter() - start
    return {"returncode": proc.returncode, "wall_s": wall, "processes": seen, "tree_rss_max_kib": tree_max}


def link_or_copy(src: str, dest: str) -> None:
    """Put `src` at `dest` (folders made), hard-linked where the file system allows, else copied; an
    existing `dest` is kept (benches reuse their inputs)."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if not os.path.exists(dest):
        try:
            os.link(src, dest)
        except OSError:
            shutil.copy(src, dest)
