"""Custom Keras layers the zoo shares: folding time into the batch and back.

Per-frame networks run a 2D stack on `[batch * T, H, W, C]` instead of wrapping it in `TimeDistributed`,
which in Keras 3 unrolls a Python loop over a static time axis (T copies of the graph). Both layers are
registered under the `vidclass` package so `.keras` files load with `safe_mode=True` once
`vidclass.models` is imported.
"""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vidclass")
class FoldTime(keras.layers.Layer):
    """`[B, T, ...] -> [B * T, ...]`: every frame becomes its own batch row, in time order per clip."""

    def __init__(self, **kwargs):
        # A reshape must not change dtype: under mixed precision, float32 probabilities stay float32.
        kwargs["autocast"] = False
        super().__init__(**kwargs)

    def call(self, x):
        return ops.reshape(x, (-1, *x.shape[2:]))

    def compute_output_shape(self, input_shape):
        batch, frames = input_shape[0], input_shape[1]
        rows = None if batch is None or frames is None else batch * frames
        return (rows, *input_shape[2:])


@keras.saving.register_keras_serializable(package="vidclass")
class UnfoldTime(keras.layers.Layer):
    """`[B * T, ...] -> [B, T, ...]`, the inverse of `FoldTime` for a known number of frames."""

    def __init__(self, frames: int, **kwargs):
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        self.frames = int(frames)

    def call(self, x):
        return ops.reshape(x, (-1, self.frames, *x.shape[1:]))

    def compute_output_shape(self, input_shape):
        rows = input_shape[0]
        return (None if rows is None else rows // self.frames, self.frames, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "frames": self.frames}
