"""GoogLeNet / Inception-v1 (Szegedy et al. 2015) in the Keras 3 functional API.

Not in keras.applications, so built here with the paper's filter table. Differences, on purpose:
- The two local response normalisations (after pool1 and after conv2/3x3) are BatchNormalization.
- The two auxiliary classifiers are left out: they only add training loss in the paper, and
  MATLAB's `googlenet` (the journal's) ships without them too.
- Max-pooling uses "same" padding (Caffe rounds pooled sizes up), so any input >= 32 works
  (224 nominal).
The trunk ends after global average pooling and dropout 0.4 (1024 features); the journal
replaces `loss3-classifier`.
"""

from __future__ import annotations

import keras
from keras import layers

DEFAULT_SIZE = 224
MIN_SIZE = 32

# name: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection), from the paper's table 1
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
POOL_AFTER = ("3b", "4e")  # 3x3/2 max-pooling after these modules


def googlenet_trunk(input_size: int):
    """(inputs, 1024-d features after global average pooling and dropout)."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = _conv(inputs, 64, 7, "conv1_7x7_s2", strides=2)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_3x3_s2")(x)
    x = layers.BatchNormalization(name="pool1_norm1")(x)  # LRN in the original
    x = _conv(x, 64, 1, "conv2_3x3_reduce")
    x = _conv(x, 192, 3, "conv2_3x3")
    x = layers.BatchNormalization(name="conv2_norm2")(x)  # LRN in the original
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2_3x3_s2")(x)
    for name, filters in INCEPTION.items():
        x = _inception(x, filters, f"inception_{name}")
        if name in POOL_AFTER:
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool_{name}")(x)
    x = layers.GlobalAveragePooling2D(name="pool5_7x7_s1")(x)
    x = layers.Dropout(0.4, name="pool5_drop_7x7_s1")(x)
    return inputs, x


def _conv(x, filters: int, kernel: int, name: str, strides: int = 1):
    return layers.Conv2D(
        filters, kernel, strides=strides, padding="same", activation="relu", name=name
    )(x)


def _inception(x, filters: tuple[int, ...], name: str):
    f1, f3r, f3, f5r, f5, fp = filters
    b1 = _conv(x, f1, 1, f"{name}_1x1")
    b3 = _conv(_conv(x, f3r, 1, f"{name}_3x3_reduce"), f3, 3, f"{name}_3x3")
    b5 = _conv(_conv(x, f5r, 1, f"{name}_5x5_reduce"), f5, 5, f"{name}_5x5")
    bp = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    bp = _conv(bp, fp, 1, f"{name}_pool_proj")
    return layers.Concatenate(name=f"{name}_output")([b1, b3, b5, bp])
