"""Label validation, the labels.txt map, split fractions and stable split assignment."""
from __future__ import annotations

import collections

import pytest

from vidclass.labels import (LabelError, LabelMap, assign_split, group_key, parse_split_fractions, split_point,
                             validate_label)


@pytest.mark.parametrize("name", ["ApplyEyeMakeup", "Tai Chi", "café", "passing American football (in game)",
                                  "x" * 200, "a.b", "...", "日本語"])
def test_valid_labels_pass_unchanged(name):
    """Ordinary names, unicode and spaces inside are data and come back as given."""
    assert validate_label(name) == name


@pytest.mark.parametrize("name, reason", [
    ("", "empty"), (".", "relative"), ("..", "relative"), ("a/b", "separator"), ("a\\b", "separator"),
    ("a\x00b", "control"), ("a\nb", "control"), ("tab\there", "control"), ("a\x7fb", "control"),
    ("a\u2028b", "control"), (" lead", "whitespace"), ("trail ", "whitespace"), ("x" * 201, "longer"),
    ("evil\u202egpj.exe", "invisible"), ("zero\u200bwidth", "invisible"), ("a\u200db", "invisible"),
    ("\ufeffbom", "invisible"),
])
def test_bad_labels_raise_with_name_and_reason(name, reason):
    """Names that could act as paths or break labels.txt are refused with a message naming them and why."""
    with pytest.raises(LabelError) as e:
        validate_label(name)
    assert reason in str(e.value) and repr(name) in str(e.value)
    assert isinstance(e.value, ValueError)


def test_composed_and_decomposed_spellings_are_one_class(tmp_path):
    """`café` as one code point (NFC) or as `e` + a combining accent (NFD, as macOS writes file names) is
    the same label: one class in the map, found by either spelling, and one class from class folders."""
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    assert validate_label(nfd) == nfc
    labels = LabelMap.from_names([nfc, nfd, "tea"])
    assert labels.names == (nfc, "tea") and labels.index(nfd) == 0
    from vidclass.discovery import discover
    for name, folder in (("a.mp4", nfc), ("b.mp4", nfd)):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_bytes(b"")
    found = discover(str(tmp_path))
    assert found.labels() == (nfc,) and len(found.inputs) == 2


def test_label_map_sorted_unique_and_lookups():
    """from_names sorts and dedupes, so a set of classes always maps to the same indices."""
    m = LabelMap.from_names(["walk", "run", "Tai Chi", "run"])
    assert m.names == ("Tai Chi", "run", "walk")
    assert len(m) == 3 and m.index("run") == 1 and m.name(2) == "walk"
    assert "run" in m and "swim" not in m
    assert m.to_list() == ["Tai Chi", "run", "walk"]
    with pytest.raises(KeyError, match="unknown label 'swim'.*'run'"):
        m.index("swim")
    with pytest.raises(IndexError):
        m.name(-1)


def test_label_map_refuses_duplicates_and_bad_names():
    """A map with a repeated or unsafe name would give two outputs one meaning, or escape a folder."""
    with pytest.raises(LabelError, match="twice"):
        LabelMap(("a", "b", "a"))
    with pytest.raises(LabelError):
        LabelMap(("a", "../b"))


def test_label_map_text_round_trip():
    """labels.txt keeps file order (line number = index) and survives a round trip, CRLF included."""
    m = LabelMap(("zebra", "café", "Tai Chi"))
    text = m.to_text()
    assert text == "zebra\ncafé\nTai Chi\n"
    assert LabelMap.from_text(text) == m
    assert LabelMap.from_text(text.replace("\n", "\r\n")) == m
    assert LabelMap.from_text("") == LabelMap(())
    with pytest.raises(LabelError):
        LabelMap.from_text("a\n\nb\n")  # a blank line in the middle would shift every later index


def test_parse_split_fractions():
    """The --split flag parses in the order given and rejects figures that would lose videos."""
    assert parse_split_fractions("train=0.8,val=0.1,test=0.1") == {"train": 0.8, "val": 0.1, "test": 0.1}
    assert list(parse_split_fractions("test=0.5, train=0.5")) == ["test", "train"]
    assert parse_split_fractions("train=1,test=0") == {"train": 1.0, "test": 0.0}
    for bad, match in [("train=0.8,val=0.1", "sum to 0.9"), ("train=1.1,val=-0.1", ">= 0"),
                       ("train=0.5,train=0.5", "twice"), ("tr/ain=1", "simple name"), ("train", "name=fraction"),
                       ("train=x", "bad fraction"), ("train=nan", ">= 0"), ("", "name=fraction")]:
        with pytest.raises(ValueError, match=match):
            parse_split_fractions(bad)


def test_assign_split_is_stable_across_runs():
    """Hard-coded values: a change to the hash would silently move videos between train and test."""
    fractions = {"train": 0.8, "val": 0.1, "test": 0.1}
    assert split_point("a") == pytest.approx(0.527220023791, abs=1e-12)
    expected = {"a": "train", "v_ApplyEyeMakeup_g08": "val", "video_0": "val", "video_1": "train",
                "video_4": "test", "video_5": "test", "ApplyEyeMakeup_g08": "train"}
    assert {k: assign_split(k, fractions) for k in expected} == expected


def test_assign_split_matches_fractions():
    """Over many keys each split gets about its share, and a zero split gets none."""
    fractions = {"train": 0.7, "val": 0.0, "test": 0.3}
    counts = collections.Counter(assign_split(f"video_{i}", fractions) for i in range(10_000))
    assert counts["val"] == 0
    assert abs(counts["train"] / 10_000 - 0.7) < 0.02 and abs(counts["test"] / 10_000 - 0.3) < 0.02
    assert all(assign_split(f"k{i}", {"only": 1.0}) == "only" for i in range(100))
    with pytest.raises(ValueError):
        assign_split("x", {})


def test_group_key():
    """UCF101 clips share their group's key (class + gNN); Kinetics clips their YouTube id; others their id."""
    assert group_key("v_ApplyEyeMakeup_g08_c01.avi", "ApplyEyeMakeup") == "ApplyEyeMakeup_g08"
    assert group_key("gs://b/UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c05.avi", None) == "ApplyEyeMakeup_g08"
    assert group_key("Yo/v_YoYo_g25_c03.avi") == "YoYo_g25"
    assert group_key("abseiling/--07WQ2iBlw_000001_000011.mp4") == "--07WQ2iBlw"
    assert group_key("walk/clip_3.mp4", "walk") == "walk/clip_3.mp4"
