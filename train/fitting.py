"""Fitting one run: batches, loss, optimizer, the head-first phase, export and evaluation."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from wbc_edge.core.dataset.data import ImageSet
from wbc_edge.core.dataset.metrics import classification_metrics
from wbc_edge.core.errors import WbcError
from wbc_edge.core.preprocess_spec import PreprocessSpec
from wbc_edge.train.augment import Augment
from wbc_edge.train.checkpoints import resume_state, run_callbacks
from wbc_edge.train.config import CHECKPOINTS, MODEL_FILE, TrainConfig
from wbc_edge.train.dataset import (
    CellBatches,
    balanced_class_weights,
    predict_probabilities,
)
from wbc_edge.train.devices import (
    Replicas,
    jit_setting,
    mixed_precision,
    reset_devices,
    setup_devices,
)
from wbc_edge.train.models import build_model, parse_weights
from wbc_edge.train.models.heads import fold_weights
from wbc_edge.train.phases import check_phases, fit_head, freeze_batchnorm
from wbc_edge.train.split_plan import SplitPlan

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    metrics: dict[str, dict[str, Any]]  # split name (e.g. "grouped-80/10/10:test") → metrics
    history: dict[str, list[float]]
    best_epoch: int | None
    epochs_run: int
    timing: dict[str, float]
    notes: list[str] = field(default_factory=list)


@dataclass
class TrainData:
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


def train_run(
    data: TrainData,
    cfg: TrainConfig,
    run_dir: Path,
    sides: dict[str, list[int]],
    max_steps: int | None,
) -> RunResult:
    """Fit on sides['train'], select on sides['val'] (if any), evaluate every other side,
    save model.keras in run_dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    replicas = setup_devices(cfg)
    notes = list(replicas.notes)
    policy = keras.config.dtype_policy()
    mixed = mixed_precision(cfg)
    try:
        if mixed:
            keras.config.set_dtype_policy("mixed_float16")
            notes.append("mixed precision (float16 compute, float32 weights)")
        result = _fit_and_evaluate(data, cfg, run_dir, sides, max_steps, notes, replicas)
    finally:
        keras.config.set_dtype_policy(policy)
        reset_devices()
    return result


def _fit_and_evaluate(data, cfg, run_dir, sides, max_steps, notes, replicas) -> RunResult:
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
    train_ds = _batches(data, cfg, train_idx, max_steps, True, replicas)
    val_ds = _batches(data, cfg, val_idx, max_steps, False, replicas) if len(val_idx) else None
    model = built.model
    ckpt = run_dir / CHECKPOINTS
    state = resume_state(cfg, ckpt, notes)
    head_history = {}
    if cfg.head_epochs and state is None:
        if replicas.processes > 1:  # phase 1 predicts and fits on numpy arrays in one process
            raise WbcError("--head-epochs is not supported in a multi-host job yet; use one host")
        head_history = _phase_one(built, data, cfg, train_idx, val_idx, notes)
    if built.base is not None and not built.frozen_base and cfg.frozen_bn:
        notes.append(freeze_batchnorm(built.base))
    model.compile(
        _optimizer(cfg, cfg.epochs * len(train_ds)), _loss(cfg),
        metrics=["accuracy"], run_eagerly=cfg.run_eagerly, jit_compile=jit_setting(cfg),
    )  # fmt: skip
    start = 0 if state is None else state.epoch
    if state is not None:
        model = keras.saving.load_model(ckpt / "last.keras")
    train_ds.set_epoch(start)
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
    callbacks = run_callbacks(cfg, ckpt, monitor, state)
    t_fit = time.perf_counter()
    model.fit(
        train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=start,
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
    reset_devices()  # export and evaluate on this process's own device: no other process needed
    export = _export_model(model, cfg, n_classes)
    export.save(run_dir / MODEL_FILE)
    metrics, eval_rate = _evaluate(export, data, sides, cfg)
    if not cfg.keep_checkpoints:
        shutil.rmtree(ckpt, ignore_errors=True)
    per_epoch = min(len(train_ds) * cfg.batch_size, len(train_idx))
    trained = (epochs_run - start) * per_epoch
    timing = {
        "steps_per_epoch": len(train_ds),
        "train_s": round(train_s, 2),
        "train_images_per_s": round(trained / train_s, 1) if train_s > 0 else 0.0,
        "eval_images_per_s": round(eval_rate, 1),
    }
    return RunResult(metrics, history, best_epoch, epochs_run, timing, notes)


def _phase_one(built, data: TrainData, cfg: TrainConfig, train_idx, val_idx, notes) -> dict:
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


def _batches(
    data: TrainData, cfg: TrainConfig, idx: np.ndarray, max_steps, train: bool, replicas: Replicas
) -> CellBatches:
    labels = data.labels[idx]
    weights = None
    if train and cfg.class_weights == "balanced":
        weights = balanced_class_weights(labels, len(data.classes))
    return CellBatches(
        data.images[idx], labels, len(data.classes), data.spec, cfg.batch_size,
        augment=Augment.parse(cfg.augment) if train else None, shuffle=train, seed=cfg.seed,
        class_weights=weights, max_batches=max_steps, workers=cfg.workers,
        mixup=float(cfg.mixup) if train else 0.0, replicas=replicas, pad_partial=not train,
    )  # fmt: skip


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


def _evaluate(model, data: TrainData, sides: dict[str, list[int]], cfg: TrainConfig):
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
