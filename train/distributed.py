"""Multi-host training: join a `jax.distributed` job before anything touches a device.

Every process runs the same `wbc-train` command with its own process id; together they train
one model data parallel over all their devices (`train.devices`). Each process feeds its
share of every global batch, all take part in every step, and only process 0 writes the
bundle: the others train into a scratch folder that is removed afterwards.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from wbc_edge.core.errors import WbcError

log = logging.getLogger(__name__)

# The launch variables this reads when a flag is not given, Keras's first, then JAX's.
ENV = {
    "coordinator": ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "JAX_COORDINATOR_ADDRESS"),
    "processes": ("KERAS_DISTRIBUTION_NUM_PROCESSES", "JAX_NUM_PROCESSES"),
    "process": ("KERAS_DISTRIBUTION_PROCESS_ID", "JAX_PROCESS_ID"),
}
_ADDRESS = re.compile(r"^\[?[A-Za-z0-9.:_-]+\]?:\d{1,5}$")


@dataclass(frozen=True)
class Cluster:
    """Where the coordinator (process 0) listens, how many processes, and which one this is.
    `coordinator` "auto" lets JAX read Slurm's, Open MPI's or a TPU pod's own variables."""

    coordinator: str
    processes: int | None = None
    process: int | None = None


def cluster_from(
    coordinator: str | None,
    processes: int | None,
    process: int | None,
    env: Mapping[str, str] = os.environ,
) -> Cluster | None:
    """The job this process belongs to, from the flags or else the launch variables; None
    for a run on its own. WbcError naming the value that is missing or impossible."""
    coordinator = coordinator or _env(env, "coordinator")
    processes = processes if processes is not None else _env_int(env, "processes")
    process = process if process is not None else _env_int(env, "process")
    if coordinator is None:
        if processes is not None or process is not None:
            raise WbcError("--num-processes and --process-id need --coordinator HOST:PORT")
        return None
    if coordinator == "auto":
        return Cluster("auto", processes, process)
    coordinator = coordinator.split(",")[0].strip()  # Keras's list: the first is process 0
    if not _ADDRESS.match(coordinator):
        raise WbcError(f"--coordinator {coordinator!r} is not HOST:PORT, e.g. 10.0.0.1:1234")
    if processes is None or process is None:
        raise WbcError("--coordinator needs --num-processes N and --process-id I")
    if processes < 1:
        raise WbcError(f"--num-processes must be 1 or more, got {processes}")
    if not 0 <= process < processes:
        raise WbcError(f"--process-id must be in 0..{processes - 1}, got {process}")
    return Cluster(coordinator, processes, process)


def join(cluster: Cluster, timeout_s: int) -> None:
    """`jax.distributed.initialize` for this cluster; gives up after `timeout_s` seconds
    without all processes (and waits as long for them at the end, `leave`)."""
    import keras

    if keras.backend.backend() != "jax":
        backend = keras.backend.backend()
        raise WbcError(f"multi-host training runs on JAX; set KERAS_BACKEND=jax (now {backend})")
    import jax

    where = {} if cluster.coordinator == "auto" else {
        "coordinator_address": cluster.coordinator,
        "num_processes": cluster.processes,
        "process_id": cluster.process,
    }  # fmt: skip
    try:
        jax.distributed.initialize(
            **where, initialization_timeout=timeout_s, shutdown_timeout_seconds=timeout_s
        )
    except Exception as exc:  # jax raises RuntimeError/XlaRuntimeError/ValueError here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WbcError(f"cannot join the job at {cluster.coordinator}: {first}") from exc
    log.info(
        "process %d of %d joined %s: %d devices in all, %d here",
        jax.process_index(), jax.process_count(), cluster.coordinator,
        jax.device_count(), jax.local_device_count(),
    )  # fmt: skip


def run_in_job(
    cluster: Cluster, timeout_s: int, out_dir: Path, train: Callable[[Path], Path]
) -> Path | None:
    """Join the job, `train(folder)` with every process, leave; returns `out_dir` on
    process 0, which alone writes there, and None on the others, whose scratch folder is
    removed. The last step waits (up to `timeout_s`) for every process to get there."""
    import jax

    join(cluster, timeout_s)
    try:
        if jax.process_index() == 0:
            return train(out_dir)
        scratch = Path(tempfile.mkdtemp(prefix=f"wbc-train-process{jax.process_index()}-"))
        try:
            train(scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return None
    finally:
        jax.distributed.shutdown()


def _env(env: Mapping[str, str], key: str) -> str | None:
    return next((env[name] for name in ENV[key] if env.get(name)), None)


def _env_int(env: Mapping[str, str], key: str) -> int | None:
    value = _env(env, key)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        name = next(name for name in ENV[key] if env.get(name))
        raise WbcError(f"{name}={value!r} is not a whole number") from None
