"""The model card and inference settings of a published model (the SFT model, the final policy).

`publish_model_card` adds three files to the HF checkpoint the stage just exported:

- `README.md`: a Hub model card (`huggingface_hub.ModelCard`): YAML metadata (base model, datasets,
  tags, library and pipeline, `model-index` with the held-out results of this stage), then what
  the model is, how it was trained, the run's held-out evaluation table, the inference settings,
  how to load it with plain transformers, the command that reproduces it and the config used;
- `generation_config.json`: the token ids the export wrote, with the paper's inference sampling
  (method §4: temperature 0.01, top_p 0.001; `eval.*` of the config, whose defaults they are);
- `videop2r-config.yaml`: the resolved config, which the reproduce command reads.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from videop2r.config import VideoP2RConfig, dump_config
from videop2r.train.report import STAGE_ORDER, eval_table, read_evals

log = logging.getLogger(__name__)

CARD_FILE = "README.md"
CONFIG_FILE = "videop2r-config.yaml"
GENERATION_FILE = "generation_config.json"
PIPELINE_TAG = "video-text-to-text"
_COMMANDS = {"sft": "sft", "pa_grpo": "train"}
_METRICS = (("reasoning_accuracy", "accuracy", "reasoning accuracy (%)"),
            ("perception_sufficiency", "accuracy", "perception sufficiency (%)"),
            ("format_rate", "accuracy", "format rate (%)"))


def generation_settings(config: VideoP2RConfig, exported: dict[str, Any]) -> dict[str, Any]:
    """`generation_config.json`: the export's token ids with the paper's inference sampling."""
    from transformers import GenerationConfig

    ev = config.eval
    sampling = ({"do_sample": True, "temperature": ev.temperature, "top_p": ev.top_p} if ev.temperature > 0
                else {"do_sample": False})  # temperature 0: greedy, and no sampling knobs that contradict it
    kept = {k: v for k, v in exported.items() if k not in ("temperature", "top_p", "top_k", "do_sample")}
    generation = GenerationConfig.from_dict({**kept, **sampling, "max_new_tokens": ev.max_new_tokens})
    generation.validate(strict=True)  # e.g. sampling settings that contradict do_sample
    return generation.to_diff_dict()


def _final_row(evals: list[dict[str, Any]], stage: str) -> dict[str, Any] | None:
    rows = [row for row in evals if row.get("final") and row.get("stage") == stage]
    return rows[-1] if rows else None


def _training_lines(config: VideoP2RConfig, stage: str) -> list[str]:
    trainer, algorithm = config.trainer, config.algorithm
    if stage == "sft":
        sft = trainer.sft
        return [f"- stage 1, process-aware SFT (method §3): {sft.steps} steps of {sft.batch_size} × {sft.grad_accum} "
                f"samples, lr {sft.lr:g} ({sft.lr_schedule}, {sft.warmup_steps} warm-up steps)"
                + (", the step with the best held-out accuracy kept" if sft.keep_best else "")]
    lines = [f"- stage 2, {algorithm.adv_estimator} (method §4): {trainer.total_steps} steps of "
             f"{trainer.prompts_per_step} prompts × G {config.rollout.n} rollouts (temperature "
             f"{config.rollout.temperature:g}, at most {config.rollout.max_new_tokens} new tokens), lr {trainer.lr:g} "
             f"({trainer.lr_schedule})",
             f"- clip ε {algorithm.clip_ratio:g}, KL β {algorithm.kl_coef:g} ({algorithm.kl_estimator}), "
             f"loss aggregation {algorithm.loss_agg_mode}, reference policy {trainer.reference_path or config.model.path}",
             f"- rewards: perception judge `{config.reward.judge}`, length targets {list(config.reward.perception_length)}"
             f" / {list(config.reward.reasoning_length)} tokens (bonus {config.reward.length_bonus:g})"]
    dropped = [name for name, on in (("perception", algorithm.use_perception_reward),
                                     ("reasoning", algorithm.use_reasoning_reward),
                                     ("length", algorithm.use_length_reward)) if not on]
    if dropped:
        lines.append(f"- ablation: without the {', '.join(dropped)} reward")
    return lines


def card_text(config: VideoP2RConfig, stage: str, evals: list[dict[str, Any]], *, invoked: str = "") -> str:
    """The whole README.md (metadata and text) of the model `stage` of `config` publishes."""
    from huggingface_hub import EvalResult, ModelCardData

    name = f"{config.trainer.run_name}-{stage}"
    data_uri = (config.trainer.sft.data_uri or config.data.train_uri) if stage == "sft" else config.data.train_uri
    heldout = config.data.eval_uri or "held-out split"
    final = _final_row(evals, stage)
    results = [EvalResult(task_type=PIPELINE_TAG, dataset_type="videop2r-heldout", dataset_name=heldout,
                          dataset_split="eval", metric_type=kind, metric_name=label,
                          metric_value=round(100.0 * float(final[key]), 1))
               for key, kind, label in _METRICS if final is not None and final.get(key) is not None]
    tags = ["videop2r", "qwen2_5_vl", "video-question-answering", "process-aware",
            "sft" if stage == "sft" else config.algorithm.adv_estimator.replace("_", "-")]
    metadata = ModelCardData(base_model=config.model.path, datasets=[data_uri], tags=tags,
                             library_name="transformers", pipeline_tag=PIPELINE_TAG, model_name=name,
                             eval_results=results or None)
    upto = tuple(s for s, order in STAGE_ORDER.items() if order <= STAGE_ORDER.get(stage, 99))
    command = f"videop2r {_COMMANDS[stage]} --config {CONFIG_FILE}"
    ev = config.eval
    what = ("the SFT model (stage 1): it writes the <observation>/<think>/<answer> template, and is π_ref and "
            "the start of PA-GRPO" if stage == "sft" else
            "the final policy after process-aware GRPO (stage 2): separate rewards and advantages for the "
            "perception segment and the reasoning segment")
    lines = [
        "---", metadata.to_yaml(), "---", "",
        f"# {name}", "",
        f"VideoP2R: {what}. Trained from `{config.model.path}` on `{data_uri}`.", "",
        "## Training", "", *_training_lines(config, stage), "",
        "## Held-out evaluation", "",
        f"Greedy decoding on `{heldout}`, at the end of each stage of run `{config.trainer.run_name}`:", "",
        *eval_table(evals, upto), "",
        "## Inference settings", "",
        f"`generation_config.json`: temperature {ev.temperature:g}, top_p {ev.top_p:g}, at most {ev.max_new_tokens} new "
        f"tokens; video at {ev.frames} frames of at most {ev.max_pixels} pixels (`eval.*` of the config; the paper "
        "infers at temperature 0.01, top_p 0.001, 32 frames of 256·28·28 pixels).", "",
        "## Use with transformers", "",
        "```python",
        "from transformers import AutoModelForImageTextToText, AutoProcessor",
        "",
        'model = AutoModelForImageTextToText.from_pretrained("path/to/this/folder")',
        'processor = AutoProcessor.from_pretrained("path/to/this/folder")',
        'messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]',
        "prompt = processor.apply_chat_template(messages, add_generation_prompt=True)",
        'inputs = processor(text=[prompt], videos=[frames], return_tensors="pt")  # frames: (T, H, W, 3) uint8',
        "output = model.generate(**inputs)  # sampling from generation_config.json",
        "print(processor.batch_decode(output[:, inputs.input_ids.shape[1]:], skip_special_tokens=True)[0])",
        "```", "",
        "## Reproduce", "",
        "```bash", command, "```", "",
        f"`{CONFIG_FILE}` (next to this card) is the resolved config below"
        + (f"; the run was started as `{invoked}`" if invoked else "") + ".", "",
        "```yaml", dump_config(config).rstrip(), "```", "",
    ]
    return "\n".join(lines)


def publish_model_card(config: VideoP2RConfig, stage: str, uri: str, run_dir: str | Path) -> None:
    """Write README.md, generation_config.json and videop2r-config.yaml into the export at `uri`."""
    from videop2r.storage import open_store

    store = open_store(uri, config.storage)
    exported = json.loads(store.get_bytes(GENERATION_FILE)) if store.exists(GENERATION_FILE) else {}
    invoked = shlex.join(["videop2r", *sys.argv[1:]]) if Path(sys.argv[0]).name in ("videop2r", "__main__.py") else ""
    store.put_bytes(GENERATION_FILE, (json.dumps(generation_settings(config, exported), indent=2) + "\n").encode())
    store.put_bytes(CONFIG_FILE, dump_config(config).encode())
    store.put_bytes(CARD_FILE, card_text(config, stage, read_evals(run_dir), invoked=invoked).encode())
    what = "SFT model" if stage == "sft" else f"final policy ({config.algorithm.adv_estimator})"
    log.info("%s published at %s (model card %s, %s)", what, uri, CARD_FILE, GENERATION_FILE)
