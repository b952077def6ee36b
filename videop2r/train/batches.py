"""Samples and rollouts → the learner's `DataProto` (layout: `videop2r.learner.batch`).

Prompts are built once per sample with `videop2r.prompting.build_inputs` — the function the
rollout server's inputs come from too — so the learner sees the tokens and pixels the rollout saw.
SFT rows teacher-force the record's reference output; PA-GRPO rows carry the generated tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from videop2r.learner.batch import MULTI_MODAL_KEYS, RolloutSample, build_batch

END_OF_TURN = "<|im_end|>"


class NoReferenceOutput(ValueError):
    """A record without a process-aware reference output cannot be fine-tuned on."""


@dataclass
class PromptInputs:
    """One sample's prompt: token ids (vision pads expanded) and the pixel tensors that go with them.

    prompt_ids: (L,) ints; multi_modal_inputs: pixel_values_videos (patches, C·tp·14·14),
    video_grid_thw (1, 3), second_per_grid_ts (1,) — or the image equivalents.
    """

    prompt_ids: list[int]
    multi_modal_inputs: dict[str, torch.Tensor]
    features: Any = None  # the full `build_inputs` result (what a rollout payload is made from)


def prompt_inputs(processor: Any, sample: Any) -> PromptInputs:
    """The method §1 prompt of `sample` as model inputs (raises prompting.PromptError if it has none)."""
    from videop2r.prompting import build_inputs

    features = build_inputs(processor, sample)
    ids = [int(t) for t in features["input_ids"][0].tolist()]
    mm = {key: torch.as_tensor(features[key]) for key in MULTI_MODAL_KEYS if key in features}
    return PromptInputs(ids, mm, features)


def reference_output(record: Any) -> str:
    """The process-aware target of a record: its `output`, else observation + process + solution."""
    output = getattr(record, "output", None)
    if output and output.strip():
        return output.strip()
    observation, process, solution = (getattr(record, name, None) for name in ("observation", "process", "solution"))
    if observation and process and solution:
        return f"<observation>{observation.strip()}</observation><think>{process.strip()}</think>{solution.strip()}"
    raise NoReferenceOutput(f"record {getattr(record, 'problem_id', '?')} has no reference output "
                            "(needs `output`, or `observation` + `process` + `solution`)")


def end_of_turn_id(tokenizer: Any) -> int:
    token = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if token is None or token == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer has no {END_OF_TURN} token")
    return int(token)


def sft_rows(processor: Any, samples: Sequence[Any]) -> list[RolloutSample]:
    """Teacher-forced rows: prompt ‖ reference output ‖ <|im_end|>; the loss covers the last two."""
    tokenizer = processor.tokenizer
    eos = end_of_turn_id(tokenizer)
    rows = []
    for sample in samples:
        target = reference_output(sample.record)
        prompt = prompt_inputs(processor, sample)
        response = tokenizer(target, add_special_tokens=False)["input_ids"] + [eos]
        rows.append(RolloutSample(prompt.prompt_ids, response, prompt.multi_modal_inputs,
                                  uid=str(sample.record.problem_id)))
    return rows


def with_training_fields(batch: Any, advantages: torch.Tensor | None = None) -> Any:
    """Add `advantages` (bs, R) (zeros when None: SFT) and placeholder `old_log_probs` (bs, R)."""
    mask = batch.batch["response_mask"]
    batch.batch["advantages"] = (advantages if advantages is not None else torch.zeros(mask.shape)).float()
    if "old_log_probs" not in batch.batch.keys():
        batch.batch["old_log_probs"] = torch.zeros(mask.shape, dtype=torch.float32)
    return batch


def sft_batch(processor: Any, samples: Sequence[Any]) -> Any:
    """DataProto of teacher-forced rows, ready for the SFT worker's update_policy."""
    pad = processor.tokenizer.pad_token_id
    return with_training_fields(build_batch(sft_rows(processor, samples), pad_token_id=int(pad)))
