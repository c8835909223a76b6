"""AlexNet (Krizhevsky et al. 2012) in the Keras 3 functional API, laid out as MATLAB's `alexnet`.

Not in keras.applications, so built here. Differences from the original, on purpose:
- Local response normalisation (after conv1 and conv2) is replaced by BatchNormalization: LRN
  has no portable Keras 3 layer and BN trains better from scratch.
- One tower instead of two: conv2, conv4 and conv5 are not grouped (as torchvision's AlexNet),
  because grouped convolutions are not implemented on every CPU backend.
- Pooling uses "valid" windows as the original, so the smallest input is 67x67 (227 nominal).
The trunk ends after fc7 + dropout (4096 features); the journal replaces fc8.
"""

from __future__ import annotations

import keras
from keras import layers

DEFAULT_SIZE = 227
MIN_SIZE = 67


def alexnet_trunk(input_size: int):
    """(inputs, 4096-d features after fc7 and dropout)."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Conv2D(96, 11, strides=4, activation="relu", name="conv1")(inputs)
    x = layers.BatchNormalization(name="norm1")(x)  # LRN in the original
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = layers.Conv2D(256, 5, padding="same", activation="relu", name="conv2")(x)
    x = layers.BatchNormalization(name="norm2")(x)  # LRN in the original
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv4")(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="conv5")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool5")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(4096, activation="relu", name="fc6")(x)
    x = layers.Dropout(0.5, name="drop6")(x)
    x = layers.Dense(4096, activation="relu", name="fc7")(x)
    x = layers.Dropout(0.5, name="drop7")(x)
    return inputs, x
