"""MobileNetV2 per frame, then a GRU over the frame features: the transfer-learning member of the zoo.

ImageNet weights are never downloaded (the workers have no internet, and a download at build time would
make a model depend on the network): pass `weights=` a local file, e.g. Keras's
`mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5` or a `.weights.h5` saved from
`MobileNetV2(include_top=False, alpha=...)`. Without it the backbone trains from scratch.
"""
from __future__ import annotations

import os

import keras

from vidclass.models.contract import BN_MOMENTUM, classify, video_input
from vidclass.models.layers import FoldTime, UnfoldTime
from vidclass.sampling import SamplingSpec

MIN_SIZE = 32  # the smallest input keras.applications.MobileNetV2 accepts


def build(num_classes: int, spec: SamplingSpec, *, frames: int | None = None, alpha: float = 0.35,
          weights: str | None = None, freeze_backbone: bool | None = None, units: int = 64,
          dropout: float = 0.3) -> keras.Model:
    """Frames → MobileNetV2(`alpha`, average-pooled) per frame → GRU(`units`) → softmax.

    `freeze_backbone` defaults to True exactly when `weights` are given: pretrained features are kept
    while the small head learns; from scratch, the backbone has to train.
    """
    inputs = video_input(num_classes, spec, frames, min_size=MIN_SIZE)
    if weights is not None and not os.path.isfile(weights):
        raise FileNotFoundError(
            f"MobileNetV2 weights file not found: {weights!r}; give a local file (weights are never "
            "downloaded) or weights=None to train the backbone from scratch")
    if freeze_backbone is None:
        freeze_backbone = weights is not None
    t = inputs.shape[1]
    base = keras.applications.MobileNetV2(input_shape=(spec.size, spec.size, 3), alpha=alpha,
                                          include_top=False, weights=None, pooling="avg")
    if weights is not None:
        base.load_weights(weights)
    base.trainable = not freeze_backbone  # a frozen BatchNorm also runs in inference mode in Keras 3
    if not freeze_backbone:
        # Keras's MobileNetV2 averages BatchNorm statistics at 0.999: far too slow for a short CPU run
        # (see contract.batch_norm), so a backbone that trains uses the zoo's rate.
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = BN_MOMENTUM
    # MobileNetV2's own preprocess_input: x / 127.5 - 1, kept inside so a saved model takes raw pixels.
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="mobilenet_preprocess")(inputs)
    x = FoldTime(name="fold_time")(x)
    x = base(x)
    x = UnfoldTime(t, name="unfold_time")(x)
    x = keras.layers.GRU(units, name="gru")(x)
    return keras.Model(inputs, classify(x, num_classes, dropout), name="mobilenet_gru")
