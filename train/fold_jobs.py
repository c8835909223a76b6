"""K-fold folds as independent jobs, several at once: one child `wbc-train ... --folds I` per
fold, each on its own GPU where there are GPUs (CUDA_VISIBLE_DEVICES), else on the CPU.

Every fold seeds its weights, batches and augmentation alike whichever process trains it
(`train_run` sets the seed first), so the folds come out as one after another would make
them. The record of which fold ran where (device, host, process, start, seconds, exit status,
log) is written to OUT/fold_jobs.json, the children's output to OUT/fold_jobs/fold<i>.log;
the run then summarises the finished folds as usual (`train.kfold`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from wbc_edge.core.errors import WbcError
from wbc_edge.core.safe_io import atomic_write

log = logging.getLogger(__name__)

RECORD_FILE = "fold_jobs.json"
LOG_DIR = "fold_jobs"


@dataclass
class FoldJob:
    """One fold's job: where it ran, when, how long, how it ended."""

    fold: int
    slot: int
    device: str
    host: str
    pid: int
    started: str
    seconds: float = 0.0
    returncode: int | None = None
    log: str = ""


def slot_devices(jobs: int, gpus: int) -> list[tuple[str, dict[str, str]]]:
    """Per job slot: its device's name and the environment that gives the child that device
    alone. With GPUs, slot s gets GPU s mod their count; without, every slot the CPU."""
    if gpus == 0:
        return [("cpu", {})] * jobs
    return [(f"gpu:{s % gpus}", {"CUDA_VISIBLE_DEVICES": str(s % gpus)}) for s in range(jobs)]


def run_fold_jobs(
    argv: list[str], k: int, jobs: int, out_dir: Path, gpus: int, timeout_s: float | None = None
) -> list[FoldJob]:
    """Train folds 0..k-1 of the `wbc-train` command `argv`, `jobs` children at a time; the
    record of every job. WbcError naming the fold and its log when one fails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / LOG_DIR).mkdir(exist_ok=True)
    slots = slot_devices(jobs, gpus)
    pending, free = list(range(k)), list(range(jobs))
    running: dict[int, tuple[subprocess.Popen, FoldJob, float]] = {}
    done: list[FoldJob] = []
    try:
        while pending or running:
            while pending and free:
                fold, slot = pending.pop(0), free.pop(0)
                running[fold] = _start(argv, fold, slot, slots[slot], out_dir)
            time.sleep(0.2)
            for fold, (proc, job, t0) in list(running.items()):
                if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                    proc.kill()
                if proc.poll() is None:
                    continue
                job.returncode, job.seconds = proc.returncode, round(time.monotonic() - t0, 1)
                del running[fold]
                free.append(job.slot)
                done.append(job)
                log.info("fold%d ran on %s (pid %d) in %.0f s", fold, job.device, job.pid,
                         job.seconds)  # fmt: skip
                if job.returncode != 0:
                    raise WbcError(f"fold{fold} failed (exit {job.returncode}); see {job.log}")
    finally:
        for proc, _, _ in running.values():
            proc.kill()
            proc.wait()
        _write_record(out_dir, sorted(done, key=lambda j: j.fold))
    return sorted(done, key=lambda j: j.fold)


def _start(argv: list[str], fold: int, slot: int, device, out_dir: Path):
    name, env = device
    log_file = out_dir / LOG_DIR / f"fold{fold}.log"
    share = ["--fold-jobs", "1", "--folds", str(fold)]  # the last of a repeated flag wins
    cmd = [sys.executable, "-m", "wbc_edge.train.cli", *argv, *share]
    with open(log_file, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(
            cmd, env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    job = FoldJob(fold, slot, name, socket.gethostname(), proc.pid, started,
                  log=f"{LOG_DIR}/fold{fold}.log")  # fmt: skip
    return proc, job, time.monotonic()


def _write_record(out_dir: Path, jobs: list[FoldJob]) -> None:
    atomic_write(out_dir / RECORD_FILE, json.dumps([asdict(j) for j in jobs], indent=2) + "\n")
