"""`vidclass inspect`: the counts of a dataset and a contact sheet of its clips, per class.

The first look after preprocessing: are the classes balanced, did failures pile up, and do the frames under
each label really show that class (a wrong crop, a swapped label or black frames are obvious at a glance).
Drawing uses matplotlib's Agg canvas directly, never pyplot: no display, no global backend switch. Shards
on a scheme TensorFlow cannot read (s3://) come through the local shard cache, which the `train` and
`evaluate` that usually follow then reuse.
"""
from __future__ import annotations

import dataclasses
import io
import posixpath
import sys
import textwrap
from typing import Any

import fsspec
import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vidclass import dataset, errors, schema
from vidclass.data import local_dataset
from vidclass.dataset import DatasetInfo

SHEET_NAME = dataset.CONTACT_SHEET
_SPLIT_ORDER = ("train", "val", "test")
_CELL_IN, _LABEL_IN, _TOP_IN, _BOTTOM_IN = 1.0, 2.2, 0.5, 0.15
_CAPTION_CHARS = 26  # what fits left of the frames at 9 pt monospace
_MAX_PIXELS = 60000  # Agg refuses images over 2**16 pixels a side; beyond this the dpi shrinks instead

Sample = tuple[np.ndarray, schema.ClipMeta]


def ordered_splits(info: DatasetInfo) -> list[str]:
    """train, val, test first (the order people read them), then any other split by name."""
    return [s for s in _SPLIT_ORDER if s in info.splits] + sorted(s for s in info.splits if s not in _SPLIT_ORDER)


def counts_table(info: DatasetInfo) -> str:
    """Plain text, so it reads the same in a terminal, a log and a CI artefact."""
    splits = ordered_splits(info)
    rows = [[name] + [info.splits[s].videos_per_class.get(name, 0) for s in splits] for name in info.labels.names]
    rows = [r + [sum(r[1:])] for r in rows]
    videos = [info.splits[s].videos for s in splits]
    clips = [info.splits[s].clips for s in splits]
    body = [["class"] + splits + ["total"], *rows, ["videos"] + videos + [sum(videos)],
            ["clips"] + clips + [sum(clips)]]
    first = max(len(str(r[0])) for r in body)
    widths = [max(len(str(r[i])) for r in body) for i in range(1, len(body[0]))]

    def line(r: list[Any]) -> str:
        return "  ".join([str(r[0]).ljust(first)] + [str(v).rjust(w) for v, w in zip(r[1:], widths)])

    rule = "-" * len(line(body[0]))
    out = [line(body[0]), rule, *map(line, rows), rule, line(body[-2]), line(body[-1]), ""]
    codes = ", ".join(f"{c} {n}" for c, n in sorted(info.failures_by_code.items()) if n)
    out.append(f"failures: {info.failures}" + (f" ({codes})" if codes else ""))
    out.append(f"inputs: {info.inputs} = {sum(videos)} videos + {info.failures} failures")
    spec = " ".join(f"{k}={v}" for k, v in info.spec.to_dict().items())
    out.append(f"sampling: {spec} (jpeg q{info.jpeg_quality}, compression {info.compression or 'none'})")
    return "\n".join(out) + "\n"


