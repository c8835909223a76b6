"""Device setup: GPUs, mixed precision and XLA as the config asks."""

from __future__ import annotations

import logging

import keras

from wbc_edge.core.errors import WbcError
from wbc_edge.train.config import TrainConfig

log = logging.getLogger(__name__)


def jit_setting(cfg: TrainConfig) -> bool | str:
    """XLA where it pays: on GPUs. On a CPU it costs more to compile than it saves."""
    return "auto" if _gpus() and not cfg.run_eagerly else False


def mixed_precision(cfg: TrainConfig) -> bool:
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


def setup_devices(cfg: TrainConfig) -> list[str]:
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
