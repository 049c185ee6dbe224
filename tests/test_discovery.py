"""Discovery of inputs: every layout `--input` accepts, on local disk and on an fsspec memory filesystem."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import fsspec
import pytest

from vidclass import errors

from vidclass.discovery import VIDEO_EXTENSIONS, Discovery, VideoInput, discover, is_video
from vidclass.errors import BAD_LABEL, DUPLICATE, NOT_FOUND
from vidclass.labels import assign_split


def touch(root: Path, *rels: str) -> None:
    """Empty placeholder files: discovery lists, it never decodes."""
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def ids(d: Discovery) -> list[str]:
    return [i.video_id for i in d.inputs]


@pytest.fixture
def mem():
    """A private folder on fsspec's process-wide memory filesystem, removed after the test."""
    fs = fsspec.filesystem("memory")
    root = f"/vc-{uuid.uuid4().hex[:8]}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def mem_write(fs, path: str, data: str = "") -> None:
    with fs.open(path, "wb") as f:
        f.write(data.encode())


def test_video_extensions_case_insensitive():
    """Archives mix `.MP4` and `.mp4`; both are videos, text files are not."""
    assert {".mp4", ".avi", ".ts", ".ogv", ".3gp"} <= VIDEO_EXTENSIONS
    assert is_video("a/B.MP4") and is_video("x.Mkv") and not is_video("notes.txt") and not is_video("mp4")


def test_class_folders(tmp_path):
    """First-level folder is the label, videos are found at any depth, root-level videos fail as unlabelled."""
    touch(tmp_path, "walk/a.mp4", "walk/deep/er/b.AVI", "run/c.mkv", "stray.mp4", "README.txt",
          "run/notes.txt", ".git/x.mp4", "run/._c.mp4", "empty_class/.keep")
    d = discover(str(tmp_path))
    assert d.form == "class_folders"
    assert ids(d) == ["run/c.mkv", "walk/a.mp4", "walk/deep/er/b.AVI"]
    assert [i.label for i in d.inputs] == ["run", "walk", "walk"]
    assert d.inputs[0] == VideoInput(str(tmp_path / "run/c.mkv"), "run/c.mkv", "run", None, "run/c.mkv")
    assert d.labels() == ("run", "walk")
    [f] = d.failures
    assert (f.uri, f.code, f.stage) == (str(tmp_path / "stray.mp4"), BAD_LABEL, "discover")
    assert "no class folder" in f.message


def test_class_folders_bad_names_fail_per_video(tmp_path):
    """A control character or stray whitespace in a folder name fails its videos, not the run."""
    touch(tmp_path, "bad\x01cls/a.mp4", "bad\x01cls/b.mp4", "walk /c.mp4", "walk/d.mp4")
    d = discover(str(tmp_path))
    assert ids(d) == ["walk/d.mp4"]
    assert [f.code for f in d.failures] == [BAD_LABEL] * 3
    assert any("control character" in f.message for f in d.failures)
    assert any("whitespace" in f.message and "'walk '" in f.message for f in d.failures)
    assert len(d.inputs) + len(d.failures) == 4


def test_archive_unlabelled(tmp_path):
    """Inference over an archive: every video at any depth, root level included, with no label."""
    touch(tmp_path, "2021/jan/a.mp4", "b.webm", "c.txt", "bad\x01dir/d.mov")
    d = discover(str(tmp_path), labelled=False)
    assert d.form == "archive" and not d.failures
    assert ids(d) == ["2021/jan/a.mp4", "b.webm", "bad\x01dir/d.mov"]
    assert all(i.label is None and i.split is None and i.group for i in d.inputs)


def test_single_file_and_missing_path(tmp_path):
    """One video file is one input; a missing path or an unknown file type is a clear error."""
    touch(tmp_path, "clip.mp4", "notes.txt")
    d = discover(str(tmp_path / "clip.mp4"))
    assert [(i.uri, i.label) for i in d.inputs] == [(str(tmp_path / "clip.mp4"), None)]
    with pytest.raises(errors.InputError, match="nope.mp4"):
        discover(str(tmp_path / "nope.mp4"))
    with pytest.raises(errors.InputError, match="notes.txt"):
        discover(str(tmp_path / "notes.txt"))


