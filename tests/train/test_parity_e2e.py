"""`videop2r train` against a rollout server that silently drops the video (tests/train/blind_rollout.py).

With the parity gate on (the default) the run refuses to start, exit code 3, the message naming
the gap, and the measured gap is in metrics.jsonl (and the Prometheus gauge). With the gate off,
every step's row carries the gap, far over the alert's threshold (test_parity.py runs the alert
rule on such values with promtool).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from videop2r.train.metrics_log import read_metrics
from videop2r.local_services import LocalServices, rollout_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BLIND = Path(__file__).with_name("blind_rollout.py")
THRESHOLD = 0.05  # rollout.parity_max_logprob_gap's default, and the alert's


def test_a_server_that_drops_the_video_is_refused_and_flagged(assets, make_config, run_cli, tmp_path):
    service = rollout_service(str(assets["model"]), tmp_path / "logs", "blind-rollout", ["--threads", "1"])
    service.argv = [sys.executable, str(BLIND), *service.argv[3:]]  # same arguments, the blind engine
    with LocalServices([service]) as running:
        sections = {"rollout": {"endpoints": running.urls("blind-rollout"), "n": 2, "max_new_tokens": 16},
                    "trainer": {"total_steps": 1, "save_every": 0, "eval_before": False, "mini_batch_size": 4},
                    # the per-step gap needs the learner's log-probs before the update (no skipped pass)
                    "learner": {"old_log_prob_pass": "always"}}
        refused_dir = tmp_path / "gated"
        done = run_cli("train", "--config", str(make_config(tmp_path / "gated.yaml", refused_dir, **sections)),
                       check=False)
        assert done.returncode == 3, done.stderr[-3000:]
        assert "error: parity gate: the rollout engine and the learner disagree" in done.stderr
        assert "refusing to start" in done.stderr
        rows = read_metrics(refused_dir / "metrics.jsonl")
        assert not [r for r in rows if r["stage"] == "pa_grpo"]  # not one step
        (gate,) = [r for r in rows if r["stage"] == "pa_grpo_parity"]
        assert gate["rollout/logprob_abs_diff"] > THRESHOLD

        open_dir = tmp_path / "ungated"
        sections["rollout"]["parity_prompts"] = 0
        run_cli("train", "--config", str(make_config(tmp_path / "ungated.yaml", open_dir, **sections)))
        steps = [r for r in read_metrics(open_dir / "metrics.jsonl") if r["stage"] == "pa_grpo"]
        assert [r["step"] for r in steps] == [1]
        assert steps[0]["rollout/logprob_abs_diff"] > THRESHOLD and steps[0]["rollout/logprob_kl"] > 0
