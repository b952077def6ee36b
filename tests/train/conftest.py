"""Fixtures of the trainer tests: a small synthetic dataset packed into shards, a tiny model, configs.

Integration tests run the real commands (`videop2r sft|train`) in subprocesses against real
local services; helpers here write their configs and read their outputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

#: one question kind: a tiny model picks up its template in a few dozen SFT steps, so PA-GRPO groups
#: then differ in reward (a model that never closes a tag gives all-zero rewards, zero advantages)
QUESTIONS = "colour"


@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> dict[str, Path]:
    """Synthetic train/eval shards (+ a corrupt clip in a third split) and a tiny model, built once."""
    from videop2r.config import DataConfig
    from videop2r.data.records import read_records, write_records
    from videop2r.data.packing import pack_shards
    from videop2r.data.synth import synthesize
    from videop2r.model import init_model

    root = tmp_path_factory.mktemp("train-assets")
    data = DataConfig(fps=2.0, max_frames=8, video_min_pixels=84 * 84, video_max_pixels=84 * 84)
    synthesize(root / "synth", 6, 0, splits={"train": 8, "eval": 3}, questions=QUESTIONS.split(","), config=data,
               progress=False)
    shards = {}
    for split in ("train", "eval"):
        shards[split] = root / "shards" / split
        pack_shards(root / "synth" / f"{split}.jsonl", root / "synth", str(shards[split]), data_config=data)
    # a train split with one clip that is not a video: packed without probing, it fails at decode time
    records, _ = read_records(root / "synth" / "train.jsonl")
    (root / "synth" / "videos" / "broken.mp4").write_bytes(os.urandom(4096))
    broken = records[0].model_copy(update={"problem_id": "broken-clip", "path": "videos/broken.mp4"})
    write_records(root / "synth" / "faulty.jsonl", [broken, *records])
    shards["faulty"] = root / "shards" / "faulty"
    pack_shards(root / "synth" / "faulty.jsonl", root / "synth", str(shards["faulty"]), data_config=data, probe=False)
    model = init_model("tiny", root / "model", corpus=root / "synth" / "train.jsonl")
    return {"root": root, "model": model, **{f"{k}_shards": v for k, v in shards.items()}}


def write_config(path: Path, assets: dict[str, Path], run_dir: Path, **sections: dict) -> Path:
    """A small, fast config over `assets`; `sections` override/extend it section by section."""
    config = {
        "data": {"train_uri": str(assets["train_shards"]), "eval_uri": str(assets["eval_shards"]), "fps": 2.0,
                 "max_frames": 8, "video_min_pixels": 7056, "video_max_pixels": 7056, "prefetch": 2,
                 "decode_workers": 1},
        "model": {"path": str(assets["model"])},
        "rollout": {"n": 4, "max_new_tokens": 40, "temperature": 1.0},
        "reward": {"tokenizer": str(assets["model"]), "perception_length": [2, 40], "reasoning_length": [2, 40]},
        "algorithm": {"kl_coef": 0.04},
        "trainer": {"run_name": run_dir.name, "output_dir": str(run_dir), "total_steps": 2, "prompts_per_step": 2,
                    "mini_batch_size": 8, "micro_batch_size": 8, "lr": 1e-3, "save_every": 1, "eval_max_samples": 3,
                    "local_reward_services": True, "learner_threads": 1,
                    "local_rollout_args": ["--threads", "1"],
                    "sft": {"steps": 1, "batch_size": 2, "grad_accum": 1, "lr": 1e-3}},
        "storage": {"uri": str(run_dir.parent / "store")},
        "metrics": {"progress": False},
    }
    for section, values in sections.items():
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(config.setdefault(section, {}).get(key), dict):
                config[section][key] = {**config[section][key], **value}
            else:
                config.setdefault(section, {})[key] = value
    path.write_text(yaml.safe_dump(config))
    return path


def videop2r(*args: str, timeout: float = 600, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess (its own Ray, its own services), output captured."""
    proc = subprocess.run([sys.executable, "-m", "videop2r", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"videop2r {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture
def make_config(assets):
    """`make_config(path, run_dir, **sections)` → a config file over the session's assets."""

    def make(path: Path, run_dir: Path, **sections: dict) -> Path:
        return write_config(path, assets, run_dir, **sections)

    return make


@pytest.fixture(scope="session")
def run_cli():
    """`run_cli(*args, timeout=..., env=..., check=True)`: the CLI in a subprocess."""
    return videop2r
