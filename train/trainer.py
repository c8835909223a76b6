"""Train a zoo model on a folder of labelled cell images and write a model bundle with its report.

Keras 3 only (TensorFlow, JAX or torch backend); images are decoded once into uint8 arrays
(cached) and fed by `train.dataset.CellBatches`, which normalises with the one preprocessing.
`train_bundle` is the whole stage as one function; `wbc-train` is a thin CLI on top.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge_app.bundle import new_bundle, save_bundle
from edge_app.colour import reference_colours
from edge_app.decode import decode_image
from edge_app.errors import DataError, ImageError, WbcError
from edge_app.metrics import classification_metrics, kfold_summary
from edge_app.preprocess_spec import ColourSpec, CropSpec, NucleusParams, PreprocessSpec
from train import checks, splits
from train.augment import Augment
from train.cell_groups import resolve_groups
from train.data import ImageSet, list_images
from train.dataset import (
    CellBatches,
    balanced_class_weights,
    default_cache_dir,
    load_cached,
    predict_probabilities,
)
from train.models import ModelInfo, build_model, get_model_info, parse_weights, preflight
from train.models.heads import fold_weights
from train.models.registry import weights_provenance
from train.phases import check_phases, fit_head, freeze_batchnorm
from train.presets import DEFAULTS, preset_values
from train.report import write_run_report

log = logging.getLogger(__name__)

SPLIT_KINDS = ("grouped", "random", "folders")
OPTIMIZERS = ("adam", "sgdm", "sgd", "rmsprop")
MODEL_FILE = "model.keras"
MANIFEST_FILE = "split.csv"
CHECKPOINTS = "checkpoints"
STATE_FILE = "state.json"
COLOUR_SAMPLE = 400  # images the colour references are measured on


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


def model_spec(info: ModelInfo, cfg: TrainConfig, images: ImageSet | None = None) -> PreprocessSpec:
    """The preprocessing the model is trained with (and the bundle carries).

    With `cfg.colour == "reference"` the colour references are measured on `images`.
    """
    size = int(cfg.input_size)  # type: ignore[arg-type]
    spec = PreprocessSpec(
        height=size,
        width=size,
        color_order=info.color_order,  # type: ignore[arg-type]
        crop=CropSpec(cfg.crop_method, int(cfg.crop_size)),  # type: ignore[arg-type]
        norm=info.norm,
        colour=measure_colour_spec(images)
        if cfg.colour == "reference" and images
        else ColourSpec(),
        nucleus=NucleusParams.colour_normalised() if cfg.colour == "reference" else NucleusParams(),
    )
    spec.check()
    return spec


def measure_colour_spec(images: ImageSet, sample: int = COLOUR_SAMPLE) -> ColourSpec:
    """The training data's glass and red-cell colours, the median over an even sample.

    Labels play no part; every image of the data set may be in the sample.
    """
    records = images.records
    step = max(1, len(records) // sample)
    decoded = []
    for rec in records[::step]:
        try:
            decoded.append(decode_image(images.root / rec.path))
        except ImageError:
            continue
    try:
        background, red_cell = reference_colours(decoded)
    except ValueError as exc:
        raise DataError(f"cannot measure colour references: {exc}", images.root) from None
    log.info("colour references: glass %s, red cells %s", background, red_cell)
    return ColourSpec("reference", tuple(background), tuple(red_cell))  # type: ignore[arg-type]


@dataclass
class SplitPlan:
    """Sides per kept image, and how they were made."""

    name: str  # e.g. "grouped-80/10/10", "random-kfold5"
    kind: str
    description: str
    sides: list[str]
    groups: list[str]
    groups_origin: str


@dataclass
class RunResult:
    metrics: dict[str, dict[str, Any]]  # split name (e.g. "grouped-80/10/10:test") → metrics
    history: dict[str, list[float]]
    best_epoch: int | None
    epochs_run: int
    timing: dict[str, float]
    notes: list[str] = field(default_factory=list)


def train_bundle(
    data_root: Path,
    out_dir: Path,
    config: TrainConfig,
    groups_csv: Path | None = None,
    max_steps: int | None = None,
) -> Path:
    """Train `config.model` on `data_root` and write a bundle (model.keras, report, split
    manifest) into `out_dir`; returns `out_dir`.

    `max_steps` caps the batches of every epoch (tests train two steps). With `config.kfold`,
    each fold is a bundle under `out_dir/folds/fold<i>`, and `out_dir` gets fold 0's model plus
    every fold's metrics and their mean ± sd.
    """
    t0 = time.perf_counter()
    data_root, out_dir = Path(data_root), Path(out_dir)
    cfg = config.resolved()
    weights = parse_weights(cfg.weights)
    info = preflight(cfg.model, int(cfg.input_size), weights)  # type: ignore[arg-type]
    images = _subsample(list_images(data_root), cfg.images_per_class, cfg.data_seed)
    spec = model_spec(info, cfg, images)
    t_load = time.perf_counter()
    cache_dir = (cfg.cache_dir or default_cache_dir()) if cfg.cache else None
    loaded = load_cached(images, spec, cache_dir)
    load_s = time.perf_counter() - t_load
    kept = ImageSet(images.root, loaded.records, images.classes)
    if not kept.records:
        raise DataError("no usable images (every file was unreadable or had no cell)", data_root)
    checks.check_classes(kept, data_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = make_split(kept, cfg, groups_csv, out_dir)
    labels = [r.label for r in kept.records]
    checks.check_split(labels, plan.groups, plan.sides, plan.name, plan.kind, data_root)
    splits.write_manifest(out_dir / MANIFEST_FILE, kept.records, plan.groups, plan.sides)
    data = _Data(kept, loaded.images, kept.labels(), spec, plan, loaded.skipped, load_s)
    context = {"data_root": data_root, "groups_csv": groups_csv, "t0": t0}
    if cfg.kfold:
        return _train_kfold(data, cfg, out_dir, max_steps, context)
    result = _train_run(data, cfg, out_dir, _sides_for_single(plan), max_steps)
    return _write_bundle(data, cfg, out_dir, result, context)


@dataclass
class _Data:
    images_set: ImageSet
    images: np.ndarray
    labels: np.ndarray
    spec: PreprocessSpec
    plan: SplitPlan
    skipped: dict[str, str]
    load_s: float

    @property
    def classes(self) -> list[str]:
        return self.images_set.classes


# --------------------------------------------------------------------------- splits


def make_split(
    images: ImageSet, cfg: TrainConfig, groups_csv: Path | None, out_dir: Path
) -> SplitPlan:
    """Sides for every image as the config asks (deterministic: a resumed run gets the same)."""
    kind = split_kind(cfg.split)
    if kind == "manifest":
        return _plan_from_manifest(images, Path(cfg.split.split(":", 1)[1]))
    groups, origin = _groups(images, groups_csv, required=kind == "grouped")
    fr = cfg.fractions
    frac_text = "/".join(f"{100 * f:g}" for f in fr)  # type: ignore[union-attr]
    sides = splits.make_sides(kind, images.records, groups, fr or [], cfg.data_seed, cfg.kfold)
    if cfg.kfold:
        name = f"{kind}-kfold{cfg.kfold}"
        per_fold = "whole source cells per fold" if kind == "grouped" else "random images"
        desc = f"{cfg.kfold} folds, {per_fold}"
    elif kind == "grouped":
        name, desc = f"grouped-{frac_text}", "stratified, whole source cells per side"
    elif kind == "random":
        name = f"random-{frac_text}"
        desc = "stratified random images (copies of one cell can fall on two sides)"
    else:
        name, desc = "folders", "the data's split folders"
    return SplitPlan(name, kind, desc, sides, groups, origin)


def _plan_from_manifest(images: ImageSet, path: Path) -> SplitPlan:
    rows = {r.path: r for r in splits.read_manifest(path)}
    sides, groups = [], []
    for rec in images.records:
        row = rows.get(rec.path.as_posix())
        if row is None:
            raise DataError(f"{rec.path.as_posix()} is not in the manifest", path)
        sides.append(row.side)
        groups.append(row.group)
    desc = f"sides from {path}"
    return SplitPlan(f"manifest-{path.stem}", "manifest", desc, sides, groups, f"manifest:{path}")


def _groups(images: ImageSet, groups_csv: Path | None, required: bool) -> tuple[list[str], str]:
    """Source-cell groups (train.cell_groups); a random or folder split only reports them, so
    there a missing groups table is a warning, not an error."""
    try:
        return resolve_groups(images, groups_csv)
    except DataError as exc:
        if required or groups_csv is not None:
            raise
        reason = str(exc)
    log.warning("no source-cell groups (%s); the manifest gets one group per file", reason)
    return [f"file:{r.path.as_posix()}" for r in images.records], "unavailable"


def _sides_for_single(plan: SplitPlan) -> dict[str, list[int]]:
    """Indices per side; `train` must not be empty."""
    out: dict[str, list[int]] = {}
    for i, s in enumerate(plan.sides):
        out.setdefault(s, []).append(i)
    if not out.get("train"):
        raise DataError(f"split {plan.name} leaves no training images")
    return out


def _subsample(images: ImageSet, per_class: int | None, seed: int) -> ImageSet:
    """At most `per_class` images of each class (seeded), before any split (journal: 100)."""
    if not per_class:
        return images
    rng = np.random.default_rng([seed, 17])
    keep: list[int] = []
    for cls in images.classes:
        idx = [i for i, r in enumerate(images.records) if r.label == cls]
        keep += sorted(rng.permutation(idx)[:per_class].tolist())
    return ImageSet(images.root, [images.records[i] for i in sorted(keep)], images.classes)


# --------------------------------------------------------------------------- one run


def _train_run(
    data: _Data,
    cfg: TrainConfig,
    run_dir: Path,
    sides: dict[str, list[int]],
    max_steps: int | None,
) -> RunResult:
    """Fit on sides['train'], select on sides['val'] (if any), evaluate every other side,
    save model.keras in run_dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    notes = _setup_devices(cfg)
    policy = keras.config.dtype_policy()
    mixed = _mixed_precision(cfg)
    try:
        if mixed:
            keras.config.set_dtype_policy("mixed_float16")
            notes.append("mixed precision (float16 compute, float32 weights)")
        result = _fit_and_evaluate(data, cfg, run_dir, sides, max_steps, notes)
    finally:
        keras.config.set_dtype_policy(policy)
    return result


