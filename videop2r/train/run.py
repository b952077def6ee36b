"""What a training run is before it starts: its directories, its stores, and checked inputs.

`prepare_run` does every check that can fail on bad input — config consistency, the model
checkpoint, the data URIs — before a Ray worker, a server or a checkpoint exists, so a typo is a
one-line error instead of a stack trace ten minutes in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from videop2r.config import ConfigError, VideoP2RConfig, dump_config
from videop2r.storage import ObjectStore, open_store
from videop2r.train.checkpoint import CheckpointStore

log = logging.getLogger(__name__)


@dataclass
class RunPaths:
    """Where one stage of a run writes.

    run_dir: local directory (metrics.jsonl, evals.jsonl, report.md, plots, service logs);
    store: the object store of `storage.uri`; checkpoints: `<prefix>/<run>/<stage>/step-N/`.
    (Weights for the rollout servers go to rollout.weights_dir: videop2r.train.weight_sync.)
    """

    run_dir: Path
    store: ObjectStore
    checkpoints: CheckpointStore
    config_file: Path


def join_uri(base: str, *keys: str) -> str:
    return "/".join([base.rstrip("/"), *(key.strip("/") for key in keys)])


def run_dir_of(config: VideoP2RConfig) -> Path:
    return Path(config.trainer.output_dir or f"runs/{config.trainer.run_name}")


def check_config(config: VideoP2RConfig, stage: str) -> None:
    """Consistency rules the field types cannot express; raises ConfigError naming the field."""
    trainer = config.trainer
    if trainer.mini_batch_size % config.learner.num_workers:
        raise ConfigError(f"config error: trainer.mini_batch_size: {trainer.mini_batch_size} is not a multiple of "
                          f"learner.num_workers ({config.learner.num_workers})")
    # any SFT batch works: the learner pads it to a multiple of the workers with weightless rows
    if stage != "sft":
        batch = trainer.prompts_per_step * config.rollout.n
        if trainer.mini_batch_size > batch:
            raise ConfigError(f"config error: trainer.mini_batch_size: {trainer.mini_batch_size} is larger than the "
                              f"batch of a step (prompts_per_step × rollout.n = {batch})")
        if config.rollout.temperature <= 0:
            raise ConfigError("config error: rollout.temperature: PA-GRPO needs sampling (temperature > 0)")
    if "/" in trainer.run_name or not trainer.run_name.strip():
        raise ConfigError(f"config error: trainer.run_name: {trainer.run_name!r} must be a non-empty name without '/'")


def check_model(path: str, config: VideoP2RConfig, field: str = "model.path") -> None:
    from videop2r.model import ModelLoadError, resolve_model_path

    try:
        resolve_model_path(path, config.storage)
    except ModelLoadError as exc:
        raise ConfigError(f"config error: {field}: {exc} (create one with `videop2r model init`)") from None


def check_data(uri: str, config: VideoP2RConfig, field: str) -> int:
    """Number of records at `uri`; ConfigError naming `field` when nothing usable is there."""
    from videop2r.data.shards import open_shards
    from videop2r.storage import StorageError

    if not uri:
        raise ConfigError(f"config error: {field}: empty (a dataset URI written by `videop2r data pack`)")
    try:
        shards = open_shards(uri, config.storage)
    except StorageError as exc:
        raise ConfigError(f"config error: {field}: {exc}") from None
    if shards.num_records == 0:
        raise ConfigError(f"config error: {field}: {uri} holds no records")
    return shards.num_records


def prepare_run(config: VideoP2RConfig, stage: str, model_path: str) -> RunPaths:
    """Check everything, create the run directory, write the resolved config; returns the paths."""
    check_config(config, stage)
    check_model(model_path, config)
    train_uri = (config.trainer.sft.data_uri or config.data.train_uri) if stage == "sft" else config.data.train_uri
    check_data(train_uri, config, "trainer.sft.data_uri" if stage == "sft" and config.trainer.sft.data_uri
               else "data.train_uri")
    if config.data.eval_uri:
        check_data(config.data.eval_uri, config, "data.eval_uri")
    run_dir = run_dir_of(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / f"config-{stage}.yaml"
    config_file.write_text(dump_config(config))
    store = open_store(config.storage.uri, config.storage)
    run_prefix = join_uri(config.trainer.checkpoint_prefix, config.trainer.run_name, stage)
    checkpoints = CheckpointStore(store, run_prefix, keep=config.trainer.keep_checkpoints)
    return RunPaths(run_dir, store, checkpoints, config_file)
