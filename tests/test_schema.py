"""Record layout: encode and parse agree, eagerly and inside tf.data, and Model Garden's reader accepts our bytes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from vidclass import schema

T, H, W = 4, 48, 64  # non-square, so a swapped height/width shows


def smooth_clip(t: int = T, h: int = H, w: int = W) -> np.ndarray:
    """Gradients that shift per frame: JPEG keeps them close, and each frame differs from the others."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = [np.stack([x * 255 / w, y * 255 / h, (x + y + 20 * i) % 256], -1) for i in range(t)]
    return np.stack(frames).astype(np.uint8)


def make_meta(t: int = T, **kw) -> schema.ClipMeta:
    base = dict(video_id="vid-123", uri="gs://bucket/v_Jump_g01_c01.avi", label_index=3, label="jump",
                fps=29.97, frame_indices=tuple(range(0, 2 * t, 2)),
                timestamps_us=tuple(int(i * 2 * 1e6 / 29.97) for i in range(t)),
                clip_index=1, num_clips=2, padded_frames=0)
    base.update(kw)
    return schema.ClipMeta(**base)


def meta_from_parsed(p: dict) -> schema.ClipMeta:
    """What parse_clip says, as a ClipMeta, so graph and eager results compare with one `==`."""
    p = {k: v.numpy() if hasattr(v, "numpy") else v for k, v in p.items()}
    return schema.ClipMeta(
        video_id=p["video_id"].decode(), uri=p["uri"].decode(), label_index=int(p["label"]),
        label=p["label_string"].decode(), fps=float(p["fps"]), frame_indices=tuple(p["frame_indices"]),
        timestamps_us=tuple(p["timestamps_us"]), clip_index=int(p["clip_index"]),
        num_clips=int(p["num_clips"]), padded_frames=int(p["padded_frames"]))