def _fit_and_evaluate(data, cfg, run_dir, sides, max_steps, notes) -> RunResult:
    weights = parse_weights(cfg.weights)
    n_classes = len(data.classes)
    built = build_model(
        cfg.model, cfg.input_size, n_classes, weights,
        optimizer=cfg.optimizer, head_lr_factor=cfg.head_lr_factor, freeze_base=cfg.freeze_base,
    )  # fmt: skip
    notes += built.notes
    for note in built.notes:
        log.info("%s", note)
    train_idx, val_idx = np.array(sides["train"]), np.array(sides.get("val", []), int)
    train_ds = _batches(data, cfg, train_idx, max_steps, train=True)
    val_ds = _batches(data, cfg, val_idx, max_steps, train=False) if len(val_idx) else None
    model = built.model
    ckpt = run_dir / CHECKPOINTS
    state = _resume_state(cfg, ckpt, notes)
    head_history = {}
    if cfg.head_epochs and not state:
        head_history = _phase_one(built, data, cfg, train_idx, val_idx, notes)
    if built.base is not None and not built.frozen_base and cfg.frozen_bn:
        notes.append(freeze_batchnorm(built.base))
    model.compile(
        _optimizer(cfg, cfg.epochs * len(train_ds)), _loss(cfg),
        metrics=["accuracy"], run_eagerly=cfg.run_eagerly, jit_compile=_jit(cfg),
    )  # fmt: skip
    if state:
        model = keras.saving.load_model(ckpt / "last.keras")
    train_ds.set_epoch(state.get("epoch", 0))
    monitor = "val_accuracy" if val_ds is not None else "loss"
    # without a test side the validation side is the one reported: never pick an epoch on it
    keep_last = "test" not in sides
    if val_ds is None:
        notes.append("no validation side: the last epoch's model is kept, no early stopping")
    elif keep_last:
        notes.append(
            "no test side: the last epoch's model is kept, so the validation score reported "
            "is not the best of several epochs on the same images"
        )
    callbacks = _callbacks(cfg, ckpt, monitor, state)
    t_fit = time.perf_counter()
    model.fit(
        train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=state.get("epoch", 0),
        callbacks=callbacks, verbose=cfg.verbose,
    )  # fmt: skip
    train_s = time.perf_counter() - t_fit
    checkpoints = callbacks[-1]
    history = {**head_history, **checkpoints.history}
    epochs_run = len(history.get("loss", []))
    best_epoch = None
    if val_ds is not None and history.get(monitor):
        best_epoch = int(np.argmax(history[monitor])) + 1
        if not (keep_last or checkpoints.final_is_best) and (ckpt / "best.weights.h5").is_file():
            model.load_weights(ckpt / "best.weights.h5")
    export = _export_model(model, cfg, n_classes)
    export.save(run_dir / MODEL_FILE)
    metrics, eval_rate = _evaluate(export, data, sides, cfg)
    if not cfg.keep_checkpoints:
        shutil.rmtree(ckpt, ignore_errors=True)
    per_epoch = min(len(train_ds) * cfg.batch_size, len(train_idx))
    trained = (epochs_run - state.get("epoch", 0)) * per_epoch
    timing = {
        "steps_per_epoch": len(train_ds),
        "train_s": round(train_s, 2),
        "train_images_per_s": round(trained / train_s, 1) if train_s > 0 else 0.0,
        "eval_images_per_s": round(eval_rate, 1),
    }
    return RunResult(metrics, history, best_epoch, epochs_run, timing, notes)


