"""How many cores this process may use: its CPU affinity, then its cgroup's CPU quota (a
container's limit), each named in the reason the default thread count gives."""

from __future__ import annotations

import math
import os
from pathlib import Path


def usable_cores() -> tuple[int, str]:
    """The cores this process may run on (CPU affinity, then a cgroup CPU quota), and why."""
    try:
        cores = len(os.sched_getaffinity(0))
        why = f"{_cores(cores)} in this process's CPU affinity"
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
        why = _cores(cores)
    quota = cgroup_cpu_quota()
    if quota is not None and quota < cores:
        cores = max(1, math.ceil(quota))
        why += f", cgroup CPU quota {quota:g}"
    return cores, why


def cgroup_cpu_quota(
    root: Path = Path("/sys/fs/cgroup"), own: Path = Path("/proc/self/cgroup")
) -> float | None:
    """This process's cgroup CPU limit in cores (v2 cpu.max, v1 CFS quota); None: unlimited."""
    paths = {"": "/", "cpu": "/"}  # controller -> this process's cgroup (v2 has no name)
    try:
        for line in own.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(","):
                paths[name] = path
    except (OSError, ValueError):
        pass
    for base in (root / paths[""].lstrip("/"), root):
        try:
            limit, period = (base / "cpu.max").read_text().split()[:2]
            return None if limit == "max" else int(limit) / int(period)
        except (OSError, ValueError):
            continue
    for base in (root / "cpu" / paths["cpu"].lstrip("/"), root / "cpu"):
        try:
            quota = int((base / "cpu.cfs_quota_us").read_text())
            period = int((base / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return quota / period if quota > 0 and period > 0 else None
    return None


def _cores(n: int) -> str:
    return f"{n} core" if n == 1 else f"{n} cores"
