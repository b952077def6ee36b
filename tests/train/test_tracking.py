"""`trainer.loggers`: the same step series in metrics.jsonl, the console, TensorBoard, W&B and MLflow.

Each tracker is read back through its own library: TensorBoard's event accumulator, W&B's
`wandb leet inspect --json` on the offline run folder (WANDB_MODE=offline), MLflow's client on
the local file store. A tracker package that is missing is a ConfigError naming it, raised
before a stage starts anything.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from videop2r.config import ConfigError, load_config
from videop2r.train.metrics_log import MetricsLog, catalog_name, read_metrics
from videop2r.train.tracking import Trackers, check_loggers

STEPS = {
    1: {"reward/perception/accuracy": 0.25, "reward/reasoning/total": 1.5, "actor/kl": 0.01, "time/update": 2.0,
        "collapse/perception": 0.5, "sft/nll": 3.25},
    2: {"reward/perception/accuracy": 0.5, "reward/reasoning/total": 1.75, "actor/kl": 0.02, "time/update": 1.5,
        "collapse/perception": 0.25, "sft/nll": 2.5},
    3: {"reward/perception/accuracy": 0.75, "reward/reasoning/total": 2.0, "actor/kl": 0.03, "time/update": 1.0,
        "collapse/perception": 0.0, "sft/nll": 2.0},
}
EVAL = {"eval/reasoning_accuracy": 0.4, "eval/format_rate": 0.9, "eval/seconds": 12.0}


def _needs(*modules: str) -> pytest.MarkDecorator:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"tracker package not installed: {', '.join(missing)} "
                                                   "(pinned in requirements.lock; mlflow is mlflow-skinny)")


def test_tracker_names_are_the_prometheus_catalog_names():
    assert catalog_name("reward/perception/accuracy") == "videop2r_reward/perception/accuracy"
    assert catalog_name("advantage/reasoning/abs_mean") == "videop2r_advantage_abs_mean/reasoning"
    assert catalog_name("collapse/perception") == "videop2r_advantage_collapse_fraction/perception"
    assert catalog_name("actor/kl") == "videop2r_kl"
    assert catalog_name("time/update") == "videop2r_train_phase_seconds/update"
    assert catalog_name("eval/reasoning_accuracy") == "videop2r_eval_accuracy/heldout/reasoning_accuracy"
    assert catalog_name("eval/seconds") == "eval/seconds"  # a duration, not an accuracy
    assert catalog_name("sft/nll") == "sft/nll"  # not catalogued: its own name


def _expected() -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for step, values in [*STEPS.items(), (3, EVAL)]:
        for name, value in values.items():
            series.setdefault(catalog_name(name), []).append((step, value))
    return series


def jsonl_series(rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl rows as {tracker name: [(step, value)]}."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for name, value in row.items():
            if name not in ("stage", "step"):
                series.setdefault(catalog_name(name), []).append((row["step"], value))
    return series


def read_tensorboard(folder: Path) -> tuple[dict[str, list[tuple[int, float]]], str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    board.Reload()
    scalars = {tag: [(e.step, e.value) for e in board.Scalars(tag)] for tag in board.Tags()["scalars"]}
    config = board.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    return scalars, config


def read_wandb(wandb_dir: Path, name: str) -> tuple[dict[str, list[tuple[int, float]]], dict]:
    """History and config of the offline run called `name` under `wandb_dir`, through wandb's own reader."""
    cli = Path(sys.executable).parent / "wandb"
    for run in sorted((wandb_dir / "wandb").glob("offline-run-*")):
        out = subprocess.run([str(cli), "leet", "inspect", "--json", str(run)], capture_output=True, text=True,
                             timeout=120, check=True).stdout
        records = [json.loads(line) for line in out.splitlines()]
        if any(r.get("type") == "run" and r["run"].get("display_name") == name for r in records):
            break
    else:
        raise AssertionError(f"no offline W&B run {name!r} under {wandb_dir / 'wandb'}")
    series: dict[str, list[tuple[int, float]]] = {}
    config: dict = {}
    for record in records:
        if record.get("type") == "run":
            config = record["run"]["config"]["update"]
        if record.get("type") == "history":
            item = record["history"]["item"]
            for key, value in item.items():
                if not key.startswith("_"):
                    series.setdefault(key, []).append((int(item["_step"]), float(value)))
    return series, config