def _phase_one(built, data: _Data, cfg: TrainConfig, train_idx, val_idx, notes) -> dict:
    """The head alone on the base's frozen features (train.phases); its history."""
    check_phases(cfg.model, built.base is not None, parse_weights(cfg.weights).pretrained)
    labels = data.labels[train_idx]
    weights = None
    if cfg.class_weights == "balanced":
        weights = balanced_class_weights(labels, len(data.classes))[labels].astype(np.float32)
    t = time.perf_counter()
    history = fit_head(
        built.model, built.base, data.spec, (data.images[train_idx], labels, weights),
        (data.images[val_idx], data.labels[val_idx]) if len(val_idx) else None,
        n_classes=len(data.classes), epochs=int(cfg.head_epochs), lr=float(cfg.head_lr),
        batch_size=int(cfg.batch_size), loss=_loss(cfg), verbose=int(cfg.verbose),
    )  # fmt: skip
    notes.append(
        f"phase 1: head trained {cfg.head_epochs} epochs on frozen features "
        f"(Adam, lr {cfg.head_lr:g}) in {time.perf_counter() - t:.0f} s"
    )
    return history


def _loss(cfg: TrainConfig):
    return keras.losses.CategoricalCrossentropy(label_smoothing=float(cfg.label_smoothing))


