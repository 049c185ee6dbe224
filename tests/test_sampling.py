"""The one sampler: which frames become clips, for every stage alike."""
import json

import numpy as np
import pytest

from vidclass.sampling import SamplingSpec, padded_frames, sample_indices


def test_segment_sampling_spreads_over_whole_video_in_order():
    """Default sampling covers the video end to end, strictly increasing, inside range."""
    idx = sample_indices(300, SamplingSpec(num_frames=16))
    assert idx.shape == (1, 16)
    assert np.all(np.diff(idx[0]) > 0)
    assert idx[0, 0] < 300 / 16 and idx[0, -1] >= 300 - 300 / 16
    assert padded_frames(idx) == 0


def test_multiple_clips_are_distinct_and_interleaved():
    """Several clips of one video take different frames, each still spread over the video."""
    idx = sample_indices(160, SamplingSpec(num_frames=8, clips_per_video=2))
    assert idx.shape == (2, 8)
    assert not set(idx[0]) & set(idx[1])


def test_strided_clips_centre_one_and_spread_several():
    """A strided clip keeps its step; one clip sits in the middle, several span start to end."""
    one = sample_indices(100, SamplingSpec(num_frames=4, stride=2))
    assert one.tolist() == [[46, 48, 50, 52]]
    three = sample_indices(100, SamplingSpec(num_frames=4, stride=2, clips_per_video=3))
    assert three[0, 0] == 0 and three[-1, -1] == 99
    assert np.all(np.diff(three, axis=1) == 2)


def test_stride_tightens_rather_than_padding_when_video_is_short():
    """A short video shrinks the stride so no frame repeats while enough frames exist."""
    idx = sample_indices(10, SamplingSpec(num_frames=8, stride=4))
    assert padded_frames(idx) == 0 and idx.max() < 10


@pytest.mark.parametrize("n,expected_pad", [(1, 15), (3, 13), (15, 1), (16, 0)])
def test_too_few_frames_repeat_in_order(n, expected_pad):
    """Fewer frames than asked: frames repeat in time order, and the repeats are counted."""
    idx = sample_indices(n, SamplingSpec(num_frames=16))
    assert idx.shape == (1, 16) and idx.max() == n - 1 and idx.min() == 0
    assert np.all(np.diff(idx[0]) >= 0)
    assert padded_frames(idx) == expected_pad


def test_target_fps_sets_stride_from_rate():
    """target_fps=10 on a 30 fps video keeps every third frame."""
    idx = sample_indices(300, SamplingSpec(num_frames=4, target_fps=10), fps=30)
    assert np.all(np.diff(idx[0]) == 3)


def test_zero_frames_is_an_error_not_zeros():
    """Nothing decodes: the sampler refuses instead of inventing frames."""
    with pytest.raises(ValueError):
        sample_indices(0, SamplingSpec())


def test_spec_json_round_trip_and_strictness():
    """The spec survives JSON (dataset.json, bundle.json) and rejects keys it does not know."""
    spec = SamplingSpec(num_frames=8, clips_per_video=3, stride=2, size=160, resize="pad")
    assert SamplingSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="unknown"):
        SamplingSpec.from_dict({**json.loads(spec.to_json()), "jitter": 1})


@pytest.mark.parametrize("bad", [dict(num_frames=0), dict(resize="zoom"), dict(stride=0),
                                 dict(stride=2, target_fps=5.0), dict(size=2)])
def test_spec_rejects_nonsense(bad):
    """Invalid specs fail when made, not deep inside a pipeline."""
    with pytest.raises(ValueError):
        SamplingSpec(**bad)
