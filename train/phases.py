"""Transfer learning in two phases: the new head on cached frozen features, then the network.

Phase 1 runs the pretrained base once over the training and validation images (no
augmentation), keeps its pooled features in memory and fits the head on them: seconds, not
epochs of the whole network, and the head starts phase 2 already sensible, so the large
gradients of a random head never reach the pretrained weights. Phase 2 (the trainer's usual
fit) unfreezes the base and fine-tunes everything at a low learning rate; with `frozen_bn`
every batch-norm layer of the base keeps its ImageNet statistics (inference mode), as is
usual when fine-tuning on a small data set.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from wbc_edge.core.errors import WbcError
from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.train.probe import extract_features

log = logging.getLogger(__name__)


def head_layers(model: keras.Model, base: keras.Model) -> list[keras.layers.Layer]:
    """The layers after `base` in a zoo model (inputs → base → head ...), in order."""
    layers = list(model.layers)
    if base not in layers:
        raise ValueError(f"{base.name} is not a layer of {model.name}")
    return layers[layers.index(base) + 1 :]


def head_model(model: keras.Model, base: keras.Model, n_features: int) -> keras.Model:
    """The head as its own model on pooled features, sharing the layers (and so the weights)
    of `model`; a leading global-average-pooling layer is skipped (features come pooled)."""
    inputs = keras.Input((n_features,), name="features")
    x = inputs
    for layer in head_layers(model, base):
        if isinstance(layer, keras.layers.GlobalAveragePooling2D):
            continue
        x = layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_head")


def fit_head(
    model: keras.Model,
    base: keras.Model,
    spec: PreprocessSpec,
    train: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    val: tuple[np.ndarray, np.ndarray] | None,
    *,
    n_classes: int,
    epochs: int,
    lr: float,
    batch_size: int,
    loss: keras.losses.Loss,
    verbose: int,
) -> dict[str, list[float]]:
    """Phase 1: fit the head of `model` on `base`'s frozen features of (images, labels,
    sample weights); `val` (images, labels) is scored each epoch. Returns the history with
    every key prefixed `head_`."""
    images, labels, sample_weight = train
    features = extract_features(base, images, spec, batch_size=64)
    log.info("phase 1: head on %d cached %d-d features", *features.shape)
    head = head_model(model, base, features.shape[1])
    head.compile(keras.optimizers.Adam(lr), loss, metrics=["accuracy"])
    onehot = np.eye(n_classes, dtype=np.float32)
    validation = None
    if val is not None and len(val[0]):
        validation = (extract_features(base, val[0], spec, batch_size=64), onehot[val[1]])
    fitted = head.fit(
        features, onehot[labels], sample_weight=sample_weight, batch_size=batch_size,
        epochs=epochs, validation_data=validation, shuffle=True, verbose=verbose,
    )  # fmt: skip
    return {f"head_{k}": [float(v) for v in vs] for k, vs in fitted.history.items()}


def freeze_batchnorm(base: keras.Model) -> str:
    """Keep every batch-norm layer of a trainable base in inference mode; returns a note."""
    n = 0
    for layer in base._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
            n += 1
    return f"{base.name} fine-tunes with its {n} batch-norm layers in inference mode"


def check_phases(model_name: str, has_base: bool, pretrained: bool) -> None:
    """WbcError if a head-first phase cannot make sense for this model and weights."""
    if not has_base:
        raise WbcError(f"{model_name} has no pretrained base; --head-epochs needs one")
    if not pretrained:
        raise WbcError(
            "--head-epochs trains the head on frozen pretrained features; give --weights "
            "imagenet or PATH (with --weights none there is nothing to keep)"
        )
