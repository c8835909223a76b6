"""Device setup: data parallelism, mixed precision and XLA as the config asks.

With the JAX backend a run is data parallel over every device of JAX's default platform, in
every process of a `jax.distributed` job: several GPUs, or several host CPUs when
`XLA_FLAGS=--xla_force_host_platform_device_count=N` shows one CPU as N devices (how the
tests exercise this code without a GPU). Other backends train on one device and say so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import keras

from wbc_edge.core.errors import WbcError
from wbc_edge.train.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replicas:
    """How a run's global batch is spread: over `devices` in all, `processes` feeding them;
    this process is number `process` and feeds rows [process · B/processes, …) of each
    global batch of B."""

    devices: int = 1
    processes: int = 1
    process: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def parallel(self) -> bool:
        return self.devices > 1


def jit_setting(cfg: TrainConfig) -> bool | str:
    """XLA where it pays: on GPUs, and always with JAX (whose eager mode compiles every op on
    its own); a TensorFlow graph on a CPU costs more to compile than XLA saves."""
    if cfg.run_eagerly:
        return False
    return "auto" if _gpus() or keras.backend.backend() == "jax" else False


def mixed_precision(cfg: TrainConfig) -> bool:
    if cfg.mixed_precision == "on":
        return True
    return cfg.mixed_precision == "auto" and bool(_gpus())


def gpu_count() -> int:
    """GPUs the running backend sees."""
    return len(_gpus())


def _gpus() -> list[str]:
    """GPU devices of the running backend ([] on a CPU-only machine)."""
    if keras.backend.backend() == "torch":  # Keras has no distribution API for torch
        import torch

        return [f"gpu:{i}" for i in range(torch.cuda.device_count())]
    try:
        return list(keras.distribution.list_devices("gpu"))
    except Exception:  # a backend without GPU support raises its own error type
        return []


def setup_devices(cfg: TrainConfig) -> Replicas:
    """Data parallel (`keras.distribution.DataParallel`) over every JAX device of all
    processes when there are several; one device otherwise. Undo with `reset_devices`."""
    if keras.backend.backend() != "jax":
        gpus = _gpus()
        if len(gpus) < 2:
            return Replicas()
        msg = f"{len(gpus)} GPUs found; data-parallel training needs KERAS_BACKEND=jax, using one"
        log.warning("%s", msg)
        return Replicas(notes=[msg])
    import jax

    devices = jax.devices()  # every process's devices of the default platform
    processes, process = jax.process_count(), jax.process_index()
    if len(devices) < 2:
        return Replicas()
    if cfg.batch_size % len(devices):  # type: ignore[operator]
        raise WbcError(
            f"--batch-size {cfg.batch_size} must be a multiple of the {len(devices)} devices "
            "it is split over"
        )
    # each process's CellBatches hands over its own rows of every batch (no tf.data to shard)
    parallel = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    keras.distribution.set_distribution(parallel)
    kind = devices[0].platform.upper() if devices[0].platform == "gpu" else devices[0].platform
    per_device = int(cfg.batch_size) // len(devices)  # type: ignore[arg-type]
    note = (
        f"data parallel over {len(devices)} {kind} devices in {processes} process(es): "
        f"global batch {cfg.batch_size} = {len(devices)} × {per_device}"
    )
    log.info("%s", note)
    return Replicas(len(devices), processes, process, [note])


def reset_devices() -> None:
    """Back to one device (no distribution)."""
    if keras.backend.backend() == "jax":
        keras.distribution.set_distribution(None)
