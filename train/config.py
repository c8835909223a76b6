"""The training run's configuration: every setting, resolved from the preset and defaults,
and checked before any work."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wbc_edge.core.dataset import splits
from wbc_edge.core.errors import WbcError
from wbc_edge.train.augment import Augment
from wbc_edge.train.models import get_model_info
from wbc_edge.train.presets import DEFAULTS, preset_values

SPLIT_KINDS = ("grouped", "random", "folders")


OPTIMIZERS = ("adam", "sgdm", "sgd", "rmsprop")


MODEL_FILE = "model.keras"


MANIFEST_FILE = "split.csv"


CHECKPOINTS = "checkpoints"


STATE_FILE = "state.json"


@dataclass
class TrainConfig:
    """Everything a training run depends on. None means: from the preset, else the default
    (presets.DEFAULTS; input_size from the model). `resolved()` fills them in."""

    model: str = "custom-cnn"
    preset: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    lr_schedule: str | None = None  # constant | cosine (decay to 1 % over the run)
    optimizer: str | None = None  # adam | sgdm (momentum 0.9) | sgd | rmsprop
    split: str = "grouped"  # grouped | random | folders | manifest:PATH
    fractions: tuple[float, ...] | None = None
    kfold: int | None = None  # K folds (grouped or random, as `split`)
    folds: tuple[int, ...] | None = None  # train only these folds of K (no summary): a share
    fold_jobs: int = 1  # K-fold: folds trained at once, each a child process on its own device
    seed: int = 0  # weights, augmentation and batch order; also the split unless split_seed
    split_seed: int | None = None  # a different --seed over the same folds (seed ensembles)
    input_size: int | None = None
    crop_size: int = 150  # source pixels at Kaggle scale, centred on the nucleus
    crop_method: str = "nucleus"  # nucleus | center | none
    colour: str = "reference"  # reference (normalise to the data's glass and red cells) | none
    weights: str | None = None  # imagenet | none | PATH
    images_per_class: int | None = None  # subsample before splitting; 0 = all
    augment: str | None = None  # e.g. "flips,rot90,shift=0.1" or "none"
    class_weights: str | None = None  # None | "balanced"
    early_stopping: int | None = None  # patience in epochs on the validation metric
    head_lr_factor: float | None = None  # journal models: new layer's learning-rate factor
    freeze_base: bool | None = None  # None: frozen for pretrained thesis/edge models
    head_epochs: int | None = None  # phase 1: epochs of the head alone on frozen features
    head_lr: float | None = None  # phase 1 learning rate (Adam)
    frozen_bn: bool | None = None  # a trainable pretrained base keeps batch norm in inference
    label_smoothing: float | None = None
    mixup: float | None = None  # Beta(α, α) mixup of training images; 0 = off
    ema: float | None = None  # momentum of an average of the weights kept and exported; 0 = off
    mixed_precision: str = "auto"  # auto (on with a GPU) | on | off
    name: str | None = None  # bundle name; default: the output folder's name
    cache_dir: Path | None = None  # prepared-image cache; None: default_cache_dir()
    cache: bool = True
    resume: bool = False  # continue from the last checkpoint in the output folder
    keep_checkpoints: bool = False
    verbose: int | str = "auto"  # Keras progress: 0 silent, 1 bar, 2 one line per epoch
    workers: int = 1  # PyDataset worker threads
    run_eagerly: bool = False  # no graph compilation: slow per step, instant to start (tests)

    @property
    def data_seed(self) -> int:
        """The seed that draws the split and the folds."""
        return self.seed if self.split_seed is None else self.split_seed

    def resolved(self) -> TrainConfig:
        """A copy with every None filled from the preset, the defaults and the model, checked."""
        values = {**DEFAULTS, **preset_values(self.preset)}
        out = dataclasses.replace(self)
        for key, value in values.items():
            if getattr(out, key) is None:
                setattr(out, key, value)
        info = get_model_info(out.model)
        if out.input_size is None:
            out.input_size = info.default_size
        if out.images_per_class == 0:
            out.images_per_class = None
        if out.verbose == "auto":
            out.verbose = 1 if sys.stdout.isatty() else 2
        out.fractions = tuple(float(f) for f in out.fractions)  # type: ignore[union-attr]
        out.check()
        return out

    def check(self) -> None:
        """WbcError naming the first impossible setting."""
        split_kind(self.split)
        if self.optimizer not in OPTIMIZERS:
            raise WbcError(f"unknown optimizer {self.optimizer!r}; one of {OPTIMIZERS}")
        if self.mixed_precision not in ("auto", "on", "off"):
            raise WbcError("--mixed-precision must be auto, on or off")
        if self.lr_schedule not in ("constant", "cosine"):
            raise WbcError(f"--lr-schedule must be constant or cosine, got {self.lr_schedule!r}")
        if self.class_weights not in (None, "balanced"):
            raise WbcError(f"--class-weights must be balanced, got {self.class_weights!r}")
        if self.kfold is not None and self.kfold < 2:
            raise WbcError(f"--kfold needs K >= 2, got {self.kfold}")
        if self.kfold is not None and split_kind(self.split) not in ("grouped", "random"):
            raise WbcError("--kfold works with --split grouped or random")
        if self.fold_jobs < 1:
            raise WbcError(f"--fold-jobs must be 1 or more, got {self.fold_jobs}")
        if self.fold_jobs > 1 and self.kfold is None:
            raise WbcError("--fold-jobs runs the folds of --kfold K; give --kfold")
        if self.folds is not None and (
            self.kfold is None or not set(self.folds) <= set(range(self.kfold))
        ):
            raise WbcError(f"--folds must name folds 0..K-1 of --kfold K, got {self.folds}")
        for key in ("epochs", "batch_size", "input_size", "crop_size"):
            if int(getattr(self, key)) < 1:
                raise WbcError(f"--{key.replace('_', '-')} must be positive")
        if int(self.head_epochs) < 0:  # type: ignore[arg-type]
            raise WbcError("--head-epochs must be 0 or more")
        if not 0 <= float(self.label_smoothing) < 1:  # type: ignore[arg-type]
            raise WbcError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= float(self.mixup) <= 10:  # type: ignore[arg-type]
            raise WbcError(f"--mixup must be an alpha in [0, 10] (0 = off), got {self.mixup}")
        if not 0 <= float(self.ema) < 1:  # type: ignore[arg-type]
            raise WbcError(f"--ema must be a momentum in [0, 1) (0 = off), got {self.ema}")
        if self.crop_method not in ("nucleus", "center", "none"):
            raise WbcError("--crop-method must be nucleus, center or none")
        if self.colour not in ("reference", "none"):
            raise WbcError(f"--colour must be reference or none, got {self.colour!r}")
        Augment.parse(self.augment)
        splits.side_names(self.fractions)  # type: ignore[arg-type]

    def settings(self) -> dict[str, Any]:
        """JSON-ready copy for provenance and the report."""
        return {
            k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(self).items()
        }


def split_kind(split: str) -> str:
    """grouped | random | folders | manifest (for manifest:PATH)."""
    if split.startswith("manifest:") and len(split) > len("manifest:"):
        return "manifest"
    if split not in SPLIT_KINDS:
        raise WbcError(f"unknown split {split!r}; use grouped, random, folders or manifest:PATH")
    return split
