"""What every zoo model takes and gives; see the package docstring for the contract itself."""
from __future__ import annotations

import keras

from vidclass.sampling import SamplingSpec

BN_MOMENTUM = 0.9  # see batch_norm
# TensorFlow has no float16 MaxPool3D kernel on CPU, so under mixed_float16 3D max-pools run in float32
# (exact: the max of float16 values is one of them); elsewhere this changes nothing.
POOL_DTYPE = "float32"


def video_input(num_classes: int, spec: SamplingSpec, frames: int | None = None, *,
                min_size: int = 8) -> keras.KerasTensor:
    """The `frames` input every model starts from, after checking the arguments every build shares.

    A model may take fewer frames than the clips hold (the data pipeline crops in time), never more:
    frames that were not sampled cannot be invented at training or serving time.
    """
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got num_classes={num_classes}")
    t = spec.num_frames if frames is None else int(frames)
    if not 1 <= t <= spec.num_frames:
        raise ValueError(f"frames must be between 1 and the clips' {spec.num_frames} frames, got {frames}")
    if spec.size < min_size:
        raise ValueError(f"this model needs frames of at least {min_size}x{min_size}, got size={spec.size}")
    return keras.Input(shape=(t, spec.size, spec.size, 3), dtype="float32", name="frames")


def classify(x: keras.KerasTensor, num_classes: int, dropout: float) -> keras.KerasTensor:
    """Dropout then a softmax Dense kept in float32, so probabilities sum to 1 under mixed precision too."""
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)


def batch_norm(name: str) -> keras.layers.BatchNormalization:
    """BatchNorm with PyTorch's running-average rate (Keras momentum 0.9, not 0.99).

    CPU runs are short: at 0.99 the moving statistics that inference uses still lag the training ones
    after a few hundred steps, and a model that is right in training mode predicts one class when served.
    """
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=name)
