"""The model zoo's contract (see `vidclass/models/__init__.py`), on tiny clips the tests make."""
from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from vidclass.models import DEFAULT_MODEL, MODELS, build_model, mobilenet_gru
from vidclass.sampling import SamplingSpec

SPEC = SamplingSpec(num_frames=8, size=32)  # 32 is MobileNetV2's smallest input
NUM_CLASSES = 3


@pytest.fixture(scope="module")
def models() -> dict[str, keras.Model]:
    """One instance per model, built once: building MobileNetV2 is the slow part."""
    keras.utils.set_random_seed(0)
    return {name: build_model(name, NUM_CLASSES, SPEC) for name in MODELS}


def _clips(n: int, frames: int = SPEC.num_frames, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, frames, SPEC.size, SPEC.size, 3)).astype("float32")


def _all_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_keeps_the_input_output_contract(models, name):
    """Raw 0..255 frames in, one probability row per clip out, under the model's own name, no Lambda."""
    model = models[name]
    assert model.name == name
    assert model.input_shape == (None, SPEC.num_frames, SPEC.size, SPEC.size, 3)
    assert model.inputs[0].name == "frames" and model.inputs[0].dtype == "float32"
    assert model.output_shape == (None, NUM_CLASSES)
    assert not [layer.name for layer in _all_layers(model) if isinstance(layer, keras.layers.Lambda)]
    probs = model.predict(_clips(4), verbose=0)
    assert probs.dtype == np.float32 and probs.shape == (4, NUM_CLASSES)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_one_training_step_updates_every_trainable_weight(models, name):
    """The whole network is connected to the loss: one Adam step moves every trainable variable."""
    model = models[name]
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy")
    before = [w.numpy().copy() for w in model.trainable_weights]
    y = keras.utils.to_categorical(np.arange(4) % NUM_CLASSES, NUM_CLASSES)
    loss = model.train_on_batch(_clips(4), y)
    assert np.isfinite(loss)
    unchanged = [w.path for w, b in zip(model.trainable_weights, before) if np.array_equal(w.numpy(), b)]
    assert not unchanged, unchanged


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_file_round_trip_in_safe_mode(models, name, tmp_path):
    """A saved `.keras` file is the whole model: it loads in safe mode and predicts the same."""
    model, x = models[name], _clips(2, seed=1)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    assert loaded.name == name
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_frames_cfg_takes_fewer_frames_never_more(name):
    """`frames` crops a model's clip length below the dataset's; asking for frames never sampled fails."""
    model = build_model(name, NUM_CLASSES, SPEC, frames=4)
    assert model.input_shape[1] == 4
    assert model.predict(_clips(1, frames=4), verbose=0).shape == (1, NUM_CLASSES)
    with pytest.raises(ValueError, match="frames"):
        build_model(name, NUM_CLASSES, SPEC, frames=SPEC.num_frames + 1)


def test_mobilenet_missing_weights_file_is_a_clear_error(tmp_path):
    """A weights path that does not exist fails loudly, naming the path, instead of downloading."""
    missing = tmp_path / "nope.weights.h5"
    with pytest.raises(FileNotFoundError, match="nope.weights.h5"):
        build_model("mobilenet_gru", NUM_CLASSES, SPEC, weights=str(missing))


def test_mobilenet_loads_local_weights_and_freezes_them(tmp_path):
    """Backbone weights come from the given local file and stay frozen by default."""
    reference = keras.applications.MobileNetV2(input_shape=(SPEC.size, SPEC.size, 3), alpha=0.35,
                                               include_top=False, weights=None, pooling="avg")
    # Shifted, so equality below cannot come from two random initialisations agreeing.
    reference.set_weights([w + 0.5 for w in reference.get_weights()])
    path = tmp_path / "mobilenet.weights.h5"
    reference.save_weights(path)
    model = build_model("mobilenet_gru", NUM_CLASSES, SPEC, weights=str(path))
    (base,) = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    assert not base.trainable
    assert len(base.weights) == len(reference.weights)
    for got, want in zip(base.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert mobilenet_gru.build.__kwdefaults__["weights"] is None  # nothing is ever fetched by default


@pytest.mark.parametrize("name", sorted(MODELS))
def test_outputs_stay_float32_under_mixed_precision(name):
    """Mixed precision runs the body in float16 (on CPU too), but probabilities stay float32 and sum to 1."""
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        model = build_model(name, NUM_CLASSES, SPEC)
        probs = model.predict(_clips(2), verbose=0)
        assert model.outputs[0].dtype == "float32" and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_unknown_model_or_cfg_key_is_a_value_error_naming_it():
    """Typos in `--model` or a model's config fail at once, saying what is wrong and what would be right."""
    with pytest.raises(ValueError, match=r"unknown model 'r3d'.*r2plus1d"):
        build_model("r3d", NUM_CLASSES, SPEC)
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['widht'\] for model 'r2plus1d'.*width"):
        build_model("r2plus1d", NUM_CLASSES, SPEC, widht=2.0)


@pytest.mark.parametrize("name, num_classes, spec", [
    ("r2plus1d", 1, SPEC),
    ("frame_cnn", NUM_CLASSES, SamplingSpec(num_frames=8, size=16)),
    ("mobilenet_gru", NUM_CLASSES, SamplingSpec(num_frames=8, size=24)),
])
def test_impossible_shapes_are_value_errors(name, num_classes, spec):
    """A single class or frames too small for an architecture fail with a message, not deep in Keras."""
    with pytest.raises(ValueError, match="at least"):
        build_model(name, num_classes, spec)


def _moving_square_clips(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A bright square crossing a noisy frame, left (0) or right (1): every single frame looks alike."""
    rng = np.random.default_rng(seed)
    t, size, side, step = SPEC.num_frames, SPEC.size, 4, 2
    labels = rng.integers(0, 2, n)
    x = rng.uniform(0, 40, (n, t, size, size, 3)).astype("float32")
    travel = step * (t - 1)
    for i, label in enumerate(labels):
        d = step if label else -step
        col = rng.integers(0, size - side - travel + 1) + (0 if label else travel)
        row = rng.integers(0, size - side + 1)
        for f in range(t):
            x[i, f, row:row + side, col + d * f:col + d * f + side] = 220
    return x, keras.utils.to_categorical(labels, 2)


def test_default_model_learns_direction_of_motion():
    """The default model separates left from right motion on held-out clips, served in inference mode."""
    keras.utils.set_random_seed(0)
    x, y = _moving_square_clips(256, seed=0)
    x_val, y_val = _moving_square_clips(128, seed=1)
    model = build_model(DEFAULT_MODEL, 2, SPEC)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    assert accuracy >= 0.9


def _in_a_fresh_process(code: str, setting: str | None) -> str:
    """What `code` prints in a fresh process that imports vidclass first, as the CLI and Beam workers do."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_tensorflow_runs_onednn_kernels_unless_the_user_turns_them_off():
    """TF picks oneDNN itself only on AVX-512 VNNI/AMX CPUs; elsewhere its own 3-D convolutions train the
    zoo 1.7-4x slower (bench/models.py). Importing vidclass turns oneDNN on; an explicit 0 still wins."""
    assert _in_a_fresh_process("import vidclass, tensorflow\n"
                               "from tensorflow.python.util import _pywrap_util_port as port\n"
                               "print(port.IsMklEnabled())", None) == "True"
    assert _in_a_fresh_process("import os, vidclass\nprint(os.environ['TF_ENABLE_ONEDNN_OPTS'])", "0") == "0"
