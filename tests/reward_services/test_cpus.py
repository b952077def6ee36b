"""Pool size from the affinity mask and the cgroup CPU quota (v2 cpu.max, v1 cfs quota/period)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.reward.cpus import available_cpus, cgroup_cpu_limit


def _v2(root: Path, text: str) -> Path:
    (root / "cpu.max").write_text(text)
    return root


def _v1(root: Path, quota: int, period: int) -> Path:
    (root / "cpu").mkdir(parents=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(f"{period}\n")
    return root


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(_v2(tmp_path, "150000 100000\n")) == 1.5


def test_cgroup_v2_unlimited(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(_v2(tmp_path, "max 100000\n")) is None


def test_cgroup_v1_quota_and_unlimited(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(_v1(tmp_path / "limited", 50000, 100000)) == 0.5
    assert cgroup_cpu_limit(_v1(tmp_path / "unlimited", -1, 100000)) is None


def test_garbage_or_missing_files_mean_no_limit(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path) is None
    assert cgroup_cpu_limit(_v2(tmp_path, "lots\n")) is None


def test_available_cpus_is_min_of_affinity_and_rounded_up_quota(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus(tmp_path) == affinity
    assert available_cpus(_v2(tmp_path, "50000 100000")) == 1  # half a CPU still gets one worker
    (tmp_path / "cpu.max").write_text(f"{(affinity + 8) * 100000} 100000")
    assert available_cpus(tmp_path) == affinity


@pytest.mark.skipif(not Path("/sys/fs/cgroup").exists(), reason="no cgroup filesystem")
def test_this_machine() -> None:
    assert 1 <= available_cpus() <= (os.cpu_count() or 1)