def _batches(data: _Data, cfg: TrainConfig, idx: np.ndarray, max_steps, train: bool):
    labels = data.labels[idx]
    weights = None
    if train and cfg.class_weights == "balanced":
        weights = balanced_class_weights(labels, len(data.classes))
    return CellBatches(
        data.images[idx], labels, len(data.classes), data.spec, cfg.batch_size,
        augment=Augment.parse(cfg.augment) if train else None, shuffle=train, seed=cfg.seed,
        class_weights=weights, max_batches=max_steps, workers=cfg.workers,
        mixup=float(cfg.mixup) if train else 0.0,
    )  # fmt: skip


def _callbacks(cfg: TrainConfig, ckpt: Path, monitor: str, state: dict) -> list:
    ckpt.mkdir(parents=True, exist_ok=True)
    callbacks: list = []
    # --ema: validation scores the averaged weights, so the best epoch is the average's best
    ema = keras.callbacks.SwapEMAWeights() if cfg.ema else None
    if ema is not None:
        callbacks.append(ema)
    if cfg.early_stopping and monitor.startswith("val_"):
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode="max", patience=cfg.early_stopping, verbose=1,
        ))  # fmt: skip
    return [*callbacks, _Checkpoints(ckpt, cfg, state, monitor, ema)]


