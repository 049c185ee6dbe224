"""Turn `--input IN` into the list of videos to process: class folders, archives, globs, manifests, or the
official split files of UCF101, HMDB51 and Kinetics.

Everything goes through fsspec, so the same code reads local disks, `memory://` in tests and buckets on
Dataflow. Discovery never decodes; it only lists. Every row it reads becomes exactly one `VideoInput` or one
`Failure` (stage "discover"), so the counts of a run reconcile from the very first step.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import posixpath
import re

import fsspec

from vidclass import errors
from vidclass.errors import BAD_LABEL, DUPLICATE, NOT_FOUND, Failure
from vidclass.labels import LabelError, group_key, validate_label

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .avi .mkv .webm .mov .m4v .mpg .mpeg .wmv .flv .3gp .ts .mts .ogv".split())
STAGE = "discover"
FORMS = ("class_folders", "archive", "glob", "manifest", "ucf101", "hmdb51", "kinetics")

_UCF_LIST = re.compile(r"(train|test)list(\d+)\.txt\Z")
_HMDB_LIST = re.compile(r"(?P<cls>.+)_test_split(?P<n>\d+)\.txt\Z")
_KINETICS_COLUMNS = {"youtube_id", "time_start", "time_end"}
_SPLIT_ALIASES = {"validate": "val"}  # Kinetics calls its validation split "validate"; shards use "val"


@dataclasses.dataclass(frozen=True)
class VideoInput:
    """One video to process. `video_id` is stable and unique: it keys the video through every stage."""

    uri: str
    video_id: str
    label: str | None = None
    split: str | None = None
    group: str = ""


@dataclasses.dataclass(frozen=True)
class Discovery:
    """What `discover` found: the usable inputs, the rows it had to refuse, and the layout it recognised."""

    inputs: tuple[VideoInput, ...]
    failures: tuple[Failure, ...]
    form: str

    def labels(self) -> tuple[str, ...]:
        """Sorted distinct labels of the inputs, ready for `LabelMap.from_names`."""
        return tuple(sorted({i.label for i in self.inputs if i.label is not None}))


def is_video(path: str) -> bool:
    """Whether a file name has a video extension (case-insensitive); listings keep only these."""
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def discover(spec: str, labelled: bool = True, split_number: int = 1) -> Discovery:
    """Find the videos `spec` names, detecting its layout, so no flag has to say which layout it is."""
    fs, path = fsspec.core.url_to_fs(spec)
    root = _Root(fs, spec, path)
    if any(c in spec for c in "*?[") and not fs.exists(path):
        return _glob(root, labelled)
    if not fs.exists(path):
        raise errors.InputError(f"input not found: {spec}")
    if fs.isdir(path):
        names = _names(root)
        if "classInd.txt" in names and any(_UCF_LIST.match(n) for n in names):
            return _ucf101(root, names, split_number)
        if any(_HMDB_LIST.match(n) for n in names):
            return _hmdb51(root, names, split_number)
        return _folders(root, labelled)
    name = posixpath.basename(path)
    parent = root.parent()
    if m := _UCF_LIST.match(name):
        return _ucf101(parent, _names(parent), int(m[2]))
    if m := _HMDB_LIST.match(name):
        return _hmdb51(parent, _names(parent), int(m["n"]))
    if name.lower().endswith((".csv", ".jsonl")):
        return _manifest(root, labelled)
    if is_video(name):
        inp = VideoInput(path if root.local else spec, spec, None, None, group_key(spec))
        return Discovery((inp,), (), "archive")
    raise errors.InputError(f"{spec}: not a video, folder, glob, .csv/.jsonl manifest or official split file")


@dataclasses.dataclass(frozen=True)
class _Root:
    """A folder as fsspec sees it (`path`) and as the user wrote it (`written`), to build uris from both."""

    fs: fsspec.AbstractFileSystem
    written: str
    path: str

    @property
    def local(self) -> bool:
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        return "file" in protocols

    def rel(self, path: str) -> str:
        """`path` relative to this root, posix separators: the video id of listed files."""
        base = self.path.rstrip("/")
        return path[len(base):].lstrip("/") if path.startswith(base + "/") else path

    def uri(self, path: str) -> str:
        """Plain paths for local files; remote ones keep the protocol as the user spelled it."""
        return path if self.local else _join(self.written, self.rel(path))

    def child(self, rel: str) -> _Root:
        return _Root(self.fs, _join(self.written, rel), _join(self.path, rel))

    def parent(self) -> _Root:
        return _Root(self.fs, _dirname(self.written), _dirname(self.path))

    def find(self) -> dict[str, str]:
        """One recursive listing: video id -> fs path, skipping hidden entries (`.git`, macOS `._x.mp4`)."""
        return {self.rel(p): p for p in self.fs.find(self.path) if is_video(p) and not _hidden(self.rel(p))}


def _join(base: str, rel: str) -> str:
    if not base or base.endswith("://"):
        return base + rel
    return base.rstrip("/") + "/" + rel


def _dirname(path: str) -> str:
    proto, sep, rest = path.rpartition("://")
    return proto + sep + (posixpath.dirname(rest.rstrip("/")) or ("." if not sep else ""))


def _names(root: _Root) -> set[str]:
    return {posixpath.basename(p.rstrip("/")) for p in root.fs.ls(root.path, detail=False)}


def _row(uri: str, vid: str, label: str | None, split: str | None = None, group: str | None = None,
         labelled: bool = True, why: str = "no label") -> VideoInput | Failure:
    """One row's outcome: an input, or a bad_label failure when a needed label is missing or a given label
    or split is unsafe. Checked here, before a name can reach any file name downstream."""
    if label is None and labelled:
        return Failure(uri, BAD_LABEL, why, STAGE)
    checked = []
    for prefix, name in (("", label), ("split: ", split)):
        try:
            checked.append(None if name is None else validate_label(name))  # NFC: one class however typed
        except LabelError as e:
            return Failure(uri, BAD_LABEL, prefix + str(e), STAGE)
    return VideoInput(uri, vid, checked[0], checked[1], group or group_key(vid))


def _finish(rows: list[VideoInput | Failure], form: str) -> Discovery:
    """Sort by id and turn repeated ids into failures, so ids stay unique and every row is still counted."""
    first: dict[str, VideoInput] = {}
    failures = [r for r in rows if isinstance(r, Failure)]
    for inp in sorted((r for r in rows if isinstance(r, VideoInput)), key=lambda i: i.video_id):
        if kept := first.get(inp.video_id):
            why = f"{inp.video_id!r} listed more than once (kept label {kept.label!r}, split {kept.split!r})"
            failures.append(Failure(inp.uri, DUPLICATE, why, STAGE))
        else:
            first[inp.video_id] = inp
    return Discovery(tuple(first.values()), tuple(sorted(failures, key=lambda f: (f.uri, f.message))), form)


def _folders(root: _Root, labelled: bool) -> Discovery:
    """Class folders (label = first-level folder) when labelled, else an archive searched recursively."""
    return _finish([_row(root.uri(p), vid, vid.split("/")[0] if labelled and "/" in vid else None,
                         labelled=labelled, why="video at the top level: no class folder")
                    for vid, p in root.find().items()], "class_folders" if labelled else "archive")


def _glob(root: _Root, labelled: bool) -> Discovery:
    """A glob (`**` recurses); ids are relative to the folder before the first wildcard."""
    parts = root.written.split("/")
    fixed = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
    base_written = "/".join(parts[:fixed]) or "."
    base = _Root(root.fs, base_written, fsspec.core.url_to_fs(base_written)[1])
    matches = root.fs.glob(root.path, detail=True)
    if not matches:
        raise errors.InputError(f"no files match {root.written}")
    return _finish([_row(base.uri(p), base.rel(p), posixpath.basename(posixpath.dirname(p)) if labelled else None,
                         labelled=labelled)
                    for p, info in sorted(matches.items())
                    if info.get("type") == "file" and is_video(p) and not _hidden(base.rel(p))], "glob")


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def _read_rows(root: _Root) -> tuple[list[str], list[dict]]:
    """Header and rows of a .csv or .jsonl file; a row is a dict with its 1-based line number under '#'."""
    text = _read_text(root)
    if not root.path.lower().endswith(".jsonl"):
        reader = csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True)
        reader.fieldnames = [c.strip() for c in reader.fieldnames or []]
        return reader.fieldnames, [{**row, "#": reader.line_num} for row in reader]
    rows, columns = [], {}
    for n, line in enumerate(text.splitlines(), 1):
        try:
            row = json.loads(line) if line.strip() else {}
            rows += [{**{k: "" if v is None else str(v) for k, v in row.items()}, "#": n}] if row else []
        except (json.JSONDecodeError, AttributeError):
            raise errors.InputError(f"{root.written}:{n}: not a JSON object: {line[:80]!r}") from None
        columns.update(dict.fromkeys(row))
    return list(columns), rows


def _manifest(root: _Root, labelled: bool) -> Discovery:
    """A `uri,label[,split][,group]` manifest (or a Kinetics CSV, recognised by its columns)."""
    columns, rows = _read_rows(root)
    if _KINETICS_COLUMNS <= set(columns):
        return _kinetics(root, rows, labelled)
    if "uri" not in columns:
        raise errors.InputError(f"{root.written}: manifest has no 'uri' column (columns: {', '.join(columns) or 'none'})")
    folder, out = root.parent(), []
    for row in rows:
        if not (written := (row.get("uri") or "").strip()):
            raise errors.InputError(f"{root.written}:{row['#']}: row has no uri")
        out.append(_row(_resolve(folder, written), written, row.get("label") or None, row.get("split") or None,
                        row.get("group") or None, labelled))
    return _finish(out, "manifest")


def _resolve(folder: _Root, uri: str) -> str:
    """Manifest uris: URLs and absolute paths as written; relative ones against the manifest's folder."""
    if "://" in uri or uri.startswith("/") or re.match(r"[A-Za-z]:[\\/]", uri):
        return uri
    if folder.local:
        return os.path.normpath(os.path.join(folder.path, uri))
    proto, sep, rest = folder.written.rpartition("://")
    joined = posixpath.normpath(posixpath.join(rest, uri))
    return proto + sep + joined


