"""Class names and splits: label validation, the label map of `labels.txt`, and stable split assignment.

Label names are data, never paths: every name is validated here before any stage lets it touch a file name,
and splits are a pure function of a group key, so a rerun on any machine puts every video in the same split.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import posixpath
import re
import unicodedata
from collections.abc import Iterable, Mapping

MAX_LABEL_LENGTH = 200

_SPLIT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# UCF101 file names: v_{Class}_g{group}_c{clip}.ext; clips of one group come from one long source video.
_UCF_NAME = re.compile(r"v_(?P<cls>.+)_g(?P<group>\d+)_c\d+\.[^.]+\Z")
# Kinetics file names: {youtube_id}_{start:06d}_{end:06d}.ext; clips of one YouTube video share a source.
_KINETICS_NAME = re.compile(r"(?P<ytid>[A-Za-z0-9_-]{11})_\d{6}_\d{6}\.[^.]+\Z")


class LabelError(ValueError):
    """A label (or split) name that must not be used: it could escape a folder or corrupt labels.txt."""


def validate_label(name: str) -> str:
    """Return `name` in Unicode NFC if it is safe as data; raise `LabelError` saying why not.

    Why so strict: labels end up in file names (per-class reports), one-per-line text files and Parquet
    columns, so a slash, a control character or a line separator would change what those files mean; an
    invisible or direction-reversing character would make two labels look alike; and `café` typed as one
    code point or as `e` + a combining accent must be one class, not two.
    """
    if not isinstance(name, str):
        raise LabelError(f"label {name!r} is not a string")
    name = unicodedata.normalize("NFC", name)
    reason = _label_problem(name)
    if reason:
        raise LabelError(f"invalid label {name!r}: {reason}")
    return name


def _label_problem(name: str) -> str | None:
    if not name:
        return "empty"
    if name in (".", ".."):
        return "a relative path component"
    if "/" in name or "\\" in name:
        return "contains a path separator"
    if len(name) > MAX_LABEL_LENGTH:
        return f"longer than {MAX_LABEL_LENGTH} characters ({len(name)})"
    for ch in name:
        category = unicodedata.category(ch)
        # Cc: control characters (NUL, newline, tab...); Cs: lone surrogates, not encodable as UTF-8;
        # Zl/Zp: line and paragraph separators, which would split a line of labels.txt; Cf: format
        # characters: bidi overrides (U+202E shows "gpj.exe" as "exe.jpg"), zero-width spaces and joiners.
        if category in ("Cc", "Cs", "Zl", "Zp"):
            return f"contains control character U+{ord(ch):04X}"
        if category == "Cf":
            return f"contains invisible format character U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed')})"
    if name != name.strip():
        return "leading or trailing whitespace"
    return None


@dataclasses.dataclass(frozen=True)
class LabelMap:
    """The class names of a dataset in index order; index i is the model's output unit i."""

    names: tuple[str, ...]
    _index: dict[str, int] = dataclasses.field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        names = tuple(validate_label(n) for n in self.names)
        index: dict[str, int] = {}
        for i, n in enumerate(names):
            if n in index:
                raise LabelError(f"label {n!r} appears twice (indices {index[n]} and {i})")
            index[n] = i
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "_index", index)

    @classmethod
    def from_names(cls, names: Iterable[str]) -> LabelMap:
        """Sorted unique names (in NFC), so the same set of classes always gets the same indices."""
        return cls(tuple(sorted({validate_label(n) for n in names})))

    def index(self, name: str) -> int:
        """The index of `name`; a KeyError lists some known names, as a typo is the usual cause."""
        try:
            return self._index[unicodedata.normalize("NFC", name) if isinstance(name, str) else name]
        except KeyError:
            known = ", ".join(repr(n) for n in self.names[:10])
            more = f" and {len(self.names) - 10} more" if len(self.names) > 10 else ""
            raise KeyError(f"unknown label {name!r}; the {len(self)} known labels are {known}{more}") from None

    def name(self, i: int) -> str:
        """The name for model output `i`; negative indices are refused, they would silently wrap."""
        if not 0 <= i < len(self.names):
            raise IndexError(f"label index {i} out of range 0..{len(self.names) - 1}")
        return self.names[i]

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def to_list(self) -> list[str]:
        """Names as a JSON-friendly list (dataset.json, bundle.json)."""
        return list(self.names)

    def to_text(self) -> str:
        """labels.txt: one name a line, line number = index; validation guarantees no name spans lines."""
        return "".join(n + "\n" for n in self.names)

    @classmethod
    def from_text(cls, text: str) -> LabelMap:
        """Parse labels.txt in file order; split on newlines only, as other separators are refused anyway."""
        lines = text.split("\n")
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        while lines and lines[-1] == "":
            lines.pop()
        return cls(tuple(lines))


def parse_split_fractions(spec: str) -> dict[str, float]:
    """Parse `train=0.8,val=0.1,test=0.1`, in the order given (the order `assign_split` walks).

    A split may be 0 (e.g. `test=0` when a separate test set exists); fractions must sum to 1, so a
    mistyped figure fails here rather than silently leaving videos out.
    """
    fractions: dict[str, float] = {}
    for part in spec.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not _SPLIT_NAME.match(name):
            raise ValueError(f"bad split {part!r} in {spec!r}: expected name=fraction with a simple name")
        if name in fractions:
            raise ValueError(f"split {name!r} given twice in {spec!r}")
        try:
            fraction = float(value)
        except ValueError:
            raise ValueError(f"bad fraction {value.strip()!r} for split {name!r} in {spec!r}") from None
        if not math.isfinite(fraction) or fraction < 0:
            raise ValueError(f"fraction for split {name!r} must be a number >= 0, got {value.strip()!r}")
        fractions[name] = fraction
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"split fractions in {spec!r} sum to {total:g}, not 1")
    return fractions


def split_point(key: str) -> float:
    """A uniform float in [0, 1) from sha1(key): the same on every machine, run and Python version."""
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_split(group_key: str, fractions: Mapping[str, float]) -> str:
    """The split for a group: hash-based, so reruns agree and all clips of a group land together."""
    if not fractions or sum(fractions.values()) <= 0:
        raise ValueError(f"no split has a positive fraction: {dict(fractions)}")
    u = split_point(group_key)
    cumulative = 0.0
    for name, fraction in fractions.items():
        cumulative += fraction
        if u < cumulative:
            return name
    # Rounding left the total a hair under 1: the point belongs to the last split that takes any videos.
    return [name for name, fraction in fractions.items() if fraction > 0][-1]


def group_key(uri_or_id: str, label: str | None = None) -> str:
    """The unit that must not straddle splits: a UCF101 group, a Kinetics source video, else the video itself.

    `label` is accepted for callers that have it but is deliberately not part of the key: fixing a label
    must not move a video to another split.
    """
    base = posixpath.basename(uri_or_id.replace("\\", "/").rstrip("/"))
    m = _UCF_NAME.match(base)
    if m:
        return f"{m['cls']}_g{m['group']}"
    m = _KINETICS_NAME.match(base)
    if m:
        return m["ytid"]
    return uri_or_id