class _Checkpoints(keras.callbacks.Callback):
    """After every epoch, in checkpoints/: state.json (epoch, history, best value), the best
    weights when the validation accuracy improves, and the whole model with its optimizer
    (last.keras) for `--resume`. With `--ema` the best weights are the averaged ones, and
    last.keras holds the raw weights with the average in its optimizer.

    The final epoch (the last one, or the one early stopping ends) writes no model file unless
    `keep_checkpoints`: the run ends there with the model in memory (`final_is_best` says if
    that model is the best one). This saves writing big models twice in short runs.
    """

    def __init__(
        self,
        ckpt: Path,
        cfg: TrainConfig,
        state: dict,
        monitor: str,
        ema: keras.callbacks.SwapEMAWeights | None = None,
    ) -> None:
        super().__init__()
        self.ckpt, self.cfg, self.monitor, self.ema = ckpt, cfg, monitor, ema
        self.history = {k: list(v) for k, v in state.get("history", {}).items()}
        self.best = state.get("best")
        self.final_is_best = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        for key, value in logs.items():
            if key != "learning_rate":
                self.history.setdefault(key, []).append(float(value))
        final = epoch + 1 >= self.cfg.epochs or bool(getattr(self.model, "stop_training", False))
        write = not final or self.cfg.keep_checkpoints
        value = logs.get(self.monitor) if self.monitor.startswith("val_") else None
        self.final_is_best = False
        if value is not None and (self.best is None or value > self.best):
            self.best = float(value)
            if write:
                self._save_best()
            else:
                self.final_is_best = True
        if write:
            self.model.save(self.ckpt / "last.keras")
        state = {"epoch": epoch + 1, "history": self.history, "best": self.best,
                 "model": self.cfg.model}  # fmt: skip
        tmp = self.ckpt / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self.ckpt / STATE_FILE)

    def _save_best(self) -> None:
        """The best weights: with --ema the averaged ones, which validation scored."""
        if self.ema is not None:
            self.ema._swap_variables()
        try:
            self.model.save_weights(self.ckpt / "best.weights.h5")
        finally:
            if self.ema is not None:
                self.ema._swap_variables()


def _read_state(path: Path) -> dict:
    file = path / STATE_FILE if path.name == CHECKPOINTS else path / CHECKPOINTS / STATE_FILE
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        return {}


def _resume_state(cfg: TrainConfig, ckpt: Path, notes: list[str]) -> dict:
    """The saved state if resuming from a checkpoint, else {} (and stale checkpoints removed)."""
    state = _read_state(ckpt)
    if cfg.resume and (ckpt / "last.keras").is_file() and state:
        if state.get("model") != cfg.model:
            raise WbcError(
                f"cannot resume: the checkpoint is a {state.get('model')}, not {cfg.model}", ckpt
            )
        notes.append(f"resumed after epoch {state['epoch']}")
        log.info("resuming from %s after epoch %d", ckpt / "last.keras", state["epoch"])
        return state
    if cfg.resume:
        log.warning("--resume: no checkpoint in %s; starting from scratch", ckpt)
    shutil.rmtree(ckpt, ignore_errors=True)
    return {}