def _kinetics(root: _Root, rows: list[dict], labelled: bool) -> Discovery:
    """Kinetics CSV rows matched by file stem against ONE recursive listing of the CSV's folder."""
    folder, out, by_stem = root.parent(), [], {}
    for vid in sorted(folder.find()):
        by_stem.setdefault(posixpath.splitext(posixpath.basename(vid))[0], vid)
    for row in rows:
        try:
            ytid = row["youtube_id"].strip()
            stem = f"{ytid}_{int(float(row['time_start'])):06d}_{int(float(row['time_end'])):06d}"
        except (TypeError, ValueError, AttributeError):
            raise errors.InputError(f"{root.written}:{row['#']}: bad youtube_id/time_start/time_end") from None
        split = row.get("split") or None
        vid = by_stem.get(stem)
        uri = folder.uri(folder.child(vid or stem + ".mp4").path)
        got = _row(uri, vid or stem, row.get("label") or None, _SPLIT_ALIASES.get(split, split), ytid, labelled)
        if vid is None and isinstance(got, VideoInput):
            got = Failure(uri, NOT_FOUND, f"no video file named {stem}.* under {folder.written}", STAGE)
        out.append(got)
    return _finish(out, "kinetics")


def _listed(lists: _Root, candidates: list[_Root], rows: list[tuple[str, str, str]], form: str) -> Discovery:
    """Rows (relative path, split, list file) of an official split, labelled by class folder and checked
    against ONE listing of the video root: the candidate holding the most class folders, as layouts vary."""
    if not rows:
        return _finish([], form)
    classes = {rel.split("/")[0] for rel, _, _ in rows}
    hits, root = max(((len(classes & _names(c)), c) for c in candidates if c.fs.isdir(c.path)),
                     key=lambda t: t[0], default=(0, None))
    if not hits:
        looked = ", ".join(c.written for c in candidates)
        raise errors.InputError(f"{lists.written}: no folder holds the listed class folders; looked in {looked}")
    present, out = root.find(), []
    for rel, split, source in rows:
        uri = root.uri(root.child(rel).path)
        got = _row(uri, rel, rel.split("/")[0] if "/" in rel else None, split, why=f"no class folder ({source})")
        if rel not in present and isinstance(got, VideoInput):
            got = Failure(uri, NOT_FOUND, f"listed in {source} but not under {root.written}", STAGE)
        out.append(got)
    return _finish(out, form)