def test_glob(tmp_path):
    """Globs (with `**`) keep only videos; labels come from the parent folder when labelled."""
    touch(tmp_path, "walk/a.mp4", "walk/x/b.mp4", "run/c.mp4", "run/c.txt")
    d = discover(str(tmp_path / "*" / "*.mp4"))
    assert d.form == "glob"
    assert [(i.video_id, i.label) for i in d.inputs] == [("run/c.mp4", "run"), ("walk/a.mp4", "walk")]
    d = discover(str(tmp_path / "**"), labelled=False)
    assert ids(d) == ["run/c.mp4", "walk/a.mp4", "walk/x/b.mp4"] and d.inputs[2].label is None
    assert d.inputs[2].uri == str(tmp_path / "walk/x/b.mp4")
    with pytest.raises(errors.InputError, match="no files match"):
        discover(str(tmp_path / "*.avi"))


def test_csv_manifest_resolves_relative_uris(tmp_path):
    """Relative uris resolve against the manifest's folder; absolute paths and URLs stay as written."""
    touch(tmp_path, "data/sub/a.mp4")
    (tmp_path / "data/manifest.csv").write_text(
        "uri,label,split,group\n"
        "sub/a.mp4,walk,train,\n"
        "../other/b.mp4,run,test,g1\n"
        f"{tmp_path}/abs.mp4,run,,\n"
        "gs://bucket/c.mp4,Tai Chi,val,\n")
    d = discover(str(tmp_path / "data/manifest.csv"))
    assert d.form == "manifest" and not d.failures
    got = {i.video_id: i for i in d.inputs}
    assert got["sub/a.mp4"] == VideoInput(str(tmp_path / "data/sub/a.mp4"), "sub/a.mp4", "walk", "train",
                                          "sub/a.mp4")
    assert got["../other/b.mp4"].uri == str(tmp_path / "other/b.mp4") and got["../other/b.mp4"].group == "g1"
    assert got[f"{tmp_path}/abs.mp4"].uri == f"{tmp_path}/abs.mp4" and got[f"{tmp_path}/abs.mp4"].split is None
    assert got["gs://bucket/c.mp4"].uri == "gs://bucket/c.mp4" and got["gs://bucket/c.mp4"].label == "Tai Chi"
    assert ids(d) == sorted(ids(d))


def test_manifest_bad_rows_become_failures(tmp_path):
    """Unsafe labels and splits, missing labels and repeated rows fail alone; good rows still come through."""
    rows = [("ok1.mp4", "walk", ""), ("dots.mp4", "..", ""), ("slash.mp4", "a/b", ""),
            ("ctrl.mp4", "bad\x07", ""), ("nolabel.mp4", "", ""), ("badsplit.mp4", "run", "../x"),
            ("ok2.mp4", "run", "test"), ("ok1.mp4", "run", "")]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"uri": u, "label": l, "split": s}) + "\n" for u, l, s in rows) + "\n")
    d = discover(str(path))
    assert ids(d) == ["ok1.mp4", "ok2.mp4"] and d.inputs[0].label == "walk"
    assert len(d.inputs) + len(d.failures) == len(rows)
    assert sorted(f.code for f in d.failures) == [BAD_LABEL] * 5 + [DUPLICATE]
    assert {f.stage for f in d.failures} == {"discover"}
    messages = " | ".join(f.message for f in d.failures)
    for needle in ["'..'", "'a/b'", "control character", "no label", "split:", "more than once"]:
        assert needle in messages


def test_manifest_unlabelled_and_missing_uri_column(tmp_path):
    """Without labels a manifest may omit them; a manifest without a `uri` column is refused clearly."""
    (tmp_path / "m.csv").write_text("uri\na.mp4\nb.mp4\n")
    d = discover(str(tmp_path / "m.csv"), labelled=False)
    assert ids(d) == ["a.mp4", "b.mp4"] and d.inputs[0].label is None
    assert [f.message for f in discover(str(tmp_path / "m.csv")).failures] == ["no label", "no label"]
    (tmp_path / "bad.csv").write_text("path,label\na.mp4,walk\n")
    with pytest.raises(errors.InputError, match="no 'uri' column.*path, label"):
        discover(str(tmp_path / "bad.csv"))


def test_memory_manifest_keeps_protocol(mem):
    """On a remote filesystem relative uris resolve against the manifest's URL and keep its protocol."""
    fs, root = mem
    mem_write(fs, f"{root}/data/manifest.csv", "uri,label\na.mp4,walk\nsub/../b.mp4,run\ns3://x/c.mp4,run\n")
    d = discover(f"memory:/{root}/data/manifest.csv")
    base = f"memory:/{root}/data"
    assert [i.uri for i in d.inputs] == [f"{base}/a.mp4", "s3://x/c.mp4", f"{base}/b.mp4"]
    assert ids(d) == ["a.mp4", "s3://x/c.mp4", "sub/../b.mp4"]


