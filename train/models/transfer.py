"""Transfer models from keras.applications, with the heads the two papers describe.

- Thesis (`densenet201`, `inception-resnet-v2`) and edge backbones (`mobilenet-*`,
  `efficientnet-b0`): frozen base + GlobalAveragePooling2D + Dense 128 ReLU + Dropout 0.5 +
  Dense 4 softmax.
- Journal (`resnet50`, `vgg16`): the whole network fine-tunes; only the last classification layer
  is replaced by a 4-way one whose learning rate is multiplied (see `heads.LrScaledDense`).

Every model's input normalisation is the one its ImageNet weights were trained with, written as
a `NormSpec` so that `core.preprocess.normalise` (the one preprocessing) reproduces
`keras.applications.<model>.preprocess_input` exactly (tests/train/test_train_models.py checks it):

| mode (keras) | models | NormSpec |
| --- | --- | --- |
| "tf": x/127.5 − 1 | inception-resnet-v2, mobilenet-v2, mobilenet-v3-* | scale 1/127.5, offset −1 |
| "torch": (x/255 − mean)/std | densenet201 | mean_std, ImageNet mean/std (RGB) |
| "caffe": BGR, x − mean | resnet50, vgg16 | BGR; mean_std, mean = mean/255, std = 1/255 |

For "caffe" the spec's mean is the ImageNet mean in 0..1 units, written in RGB order as the spec
stores it (normalise reverses it for BGR); std 1/255 undoes the /255, so x = BGR − mean (0..255).
| inside the model | efficientnet-b0 | scale 1, offset 0 (raw 0..255) |

MobileNetV3 is built with `include_preprocessing=False` so that its rescaling lives in the spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
from keras import layers

from wbc_edge.core.preprocess_spec import NormSpec
from wbc_edge.train.models.weights import WeightsChoice, WeightsUnavailable, ensure_keras_weights

GS = "https://storage.googleapis.com/tensorflow/keras-applications/"
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_RGB_255 = (123.68, 116.779, 103.939)  # keras lists it as BGR 103.939, 116.779, 123.68

NORM_TF = NormSpec(kind="scale", scale=1.0 / 127.5, offset=-1.0)
NORM_TORCH = NormSpec(kind="mean_std", mean=IMAGENET_MEAN_RGB, std=IMAGENET_STD_RGB)
NORM_CAFFE = NormSpec(
    kind="mean_std",
    mean=tuple(m / 255.0 for m in CAFFE_MEAN_RGB_255),  # type: ignore[arg-type]
    std=(1.0 / 255.0,) * 3,
)
NORM_RAW = NormSpec(kind="scale", scale=1.0, offset=0.0)
MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)  # sizes with their own ImageNet weights


@dataclass(frozen=True)
class KerasApp:
    """One keras.applications constructor and where its no-top ImageNet weights come from."""

    constructor: str
    file_name: Callable[[int], str]  # input size → file name in the Keras cache
    url_dir: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    with_top: bool = False  # build with the ImageNet classifier (VGG16 keeps fc6/fc7)

    def url(self, size: int) -> str:
        return self.url_dir + self.file_name(size)


def _mobilenet_v2_file(size: int) -> str:
    rows = size if size in MOBILENET_V2_SIZES else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"


# The keras.applications networks of the zoo; each is one row's `keras_app` in registry.py.
DENSENET201 = KerasApp(
    "DenseNet201",
    lambda s: "densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5",
    GS + "densenet/",
)
INCEPTION_RESNET_V2 = KerasApp(
    "InceptionResNetV2",
    lambda s: "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
    GS + "inception_resnet_v2/",
)
RESNET50 = KerasApp(
    "ResNet50",
    lambda s: "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    GS + "resnet/",
    {"pooling": "avg"},
)
VGG16 = KerasApp(
    "VGG16",
    lambda s: "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
    GS + "vgg16/",
    with_top=True,
)
MOBILENET_V2 = KerasApp("MobileNetV2", _mobilenet_v2_file, GS + "mobilenet_v2/")
MOBILENET_V3_SMALL = KerasApp(
    "MobileNetV3Small",
    lambda s: "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
    GS + "mobilenet_v3/",
    {"include_preprocessing": False},
)
MOBILENET_V3_LARGE = KerasApp(
    "MobileNetV3Large",
    lambda s: "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
    GS + "mobilenet_v3/",
    {"include_preprocessing": False},
)
EFFICIENTNET_B0 = KerasApp(
    "EfficientNetB0",
    lambda s: "efficientnetb0_notop.h5",
    "https://storage.googleapis.com/keras-applications/",
)


def build_keras_base(
    name: str, app: KerasApp, input_size: int, weights: WeightsChoice
) -> keras.Model:
    """The keras.applications network without its classifier (VGG16: up to fc7), loaded with
    ImageNet weights from the Keras cache, a local file, or none."""
    ctor = getattr(keras.applications, app.constructor)
    shape = (input_size, input_size, 3)
    kwargs = dict(app.kwargs)
    if weights.kind == "imagenet":
        ensure_keras_weights(name, app.file_name(input_size), app.url(input_size))
        w: str | None = "imagenet"
    else:
        w = str(weights.path) if weights.kind == "file" else None
    if app.with_top:
        return _vgg16_trunk(ctor, shape, w)
    return ctor(include_top=False, weights=w, input_shape=shape, **kwargs)


def _vgg16_trunk(ctor, shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """VGG16 up to fc2 (fc7) + ReLU: the journal keeps the transferred fully connected layers.

    The ImageNet file with those layers fixes the input at 224x224; without ImageNet weights
    any size >= 32 works (fc1 then sees a smaller flattened map)."""
    if weights == "imagenet" and shape[0] != 224:
        raise WeightsUnavailable(
            "vgg16: its ImageNet weights include fc6/fc7 and need --input-size 224"
        )
    if shape[0] == 224:
        full = ctor(include_top=True, weights=weights, input_shape=shape)
        return keras.Model(full.input, full.get_layer("fc2").output, name="vgg16")
    conv = ctor(include_top=False, weights=weights, input_shape=shape)
    x = layers.Flatten(name="flatten")(conv.output)
    x = layers.Dense(4096, activation="relu", name="fc1")(x)
    x = layers.Dense(4096, activation="relu", name="fc2")(x)
    return keras.Model(conv.input, x, name="vgg16")
