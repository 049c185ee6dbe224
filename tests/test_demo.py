"""The demo's synthetic data and the whole chain at a tiny size."""
import numpy as np

from pipelines import demo
from vidclass import synthetic
from vidclass.sampling import SamplingSpec
from vidclass.video import sample_video


def test_synthetic_dataset_has_every_class_and_decodable_videos(tmp_path):
    """Class folders with the asked count of real, decodable videos; the same seed gives the same pixels."""
    paths = synthetic.write_dataset(tmp_path, 2, num_frames=12, height=48, width=64, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(synthetic.CLASSES)
    assert all(len(list((tmp_path / c).iterdir())) == 2 for c in synthetic.CLASSES)
    for p in paths:
        clips = sample_video(str(p), SamplingSpec(num_frames=4, size=32))
        assert clips.info.frames_decoded == 12 and clips.frames.std() > 10
    a = synthetic.render("grow", np.random.default_rng(5), 6, 48, 64)
    b = synthetic.render("grow", np.random.default_rng(5), 6, 48, 64)
    np.testing.assert_array_equal(a, b)


def _centre_of_change(frames):
    """Where the moving object is: the centroid of what changed between two frames (background pans
    slowly, the object fast)."""
    diff = np.abs(frames[1:].astype(int) - frames[:-1].astype(int)).sum(axis=3) > 60
    ys, xs = np.nonzero(diff.any(axis=0))
    return xs.mean(), ys.mean()


def test_motion_classes_move_the_way_their_names_say():
    """move_right's changes drift right over time and move_left's left: the label is the motion."""
    for label, sign in (("move_right", 1), ("move_left", -1)):
        frames = synthetic.render(label, np.random.default_rng(2), 24, 96, 128)
        early, late = _centre_of_change(frames[:6])[0], _centre_of_change(frames[-6:])[0]
        assert sign * (late - early) > 10, (label, early, late)


def test_demo_runs_the_whole_chain_at_tiny_size(tmp_path, capsys):
    """generate -> preprocess -> train -> evaluate -> frame_cnn -> infer, and one summary screen."""
    code = demo.run(["--workdir", str(tmp_path), "--per-class", "4", "--epochs", "1", "--baseline-epochs", "1",
                     "--size", "32", "--frames", "4"])
    assert code == 0
    out = capsys.readouterr().out
    for part in ("r2plus1d  test top-1", "frame_cnn test top-1", "infer     33 rows: 32 ok, 1 error",
                 "predictions-*.parquet", "first predictions:"):
        assert part in out, part
    assert (tmp_path / "model" / "model.keras").exists() and (tmp_path / "predictions" / "_SUCCESS").exists()
