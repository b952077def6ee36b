"""The experiment trackers of `trainer.loggers`: verl's own `Tracking` helper, pointed at the run.

`console`, `tensorboard`, `wandb` and `mlflow` are verl's backends (`verl.utils.tracking.Tracking`,
the one a verl user's `trainer.logger=[console,wandb]` goes through); `jsonl` is metrics.jsonl,
written by `MetricsLog` itself. Each stage of a run (SFT, PA-GRPO) is one tracker run named
`<run_name>-<stage>` in project `trainer.project_name`, with the resolved config attached.

Where the trackers write follows verl's (and the SDKs') environment variables; unset, they default
into the run directory so that nothing lands in the working directory or /tmp:

    tensorboard  $TENSORBOARD_DIR, else <run_dir>/tensorboard/<stage>
    wandb        $WANDB_DIR, else <run_dir> (the SDK adds wandb/); $WANDB_MODE=offline writes a
                 local run folder only (`wandb sync` uploads it later); W&B group = the run name
    mlflow       $MLFLOW_TRACKING_URI, else the file store file:<run_dir>/mlruns

A tracker whose package is missing, or that does not start, is a `ConfigError` naming it, raised
before the stage starts anything (no Ray, no servers).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from videop2r.config import ConfigError

log = logging.getLogger(__name__)

LOGGERS = ("console", "jsonl", "tensorboard", "wandb", "mlflow")
#: the loggers that verl's Tracking runs
TRACKERS = ("console", "tensorboard", "wandb", "mlflow")
#: tracker -> (module it imports, what to pip-install; versions pinned in requirements.lock)
PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"),
            "mlflow": ("mlflow", "mlflow-skinny")}


def check_loggers(loggers: Iterable[str]) -> None:
    """ConfigError naming the logger and its package when a logger is unknown or not installed."""
    for name in loggers:
        if name not in LOGGERS:
            raise ConfigError(f"config error: trainer.loggers: unknown logger {name!r} (one of {', '.join(LOGGERS)})")
        module, pip_name = PACKAGES.get(name, (None, None))
        if module is not None and importlib.util.find_spec(module) is None:
            raise ConfigError(f"config error: trainer.loggers: {name!r} needs the Python package {module!r}, "
                              f"which is not installed (pip install {pip_name}, the version in requirements.lock)")


@contextlib.contextmanager
def _env_defaults(defaults: dict[str, str]) -> Iterator[None]:
    """Set the variables that are unset for the duration of the block (verl's backends read them at init)."""
    added = [key for key in defaults if key not in os.environ]
    for key in added:
        os.environ[key] = defaults[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _is_file_store(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file:")


class Trackers:
    """The trackers among `loggers` for one stage; `log` sends a step's scalars to all of them."""

    def __init__(self, loggers: Iterable[str], *, run_dir: str | Path, project: str, run_name: str, stage: str,
                 config: dict[str, Any] | None = None) -> None:
        loggers = list(loggers)
        check_loggers(loggers)
        self.names = [name for name in loggers if name in TRACKERS]
        self.experiment = f"{run_name}-{stage}"
        self._tracking: Any = None
        if not self.names:
            return
        from verl.utils.tracking import Tracking

        run_dir = Path(run_dir).resolve()
        defaults = {"TENSORBOARD_DIR": str(run_dir / "tensorboard" / stage), "WANDB_DIR": str(run_dir),
                    "WANDB_RUN_GROUP": run_name, "MLFLOW_TRACKING_URI": f"file:{run_dir / 'mlruns'}"}
        if "wandb" in self.names:
            Path(os.environ.get("WANDB_DIR", defaults["WANDB_DIR"])).mkdir(parents=True, exist_ok=True)
        mlflow_uri = os.environ.get("MLFLOW_TRACKING_URI", defaults["MLFLOW_TRACKING_URI"])
        if "mlflow" in self.names and _is_file_store(mlflow_uri):
            # MLflow 3 refuses its file store unless asked for (it suggests sqlite, which needs SQLAlchemy,
            # not in mlflow-skinny); process-wide, since every later log call opens the store again
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            with _env_defaults(defaults):
                tracking = Tracking(project, self.experiment, self.names, config=config)
        except Exception as exc:  # e.g. W&B online without an API key: one line, not a traceback
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise ConfigError(f"config error: trainer.loggers: a tracker did not start: {message}") from exc
        # verl logs a warning and goes on without a backend whose init failed (MLflow, after 3 tries)
        missing = [name for name in self.names if name not in tracking.logger]
        if missing:
            tracking.finish(exit_code=1)
            raise ConfigError(f"config error: trainer.loggers: {', '.join(missing)} did not start (see the log above)")
        board = tracking.logger.get("tensorboard")
        if board is not None and config is not None:  # W&B and MLflow get the config from Tracking itself
            board.writer.add_text("config", "```yaml\n" + yaml.safe_dump(config, sort_keys=False) + "```", 0)
        self._tracking = tracking
        log.info("trackers of %s: %s", self.experiment, ", ".join(self.names))

    def log(self, step: int, values: dict[str, float]) -> None:
        if self._tracking is None or not values:
            return
        self._tracking.log(data=values, step=step)
        board = self._tracking.logger.get("tensorboard")
        if board is not None:  # verl's adapter leaves flushing to the writer's 2-minute timer
            board.writer.flush()

    def close(self, exit_code: int = 0) -> None:
        if self._tracking is not None:
            self._tracking.finish(exit_code=exit_code)
            self._tracking = None