def _read_text(root: _Root) -> str:
    with root.fs.open(root.path, "rb") as f:
        return f.read().decode("utf-8-sig")


def _ucf101(lists: _Root, names: set[str], n: int) -> Discovery:
    """UCF101 `trainlistNN.txt`/`testlistNN.txt`: lines `Class/v_Class_gGG_cCC.avi [index]`."""
    chosen = [(kind, f"{kind}list{n:02d}.txt") for kind in ("train", "test") if f"{kind}list{n:02d}.txt" in names]
    if not chosen:
        have = sorted({int(m[2]) for m in map(_UCF_LIST.match, names) if m})
        raise errors.InputError(f"{lists.written}: no UCF101 split {n} list (splits present: {have})")
    rows = []
    for kind, name in chosen:
        for line in _read_text(lists.child(name)).splitlines():
            if rel := re.sub(r"\s+\d+\s*\Z", "", line).strip():  # drop the class index train lists carry
                rows.append((rel.replace("\\", "/"), kind, name))
    parent = lists.parent()
    return _listed(lists, [lists, parent, parent.child("UCF-101")], rows, "ucf101")


def _hmdb51(lists: _Root, names: set[str], n: int) -> Discovery:
    """HMDB51 `{class}_test_split{N}.txt`: lines `video.avi 0|1|2` (1 train, 2 test, 0 unused: skipped)."""
    files = sorted(name for name in names if (m := _HMDB_LIST.match(name)) and int(m["n"]) == n)
    if not files:
        have = sorted({int(m["n"]) for m in map(_HMDB_LIST.match, names) if m})
        raise errors.InputError(f"{lists.written}: no HMDB51 split {n} files (splits present: {have})")
    rows = []
    for name in files:
        for number, line in enumerate(_read_text(lists.child(name)).splitlines(), 1):
            parts = line.split()
            if parts and (len(parts) != 2 or parts[1] not in ("0", "1", "2")):
                raise errors.InputError(f"{lists.written}/{name}:{number}: expected 'video 0|1|2', got {line!r}")
            if parts and parts[1] != "0":
                split = "train" if parts[1] == "1" else "test"
                rows.append((f"{_HMDB_LIST.match(name)['cls']}/{parts[0]}", split, name))
    parent = lists.parent()
    siblings = [parent.child(name) for name in sorted(_names(parent))]
    return _listed(lists, [lists, parent] + [c for c in siblings if c.path != lists.path], rows, "hmdb51")