def assert_close_frames(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.uint8 and got.shape == want.shape
    assert np.abs(got.astype(np.int16) - want.astype(np.int16)).mean() < 3


def test_encode_jpeg_keeps_rgb_order():
    """The RGB→BGR swap for OpenCV is done once: a red frame must decode red, not blue."""
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 250
    back = tf.io.decode_jpeg(schema.encode_jpeg(red), channels=3).numpy()
    assert back[..., 0].mean() > 200 and back[..., 2].mean() < 30


def test_round_trip_eager():
    """decode_clip and eager parse_clip both give back the frames (within JPEG loss) and every metadata field."""
    frames, meta = smooth_clip(), make_meta()
    record = schema.encode_clip(frames, meta)

    got_frames, got_meta = schema.decode_clip(record)
    assert_close_frames(got_frames, frames)
    assert got_meta == meta

    parsed = schema.parse_clip(tf.constant(record))
    assert_close_frames(parsed["frames"].numpy(), frames)
    assert meta_from_parsed(parsed) == meta
    assert (int(parsed["height"]), int(parsed["width"])) == (H, W)


def test_round_trip_in_tf_data():
    """parse_clip runs in graph mode inside Dataset.map and agrees with the eager decoder."""
    frames, meta = smooth_clip(), make_meta()
    other = make_meta(label_index=0, label="run", video_id="vid-9", clip_index=0)
    records = [schema.encode_clip(frames, meta), schema.encode_clip(frames[::-1].copy(), other)]
    ds = tf.data.Dataset.from_tensor_slices(records).map(schema.parse_clip)
    got = list(ds)
    assert len(got) == 2
    assert_close_frames(got[0]["frames"].numpy(), frames)
    assert_close_frames(got[1]["frames"].numpy(), frames[::-1])
    assert meta_from_parsed(got[0]) == meta and meta_from_parsed(got[1]) == other
    assert got[0]["frames"].shape[-1] == 3 and got[0]["label"].dtype == tf.int64


def test_parse_without_decoding_keeps_jpeg_bytes():
    """decode_frames=False hands back the JPEG strings untouched, for pipelines that decode later."""
    frames, meta = smooth_clip(), make_meta()
    record = schema.encode_clip(frames, meta)
    parsed = next(iter(tf.data.Dataset.from_tensors(record).map(lambda r: schema.parse_clip(r, False))))
    assert "frames" not in parsed and parsed["jpeg"].shape == (T,)
    assert parsed["jpeg"][0].numpy() == schema.encode_jpeg(frames[0])
    assert_close_frames(schema.decode_jpegs(parsed["jpeg"]).numpy(), frames)


def test_model_garden_reader_accepts_records():
    """The outside reader (check_dataset.py, Model Garden's keys) parses our bytes and finds label and frames."""
    frames, meta = smooth_clip(), make_meta()
    record = schema.encode_clip(frames, meta)
    ctx = {"clip/label/index": tf.io.VarLenFeature(tf.int64), "clip/label/string": tf.io.VarLenFeature(tf.string)}
    seq = {"image/encoded": tf.io.FixedLenSequenceFeature([], tf.string)}
    c, s = tf.io.parse_single_sequence_example(record, context_features=ctx, sequence_features=seq)
    assert tf.sparse.to_dense(c["clip/label/index"]).numpy().tolist() == [3]
    assert tf.sparse.to_dense(c["clip/label/string"]).numpy().tolist() == [b"jump"]
    assert s["image/encoded"].shape[0] == T
    assert tuple(tf.io.decode_jpeg(s["image/encoded"][0]).shape) == (H, W, 3)


def test_mediasequence_context_keys_written():
    """The MediaSequence keys other readers use carry the right values (clip start/end = first/last timestamp)."""
    frames, meta = smooth_clip(), make_meta()
    ex = tf.train.SequenceExample.FromString(schema.encode_clip(frames, meta))
    f = ex.context.feature
    assert f[schema.CLIP_START_KEY].int64_list.value == [meta.timestamps_us[0]]
    assert f[schema.CLIP_END_KEY].int64_list.value == [meta.timestamps_us[-1]]
    assert f[schema.CHANNELS_KEY].int64_list.value == [3]
    assert f[schema.HEIGHT_KEY].int64_list.value == [H] and f[schema.WIDTH_KEY].int64_list.value == [W]
    assert f[schema.MEDIA_ID_KEY].bytes_list.value == [b"vid-123"]
    assert f[schema.DATA_PATH_KEY].bytes_list.value == [meta.uri.encode()]
    assert len(ex.feature_lists.feature_list[schema.TIMESTAMP_KEY].feature) == T


def test_unlabelled_clip_round_trips():
    """An inference clip (label -1, "") survives both parsers and stays marked unlabelled."""
    frames, meta = smooth_clip(), make_meta(label_index=-1, label="", padded_frames=2,
                                            frame_indices=(0, 1, 1, 1))
    record = schema.encode_clip(frames, meta)
    _, got = schema.decode_clip(record)
    assert got == meta and not got.labelled
    parsed = next(iter(tf.data.Dataset.from_tensors(record).map(schema.parse_clip)))
    assert meta_from_parsed(parsed) == meta


def test_meta_accepts_arrays_and_rounds_fps():
    """Sampler output (numpy arrays) becomes tuples of ints, and fps is float32-exact so round trips compare equal."""
    meta = make_meta(frame_indices=np.arange(T), timestamps_us=np.arange(T, dtype=np.int64) * 40_000)
    assert meta.frame_indices == (0, 1, 2, 3) and all(type(i) is int for i in meta.timestamps_us)
    assert meta.fps == float(np.float32(29.97))
    hash(meta)


@pytest.mark.parametrize("frames, match", [
    (smooth_clip().astype(np.float32), "uint8"),
    (smooth_clip()[..., :1], r"\[T, H, W, 3\]"),
    (smooth_clip()[0], r"\[T, H, W, 3\]"),
    (np.zeros((T, 0, W, 3), np.uint8), r"\[T, H, W, 3\]"),
    (smooth_clip().tolist(), "numpy array"),
    (smooth_clip(t=T + 1), "5 frames but 4 frame_indices"),
])
def test_encode_rejects_bad_frames(frames, match):
    """Wrong dtype, shape or frame count fails at write time with a message, not later in training."""
    with pytest.raises(ValueError, match=match):
        schema.encode_clip(frames, make_meta())


@pytest.mark.parametrize("changes, match", [
    (dict(timestamps_us=(0, 1, 2)), "timestamps_us"),
    (dict(label_index=-1), "unlabelled"),
    (dict(label=""), "unlabelled"),
    (dict(label_index=-2, label="x"), ">= -1"),
    (dict(clip_index=2, num_clips=2), "clip_index"),
    (dict(padded_frames=T + 1), "padded_frames"),
    (dict(fps=0.0), "fps"),
])
def test_meta_rejects_inconsistent_fields(changes, match):
    """ClipMeta refuses metadata that would make a record lie (length mismatch, half-unlabelled, bad ranges)."""
    with pytest.raises(ValueError, match=match):
        make_meta(**changes)


def test_parse_rejects_record_missing_a_key():
    """A record from another writer fails loudly instead of parsing with invented defaults."""
    ex = tf.train.SequenceExample.FromString(schema.encode_clip(smooth_clip(), make_meta()))
    del ex.context.feature[schema.NUM_CLIPS_KEY]
    with pytest.raises(tf.errors.InvalidArgumentError):
        schema.parse_clip(tf.constant(ex.SerializeToString()))
    with pytest.raises(KeyError, match="clip/num_clips"):
        schema.decode_clip(ex.SerializeToString())


def test_meta_is_frozen():
    """Metadata is a value: nothing downstream can change a clip's label after it was checked."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_meta().label = "other"  # type: ignore[misc]
