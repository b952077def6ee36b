"""The sglang:* series the rollout dashboard reads exist, with that kind, in the pinned SGLang's source.

The wheel is downloaded once without its dependencies into .cache/sglang-wheel (a side folder,
never the venv) and only read: ``sglang/srt/observability/metrics_collector.py`` of 0.5.23.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from videop2r.metrics import SGLANG_SERIES

ROOT = Path(__file__).resolve().parents[2]
SGLANG_VERSION = "0.5.23"
SIDE = ROOT / ".cache" / "sglang-wheel"
COLLECTOR = "sglang/srt/observability/metrics_collector.py"


@pytest.fixture(scope="module")
def collector_source() -> str:
    wheels = sorted(SIDE.glob(f"sglang-{SGLANG_VERSION}-*.whl"))
    if not wheels:
        SIDE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(SIDE),
                               f"sglang=={SGLANG_VERSION}"], capture_output=True, text=True, timeout=600)
        wheels = sorted(SIDE.glob(f"sglang-{SGLANG_VERSION}-*.whl"))
        if not wheels:
            pytest.skip(f"cannot download sglang {SGLANG_VERSION}: {done.stderr[-300:]}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        return wheel.read(COLLECTOR).decode()


def test_dashboard_series_are_sglangs_own(collector_source):
    lines = collector_source.splitlines()
    for series, where in SGLANG_SERIES.items():
        kind = where.split()[-1]
        base = series.removesuffix("_bucket") if kind == "Histogram" else series
        match = [i for i, line in enumerate(lines) if f'name="{base}"' in line]
        assert match, f"{series}: not defined in sglang {SGLANG_VERSION} {COLLECTOR}"
        opening = "\n".join(lines[max(match[0] - 3, 0):match[0]])
        assert re.search(rf"\b{kind}\(", opening), f"{series}: not a {kind} in {COLLECTOR}"
        line = int(where.split(":")[1].split()[0])
        assert abs(line - (match[0] + 1)) <= 3, f"{series}: defined at line {match[0] + 1}, catalogue says {line}"
