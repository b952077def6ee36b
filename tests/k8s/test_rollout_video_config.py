"""The rollout pods' SGLang `--mm-process-config` is the run's data config (every value set).

Without it SGLang 0.5.23 resamples and resizes frames by its own defaults (qwen_vl.py 59-79: fps 2,
min_pixels 128*28*28 — an 84x84 frame is upscaled), so the rollout's visual tokens differ from the
learner's and the parity gate refuses to start (measured: mean |Δ log p| 0.24 on the rehearsal).
"""

from __future__ import annotations

import json

import pytest

from tests.k8s.chart_objects import SETS
from videop2r.config import load_config
from videop2r.rollout.sglang_release import mm_process_config


def config_tree(result, tmp_path):
    path = tmp_path / "videop2r.yaml"
    path.write_text(result.get("ConfigMap", "rel-videop2r-config")["data"]["videop2r.yaml"])
    return load_config(path)


@pytest.mark.parametrize("value_set", SETS)
def test_rollout_pods_keep_the_learners_frames(rendered, tmp_path, value_set):
    result = rendered[value_set]
    deployments = {d["metadata"]["name"]: d for d in result.of_kind("Deployment")}
    if "rel-videop2r-rollout" not in deployments:
        pytest.skip(f"{value_set}: no rollout Deployment")
    (container,) = [c for c in deployments["rel-videop2r-rollout"]["spec"]["template"]["spec"]["containers"]
                    if c["name"] == "sglang"]
    args = container["args"]
    rendered_config = json.loads(args[args.index("--mm-process-config") + 1])
    assert rendered_config == mm_process_config(config_tree(result, tmp_path).data)
    for name, deployment in deployments.items():  # the judge LLM reads images/text only: no video config
        if name != "rel-videop2r-rollout":
            for c in deployment["spec"]["template"]["spec"]["containers"]:
                assert "--mm-process-config" not in c.get("args", [])
