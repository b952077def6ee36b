"""What the engine runs: a prompt job, its sampling options and result, and the limits a job must keep.

A job outside those limits (`check_job`) would turn into inf/NaN in float32 or a torch error inside
a batch and fail every request sharing it; it is refused alone as `InvalidJob` instead (the
scheduler checks each job before it joins a batch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from services.rollout.sampling import RowSampling
from services.rollout.stopping import SampleOutput

# torch.Generator.manual_seed accepts [-2**63, 2**64 - 1]
_SEED_RANGE = (-(2**63), 2**64 - 1)
_FLOAT32_MAX = 3.4028234663852886e38
MAX_WEIGHT_VERSION_CHARS = 256
# |bias| / temperature (>= sampling.GREEDY_EPS when sampled) stays <= 1e15: logits never reach inf
MAX_LOGIT_BIAS = 1e9


class InvalidJob(ValueError):
    """A job (or weight update) outside what the engine can run; nothing was changed."""


def check_encodable(name: str, text: str) -> None:
    """Raise `InvalidJob` if `text` cannot be written as UTF-8 (JSON lets a lone surrogate through)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJob(f"{name} is not valid Unicode (a lone surrogate): {ascii(text)[:80]}") from None


@dataclass
class SamplingOptions:
    """Validated SGLang sampling parameters of one prompt."""

    max_new_tokens: int = 128
    min_new_tokens: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    n: int = 1
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    skip_special_tokens: bool = True
    no_stop_trim: bool = False
    logit_bias: dict[int, float] = field(default_factory=dict)
    sampling_seed: int | None = None
    # one seed per sample (a per-sample-seed batch sharing one prefill); None: sampling_seed for all
    row_seeds: list[int | None] | None = None

    @property
    def row(self) -> RowSampling:
        return RowSampling(self.temperature, self.top_p, self.top_k, self.min_p)


@dataclass
class PromptJob:
    """One prompt of a request: model inputs (batch 1, from ``videop2r.prompting.encode_prompt``)."""

    inputs: dict[str, Any]
    sampling: SamplingOptions
    rid: str = ""
    # >= 0: also return the log-probs of the prompt tokens from this position on
    input_logprob_start: int = -1
    # the request rid of each sample when batch entries were merged into this job
    sample_rids: list[str] | None = None


@dataclass
class JobResult:
    samples: list[SampleOutput]
    prompt_tokens: int
    weight_version: str
    # (log-prob or None for the first token, token id) per prompt position from the start asked
    input_logprobs: list[tuple[float | None, int]] | None = None


def check_job(job: PromptJob, vocab_size: int) -> None:
    """Raise `InvalidJob` if `job` would fail a batch: values the sampler turns into inf/NaN in
    float32, a seed torch refuses, token ids outside the vocabulary, text that is not UTF-8."""
    sampling = job.sampling
    for name in ("temperature", "top_p", "min_p"):
        value = float(getattr(sampling, name))
        if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
            raise InvalidJob(f"sampling_params.{name} must be a finite float32 value, got {value!r}")
    seed = sampling.sampling_seed
    if seed is not None and not _SEED_RANGE[0] <= seed <= _SEED_RANGE[1]:
        raise InvalidJob(f"sampling_params.sampling_seed must be in [-2**63, 2**64 - 1], got {seed}")
    for token, value in sampling.logit_bias.items():
        if not 0 <= int(token) < vocab_size:
            raise InvalidJob(f"logit_bias token id {token} is outside the vocabulary (0..{vocab_size - 1})")
        if not math.isfinite(float(value)) or abs(float(value)) > MAX_LOGIT_BIAS:
            raise InvalidJob(f"logit_bias[{token}] must be finite and at most {MAX_LOGIT_BIAS:g} in "
                             f"magnitude, got {float(value)!r}")
    for token in sampling.stop_token_ids:
        if not 0 <= int(token) < vocab_size:
            raise InvalidJob(f"stop_token_ids: {token} is outside the vocabulary (0..{vocab_size - 1})")
    for index, stop in enumerate(sampling.stop):
        check_encodable(f"sampling_params.stop[{index}]", stop)
    check_encodable("rid", job.rid)
    ids = job.inputs.get("input_ids")
    if torch.is_tensor(ids) and ids.numel() and not 0 <= int(ids.min()) <= int(ids.max()) < vocab_size:
        raise InvalidJob(f"input_ids must be token ids in 0..{vocab_size - 1}")


def check_weight_version(weight_version: str) -> None:
    """Raise `InvalidJob` unless `weight_version` is valid UTF-8 of at most MAX_WEIGHT_VERSION_CHARS."""
    check_encodable("weight_version", weight_version)
    if len(weight_version) > MAX_WEIGHT_VERSION_CHARS:
        raise InvalidJob(f"weight_version has {len(weight_version)} characters, more than "
                         f"{MAX_WEIGHT_VERSION_CHARS}")