def _optimizer(cfg: TrainConfig, total_steps: int):
    """The optimizer the config names, with a cosine-decaying learning rate if asked, and
    keeping a moving average of the weights (`--ema`) that Keras writes into the model when
    `fit` ends."""
    lr = cfg.lr
    if cfg.lr_schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(cfg.lr, max(1, total_steps), alpha=0.01)
    ema = {"use_ema": True, "ema_momentum": float(cfg.ema)} if cfg.ema else {}
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(lr, **ema)
    if cfg.optimizer == "sgdm":
        return keras.optimizers.SGD(lr, momentum=0.9, **ema)
    if cfg.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(lr, **ema)
    return keras.optimizers.SGD(lr, **ema)


def _export_model(model, cfg: TrainConfig, n_classes: int):
    """The model as saved for conversion: a fresh uncompiled twin (no optimizer state in the
    file), plain Dense head (learning-rate factor folded in), float32 everywhere."""
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        twin = build_model(
            cfg.model, cfg.input_size, n_classes, parse_weights(cfg.weights),
            freeze_base=cfg.freeze_base, plain=True,
        )  # fmt: skip
    finally:
        keras.config.set_dtype_policy(policy)
    fold_weights(model, twin.model)
    return twin.model


def _evaluate(model, data: _Data, sides: dict[str, list[int]], cfg: TrainConfig):
    """Metrics on every non-train side that has images; and prediction images/s."""
    metrics: dict[str, dict[str, Any]] = {}
    n_total, t_total = 0, 0.0
    for side, idx in sorted(sides.items()):
        if side == "train" or not idx:
            continue
        t = time.perf_counter()
        probs = predict_probabilities(
            model, data.images[idx], data.spec, batch_size=64, eager=cfg.run_eagerly
        )
        t_total += time.perf_counter() - t
        n_total += len(idx)
        m = classification_metrics(data.labels[idx], probs.argmax(axis=1), data.classes)
        metrics[f"{data.plan.name}:{side}"] = m
        log.info("%s:%s accuracy %.4f (n=%d)", data.plan.name, side, m["accuracy"], len(idx))
    return metrics, (n_total / t_total if t_total > 0 else 0.0)


def _jit(cfg: TrainConfig) -> bool | str:
    """XLA where it pays: on GPUs. On a CPU it costs more to compile than it saves."""
    return "auto" if _gpus() and not cfg.run_eagerly else False


def _mixed_precision(cfg: TrainConfig) -> bool:
    if cfg.mixed_precision == "on":
        return True
    return cfg.mixed_precision == "auto" and bool(_gpus())


def _gpus() -> list[str]:
    """GPU devices of the running backend ([] on a CPU-only machine)."""
    if keras.backend.backend() == "torch":  # Keras has no distribution API for torch
        import torch

        return [f"gpu:{i}" for i in range(torch.cuda.device_count())]
    try:
        return list(keras.distribution.list_devices("gpu"))
    except Exception:  # a backend without GPU support raises its own error type
        return []


def _setup_devices(cfg: TrainConfig) -> list[str]:
    """Data parallel over all GPUs when there are several (JAX backend); notes for the report."""
    gpus = _gpus()
    if len(gpus) < 2:
        return []
    if keras.backend.backend() != "jax":
        msg = f"{len(gpus)} GPUs found; data-parallel training needs KERAS_BACKEND=jax, using one"
        log.warning("%s", msg)
        return [msg]
    if cfg.batch_size % len(gpus):
        raise WbcError(f"--batch-size {cfg.batch_size} must be a multiple of {len(gpus)} GPUs")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=gpus))
    return [f"data parallel over {len(gpus)} GPUs"]


# --------------------------------------------------------------------------- bundle


