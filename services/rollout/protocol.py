"""Request bodies of the embedded server, validated with pydantic — SGLang's field names.

Matched against SGLang's ``GenerateReqInput`` / ``SamplingParams`` / ``UpdateWeightFromDiskReqInput``
(sgl-project/sglang ``python/sglang/srt/managers/io_struct.py`` and
``python/sglang/srt/sampling/sampling_params.py``, 0.5.x). Unknown fields are refused with a 400
that names them (newer SGLang validates the same way), and SGLang fields this server does not
implement (penalties, grammars, streaming, top-logprobs) are refused by name instead of being
silently ignored.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_N = 64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SamplingParamsIn(_Strict):
    max_new_tokens: int | None = Field(128, ge=0)
    min_new_tokens: int | None = Field(0, ge=0)
    temperature: float | None = Field(1.0, ge=0.0)
    top_p: float | None = Field(1.0, gt=0.0, le=1.0)
    top_k: int | None = -1
    min_p: float | None = Field(0.0, ge=0.0, le=1.0)
    n: int | None = Field(1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool | None = False
    skip_special_tokens: bool | None = True
    spaces_between_special_tokens: bool | None = True
    no_stop_trim: bool | None = False
    logit_bias: dict[str, float] | None = None
    sampling_seed: int | None = None
    # SGLang knobs this server does not implement: only their neutral values are accepted
    frequency_penalty: float | None = 0.0
    presence_penalty: float | None = 0.0
    repetition_penalty: float | None = 1.0
    json_schema: str | None = None
    regex: str | None = None
    ebnf: str | None = None

    @field_validator("temperature")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("temperature must be finite")
        return value

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, value: int | None) -> int | None:
        if value is not None and value != -1 and value < 1:
            raise ValueError("top_k must be -1 (disabled) or at least 1")
        return value

    @model_validator(mode="after")
    def _supported(self) -> "SamplingParamsIn":
        for name, neutral in (("frequency_penalty", 0.0), ("presence_penalty", 0.0), ("repetition_penalty", 1.0)):
            value = getattr(self, name)
            if value is not None and value != neutral:
                raise ValueError(f"{name} is not supported by the embedded rollout server")
        for name in ("json_schema", "regex", "ebnf"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name} (constrained decoding) is not supported by the embedded rollout server")
        if (self.min_new_tokens or 0) > (self.max_new_tokens if self.max_new_tokens is not None else 128):
            raise ValueError("min_new_tokens must not exceed max_new_tokens")
        for key in self.logit_bias or {}:
            if not key.lstrip("-").isdigit():
                raise ValueError(f"logit_bias keys must be token ids, got {key!r}")
        return self


MediaItem = str | dict[str, Any]


class GenerateIn(BaseModel):
    """``POST /generate``: one prompt (``text`` str / ``input_ids`` list of int) or a batch (lists).

    As SGLang 0.5.23's ``GenerateReqInput`` (a dataclass body): unknown top-level keys are ignored;
    ``sampling_params`` stay dicts here and are checked by ``services.rollout.contract`` (the schema
    gate, unknown keys and JSON types) and then ``SamplingParamsIn`` (SGLang's ``verify()``)."""

    model_config = ConfigDict(extra="ignore")

    text: str | list[str] | None = None
    input_ids: list[int] | list[list[int]] | None = None
    image_data: MediaItem | list[MediaItem | list[MediaItem] | None] | None = None
    video_data: MediaItem | list[MediaItem | list[MediaItem] | None] | None = None
    sampling_params: dict[str, Any] | list[dict[str, Any]] | None = None
    rid: str | list[str] | None = None
    return_logprob: bool | list[bool] | None = None
    logprob_start_len: int | list[int] | None = None
    top_logprobs_num: int | list[int] | None = None
    return_text_in_logprobs: bool = False
    stream: bool = False
    log_metrics: bool = True

    @model_validator(mode="after")
    def _one_prompt_kind(self) -> "GenerateIn":
        if (self.text is None) == (self.input_ids is None):
            raise ValueError("give exactly one of text and input_ids")
        if self.stream:
            raise ValueError("stream is not supported by the embedded rollout server")
        numbers = self.top_logprobs_num if isinstance(self.top_logprobs_num, list) else [self.top_logprobs_num]
        if any(number for number in numbers):
            raise ValueError("top_logprobs_num is not supported by the embedded rollout server")
        if isinstance(self.input_ids, list) and not self.input_ids:
            raise ValueError("input_ids is empty")
        return self

    @property
    def is_batch(self) -> bool:
        if self.text is not None:
            return isinstance(self.text, list)
        return bool(self.input_ids) and isinstance(self.input_ids[0], list)

    def prompts(self) -> list[str | list[int]]:
        if self.text is not None:
            return list(self.text) if isinstance(self.text, list) else [self.text]
        return list(self.input_ids) if self.is_batch else [self.input_ids]  # type: ignore[list-item]

    def per_prompt(self, name: str, count: int, default: Any) -> list[Any]:
        """A scalar-or-list request field spread over `count` prompts."""
        value = getattr(self, name)
        if value is None:
            return [default] * count
        if isinstance(value, list):
            if len(value) != count:
                raise ValueError(f"{name} has {len(value)} entries for {count} prompts")
            return [default if item is None else item for item in value]
        return [value] * count

    def media(self, name: str, count: int) -> list[list[MediaItem]]:
        """The media items of each prompt (``video_data``/``image_data``), SGLang's nesting rules."""
        value = getattr(self, name)
        if value is None:
            return [[] for _ in range(count)]
        if not self.is_batch:
            return [value if isinstance(value, list) else [value]]  # type: ignore[list-item]
        if not isinstance(value, list):  # io_struct._normalize_video_data: one item for every prompt
            return [[value] for _ in range(count)]
        if len(value) != count:
            raise ValueError(f"{name} must be a list with one entry per prompt ({count}) for a batch")
        return [[] if item is None else (item if isinstance(item, list) else [item]) for item in value]


class UpdateWeightsIn(BaseModel):
    """``POST /update_weights_from_disk`` (SGLang ``UpdateWeightFromDiskReqInput``; unknown keys ignored)."""

    model_config = ConfigDict(extra="ignore")

    model_path: str = Field(min_length=1)
    load_format: str | None = None
    abort_all_requests: bool = False
    weight_version: str | None = None
    is_async: bool = False
    torch_empty_cache: bool = False
    keep_pause: bool = False
    recapture_cuda_graph: bool = False
    token_step: int = 0
    flush_cache: bool = True

    @field_validator("load_format")
    @classmethod
    def _format(cls, value: str | None) -> str | None:
        if value not in (None, "auto", "safetensors"):
            raise ValueError(f"load_format {value!r} is not supported; use auto or safetensors")
        return value


class ChatMessageIn(BaseModel):
    """As SGLang 0.5.23's ``entrypoints/openai/protocol.py`` message models (585-800): a user message
    has content; parts are ``text`` (a string ``text``), ``image_url`` / ``video_url`` (an object with
    a string ``url``). ``developer`` is OpenAI's name for a system message."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _parts(self) -> "ChatMessageIn":
        if self.role == "user" and self.content is None:
            raise ValueError("a user message needs content")
        for index, part in enumerate(self.content if isinstance(self.content, list) else []):
            kind = part.get("type")
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    raise ValueError(f"content[{index}]: a text part needs a string text")
            elif kind in ("image_url", "video_url"):
                ref = part.get(kind)
                if not isinstance(ref, dict) or not isinstance(ref.get("url"), str):
                    raise ValueError(f"content[{index}]: a {kind} part needs {kind}.url (a string)")
            else:
                raise ValueError(f"content[{index}]: unsupported content part type {kind!r} "
                                 "(text, image_url, video_url)")
        return self


class ChatCompletionIn(BaseModel):
    """``POST /v1/chat/completions``: the OpenAI fields a judge or a CoT teacher sends."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, allow_inf_nan=False)  # SGLang has no OpenAI cap of 2
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = None
    n: int = Field(1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    stream: bool = False

    @model_validator(mode="after")
    def _supported(self) -> "ChatCompletionIn":
        if self.stream:
            raise ValueError("stream is not supported by the embedded rollout server")
        if self.top_logprobs:
            raise ValueError("top_logprobs is not supported by the embedded rollout server")
        return self
