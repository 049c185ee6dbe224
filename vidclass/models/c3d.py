"""A small C3D-style network (Tran et al. 2015): plain 3x3x3 convolutions and 3D max-pooling.

The full-3D counterpart of `r2plus1d`, for comparing the two at a similar size. As in C3D the first pool
is spatial only, so the earliest layers keep every frame.
"""
from __future__ import annotations

import keras

from vidclass.models.contract import POOL_DTYPE, batch_norm, classify, video_input
from vidclass.sampling import SamplingSpec

WIDTHS = (16, 32, 64, 128)
POOLS = ((1, 2, 2), (2, 2, 2), (2, 2, 2), None)  # after each block; the last block is globally pooled


def build(num_classes: int, spec: SamplingSpec, *, frames: int | None = None, width: float = 1.0,
          dropout: float = 0.3) -> keras.Model:
    """Strided stem, then conv3x3x3+BN+ReLU blocks with max-pools, global average pool, softmax."""
    inputs = video_input(num_classes, spec, frames)
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    # Halving space in the first conv keeps a 112x112 clip trainable on two cores.
    strides = (1, 2, 2)
    for i, (filters, pool) in enumerate(zip(WIDTHS, POOLS), start=1):
        x = keras.layers.Conv3D(max(8, round(filters * width)), 3, strides=strides, padding="same",
                                use_bias=False, name=f"conv{i}")(x)
        x = batch_norm(name=f"conv{i}_bn")(x)
        x = keras.layers.ReLU(name=f"conv{i}_relu")(x)
        strides = 1
        if pool is not None:
            x = keras.layers.MaxPooling3D(pool, padding="same", dtype=POOL_DTYPE, name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling3D(name="global_pool")(x)
    return keras.Model(inputs, classify(x, num_classes, dropout), name="c3d")
