"""OpenAI-compatible ``/v1/chat/completions`` on the embedded engine (judge / CoT teacher stand-in).

Message content is a string or a list of parts: ``{"type": "text", "text"}``,
``{"type": "image_url", "image_url": {"url"}}``, ``{"type": "video_url", "video_url": {"url"}}``
(a source ``MediaSources`` reads), as SGLang 0.5.23 takes them (``protocol.ChatMessageIn``).
The prompt is rendered with the checkpoint's chat template. Sampling defaults follow OpenAI
(temperature 1, top_p 1); ``max_tokens`` defaults to the server's ``--chat-max-tokens``; the
sampling fields are checked as SGLang checks them (``ChatCompletionRequest.to_sampling_params``
then ``SamplingParams.verify``: ``services.rollout.jobs.sampling_options``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from services.rollout.engine import GenerationEngine
from services.rollout.jobs import RequestError, check_prompt, sampling_options
from services.rollout.media_sources import MediaSources
from services.rollout.prompt_job import JobResult, PromptJob
from services.rollout.protocol import ChatCompletionIn
from videop2r import prompting


def chat_job(request: ChatCompletionIn, engine: GenerationEngine, media: MediaSources, default_max_tokens: int
             ) -> PromptJob:
    messages: list[dict[str, Any]] = []
    videos: list[Any] = []
    images: list[Any] = []
    for message in request.messages:
        role = "system" if message.role == "developer" else message.role
        if message.content is None or isinstance(message.content, str):
            messages.append({"role": role, "content": message.content or ""})
            continue
        parts = []
        for part in message.content:
            kind = part.get("type")
            if kind == "text":  # the part types and fields are checked by ChatMessageIn
                parts.append({"type": "text", "text": part["text"]})
            elif kind == "image_url":
                images.append(media.image(part["image_url"]["url"]))
                parts.append({"type": "image"})
            else:
                videos.append(media.video(part["video_url"]["url"]))
                parts.append({"type": "video"})
        messages.append({"role": role, "content": parts})
    try:
        text = engine.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = prompting.encode_prompt(engine.processor, text, videos=videos, images=images)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    stop = request.stop if isinstance(request.stop, list) else ([request.stop] if request.stop else [])
    sampling = sampling_options({
        "max_new_tokens": request.max_completion_tokens or request.max_tokens or default_max_tokens,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "top_k": -1 if request.top_k is None else request.top_k,  # 0 is refused, as SGLang's verify does
        "n": request.n,
        "stop": stop,
        "sampling_seed": request.seed,
    }, engine.vocab_size)
    check_prompt(inputs, sampling, engine)
    return PromptJob(inputs=dict(inputs), sampling=sampling, rid=uuid.uuid4().hex)


def chat_response(request: ChatCompletionIn, job: PromptJob, result: JobResult, model_name: str,
                  tokenizer: Any) -> dict[str, Any]:
    choices = []
    completion_tokens = 0
    for index, sample in enumerate(result.samples):
        completion_tokens += len(sample.output_ids)
        reason = (sample.finish_reason or {}).get("type", "stop")
        logprobs = None
        if request.logprobs:
            content = []
            for logprob, token in zip(sample.logprobs, sample.output_ids):
                piece = tokenizer.decode([token])
                content.append({"token": piece, "logprob": logprob, "bytes": list(piece.encode()), "top_logprobs": []})
            logprobs = {"content": content}
        choices.append({
            "index": index,
            "message": {"role": "assistant", "content": sample.text},
            "finish_reason": "length" if reason == "length" else "stop",
            "logprobs": logprobs,
        })
    return {
        "id": f"chatcmpl-{job.rid}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": choices,
        "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": result.prompt_tokens + completion_tokens},
        "system_fingerprint": f"weights-{result.weight_version}",
    }
