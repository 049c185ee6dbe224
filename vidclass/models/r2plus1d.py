"""The default model: a small R(2+1)D residual network (Tran et al. 2018, "A Closer Look at
Spatiotemporal Convolutions for Action Recognition"), sized for CPU training.

Each 3D convolution is factorised into a spatial 1xkxk conv, BatchNorm and ReLU, then a temporal tx1x1
conv; the extra non-linearity between them is the paper's argument for (2+1)D over plain 3D. The middle
width follows the paper's rule so a (2+1)D conv has about the parameters of the t x k x k one it replaces.
Space is quartered in the stem (as in ResNet) and halved by stride at every stage after the first; time is
halved only in the last two stages, because early temporal resolution is what separates motion classes
(left vs right, open vs close), and pooling it away first leaves a frame-averaging model.
"""
from __future__ import annotations

import keras

from vidclass.models.contract import POOL_DTYPE, batch_norm, classify, video_input
from vidclass.sampling import SamplingSpec

WIDTHS = (16, 32, 64, 128)  # one stage each
TIME_STRIDES = (1, 1, 2, 2)
SPACE_STRIDES = (1, 2, 2, 2)


def _conv2plus1d(x, filters: int, name: str, kernel: int = 3, time_kernel: int = 3,
                 space_stride: int = 1, time_stride: int = 1):
    cin = x.shape[-1]
    mid = max(8, (time_kernel * kernel * kernel * cin * filters)
              // (kernel * kernel * cin + time_kernel * filters))
    x = keras.layers.Conv3D(mid, (1, kernel, kernel), strides=(1, space_stride, space_stride),
                            padding="same", use_bias=False, name=f"{name}_spatial")(x)
    x = batch_norm(name=f"{name}_spatial_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_spatial_relu")(x)
    return keras.layers.Conv3D(filters, (time_kernel, 1, 1), strides=(time_stride, 1, 1),
                               padding="same", use_bias=False, name=f"{name}_temporal")(x)


def _residual_block(x, filters: int, name: str, space_stride: int, time_stride: int):
    shortcut = x
    y = _conv2plus1d(x, filters, f"{name}_a", space_stride=space_stride, time_stride=time_stride)
    y = batch_norm(name=f"{name}_a_bn")(y)
    y = keras.layers.ReLU(name=f"{name}_a_relu")(y)
    y = _conv2plus1d(y, filters, f"{name}_b")
    y = batch_norm(name=f"{name}_b_bn")(y)
    if space_stride != 1 or time_stride != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv3D(filters, 1, strides=(time_stride, space_stride, space_stride),
                                       use_bias=False, name=f"{name}_shortcut")(x)
        shortcut = batch_norm(name=f"{name}_shortcut_bn")(shortcut)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def build(num_classes: int, spec: SamplingSpec, *, frames: int | None = None, width: float = 1.0,
          blocks: int = 1, dropout: float = 0.3) -> keras.Model:
    """Stem, four residual stages of `blocks` blocks (widths 16/32/64/128 times `width`), pool, softmax."""
    if blocks < 1:
        raise ValueError(f"blocks must be >= 1, got {blocks}")
    inputs = video_input(num_classes, spec, frames)
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    stem = max(8, round(WIDTHS[0] * width))
    # ResNet's stem, factorised: 1x7x7/2 conv and 1x3x3/2 max-pool, with BatchNorm after the pool and the
    # temporal conv at a quarter of the resolution: full-resolution work (BatchNorm on a 5D tensor is not
    # fused) is what two CPU cores cannot afford.
    x = keras.layers.Conv3D(round(1.5 * stem), (1, 7, 7), strides=(1, 2, 2), padding="same", use_bias=False,
                            name="stem_spatial")(x)
    x = keras.layers.MaxPooling3D((1, 3, 3), strides=(1, 2, 2), padding="same", dtype=POOL_DTYPE,
                                  name="stem_pool")(x)
    x = batch_norm(name="stem_spatial_bn")(x)
    x = keras.layers.ReLU(name="stem_spatial_relu")(x)
    x = keras.layers.Conv3D(stem, (3, 1, 1), padding="same", use_bias=False, name="stem_temporal")(x)
    x = batch_norm(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for s, (filters, ts, ss) in enumerate(zip(WIDTHS, TIME_STRIDES, SPACE_STRIDES), start=1):
        for b in range(blocks):
            x = _residual_block(x, max(8, round(filters * width)), f"stage{s}_block{b + 1}",
                                space_stride=ss if b == 0 else 1, time_stride=ts if b == 0 else 1)
    x = keras.layers.GlobalAveragePooling3D(name="pool")(x)
    return keras.Model(inputs, classify(x, num_classes, dropout), name="r2plus1d")
