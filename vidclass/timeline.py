"""A video's timeline of labels, for a person to read: a text table and a picture.

The picture is what a reviewer of an archive glances at: a thumbnail per window above a band coloured by
each window's label, and the top score as a line, one panel per video. Drawn on matplotlib's Agg canvas
(no pyplot, no display).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_MAX_THUMBS = 24  # thumbnails per panel; windows between them still get their band


def clock(seconds: float) -> str:
    """h:mm:ss (or m:ss under an hour): how people read positions in a long recording."""
    s = int(round(seconds))
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def table(video_row: dict[str, Any], segment_rows: Sequence[dict[str, Any]]) -> str:
    """The video's label, then one line per window: start-end, label, score (or the error)."""
    head = video_row["video_uri"]
    if video_row["status"] == "ok":
        head += (f"  -> {video_row['label']} {video_row['score']:.3f} (mean of {video_row['num_segments']} "
                 "windows)")
    else:
        head += f"  ERROR {video_row['error_code']}: {video_row['error_message']}"
    lines = [head]
    for r in segment_rows:
        span = f"{clock(r['start_s'])}-{clock(r['end_s'])}"
        if r["status"] == "ok":
            lines.append(f"  {span:>15}  {r['label'][:28]:28} {r['score']:.3f}")
        else:
            lines.append(f"  {span:>15}  ERROR {r['error_code']}: {r['error_message'][:60]}")
    return "\n".join(lines)


def plot(videos: Sequence[tuple[dict[str, Any], Sequence[dict[str, Any]], Sequence[np.ndarray | None]]],
         labels: Sequence[str], path: str) -> None:
    """One panel per video: thumbnails (one per window, thinned to fit), the label band, the top score.

    `videos` holds (video row, its segment rows, a thumbnail per segment row or None)."""
    colours = _colours(len(labels))
    fig = Figure(figsize=(14, 2.6 * max(1, len(videos))))
    for v, (video_row, rows, thumbs) in enumerate(videos):
        top = 1 - v / len(videos)
        height = 1 / len(videos)
        _panel(fig, (0.06, top - height + 0.1 * height, 0.78, 0.82 * height), video_row, rows, thumbs, colours)
    used = sorted({r["label_index"] for _, rows, _ in videos for r in rows if r["status"] == "ok"})
    handles = [_patch(colours[i]) for i in used]
    if handles:
        fig.legend(handles, [labels[i] for i in used], loc="center right", fontsize=8, frameon=False)
    FigureCanvasAgg(fig).print_png(path)


def _panel(fig: Figure, box: tuple[float, float, float, float], video_row: dict[str, Any],
           rows: Sequence[dict[str, Any]], thumbs: Sequence[np.ndarray | None], colours: np.ndarray) -> None:
    x, y, w, h = box
    end = max((r["end_s"] for r in rows), default=1.0) or 1.0
    band = fig.add_axes((x, y, w, 0.45 * h))
    for r in rows:
        colour = colours[r["label_index"]] if r["status"] == "ok" else (0.6, 0.6, 0.6, 1.0)
        band.axvspan(r["start_s"], r["end_s"], ymin=0, ymax=0.35, color=colour, hatch=None if r["status"] == "ok"
                     else "xx", linewidth=0)
    ok = [r for r in rows if r["status"] == "ok"]
    if ok:
        band.step([r["start_s"] for r in ok] + [ok[-1]["end_s"]], [r["score"] for r in ok] + [ok[-1]["score"]],
                  where="post", color="black", linewidth=1)
    band.set_xlim(0, end)
    band.set_ylim(-0.55, 1.05)
    band.set_yticks([0, 0.5, 1])
    band.set_ylabel("top score", fontsize=8)
    band.set_xlabel("time (s)", fontsize=8)
    band.tick_params(labelsize=7)
    title = video_row["video_uri"]
    if video_row["status"] == "ok":
        title += f"  ->  {video_row['label']} ({video_row['score']:.2f})"
    band.set_title(title, fontsize=9, loc="left", pad=0.55 * h * fig.get_figheight() * 72 / 1.2)
    picks = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), _MAX_THUMBS)).round().astype(int)) if rows else []
    for i in picks:
        if i >= len(thumbs) or thumbs[i] is None:
            continue
        r = rows[i]
        mid = (r["start_s"] + r["end_s"]) / 2 / end
        side = min(w / max(1, len(picks)), 0.4 * h * fig.get_figheight() / fig.get_figwidth())
        ax = fig.add_axes((x + mid * w - side / 2, y + 0.5 * h, side, side * fig.get_figwidth() / fig.get_figheight()))
        ax.imshow(thumbs[i])
        ax.set_axis_off()


def _colours(n: int) -> np.ndarray:
    from matplotlib import colormaps
    cmap = colormaps["tab20" if n > 10 else "tab10"]
    return np.array([cmap(i % cmap.N) for i in range(max(1, n))])


def _patch(colour):
    from matplotlib.patches import Patch
    return Patch(color=colour)
