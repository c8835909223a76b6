"""What the parity run's timings were measured on: the CPU, its cores and the runtimes' versions.

A millisecond figure means nothing without the machine, the threads and the runtime version it
was measured with; the report prints this beside every timing.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from wbc_edge.core.vocab import RUNTIME_TABLE


def machine_info(backends: list[str]) -> dict[str, Any]:
    """{"cpu", "cores", "python", "runtimes": {backend: version}} for the backends that ran."""
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "runtimes": {b: package_version(_distribution(b)) for b in sorted(set(backends))},
    }


def _distribution(backend: str) -> str:
    row = RUNTIME_TABLE.get(backend)
    return row.distribution if row else backend


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def describe(info: dict[str, Any] | None, threads: list[str]) -> str:
    """One line: `batch 1, median of 30; Intel(R) Xeon(R) ..., 2 cores, 2 threads; litert 1.2`."""
    if not info:
        return "machine not recorded"
    runtimes = ", ".join(f"{k} {v}" for k, v in info.get("runtimes", {}).items())
    used = "/".join(sorted(set(threads))) or "default"
    return (
        f"{info['cpu']}, {info['cores']} cores, {used} inference thread(s); "
        f"{runtimes or 'no runtime'}; Python {info['python']}"
    )