def _write_bundle(
    data: _Data, cfg: TrainConfig, out_dir: Path, result: RunResult, context: dict,
    kfold: dict | None = None,
) -> Path:  # fmt: skip
    """bundle.json with provenance and metrics, plus the report files."""
    name = cfg.name or out_dir.resolve().name
    plan = data.plan
    bundle = new_bundle(
        out_dir, name, data.classes, data.spec,
        data={
            "root": str(context["data_root"]),
            "images": len(data.labels),
            "skipped": len(data.skipped),
            "per_class": data.images_set.counts(),
        },
        split={"kind": plan.kind, "name": plan.name, "manifest": MANIFEST_FILE,
               "description": plan.description},
        seed=cfg.seed,
        training={**cfg.settings(), "backend": keras.backend.backend(),
                  "keras": keras.__version__},
        groups={"origin": plan.groups_origin,
                "csv": str(context["groups_csv"]) if context["groups_csv"] else None},
        weights=weights_provenance(cfg.model, cfg.input_size, parse_weights(cfg.weights)),
        notes=result.notes,
    )  # fmt: skip
    bundle.add_artifact("keras", "fp32", MODEL_FILE)
    for split_name, values in result.metrics.items():
        bundle.add_metrics(split_name, values)
    if kfold:
        bundle.add_metrics(f"{plan.name}:mean", kfold["summary"]["mean"], folds=kfold["k"])
        bundle.add_metrics(f"{plan.name}:sd", kfold["summary"]["sd"], folds=kfold["k"], ddof=1)
    wall = time.perf_counter() - context["t0"]
    bundle.provenance["timing"] = {"wall_s": round(wall, 1), **result.timing}
    report = {
        "title": f"{name}: {cfg.model} on {plan.name}",
        "model": cfg.model,
        "preset": cfg.preset,
        "split": {
            "name": plan.name, "kind": plan.kind, "description": plan.description,
            "manifest": MANIFEST_FILE, "groups_origin": plan.groups_origin,
            "groups_on_two_sides": _cells_on_two_sides(plan),
            "counts": splits.summarise([r.label for r in data.images_set.records], plan.sides),
        },
        "settings": cfg.settings(),
        "notes": result.notes,
        "metrics": result.metrics,
        "history": result.history,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "timing": {"wall_s": round(wall, 1), "load_s": round(data.load_s, 1), **result.timing},
        "skipped": data.skipped,
    }  # fmt: skip
    if kfold:
        report["kfold"] = kfold
    write_run_report(out_dir, report, data.classes)
    save_bundle(bundle)
    log.info("wrote %s in %.0f s", bundle.path, wall)
    return out_dir


def _cells_on_two_sides(plan: SplitPlan) -> int | None:
    if plan.groups_origin in ("unavailable", "one-per-file"):
        return None
    return len(splits.group_overlap(plan.groups, plan.sides))


# --------------------------------------------------------------------------- K-fold


