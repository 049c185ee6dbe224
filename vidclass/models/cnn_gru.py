"""A small per-frame 2D CNN whose frame features a GRU reads in order: the cheapest model that sees time.

The CNN is shared by all frames (they are folded into the batch), so its cost is T images; the GRU sees
the sequence of pooled features, so it can tell order (e.g. a door opening from closing) but only from
what survives global pooling of each frame.
"""
from __future__ import annotations

import keras

from vidclass.models.contract import batch_norm, classify, video_input
from vidclass.models.layers import FoldTime, UnfoldTime
from vidclass.sampling import SamplingSpec

WIDTHS = (16, 32, 64, 128)  # stem, then one conv block per entry after it


def _conv_bn_relu(x, filters: int, strides: int, name: str):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = batch_norm(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build(num_classes: int, spec: SamplingSpec, *, frames: int | None = None, width: float = 1.0,
          units: int = 64, dropout: float = 0.3) -> keras.Model:
    """Frames → shared CNN (stride-2 stem, conv+pool blocks, global pool) → GRU(`units`) → softmax."""
    inputs = video_input(num_classes, spec, frames)
    t = inputs.shape[1]
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = FoldTime(name="fold_time")(x)
    x = _conv_bn_relu(x, max(8, round(WIDTHS[0] * width)), 2, "stem")
    for i, filters in enumerate(WIDTHS[1:], start=1):
        x = _conv_bn_relu(x, max(8, round(filters * width)), 1, f"block{i}")
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"block{i}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="frame_pool")(x)
    x = UnfoldTime(t, name="unfold_time")(x)
    x = keras.layers.GRU(units, name="gru")(x)
    return keras.Model(inputs, classify(x, num_classes, dropout), name="cnn_gru")
