"""The original blog post's CNN, kept as the baseline: each frame classified alone, probabilities averaged.

Layer for layer it is the post's `Sequential` (valid 3x3 convs 16/32/64 with 2x2 max-pools, Dense 64,
Dropout 0.5, softmax); only what the zoo's contract needs is added: scaling the raw 0..255 pixels inside the
model, running every frame through the stack, and the mean over time. It cannot see motion, so a zoo model that does no better than it on a motion
class has learned nothing from time.
"""
from __future__ import annotations

import keras

from vidclass.models.contract import video_input
from vidclass.models.layers import FoldTime, UnfoldTime
from vidclass.sampling import SamplingSpec

MIN_SIZE = 22  # three valid 3x3 convs with 2x2 pools leave at least one pixel


def build(num_classes: int, spec: SamplingSpec, *, frames: int | None = None,
          dropout: float = 0.5) -> keras.Model:
    """Per-frame softmax averaged over the clip, so the output is still a probability distribution."""
    inputs = video_input(num_classes, spec, frames, min_size=MIN_SIZE)
    t = inputs.shape[1]
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = FoldTime(name="fold_time")(x)
    for i, filters in enumerate((16, 32, 64), start=1):
        x = keras.layers.Conv2D(filters, (3, 3), activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D((2, 2), name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(64, activation="relu", name="fc")(x)
    x = UnfoldTime(t, name="unfold_time")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="frame_probabilities")(x)
    outputs = keras.layers.GlobalAveragePooling1D(dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="frame_cnn")