def test_memory_class_folders_keep_protocol(mem):
    """Listings on a remote filesystem give uris that fsspec opens, protocol included."""
    fs, root = mem
    for rel in ["walk/a.mp4", "run/b.mp4", "run/deep/c.mp4"]:
        mem_write(fs, f"{root}/ds/{rel}")
    d = discover(f"memory:/{root}/ds")
    assert ids(d) == ["run/b.mp4", "run/deep/c.mp4", "walk/a.mp4"]
    assert d.inputs[0].uri == f"memory:/{root}/ds/run/b.mp4"
    assert all(fsspec.core.url_to_fs(i.uri)[0].exists(fsspec.core.url_to_fs(i.uri)[1]) for i in d.inputs)
    g = discover(f"memory:/{root}/ds/run/**")
    assert [(i.video_id, i.label) for i in g.inputs] == [("b.mp4", "run"), ("deep/c.mp4", "deep")]


def test_kinetics_csv(tmp_path):
    """Kinetics rows are matched by file stem from one listing; a row with no file is a not_found failure."""
    touch(tmp_path, "train/abseiling/--07WQ2iBlw_000001_000011.mp4", "val/zumba/AbCdEfGhIjK_000020_000030.mkv",
          "x/tai chi/ZZZZZZZZZZZ_000000_000010.webm")
    (tmp_path / "k.csv").write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "abseiling,--07WQ2iBlw,1,11,train,0\n"
        "zumba,AbCdEfGhIjK,20,30,validate,0\n"
        "tai chi,ZZZZZZZZZZZ,0,10,train,1\n"
        "abseiling,missingVid1,5,15,train,0\n"
        "../x,ZZZZZZZZZZZ,0,10,train,0\n")
    d = discover(str(tmp_path / "k.csv"))
    assert d.form == "kinetics"
    assert [(i.video_id, i.label, i.split, i.group) for i in d.inputs] == [
        ("train/abseiling/--07WQ2iBlw_000001_000011.mp4", "abseiling", "train", "--07WQ2iBlw"),
        ("val/zumba/AbCdEfGhIjK_000020_000030.mkv", "zumba", "val", "AbCdEfGhIjK"),
        ("x/tai chi/ZZZZZZZZZZZ_000000_000010.webm", "tai chi", "train", "ZZZZZZZZZZZ")]
    assert d.inputs[0].uri == str(tmp_path / "train/abseiling/--07WQ2iBlw_000001_000011.mp4")
    assert sorted(f.code for f in d.failures) == [BAD_LABEL, NOT_FOUND]
    assert any("missingVid1_000005_000015" in f.message for f in d.failures if f.code == NOT_FOUND)
    assert len(d.inputs) + len(d.failures) == 5


