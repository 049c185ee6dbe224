"""The model zoo: one plain module per architecture, each exposing
`build(num_classes, spec, **cfg) -> keras.Model`, gathered by name in `MODELS`.

Contract every model keeps (tests/test_models.py checks it):
- Input `frames`: float32 `[batch, T, size, size, 3]`, RGB in 0..255, *not* normalised. Each model
  normalises inside itself, so a saved `.keras` file is the whole serving recipe and inference cannot skew
  from training. `size` is `spec.size`; T is cfg `frames` when given (at most `spec.num_frames`: the data
  pipeline crops clips in time to fit), else `spec.num_frames`.
- Output: softmax class probabilities `[batch, num_classes]`, float32 even under mixed precision.
- Every layer is named and the model is named after its module; no Lambda layers. Custom layers are
  registered under the `vidclass` package, so after `import vidclass.models` a model round-trips through
  `model.save("x.keras")` and `keras.models.load_model(path, safe_mode=True)`.
- cfg is explicit keyword arguments with working defaults, so a config in `bundle.json` is just
  `{"name": ..., **cfg}`; no weights are ever downloaded.

`r2plus1d` is the default: it learns motion (direction, order) at CPU cost. `frame_cnn` is the original
blog post's network, kept as the baseline that cannot see motion.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import keras

from vidclass.models import c3d, cnn_gru, frame_cnn, mobilenet_gru, r2plus1d
from vidclass.sampling import SamplingSpec

DEFAULT_MODEL = "r2plus1d"

MODELS: dict[str, Callable[..., keras.Model]] = {
    "frame_cnn": frame_cnn.build,
    "cnn_gru": cnn_gru.build,
    "r2plus1d": r2plus1d.build,
    "c3d": c3d.build,
    "mobilenet_gru": mobilenet_gru.build,
}


def model_options(name: str) -> dict[str, Any]:
    """The cfg keys a model takes, with their defaults: what `train` may record or a user may set."""
    return {p.name: p.default for p in inspect.signature(_builder(name)).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_model(name: str, num_classes: int, spec: SamplingSpec, **cfg: Any) -> keras.Model:
    """Build zoo model `name`; a typo in a name or cfg key fails here, before any training time is spent.

    Keys are checked against the builder's signature rather than by catching TypeError, which would
    also swallow genuine TypeErrors raised inside a build.
    """
    options = model_options(name)
    unknown = sorted(set(cfg) - set(options))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} for model {name!r}; "
                         f"it takes {sorted(options)}")
    return MODELS[name](num_classes, spec, **cfg)


def _builder(name: str) -> Callable[..., keras.Model]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


__all__ = ["DEFAULT_MODEL", "MODELS", "build_model", "model_options"]