def _with_label_and_id(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    parsed = schema.parse_clip(record, decode_frames=False)
    return record, parsed["label_string"], parsed["video_id"]


def sample_clips(directory: str, info: DatasetInfo, split: str, per_class: int,
                 max_records: int = 5000) -> dict[str, list[Sample]]:
    """Up to `per_class` clips a class, from distinct videos where it can, reading at most `max_records`.

    Shards are interleaved so classes written to different shards turn up early; labels are parsed without
    decoding JPEGs, so only kept clips pay for decoding. Keys are label names in label-index order.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    paths = dataset.shard_paths(directory, info, split)
    # What each class can give: distinct videos, and clips in all (a video yields clips_per_video clips).
    per_video = info.spec.clips_per_video
    wanted = {n: (min(per_class, c), min(per_class, c * per_video))
              for n, c in info.splits[split].videos_per_class.items() if c > 0 and n in info.labels}
    # Spares are further clips of videos already picked: used only when a class has too few videos.
    picked, spare = {n: [] for n in info.labels.names}, {n: [] for n in info.labels.names}
    seen: dict[str, set[str]] = {n: set() for n in info.labels.names}
    if paths:
        compression = "GZIP" if info.compression == "gzip" else ""
        ds = tf.data.Dataset.from_tensor_slices(paths).interleave(
            lambda p: tf.data.TFRecordDataset(p, compression_type=compression),
            cycle_length=min(len(paths), 16))
        ds = ds.take(max_records).map(_with_label_and_id)
        for record, label_b, vid_b in ds.as_numpy_iterator():
            label, vid = label_b.decode(), vid_b.decode()
            if label not in picked:
                continue  # unlabelled, or a name outside the label map: nothing to show it under
            if vid not in seen[label] and len(picked[label]) < per_class:
                seen[label].add(vid)
                picked[label].append(record)
            elif len(spare[label]) < per_class:
                spare[label].append(record)
            if all(len(picked[n]) >= videos and len(picked[n]) + len(spare[n]) >= clips
                   for n, (videos, clips) in wanted.items()):
                break
    return {n: [schema.decode_clip(r) for r in (picked[n] + spare[n])[:per_class]]
            for n in info.labels.names if picked[n] or spare[n]}


@dataclasses.dataclass(frozen=True)
class SheetRow:
    """Where one clip landed in the PNG, as (left, top, right, bottom) pixel boxes: its caption and frame cells."""

    label: str
    video_id: str
    caption: str
    caption_box: tuple[int, int, int, int]
    cells: tuple[tuple[int, int, int, int], ...]


def short_id(video_id: str, keep: int = _CAPTION_CHARS) -> str:
    """The tail of an id: ids are relative paths, and the file name at their end tells videos apart."""
    return video_id if len(video_id) <= keep else "…" + video_id[-(keep - 1):]


def render_sheet(samples: dict[str, list[Sample]], info: DatasetInfo, frames_per_clip: int = 8,
                 title: str = "") -> tuple[bytes, list[SheetRow]]:
    """PNG bytes and the geometry actually drawn, so a test can check pixels under each caption."""
    if frames_per_clip < 1:
        raise ValueError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
    order = {n: i for i, n in enumerate(info.labels.names)}
    clips = [(label, clip) for label in sorted(samples, key=lambda n: order.get(n, len(order)))
             for clip in samples[label]]
    n_rows = max(1, len(clips))
    width_in = _LABEL_IN + frames_per_clip * _CELL_IN
    height_in = _TOP_IN + n_rows * _CELL_IN + _BOTTOM_IN
    dpi = min(100.0, _MAX_PIXELS / height_in)
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    fig.suptitle(title or "vidclass contact sheet", y=1 - 0.1 / height_in, va="top", fontsize=11)
    # One axes for the whole grid, in cell units (row 0 on top): thousands of small axes took ~10 ms each.
    ax = fig.add_axes((_LABEL_IN / width_in, _BOTTOM_IN / height_in, frames_per_clip * _CELL_IN / width_in,
                       n_rows * _CELL_IN / height_in))
    ax.set_axis_off()
    ax.set_xlim(0, frames_per_clip)
    ax.set_ylim(n_rows, 0)
    if not clips:
        ax.text(frames_per_clip / 2, 0.5, "no clips to show", ha="center", va="center", fontsize=12)
    drawn = []
    for r, (label, (frames, meta)) in enumerate(clips):
        # A clip shorter than the columns leaves blank cells rather than repeating frames.
        keep = np.unique(np.linspace(0, len(frames) - 1, frames_per_clip).round().astype(int))
        extents = [(c + 0.04, c + 0.96, r + 0.96, r + 0.04) for c in range(len(keep))]
        for i, extent in zip(keep, extents):
            ax.imshow(frames[i], extent=extent, aspect="auto", interpolation="nearest")
        caption = "\n".join(textwrap.wrap(label, _CAPTION_CHARS) or [label]) + "\n" + short_id(meta.video_id)
        text = ax.text(-0.1, r + 0.5, caption, ha="right", va="center", fontsize=9, family="monospace", clip_on=False)
        drawn.append((label, meta.video_id, text, extents))
    ax.set_xlim(0, frames_per_clip)  # imshow widens the limits to each image: put the grid back
    ax.set_ylim(n_rows, 0)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)  # no bbox_inches="tight": it would move the cells
    height_px = int(round(fig.bbox.height))

    def pixels(x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int]:
        # Display coordinates start at the bottom, PNG rows at the top.
        return int(x0), height_px - int(y1), int(x1), height_px - int(y0)

    rows = []
    for label, vid, text, extents in drawn:
        cells = tuple(pixels(*ax.transData.transform([(x0, y0), (x1, y1)]).ravel()) for x0, x1, y0, y1 in extents)
        rows.append(SheetRow(label, vid, text.get_text(),
                             pixels(*text.get_window_extent(canvas.get_renderer()).extents), cells))
    return buf.getvalue(), rows


def draw_sheet(samples: dict[str, list[Sample]], info: DatasetInfo, out_path: str,
               frames_per_clip: int = 8, title: str = "") -> str:
    """Render and write through fsspec, so the sheet can go next to a dataset on gs:// as well."""
    png, _ = render_sheet(samples, info, frames_per_clip, title)
    fs, path = fsspec.core.url_to_fs(out_path)
    parent = posixpath.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "wb") as f:
        f.write(png)
    return out_path


def default_split(info: DatasetInfo) -> str:
    """The first of train/val/test that holds clips: the split a user most wants to see."""
    splits = ordered_splits(info)
    with_clips = [s for s in splits if info.splits[s].clips > 0]
    if not (with_clips or splits):
        raise ValueError("dataset has no splits")
    return (with_clips or splits)[0]


def main(args: Any) -> int:
    """args: .dataset, and optional .out, .split, .per_class (3), .frames (8); `DatasetError` for an
    unusable dataset."""
    directory = str(args.dataset).rstrip("/") or str(args.dataset)
    per_class = 3 if getattr(args, "per_class", None) is None else int(args.per_class)
    frames = 8 if getattr(args, "frames", None) is None else int(args.frames)
    if per_class < 1 or frames < 1:
        raise errors.UsageError("--per-class and --frames must be >= 1")
    info = dataset.load(directory)
    split = getattr(args, "split", None) or default_split(info)
    dataset.shard_paths(directory, info, split)  # validates the split name before any reading
    print(counts_table(info), end="")
    try:
        samples = sample_clips(local_dataset(directory, info), info, split, per_class)
    except (tf.errors.OpError, ValueError, KeyError) as e:  # a corrupt shard or record: say which split
        raise errors.DatasetError(f"could not read split {split!r} of {directory}: "
                                  f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from e
    out = getattr(args, "out", None) or f"{directory}/{SHEET_NAME}"
    shown = sum(len(v) for v in samples.values())
    draw_sheet(samples, info, out, frames, title=f"{directory}: {split}, {shown} clips")
    print(f"contact sheet ({split}, {shown} clips): {out}", file=sys.stderr)
    return 0
