"""`videop2r config check` on every shipped config, its errors, and `videop2r plan`'s memory plan."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from videop2r.cli import main
from videop2r.config import load_config
from videop2r.learner.memory import GB, PlanInputs, known_config, model_shape, plan_memory

CONFIGS = sorted((Path(__file__).parents[2] / "configs").rglob("*.yaml"))
LAST_LINE = re.compile(r"^peak_gpu_gb=(\d+\.\d+) peak_host_gb=(\d+\.\d+) fits=(true|false)$")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_passes_the_check_for_both_stages(path, capsys, tmp_path):
    tree = yaml.safe_load(path.read_text())
    if "arms" in tree and "train" in tree:  # a study config (replication): its `train:` is the run config
        path = tmp_path / path.name
        path.write_text(yaml.safe_dump(tree["train"]))
    assert main(["config", "check", "--config", str(path)]) == 0
    assert "config ok" in capsys.readouterr().out


def test_the_check_names_every_field_at_fault(capsys):
    paper = str(CONFIGS[[p.name for p in CONFIGS].index("paper-7b.yaml")])
    code = main(["config", "check", "--config", paper, "learner.num_workers=5", "model.attn_implementation="
                 "flash_attention_2", "learner.max_tokens_per_micro_batch=4096", "data.train_uri=s3:///x"])
    out = capsys.readouterr().out
    assert code == 1
    assert "trainer.mini_batch_size: 56 is not a multiple of learner.num_workers (5)" in out
    assert "model.attn_implementation: flash_attention_2 needs the flash_attn package" in out
    assert "learner.max_tokens_per_micro_batch: 4096 is less than the longest row" in out
    assert "data.train_uri: 's3:///x' names no bucket" in out


def test_sft_on_seven_workers_passes(capsys):
    # batch 8 × accumulation 2 on 7 workers: the learner pads to 21 rows with weightless ones
    config = load_config(CONFIGS[[p.name for p in CONFIGS].index("paper-7b.yaml")])
    from videop2r.learner.settings import LearnerSettings
    from videop2r.train.run import check_config

    check_config(config, "sft")
    assert LearnerSettings.for_sft(config).mini_batch_size == 21


def test_plan_of_paper_7b_fits_eight_80gb_gpus_and_its_last_line(capsys):
    paper = str(CONFIGS[[p.name for p in CONFIGS].index("paper-7b.yaml")])
    assert main(["plan", "--config", paper]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    gpu, host, fits = LAST_LINE.match(lines[-1]).groups()
    assert fits == "true" and 40 < float(gpu) <= 80 and 20 < float(host) < 60  # streamed load: no full copy
    for component in ("parameters", "gradients", "optimizer", "reference", "activations", "logits", "buffers"):
        assert any(line.strip().startswith(component) for line in lines), component
    assert any(line.startswith("largest micro-batch that fits:") for line in lines)
    # the same plan on 24 GB GPUs does not fit: exit 1, fits=false
    assert main(["plan", "--config", paper, "--gpu-memory-gb", "24"]) == 1
    assert LAST_LINE.match(capsys.readouterr().out.strip().splitlines()[-1]).group(3) == "false"


def test_the_plan_counts_the_7b_and_scales_with_workers_and_checkpointing():
    shape = model_shape(known_config("Qwen2.5-VL-7B-Instruct"))
    assert 8.2e9 < shape.params < 8.4e9  # Qwen2.5-VL-7B: 8.29 B parameters
    base = PlanInputs(workers=7, tokens=4096, response_tokens=1024, vision_patches=8192)
    one = plan_memory(shape, base)
    assert one.per_gpu["optimizer"] == pytest.approx(8 * shape.params / 7)
    more = plan_memory(shape, PlanInputs(**{**base.__dict__, "workers": 14}))
    assert more.per_gpu["parameters"] == pytest.approx(one.per_gpu["parameters"] / 2)
    off = plan_memory(shape, PlanInputs(**{**base.__dict__, "checkpointing": False}))
    assert off.per_gpu["activations"] > 4 * one.per_gpu["activations"]
    # rank 0 streams the checkpoint: the largest tensor (7B: the 152064 x 3584 embedding) in flight, no full copy
    assert shape.largest_tensor == 152064 * 3584
    assert one.per_host["rank0_staging"] == pytest.approx(8 * shape.largest_tensor)
    assert one.per_host["rank0_staging"] < 4 * shape.params / 5
    assert one.max_tokens > base.tokens and one.peak_gpu < 80 * GB