def _mlflow(uri: str, names: list[str]) -> tuple[dict[str, list[tuple[int, float]]], dict, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    [experiment] = [e for e in client.search_experiments() if e.name == "tracking-test"]
    [run] = client.search_runs([experiment.experiment_id])
    series = {name: [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, name),
                                                       key=lambda m: m.step)] for name in names}
    return series, run.data.params, run.info.run_name


def series_diff(a: dict[str, list[tuple[int, float]]], b: dict[str, list[tuple[int, float]]]) -> str:
    """Where two step series differ ("" when they hold the same names, steps and values; TensorBoard
    keeps float32, 7 significant digits)."""
    if a.keys() != b.keys():
        return (f"names only in the first: {sorted(a.keys() - b.keys())}, "
                f"only in the second: {sorted(b.keys() - a.keys())}")
    for name in sorted(a):
        if [s for s, _ in a[name]] != [s for s, _ in b[name]] or not all(
                math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9) for (_, x), (_, y) in zip(a[name], b[name])):
            return f"{name}: {a[name][:6]} != {b[name][:6]}"
    return ""


def same_series(a: dict[str, list[tuple[int, float]]], b: dict[str, list[tuple[int, float]]]) -> bool:
    return not series_diff(a, b)


@_needs("tensorboard", "wandb", "mlflow")
def test_every_logger_gets_the_same_step_series_and_the_config(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("WANDB_DIR", "TENSORBOARD_DIR", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    config = load_config(None, ["trainer.run_name=tracked", "trainer.project_name=tracking-test"])
    log = MetricsLog(tmp_path, "tracked", loggers=["console", "jsonl", "tensorboard", "wandb", "mlflow"],
                     stage="pa_grpo", project="tracking-test", config=config.model_dump(mode="json"),
                     registry=CollectorRegistry())
    for step, values in STEPS.items():
        log.log("pa_grpo", step, {**values, "nan/value": float("nan")})  # not finite: logged nowhere
    log.log("pa_grpo_eval", 3, EVAL)
    log.close()
    expected = _expected()

    assert same_series(jsonl_series(read_metrics(tmp_path / "metrics.jsonl")), expected)

    console = [line for line in capfd.readouterr().out.splitlines() if line.startswith("step:")]
    assert [line.split(" - ")[0] for line in console] == ["step:1", "step:2", "step:3", "step:3"]
    assert "videop2r_reward/perception/accuracy:0.75" in console[2] and "nan/value" not in console[0]

    scalars, board_config = read_tensorboard(tmp_path / "tensorboard" / "pa_grpo")
    assert same_series(scalars, expected)
    assert "run_name: tracked" in board_config

    history, wandb_config = read_wandb(tmp_path, "tracked-pa_grpo")
    assert same_series(history, expected)  # the eval row of step 3 merges into step 3's row
    assert wandb_config["trainer"]["run_name"] == "tracked" and wandb_config["rollout"]["n"] == config.rollout.n

    series, params, run_name = _mlflow(f"file:{tmp_path / 'mlruns'}", list(expected))
    assert same_series(series, expected)
    assert run_name == "tracked-pa_grpo" and params["trainer/run_name"] == "tracked"
    assert params["algorithm/clip_ratio"] == str(config.algorithm.clip_ratio)


def test_jsonl_alone_starts_no_tracker(tmp_path):
    log = MetricsLog(tmp_path, "r", loggers=["jsonl"], stage="sft", registry=CollectorRegistry())
    log.log("sft", 1, {"sft/nll": 2.0})
    log.close()
    assert log.trackers.names == [] and not (tmp_path / "tensorboard").exists()
    assert read_metrics(tmp_path / "metrics.jsonl")[0]["sft/nll"] == 2.0
    quiet = MetricsLog(tmp_path / "quiet", "r", loggers=["console"], registry=CollectorRegistry())
    quiet.log("sft", 1, {"sft/nll": 2.0})
    quiet.close()
    assert not (tmp_path / "quiet" / "metrics.jsonl").exists()


@pytest.mark.parametrize(("logger", "module", "pip_name"), [("wandb", "wandb", "wandb"),
                                                            ("mlflow", "mlflow", "mlflow-skinny"),
                                                            ("tensorboard", "tensorboard", "tensorboard")])
def test_a_missing_tracker_package_is_an_error_naming_it(tmp_path, monkeypatch, logger, module, pip_name):
    monkeypatch.setitem(sys.modules, module, None)  # what `import <module>` sees when it is not installed
    with pytest.raises(ConfigError, match=f"'{logger}' needs the Python package '{module}'.*pip install {pip_name}"):
        MetricsLog(tmp_path, "r", loggers=["console", "jsonl", logger], stage="sft", registry=CollectorRegistry())
    with pytest.raises(ConfigError, match="unknown logger 'neptune'"):
        check_loggers(["neptune"])


@_needs("mlflow")
def test_a_tracker_that_does_not_start_is_an_error(tmp_path, monkeypatch):
    import verl.utils.tracking

    # a SQL store needs SQLAlchemy, which mlflow-skinny does not bring: verl's Tracking warns and goes on
    # without MLflow after its retries; we refuse to train with a tracker silently missing
    monkeypatch.setattr(verl.utils.tracking, "MLFLOW_SLEEP_SECONDS", 0)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    if importlib.util.find_spec("sqlalchemy") is not None:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "unknown-scheme://nowhere")
    with pytest.raises(ConfigError, match="mlflow did not start"):
        Trackers(["mlflow"], run_dir=tmp_path, project="p", run_name="r", stage="sft")


@_needs("wandb")
def test_wandb_online_without_an_api_key_is_a_one_line_error(tmp_path, monkeypatch):
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))  # no stored login
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    import wandb

    wandb.teardown()  # the SDK keeps the settings of an earlier run of this process (offline) until torn down
    with pytest.raises(ConfigError, match="a tracker did not start: .*API key") as caught:
        Trackers(["wandb"], run_dir=tmp_path, project="p", run_name="r", stage="sft")
    assert "\n" not in str(caught.value)


