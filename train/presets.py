"""Training presets from the two papers; every value can be overridden by a flag or field.

| preset | optimizer | batch | lr | epochs | split | other |
| --- | --- | --- | --- | --- | --- | --- |
| thesis-s1 | Adam | 64 | 1e-4 | 60 | 80/10/10 | categorical cross-entropy |
| thesis-s2 | Adam | 32 | 1e-5 | 80 | 80/10/10 | categorical cross-entropy |
| journal | SGD, momentum 0.9 | 10 | 1e-4 | 30 | 70/30 | 100 images/class, h-flip, x/y shift |
| transfer | Adam | 32 | 2e-4 cosine | 8 (+30 head) | 80/10/10 | ImageNet weights, see below |
| scratch | Adam | 32 | 1e-3 cosine | 10 | 80/10/10 | no pretrained weights, see below |

`transfer` is our fine-tuning recipe for any model with ImageNet weights: the new head first,
30 epochs on cached frozen features (lr 1e-3); then the whole network at a low learning rate
with batch norm in inference mode, microscope augmentation (`MICROSCOPE_AUGMENT`), label
smoothing 0.1, balanced class weights and early stopping; mixed precision on a GPU.

`scratch` is the same regularisation for a model trained from random weights (the default
`custom-cnn` was trained with it and `--steps-per-epoch 100`): microscope augmentation, label
smoothing 0.1 and balanced class weights, 10 epochs at 1e-3 with a cosine decay, early
stopping after 5 epochs without a better validation accuracy.

The journal also multiplies the new layer's learning rate by 20. Its optimizer and factor are
MATLAB's transfer-learning defaults (`sgdm`, `WeightLearnRateFactor`/`BiasLearnRateFactor` 20);
its translation of ±30 px at 227 px is 13 %.
Presets keep the papers' constant learning rate; without a preset the rate decays (cosine).
A preset fixes the protocol's numbers, not the split kind: `--split grouped` (the default) or
`--split random` applies to any of them, and the report names the split it used.
"""

from __future__ import annotations

from typing import Any

from wbc_edge.core.errors import WbcError

# Microscope augmentation: any orientation, a little zoom and shift, stain (hue, saturation)
# and illumination (brightness) variation between labs, slight defocus.
MICROSCOPE_AUGMENT = (
    "flips,rot90,scale=0.1,shift=0.05,hue=8,sat=0.2,bright=0.15,gain=0.05,gamma=0.1,blur=0.3"
)

# Values used when neither the preset nor the user sets a field.
DEFAULTS: dict[str, Any] = {
    "optimizer": "adam",
    "epochs": 30,
    "batch_size": 32,
    "lr": 1e-3,
    "lr_schedule": "cosine",
    "fractions": (0.8, 0.1, 0.1),
    "augment": "flips,rot90,shift=0.1",
    "head_lr_factor": 10.0,
    "weights": "none",
    "head_epochs": 0,
    "head_lr": 1e-3,
    "frozen_bn": False,
    "label_smoothing": 0.0,
    "mixup": 0.0,
    "ema": 0.0,
}

PRESETS: dict[str, dict[str, Any]] = {
    "thesis-s1": {
        "optimizer": "adam",
        "batch_size": 64,
        "lr": 1e-4,
        "lr_schedule": "constant",
        "epochs": 60,
        "fractions": (0.8, 0.1, 0.1),
    },
    "thesis-s2": {
        "optimizer": "adam",
        "batch_size": 32,
        "lr": 1e-5,
        "lr_schedule": "constant",
        "epochs": 80,
        "fractions": (0.8, 0.1, 0.1),
    },
    "journal": {
        "optimizer": "sgdm",
        "batch_size": 10,
        "lr": 1e-4,
        "lr_schedule": "constant",
        "epochs": 30,
        "fractions": (0.7, 0.3),
        "images_per_class": 100,
        "augment": "hflip,shift=0.13",
        "head_lr_factor": 20.0,
    },
    "transfer": {
        "weights": "imagenet",
        "freeze_base": False,
        "frozen_bn": True,
        "head_epochs": 30,
        "head_lr": 1e-3,
        "optimizer": "adam",
        "lr": 2e-4,
        "lr_schedule": "cosine",
        "epochs": 8,
        "batch_size": 32,
        "fractions": (0.8, 0.1, 0.1),
        "augment": MICROSCOPE_AUGMENT,
        "label_smoothing": 0.1,
        "class_weights": "balanced",
        "early_stopping": 4,
    },
    "scratch": {
        "weights": "none",
        "optimizer": "adam",
        "lr": 1e-3,
        "lr_schedule": "cosine",
        "epochs": 10,
        "early_stopping": 5,
        "batch_size": 32,
        "fractions": (0.8, 0.1, 0.1),
        "augment": MICROSCOPE_AUGMENT,
        "label_smoothing": 0.1,
        "class_weights": "balanced",
    },
}


def preset_values(name: str | None) -> dict[str, Any]:
    """The fields a preset sets ({} for None); WbcError naming the choices if unknown."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise WbcError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return dict(PRESETS[name])
