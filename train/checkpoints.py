"""Checkpoints of a run (best and last epoch, resumable) and the Keras callbacks around
them."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import keras

from wbc_edge.core.errors import DataError, WbcError
from wbc_edge.core.safe_io import atomic_write
from wbc_edge.core.typed_json import decode_file
from wbc_edge.train.config import STATE_FILE, TrainConfig
from wbc_edge.train.run_files import CheckpointState, read_run_json

log = logging.getLogger(__name__)


def run_callbacks(
    cfg: TrainConfig, ckpt: Path, monitor: str, state: CheckpointState | None
) -> list:
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
        state: CheckpointState | None,
        monitor: str,
        ema: keras.callbacks.SwapEMAWeights | None = None,
    ) -> None:
        super().__init__()
        self.ckpt, self.cfg, self.monitor, self.ema = ckpt, cfg, monitor, ema
        history = state.history if state is not None else {}
        # a diverged epoch's NaN is read back as null (`train.run_files`): NaN again here
        self.history = {k: [math.nan if x is None else x for x in v] for k, v in history.items()}
        self.best = state.best if state is not None else None
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
        atomic_write(self.ckpt / STATE_FILE, json.dumps(state))

    def _save_best(self) -> None:
        """The best weights: with --ema the averaged ones, which validation scored."""
        if self.ema is not None:
            self.ema._swap_variables()
        try:
            self.model.save_weights(self.ckpt / "best.weights.h5")
        finally:
            if self.ema is not None:
                self.ema._swap_variables()


def resume_state(cfg: TrainConfig, ckpt: Path, notes: list[str]) -> CheckpointState | None:
    """The saved state if resuming from a checkpoint, else None (and stale checkpoints removed).
    A state file that is not one is a DataError naming it, not a fresh start."""
    file = ckpt / STATE_FILE
    if cfg.resume and (ckpt / "last.keras").is_file() and file.is_file():
        state = decode_file(CheckpointState, read_run_json(file), file, DataError)
        if state.model != cfg.model:
            why = f"cannot resume: the checkpoint is a {state.model}, not {cfg.model}"
            raise WbcError(why, ckpt)
        notes.append(f"resumed after epoch {state.epoch}")
        log.info("resuming from %s after epoch %d", ckpt / "last.keras", state.epoch)
        return state
    if cfg.resume:
        log.warning("--resume: no checkpoint in %s; starting from scratch", ckpt)
    shutil.rmtree(ckpt, ignore_errors=True)
    return None