def test_loggers_config_takes_verl_spellings_and_refuses_the_old_switches():
    assert load_config().trainer.loggers == ["console", "jsonl"]
    assert load_config(None, ["trainer.logger=[console,wandb,wandb]"]).trainer.loggers == ["console", "wandb"]
    assert load_config(None, ["trainer.loggers=tensorboard"]).trainer.loggers == ["tensorboard"]
    with pytest.raises(ConfigError, match="trainer.loggers.0"):
        load_config(None, ["trainer.loggers=[neptune]"])
    with pytest.raises(ConfigError, match="metrics.tensorboard moved to trainer.loggers"):
        load_config(None, ["metrics.tensorboard=true"])


def test_a_stage_with_a_missing_tracker_fails_before_starting_anything(assets, tmp_path, monkeypatch, make_config):
    import ray

    from videop2r.train.loop import run_pa_grpo

    monkeypatch.setitem(sys.modules, "wandb", None)
    config = load_config(make_config(tmp_path / "c.yaml", tmp_path / "run"), ["trainer.loggers=[console,wandb]"])
    with pytest.raises(ConfigError, match="'wandb' needs the Python package 'wandb'"):
        run_pa_grpo(config)
    assert not ray.is_initialized() and not (tmp_path / "run" / "services").exists()
