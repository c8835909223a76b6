"""Our compact CNN: small enough for a Raspberry Pi, converts cleanly to TFLite INT8.

Plain Conv2D (no bias) → BatchNorm → ReLU → MaxPool blocks, then the thesis head
(GlobalAveragePooling2D → Dense 128 ReLU → Dropout 0.5 → Dense 4 softmax). Nothing else: every
layer has an INT8 kernel in TFLite, and BatchNorm folds into the convolution on conversion.
"""

from __future__ import annotations

import keras
from keras import layers

from wbc_edge.train.models.heads import thesis_head

WIDTHS = (32, 64, 128, 256)  # one 3x3 conv block per width, each halving the resolution
DOUBLE_CONV_BLOCKS = (2,)  # these blocks get a second 3x3 conv (more depth at low resolution)
# Keras's default 0.99 leaves the moving variance (initialised to 1) far above the first layers'
# true variance (~0.003) for ~1000 steps, so short runs validated at 25 %; 0.9 tracks it in ~50.
BN_MOMENTUM = 0.9


def build_custom_cnn(
    input_size: int, n_classes: int, widths: tuple[int, ...] = WIDTHS
) -> keras.Model:
    """About 0.56 M parameters for 4 classes (2.3 MB as a float32 `.keras` file)."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = inputs
    for i, width in enumerate(widths):
        for j in range(2 if i in DOUBLE_CONV_BLOCKS else 1):
            x = _conv_bn_relu(x, width, f"block{i + 1}_conv{j + 1}")
        x = layers.MaxPooling2D(2, name=f"block{i + 1}_pool")(x)
    return keras.Model(inputs, thesis_head(x, n_classes), name="custom_cnn")


def _conv_bn_relu(x, filters: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)
