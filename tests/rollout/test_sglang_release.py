"""One place names the SGLang release (videop2r.rollout.sglang_release); the chart and docs follow it."""

from __future__ import annotations

from pathlib import Path

import yaml

from videop2r.config import DataConfig
from videop2r.rollout import sglang_release

ROOT = Path(__file__).resolve().parents[2]


def test_chart_runs_the_pinned_sglang_image():
    values = yaml.safe_load((ROOT / "charts/videop2r/values.yaml").read_text())
    assert values["sglangImage"]["repository"] == sglang_release.SGLANG_IMAGE_REPOSITORY
    assert values["sglangImage"]["tag"] == sglang_release.SGLANG_IMAGE_TAG == "v" + sglang_release.SGLANG_VERSION


def test_conformance_suite_installs_the_pinned_release():
    from tests.rollout import sglang_side

    assert sglang_side.REQUIREMENTS[0] == f"sglang=={sglang_release.SGLANG_VERSION}"


def test_docs_name_the_pinned_release():
    text = (ROOT / "docs/rollout-sglang.md").read_text()
    assert f"SGLang {sglang_release.SGLANG_VERSION}" in text


def test_pod_video_config_keeps_the_learners_frames():
    config = sglang_release.mm_process_config(DataConfig(fps=2.0, min_frames=4, max_frames=8,
                                                         video_min_pixels=7056, video_max_pixels=7056))
    assert config == {"video": {"fps": 2.0, "min_frames": 4, "max_frames": 8, "min_pixels": 7056, "max_pixels": 7056}}


def test_old_log_probs_come_from_the_learner_wherever_sglang_rolls_out():
    """SGLang's log-probs come from other kernels (and bf16): the PPO ratio's denominator stays the
    learner's recomputation by default and in every shipped config that rolls out on pods."""
    from videop2r.config import load_config

    assert load_config(None, []).trainer.old_log_prob_source == "learner"
    for path in [ROOT / "configs/paper-7b.yaml", *sorted((ROOT / "configs/ablations").glob("*.yaml"))]:
        assert load_config(str(path), []).trainer.old_log_prob_source == "learner", path
