"""Classification heads, and the new-layer learning-rate factor of the journal's transfer models.

The journal (MATLAB transfer learning) replaces a network's last fully connected layer by a new
one whose weights learn `factor` times faster than the transferred ones (`WeightLearnRateFactor`
/ `BiasLearnRateFactor`). Keras 3 has no per-layer learning rate that works in every backend, so
`LrScaledDense` gets the same effect by reparameterisation: it stores v = w / c and computes with
w = c · v. The gradient of v is c times the gradient of w, so one optimizer step moves w by

- c² × the usual step for SGD (with or without momentum): c = √factor;
- c × the usual step for Adam, RMSprop and other optimizers that divide by the gradient's scale:
  c = factor.

No custom train_step, no second optimizer, identical in TensorFlow, JAX and torch. Before a model
is saved for conversion, `fold_head` turns the layer into a plain `Dense` (w = c · v), so the
saved `.keras` file needs no custom code.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

HEAD_FC = "head_fc"  # name of the last (new) fully connected layer of every model
ADAPTIVE_OPTIMIZERS = ("adam", "adamw", "rmsprop", "nadam", "adamax")


def head_scale(optimizer: str, factor: float) -> float:
    """The reparameterisation constant c that multiplies the learning rate by `factor`."""
    if factor <= 0:
        raise ValueError(f"learning-rate factor must be positive, got {factor}")
    return float(factor) if optimizer in ADAPTIVE_OPTIMIZERS else math.sqrt(factor)


@keras.saving.register_keras_serializable(package="wbc_edge")
class LrScaledDense(layers.Layer):
    """Dense layer whose effective learning rate is scaled (see module docstring).

    `scale` is c. Initial effective weights follow Glorot uniform / zeros like `Dense`.
    """

    def __init__(self, units: int, scale: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.scale = float(scale)

    def build(self, input_shape) -> None:
        glorot = keras.initializers.GlorotUniform(seed=None)
        c = self.scale

        def init(shape, dtype=None):
            return glorot(shape, dtype) / c

        self.kernel = self.add_weight(
            name="kernel", shape=(int(input_shape[-1]), self.units), initializer=init
        )
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        c = ops.cast(self.scale, self.compute_dtype)
        kernel = ops.cast(self.kernel, self.compute_dtype) * c
        bias = ops.cast(self.bias, self.compute_dtype) * c
        return ops.matmul(inputs, kernel) + bias

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units, "scale": self.scale}

    def folded_weights(self) -> list:
        """[kernel, bias] of the equivalent plain Dense layer."""
        return [ops.convert_to_numpy(w) * self.scale for w in (self.kernel, self.bias)]


def thesis_head(x, n_classes: int, dropout: float = 0.5):
    """GlobalAveragePooling2D → Dense 128 ReLU → Dropout 0.5 → Dense n softmax (the thesis head)."""
    if len(x.shape) == 4:
        x = layers.GlobalAveragePooling2D(name="head_gap")(x)
    x = layers.Dense(128, activation="relu", name="head_dense")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    return probabilities(layers.Dense(n_classes, name=HEAD_FC)(x))


def new_classifier(x, n_classes: int, scale: float | None):
    """The journal's replaced last layer: n-way fully connected (learning rate scaled) + softmax.

    `scale` None builds the plain `Dense` (the form saved for conversion).
    """
    if scale is None or scale == 1.0:
        logits = layers.Dense(n_classes, name=HEAD_FC)(x)
    else:
        logits = LrScaledDense(n_classes, scale=scale, name=HEAD_FC)(x)
    return probabilities(logits)


def probabilities(logits):
    """Softmax in float32 (stable under mixed precision)."""
    return layers.Activation("softmax", dtype="float32", name="probabilities")(logits)


def fold_weights(src: keras.Model, dst: keras.Model) -> None:
    """Copy weights layer by layer from a training model into its plain twin (same builder)."""
    if len(src.layers) != len(dst.layers):
        raise ValueError("models differ in their layers; cannot copy weights")
    for a, b in zip(src.layers, dst.layers, strict=True):
        weights = a.folded_weights() if isinstance(a, LrScaledDense) else a.get_weights()
        b.set_weights(weights)
