"""The stages outside training: benchmark evaluation (`eval:`) and process-aware CoT data (`cot:`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from videop2r.config.section import Section


class EvalConfig(Section):
    # -- frames per clip at inference (paper: 32), spread over the whole clip; a shorter clip gives all its frames
    frames: int = Field(32, ge=2)
    # -- per-frame pixel budget at inference (paper: 256·28·28) and its floor (Qwen2.5-VL's video default)
    max_pixels: int = Field(256 * 28 * 28, gt=0)
    min_pixels: int = Field(128 * 28 * 28, gt=0)
    # -- sampling at inference (paper: temperature 0.01, top_p 0.001) and the longest response
    temperature: float = Field(0.01, ge=0)
    top_p: float = Field(0.001, gt=0, le=1)
    max_new_tokens: int = Field(1024, ge=1)
    # -- requests in flight, and media decoded at once
    concurrency: int = Field(8, ge=1)
    decode_workers: int = Field(2, ge=1)
    # -- generate: SGLang /generate with the exact prompt ids and frames (needs the checkpoint's processor);
    #    chat: OpenAI /v1/chat/completions; auto: generate when a processor can be loaded, else chat
    transport: Literal["auto", "generate", "chat"] = "auto"
    # -- processor for transport generate with --endpoint (checkpoint dir or s3:// URI); empty = the server's model_path
    processor: str = ""
    # -- chat transport: how media travel (video_url: the file as a data URI; images: one JPEG per frame;
    #    frames: exact frames, embedded server only) and the model name sent
    chat_media: Literal["video_url", "images", "frames"] = "video_url"
    chat_model: str = "default"
    # -- items per benchmark (0 = all), e.g. for a smoke run
    limit: int = Field(0, ge=0)
    # -- stop after this many requests in a row failed (a dead endpoint); finished items are kept
    max_consecutive_failures: int = Field(20, ge=1)
    # -- perception-sufficiency diagnostic: an OpenAI-compatible text endpoint answers from the observation alone (empty = off)
    sufficiency_url: str = ""
    sufficiency_model: str = "default"
    sufficiency_max_tokens: int = Field(256, ge=1)
    # -- name of the env var holding the API key of chat endpoints (never the key itself)
    api_key_env: str = "VIDEOP2R_EVAL_API_KEY"
    # -- per-request timeout and attempts (a request is retried on timeouts, 429 and 5xx)
    timeout_s: float = Field(600.0, gt=0)
    max_retries: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _pixels_ordered(self) -> "EvalConfig":
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels ({self.min_pixels}) > max_pixels ({self.max_pixels})")
        return self


class CoTConfig(Section):
    # -- step 1 teacher: an OpenAI-compatible chat endpoint (SGLang serving Qwen2.5-VL-72B in the cluster)
    teacher_url: str = ""
    teacher_model: str = "default"
    # -- name of the env var holding the teacher's API key (never the key itself)
    teacher_api_key_env: str = "VIDEOP2R_TEACHER_API_KEY"
    # -- method §3: the teacher samples at temperature 0
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(1024, ge=1)
    # -- how media reach the teacher (video_url: the file as a data URI; images: one JPEG per sampled frame,
    #    as hosted APIs take it; frames: exact frames, embedded server only); frames follow the data section
    media: Literal["video_url", "images", "frames"] = "video_url"
    # -- step 2: drop outputs whose answer scores Acc_t below this (method §3: 0.6)
    min_accuracy: float = Field(0.6, ge=0, le=1)
    # -- records in flight (teacher and judge calls), per-request timeout and attempts
    concurrency: int = Field(16, ge=1)
    timeout_s: float = Field(600.0, gt=0)
    max_retries: int = Field(3, ge=0)
    retry_backoff_s: float = Field(1.0, gt=0)