def ucf_tree(root: Path, classes=("ApplyEyeMakeup", "YoYo"), groups=3, clips=2, missing=()):
    """A small UCF101 copy: video folder UCF-101/, split lists in ucfTrainTestlist/ (group 1 is test)."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(classes, 1)))
    train, test = [], []
    for ci, c in enumerate(classes, 1):
        for g in range(1, groups + 1):
            for k in range(1, clips + 1):
                rel = f"{c}/v_{c}_g{g:02d}_c{k:02d}.avi"
                if rel not in missing:
                    touch(root / "UCF-101", rel)
                if g == 1:
                    test.append(rel)
                else:
                    train.append(f"{rel} {ci}")  # train lists carry the class index, test lists do not
    (lists / "trainlist01.txt").write_text("\r\n".join(train) + "\r\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    return lists


def test_ucf101_official_split(tmp_path):
    """UCF101 lists give labels and train/test splits; videos are found under the sibling UCF-101/ folder."""
    lists = ucf_tree(tmp_path, missing=("YoYo/v_YoYo_g03_c02.avi",))
    d = discover(str(lists))
    assert d.form == "ucf101"
    assert len(d.inputs) == 11 and len(d.failures) == 1 and d.failures[0].code == NOT_FOUND
    first = d.inputs[0]
    assert first == VideoInput(str(tmp_path / "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"),
                               "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "ApplyEyeMakeup", "test",
                               "ApplyEyeMakeup_g01")
    assert {i.split for i in d.inputs if "_g01_" in i.video_id} == {"test"}
    assert {i.split for i in d.inputs if "_g01_" not in i.video_id} == {"train"}
    assert discover(str(lists / "trainlist01.txt")) == d  # the list file itself names the same split
    with pytest.raises(errors.InputError, match="split 2"):
        discover(str(lists), split_number=2)


def test_ucf101_lists_next_to_class_folders(tmp_path):
    """Lists that sit inside the video folder itself also work, and a bad listed class fails alone."""
    ucf_tree(tmp_path)
    lists = tmp_path / "ucfTrainTestlist"
    for p in lists.iterdir():
        (tmp_path / "UCF-101" / p.name).write_text(p.read_text())
    with open(tmp_path / "UCF-101/testlist01.txt", "a") as f:
        f.write("../v_evil_g01_c01.avi\nnoclass.avi\n")
    d = discover(str(tmp_path / "UCF-101"))
    assert d.form == "ucf101" and len(d.inputs) == 12
    assert [f.code for f in d.failures] == [BAD_LABEL, BAD_LABEL]


def test_ucf_groups_never_straddle_splits(tmp_path):
    """With hashed splits, all clips of one UCF101 group land in the same split, over many groups."""
    for c in ("Archery", "Biking", "YoYo"):
        for g in range(1, 26):
            touch(tmp_path, *[f"{c}/v_{c}_g{g:02d}_c{k:02d}.avi" for k in range(1, 5)])
    d = discover(str(tmp_path))
    assert len(d.inputs) == 300 and all(i.split is None for i in d.inputs)
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    by_group: dict[str, set[str]] = {}
    for i in d.inputs:
        by_group.setdefault(i.group, set()).add(assign_split(i.group, fractions))
    assert len(by_group) == 75 and all(len(s) == 1 for s in by_group.values())
    assert set().union(*by_group.values()) == {"train", "val", "test"}


def hmdb_tree(root: Path) -> Path:
    """A small HMDB51 copy: split files in testTrainMulti_7030_splits/, videos in hmdb51_org/{class}/."""
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    (splits / "brush_hair_test_split1.txt").write_text("bh_a_0.avi 1 \nbh_b_0.avi 2 \nbh_c_0.avi 0 \n")
    (splits / "#clap_test_split1.txt").write_text("cl_a_0.avi 2\ncl_gone_0.avi 1\n")
    (splits / "brush_hair_test_split2.txt").write_text("bh_a_0.avi 2\nbh_b_0.avi 1\nbh_c_0.avi 1\n")
    touch(root / "hmdb51_org", "brush_hair/bh_a_0.avi", "brush_hair/bh_b_0.avi", "brush_hair/bh_c_0.avi",
          "#clap/cl_a_0.avi")
    (root / "readme.txt").write_text("")
    return splits


def test_hmdb51_official_split(tmp_path):
    """HMDB51 split files: 1=train, 2=test, 0 is not an input; listed-but-missing videos are not_found."""
    splits = hmdb_tree(tmp_path)
    d = discover(str(splits))
    assert d.form == "hmdb51"
    assert [(i.video_id, i.label, i.split) for i in d.inputs] == [
        ("#clap/cl_a_0.avi", "#clap", "test"), ("brush_hair/bh_a_0.avi", "brush_hair", "train"),
        ("brush_hair/bh_b_0.avi", "brush_hair", "test")]
    assert d.inputs[0].uri == str(tmp_path / "hmdb51_org/#clap/cl_a_0.avi")
    assert [(f.code, f.uri) for f in d.failures] == [(NOT_FOUND, str(tmp_path / "hmdb51_org/#clap/cl_gone_0.avi"))]
    two = discover(str(splits), split_number=2)
    assert [(i.video_id, i.split) for i in two.inputs] == [
        ("brush_hair/bh_a_0.avi", "test"), ("brush_hair/bh_b_0.avi", "train"), ("brush_hair/bh_c_0.avi", "train")]
    assert discover(str(splits / "brush_hair_test_split2.txt")).inputs == two.inputs


def test_discovery_is_deterministic(tmp_path):
    """Two runs over the same input give identical results, so reruns are idempotent."""
    touch(tmp_path, *[f"c{i % 3}/v{i}.mp4" for i in range(30)])
    assert discover(str(tmp_path)) == discover(str(tmp_path))
    assert ids(discover(str(tmp_path))) == sorted(ids(discover(str(tmp_path))))
