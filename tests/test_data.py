"""The tf.data input: shapes, labels, augmentation switches, eager and inside tf.data alike."""
import numpy as np
import pytest
import tensorflow as tf

import datasets
from vidclass import dataset
from vidclass.data import Augment, augment_clip, make_dataset, temporal_window


@pytest.fixture(scope="module")
def motion(tmp_path_factory):
    return datasets.motion_dataset(tmp_path_factory.mktemp("ds"), {"train": 6, "val": 3})


def test_batches_have_model_shapes_and_true_labels(motion):
    """Frames come as float32 0..255 [B,T,S,S,3], labels one-hot and matching the clip's class."""
    info = dataset.load(str(motion))
    xs, ys, ids = [], [], []
    for x, y, vid in make_dataset(str(motion), info, "val", 4, training=False, with_ids=True):
        xs.append(x.numpy()), ys.append(y.numpy()), ids.extend(v.decode() for v in vid.numpy())
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.shape == (6, 8, 32, 32, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255
    assert y.shape == (6, 2) and np.all(y.sum(axis=1) == 1)
    for label_row, vid in zip(y, ids):
        assert info.labels.name(int(np.argmax(label_row))) == vid.split("/")[1].split("_")[0]


def test_evaluation_input_is_deterministic_and_unaugmented(motion):
    """Two passes over a non-training split give identical tensors: no augmentation leaks into eval."""
    info = dataset.load(str(motion))
    a = np.concatenate([x.numpy() for x, _ in make_dataset(str(motion), info, "val", 3, training=False)])
    b = np.concatenate([x.numpy() for x, _ in make_dataset(str(motion), info, "val", 3, training=False)])
    np.testing.assert_array_equal(a, b)


def test_model_may_take_fewer_frames_than_clips(motion):
    """A model taking 4 of 8 frames gets 4-frame windows; asking for more than clips hold is an error."""
    info = dataset.load(str(motion))
    x, _ = next(iter(make_dataset(str(motion), info, "train", 2, training=True, frames=4)))
    assert x.shape[1] == 4
    with pytest.raises(ValueError, match="16 frames"):
        make_dataset(str(motion), info, "train", 2, training=True, frames=16)


def _clip():
    rng = np.random.default_rng(0)
    return tf.constant(rng.integers(0, 255, (6, 16, 16, 3)).astype(np.float32))


@pytest.mark.parametrize("mode", ["eager", "tf.data"])
def test_no_flip_keeps_direction(mode):
    """With flip off (and crop/colour off) a clip passes unchanged, eagerly and inside tf.data."""
    aug = Augment(crop=False, flip=False, color=False, temporal=False)
    clip = _clip()
    if mode == "eager":
        out = augment_clip(clip, aug, 16)
    else:
        out = next(iter(tf.data.Dataset.from_tensors(clip).map(lambda c: augment_clip(c, aug, 16))))
    np.testing.assert_array_equal(out.numpy(), clip.numpy())


@pytest.mark.parametrize("mode", ["eager", "tf.data"])
def test_flip_mirrors_every_frame_alike(mode):
    """When a flip happens it mirrors all frames the same way (motion direction flips consistently)."""
    aug = Augment(crop=False, flip=True, color=False, temporal=False)
    clip = _clip()
    flipped = clip.numpy()[:, :, ::-1]
    seen = set()
    for seed in range(12):
        tf.random.set_seed(seed)
        if mode == "eager":
            out = augment_clip(clip, aug, 16).numpy()
        else:
            out = next(iter(tf.data.Dataset.from_tensors(clip).map(lambda c: augment_clip(c, aug, 16)))).numpy()
        assert np.array_equal(out, clip.numpy()) or np.array_equal(out, flipped)
        seen.add(np.array_equal(out, flipped))
    assert seen == {True, False}


@pytest.mark.parametrize("mode", ["eager", "tf.data"])
def test_crop_and_colour_keep_shape_and_range(mode):
    """Random crop-and-resize and colour jitter keep [T,S,S,3] and values within 0..255."""
    aug = Augment(crop=True, flip=True, color=True)
    clip = _clip()
    out = augment_clip(clip, aug, 16) if mode == "eager" else \
        next(iter(tf.data.Dataset.from_tensors(clip).map(lambda c: augment_clip(c, aug, 16))))
    assert out.shape == (6, 16, 16, 3) and 0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 255


def test_temporal_window_is_centred_for_eval_and_random_for_training():
    """Eval takes the centre frames; training windows move but stay consecutive."""
    clip = tf.reshape(tf.range(8, dtype=tf.float32), (8, 1, 1, 1))
    assert temporal_window(clip, 4, random=False).numpy().ravel().tolist() == [2, 3, 4, 5]
    starts = {int(temporal_window(clip, 4, random=True).numpy().ravel()[0]) for _ in range(40)}
    assert len(starts) > 1 and starts <= {0, 1, 2, 3, 4}
