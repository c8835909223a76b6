"""core.cpu: the default thread count follows the CPU affinity and a cgroup CPU quota."""

from __future__ import annotations

import pytest

from wbc_edge.core import cpu

pytestmark = pytest.mark.edge


def test_default_threads_follow_affinity_and_cgroup_quota(tmp_path, monkeypatch) -> None:
    quota = cpu.cgroup_cpu_quota
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(cpu, "cgroup_cpu_quota", lambda: None)
    assert cpu.usable_cores() == (4, "4 cores in this process's CPU affinity")
    monkeypatch.setattr(cpu, "cgroup_cpu_quota", lambda: 1.5)
    cores, why = cpu.usable_cores()
    assert cores == 2 and "cgroup CPU quota 1.5" in why
    own = tmp_path / "cgroup"
    own.write_text("0::/box\n")
    (tmp_path / "box").mkdir()
    (tmp_path / "box" / "cpu.max").write_text("250000 100000\n")
    assert quota(tmp_path, own) == 2.5
    (tmp_path / "box" / "cpu.max").write_text("max 100000\n")
    assert quota(tmp_path, own) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    own.write_text("4:cpu,cpuacct:/\n")
    assert quota(v1, own) == 3.0
