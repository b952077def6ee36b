"""The published SFT model and final policy carry a Hub model card and the paper's inference settings,
and load and generate with plain transformers (`AutoModelForImageTextToText` / `AutoProcessor`).

The card is read back with `huggingface_hub.ModelCard` (the Hub's own parser of the YAML metadata).
`load_and_generate` and `check_card` are used on the folders of real runs too (test_stages, test_demo).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from videop2r.config import VideoP2RConfig, load_config
from videop2r.train.model_card import CARD_FILE, CONFIG_FILE, publish_model_card
from videop2r.train.report import append_eval, eval_table, read_evals

EVALS = [
    {"stage": "initial", "final": True, "step": 0, "n": 12, "reasoning_accuracy": 0.25, "perception_sufficiency": 0.0,
     "format_rate": 0.0},
    {"stage": "during_sft", "final": False, "step": 2, "n": 12, "reasoning_accuracy": 0.3},
    {"stage": "sft", "final": True, "step": 4, "n": 12, "reasoning_accuracy": 0.5, "perception_sufficiency": 0.25,
     "format_rate": 0.75},
    {"stage": "pa_grpo", "final": True, "step": 3, "n": 12, "reasoning_accuracy": 0.75, "perception_sufficiency": 0.5,
     "format_rate": 1.0},
]


def load_and_generate(folder: Path, max_new_tokens: int = 6) -> str:
    """Load `folder` with plain transformers (nothing of this project) and answer a question about a clip."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True).eval()
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    frames = np.full((4, 56, 56, 3), 128, dtype=np.uint8)
    frames[:, 20:36, 20:36] = (220, 40, 40)
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What colour is the square?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[prompt], videos=[frames], return_tensors="pt")
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens)  # sampling from generation_config.json
    new = output[:, inputs["input_ids"].shape[1]:]
    assert new.shape[1] >= 1
    return processor.batch_decode(new, skip_special_tokens=False)[0]


def check_card(folder: Path, stage: str, run_dir: Path) -> None:
    """The card of `folder` (published by `stage` of the run in `run_dir`): metadata, table, settings, config."""
    from huggingface_hub import ModelCard
    from transformers import GenerationConfig

    card = ModelCard.load(folder / CARD_FILE)
    config = load_config(folder / CONFIG_FILE)
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "video-text-to-text"
    assert data.base_model == config.model.path and "videop2r" in data.tags
    assert ("sft" if stage == "sft" else config.algorithm.adv_estimator.replace("_", "-")) in data.tags
    train_uri = (config.trainer.sft.data_uri or config.data.train_uri) if stage == "sft" else config.data.train_uri
    assert data.datasets == [train_uri]
    evals = read_evals(run_dir)
    final = [e for e in evals if e.get("final") and e["stage"] == stage][-1]
    results = {r.metric_name: r.metric_value for r in data.eval_results}
    assert results["reasoning accuracy (%)"] == round(100 * final["reasoning_accuracy"], 1)
    stages = ("initial", "sft") if stage == "sft" else ("initial", "sft", "before_pa_grpo", "pa_grpo")
    table = "\n".join(eval_table(evals, stages))
    assert table in card.text and f"| {stage} |" in table
    command = {"sft": "videop2r sft", "pa_grpo": "videop2r train"}[stage]
    assert f"{command} --config {CONFIG_FILE}" in card.text
    assert (folder / CONFIG_FILE).read_text().strip() in card.text  # the config used, in full

    generation = GenerationConfig.from_pretrained(folder, local_files_only=True)
    assert (generation.do_sample, generation.temperature, generation.top_p) == (True, config.eval.temperature,
                                                                                 config.eval.top_p)
    assert generation.max_new_tokens == config.eval.max_new_tokens
    model_config = json.loads((folder / "config.json").read_text())
    assert generation.pad_token_id is not None and generation.eos_token_id is not None
    assert model_config["model_type"] == "qwen2_5_vl"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from videop2r.model import init_model

    torch.set_num_threads(1)
    return Path(init_model("tiny", tmp_path_factory.mktemp("card") / "export"))


def _config(tmp_path: Path, model: Path) -> VideoP2RConfig:
    return load_config(None, [f"model.path={model}", "data.train_uri=/data/train", "data.eval_uri=/data/eval",
                              "trainer.run_name=cardrun", f"trainer.output_dir={tmp_path}"])


@pytest.mark.parametrize("stage", ["sft", "pa_grpo"])
def test_published_folder_has_the_card_and_loads_with_plain_transformers(tmp_path, exported, stage):
    folder = tmp_path / "published"
    shutil.copytree(exported, folder)
    for row in EVALS:
        append_eval(tmp_path, row)
    config = _config(tmp_path, exported)
    publish_model_card(config, stage, str(folder), tmp_path)
    check_card(folder, stage, tmp_path)
    card = (folder / CARD_FILE).read_text()
    if stage == "sft":
        assert "| pa_grpo |" not in card and "| sft | 4 | 12 | 50.0% | 25.0% | 75.0% |" in card
    else:
        assert "| pa_grpo | 3 | 12 | 75.0% | 50.0% | 100.0% |" in card and "| initial | 0 |" in card
        assert "during_sft" not in card  # only the ends of stages
    assert load_config(folder / CONFIG_FILE) == config
    assert isinstance(load_and_generate(folder), str)


def test_generation_settings_are_the_papers_and_keep_the_token_ids(tmp_path, exported):
    before = json.loads((exported / "generation_config.json").read_text())
    folder = tmp_path / "m"
    shutil.copytree(exported, folder)
    publish_model_card(_config(tmp_path, exported), "sft", str(folder), tmp_path)  # no evals yet: still a card
    after = json.loads((folder / "generation_config.json").read_text())
    assert (after["temperature"], after["top_p"], after["do_sample"], after["max_new_tokens"]) == (0.01, 0.001, True,
                                                                                                   1024)
    assert {k: after[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")} == {
        k: before[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    greedy = load_config(None, [f"model.path={exported}", "eval.temperature=0"])
    publish_model_card(greedy, "sft", str(folder), tmp_path)
    after = json.loads((folder / "generation_config.json").read_text())
    assert after.get("do_sample", False) is False and "temperature" not in after and "top_p" not in after
