"""A model's pooled feature vector: the input of its classifier layer, for search, de-duplication and clustering.

Every zoo model ends in a softmax Dense (`probabilities`, or `frame_probabilities` for the per-frame
baseline); the embedding is whatever feeds it, with dropout skipped (it is the identity at inference) and
any time axis averaged, as the per-frame probabilities are. The layer's name is recorded in `bundle.json`,
so a bundle says which features its embeddings are.
"""
from __future__ import annotations

import keras

_CLASSIFIERS = ("probabilities", "frame_probabilities")


def embedding_layer(model: keras.Model) -> str:
    """The name of the layer whose output the classifier takes (past any Dropout)."""
    names = {layer.name for layer in model.layers}
    head = next((model.get_layer(n) for n in ("frame_probabilities", "probabilities")
                 if n in names and isinstance(model.get_layer(n), keras.layers.Dense)), None)
    if head is None:
        raise ValueError(f"model {model.name!r} has no softmax Dense named one of {_CLASSIFIERS}")
    layer = head.input._keras_history.operation
    while isinstance(layer, keras.layers.Dropout):
        layer = layer.input._keras_history.operation
    return layer.name


def feature_model(model: keras.Model, layer: str | None = None) -> keras.Model:
    """A model giving [probabilities, features] from one forward pass; features are [batch, width] (time
    axes averaged where the layer keeps them)."""
    features = model.get_layer(layer or embedding_layer(model)).output
    if len(features.shape) > 2:
        axes = tuple(range(1, len(features.shape) - 1))
        features = keras.layers.Lambda(lambda x: keras.ops.mean(x, axis=axes), name="embedding_pool")(features)
    return keras.Model(model.inputs, [model.outputs[0], features], name=f"{model.name}_features")


def embedding_width(model: keras.Model, layer: str | None = None) -> int:
    """The length of the embedding vector."""
    return int(model.get_layer(layer or embedding_layer(model)).output.shape[-1])