def _train_kfold(
    data: _Data, cfg: TrainConfig, out_dir: Path, max_steps: int | None, context: dict
) -> Path:
    """K runs, fold i held out; checkpoints selected on an inner validation split of the
    training folds (grouped like the folds). Summary: mean ± sd of every metric."""
    plan = data.plan
    k = int(cfg.kfold)  # type: ignore[arg-type]
    folds, fold_metrics = [], []
    for i in range(k):
        fold = f"fold{i}"
        fold_dir = out_dir / "folds" / fold
        sides = _fold_sides(data, cfg, fold)
        log.info("%s: %s held out (%d images)", plan.name, fold, len(sides[fold]))
        done = fold_dir / "report.json"
        if cfg.resume and done.is_file() and (fold_dir / MODEL_FILE).is_file():
            saved = json.loads(done.read_text())
            result = RunResult(saved["metrics"], saved["history"], saved["best_epoch"],
                               saved["epochs_run"], saved["timing"], saved["notes"])  # fmt: skip
        else:
            run_sides = {"train": sides["train"], "val": sides["val"], "test": sides[fold]}
            fold_data = dataclasses.replace(data, plan=dataclasses.replace(
                plan, name=f"{plan.name}:{fold}"))  # fmt: skip
            result = _train_run(fold_data, cfg, fold_dir, run_sides, max_steps)
            fold_sides = ["train"] * len(plan.sides)
            for side, idx in run_sides.items():
                for j in idx:
                    fold_sides[j] = side
            _write_fold_bundle(fold_data, cfg, fold_dir, result, context, fold_sides)
        held_out = next(v for key, v in result.metrics.items() if key.endswith(":test"))
        fold_metrics.append(held_out)
        folds.append({"fold": fold, "metrics": held_out, "best_epoch": result.best_epoch})
    summary = kfold_summary(fold_metrics)
    kfold = {"name": plan.name, "k": k, "folds": folds, "summary": summary}
    shutil.copyfile(out_dir / "folds" / "fold0" / MODEL_FILE, out_dir / MODEL_FILE)
    top = RunResult(
        {f"{plan.name}:{f['fold']}": f["metrics"] for f in folds}, {}, None, 0, {},
        ["K-fold: model.keras is fold 0's model; per-fold bundles in folds/",
         "sd is the sample standard deviation over folds (ddof=1)"],
    )  # fmt: skip
    log.info(
        "%s: accuracy %.4f ± %.4f over %d folds",
        plan.name, summary["mean"]["accuracy"], summary["sd"]["accuracy"], k,
    )  # fmt: skip
    _write_bundle(data, cfg, out_dir, top, context, kfold)
    attach_cv_summary(out_dir, kfold)
    return out_dir


def attach_cv_summary(kfold_dir: Path, kfold: dict | None = None) -> list[Path]:
    """Record a K-fold run's mean ± sd in every fold bundle, so a fold model shipped on its own
    still says how the recipe does on unseen cells; `kfold` None reads it from the run's
    report.json (for runs made before this). Returns the fold bundles updated."""
    from edge_app.bundle import load_bundle

    if kfold is None:
        kfold = json.loads((Path(kfold_dir) / "report.json").read_text())["kfold"]
    name, k = kfold["name"], kfold["k"]
    updated = []
    for fold in kfold["folds"]:
        bundle = load_bundle(Path(kfold_dir) / "folds" / fold["fold"], verify=False)
        bundle.add_metrics(f"{name}:mean", kfold["summary"]["mean"], folds=k)
        bundle.add_metrics(f"{name}:sd", kfold["summary"]["sd"], folds=k, ddof=1)
        updated.append(save_bundle(bundle))
    return updated


def _fold_sides(data: _Data, cfg: TrainConfig, fold: str) -> dict[str, list[int]]:
    """Held-out fold; the rest split ~90/10 into train and an inner validation side."""
    plan = data.plan
    rest = [i for i, s in enumerate(plan.sides) if s != fold]
    records = [data.images_set.records[i] for i in rest]
    groups = [plan.groups[i] for i in rest]
    kind = "grouped" if plan.kind == "grouped" else "random"
    inner = splits.make_sides(kind, records, groups, [0.9, 0.1], cfg.data_seed)
    return {
        "train": [i for i, s in zip(rest, inner, strict=True) if s == "train"],
        "val": [i for i, s in zip(rest, inner, strict=True) if s == "val"],
        fold: [i for i, s in enumerate(plan.sides) if s == fold],
    }


def _write_fold_bundle(data, cfg, fold_dir, result, context, fold_sides) -> None:
    splits.write_manifest(fold_dir / MANIFEST_FILE, data.images_set.records, data.plan.groups,
                          fold_sides)  # fmt: skip
    fold_data = dataclasses.replace(data, plan=dataclasses.replace(data.plan, sides=fold_sides))
    name = f"{cfg.name or fold_dir.parent.parent.resolve().name}-{fold_dir.name}"
    _write_bundle(fold_data, dataclasses.replace(cfg, name=name), fold_dir, result, context)
