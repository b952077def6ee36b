"""report.md: stage × held-out scores, and reward plots as PNG."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from videop2r.train.metrics_log import MetricsLog
from videop2r.train.report import append_eval, has_final_eval, write_report


def test_report_table_and_plots(tmp_path):
    append_eval(tmp_path, {"stage": "initial", "step": 0, "n": 10, "final": True, "model": "m0",
                           "reasoning_accuracy": 0.0, "perception_sufficiency": 0.0, "format_rate": 0.0,
                           "by_question": {"colour": 0.0}})
    append_eval(tmp_path, {"stage": "sft", "step": 50, "n": 10, "final": True, "model": "m1",
                           "reasoning_accuracy": 0.4, "perception_sufficiency": 0.3, "format_rate": 1.0,
                           "by_question": {"colour": 0.6}, "stage_seconds": 80})
    append_eval(tmp_path, {"stage": "during_pa_grpo", "step": 5, "n": 10, "final": False,
                           "reasoning_accuracy": 0.9})
    append_eval(tmp_path, {"stage": "pa_grpo", "step": 10, "n": 10, "final": True, "model": "m1",
                           "reasoning_accuracy": 0.5, "perception_sufficiency": 0.6, "format_rate": 1.0,
                           "by_question": {"colour": 0.7}, "stage_seconds": 120})
    log = MetricsLog(tmp_path, "demo", registry=CollectorRegistry())
    for step in range(1, 6):
        log.log("pa_grpo", step, {"reward/perception/total": 0.1 * step, "reward/perception/accuracy": 0.05 * step,
                                  "reward/reasoning/total": 1.0, "reward/reasoning/format": 1.0})
    log.log("pa_grpo_eval", 5, {"eval/reasoning_accuracy": 0.45, "eval/perception_sufficiency": 0.5})
    report = write_report(tmp_path, title="demo").read_text()
    assert "| initial | 0 | 10 | 0.0% | 0.0% | 0.0% |" in report
    assert "| sft | 50 | 10 | 40.0% | 30.0% | 100.0% |" in report
    assert "| pa_grpo | 10 | 10 | 50.0% | 60.0% | 100.0% |" in report
    assert "90.0%" not in report  # evaluations during a stage are not stage rows
    assert "| pa_grpo | 70.0% |" in report
    for name in ("rewards_perception.png", "rewards_reasoning.png", "eval_over_steps.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in report
    assert has_final_eval(tmp_path, "m1") and not has_final_eval(tmp_path, "other")


def test_a_rerun_stage_replaces_its_row(tmp_path):
    for accuracy in (0.1, 0.2):
        append_eval(tmp_path, {"stage": "sft", "step": 3, "n": 4, "final": True, "reasoning_accuracy": accuracy,
                               "perception_sufficiency": 0, "format_rate": 0})
    report = write_report(tmp_path).read_text()
    assert "20.0%" in report and "10.0%" not in report


def test_the_held_out_curve_starts_at_step_0_with_the_sft_model(tmp_path, monkeypatch):
    """The demo skips the before-eval (SFT already evaluated its output): the plot takes that row as step 0."""
    from videop2r.train import report as report_module

    append_eval(tmp_path, {"stage": "initial", "step": 0, "final": True, "reasoning_accuracy": 0.0,
                           "perception_sufficiency": 0.0})
    append_eval(tmp_path, {"stage": "sft", "step": 120, "final": True, "reasoning_accuracy": 0.48,
                           "perception_sufficiency": 0.4})
    start = report_module.stage_start(report_module.read_evals(tmp_path))
    assert start is not None and start["stage"] == "sft"
    log = MetricsLog(tmp_path, "demo", registry=CollectorRegistry())
    log.log("pa_grpo", 1, {"reward/perception/total": 0.5})
    log.log("pa_grpo_eval", 10, {"eval/reasoning_accuracy": 0.7, "eval/perception_sufficiency": 0.8})
    plotted: list[list[float]] = []
    import matplotlib.axes

    original = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "plot",
                        lambda self, xs, ys, **kw: (plotted.append([list(xs), list(ys)]), original(self, xs, ys, **kw))[1])
    write_report(tmp_path)
    assert [[0, 10], [0.48, 0.7]] in plotted and [[0, 10], [0.4, 0.8]] in plotted
    append_eval(tmp_path, {"stage": "before_pa_grpo", "step": 0, "final": True, "reasoning_accuracy": 0.5})
    assert report_module.stage_start(report_module.read_evals(tmp_path))["stage"] == "before_pa_grpo"
