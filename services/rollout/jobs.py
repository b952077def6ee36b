"""``/generate`` requests to engine jobs, and engine results to SGLang-shaped responses.

Response of one sample (SGLang's ``/generate`` JSON)::

    {"text": str, "output_ids": [int],
     "meta_info": {"id": rid, "finish_reason": {"type": "stop", "matched": 7} | {"type": "length", ...},
                   "prompt_tokens": L, "completion_tokens": R, "cached_tokens": 0,
                   "weight_version": str, "e2e_latency": seconds,
                   "output_token_logprobs": [[logprob, token_id, text_or_null], ...],   # if return_logprob
                   "input_token_logprobs": [[logprob_or_null, token_id, null], ...]}}  # if logprob_start_len >= 0

A single prompt with ``n == 1`` answers with that object; ``n > 1`` or a batch answers with a list,
prompt-major (prompt 0's n samples, then prompt 1's, ...), as SGLang does.
"""

from __future__ import annotations

import uuid
from typing import Any

from services.rollout.engine import GenerationEngine
from services.rollout.media_sources import MediaSources
from services.rollout.prompt_job import JobResult, PromptJob, SamplingOptions
from services.rollout.protocol import GenerateIn, SamplingParamsIn
from videop2r import prompting


class RequestError(ValueError):
    """A request that is well-formed JSON but cannot be served (-> 400 with this message)."""


def sampling_options(params: dict[str, Any] | SamplingParamsIn | None, vocab_size: int) -> SamplingOptions:
    from pydantic import ValidationError

    if not isinstance(params, SamplingParamsIn):
        try:
            params = SamplingParamsIn(**(params or {}))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in error['loc']) or 'sampling_params'}: "
                                 f"{str(error['msg']).removeprefix('Value error, ')}" for error in exc.errors())
            raise RequestError(f"sampling_params: {problems}") from None
    stop = params.stop if isinstance(params.stop, list) else ([params.stop] if params.stop else [])
    stop_ids = list(params.stop_token_ids or [])
    bias = {int(key): float(value) for key, value in (params.logit_bias or {}).items()}
    for token in [*stop_ids, *bias]:
        if not 0 <= token < vocab_size:
            raise RequestError(f"token id {token} in sampling_params is outside the vocabulary [0, {vocab_size})")
    if any(not text for text in stop):
        raise RequestError("stop strings must not be empty")
    return SamplingOptions(
        max_new_tokens=128 if params.max_new_tokens is None else params.max_new_tokens,
        min_new_tokens=params.min_new_tokens or 0,
        temperature=1.0 if params.temperature is None else params.temperature,
        top_p=1.0 if params.top_p is None else params.top_p,
        top_k=-1 if params.top_k is None else params.top_k,
        min_p=params.min_p or 0.0,
        n=params.n or 1,
        stop=stop,
        stop_token_ids=stop_ids,
        ignore_eos=bool(params.ignore_eos),
        skip_special_tokens=params.skip_special_tokens is not False,
        no_stop_trim=bool(params.no_stop_trim),
        logit_bias=bias,
        sampling_seed=params.sampling_seed,
    )


def check_prompt(inputs: dict[str, Any], sampling: SamplingOptions, engine: GenerationEngine) -> None:
    ids = inputs["input_ids"]
    if ids.numel() == 0:
        raise RequestError("the prompt is empty")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= engine.vocab_size:
        raise RequestError(f"input_ids hold token {low if low < 0 else high}, outside the vocabulary "
                           f"[0, {engine.vocab_size})")
    limit = int(engine.model.config.text_config.max_position_embeddings)
    if ids.shape[1] + sampling.max_new_tokens > limit:
        raise RequestError(f"prompt ({ids.shape[1]} tokens) + max_new_tokens ({sampling.max_new_tokens}) "
                           f"exceeds the model's {limit} positions")


def generate_jobs(request: GenerateIn, engine: GenerationEngine, media: MediaSources) -> list[PromptJob]:
    """Validate and encode every prompt of a request (runs off the event loop: decodes media)."""
    prompts = request.prompts()
    count = len(prompts)
    try:
        params = request.per_prompt("sampling_params", count, None)
        rids = request.per_prompt("rid", count, None)
        return_logprob = request.per_prompt("return_logprob", count, False)
        start = request.per_prompt("logprob_start_len", count, -1)
        videos = request.media("video_data", count)
        images = request.media("image_data", count)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    jobs: list[PromptJob] = []
    keys: list[Any] = []
    for index, prompt in enumerate(prompts):
        sampling = sampling_options(params[index], engine.vocab_size)
        key = _share_key(prompt, videos[index], images[index], params[index], return_logprob[index], start[index])
        if key is not None and keys and keys[-1] == key and jobs[-1].sample_rids is not None:
            # the next copy of the previous prompt (SGLang's per-sample-seed batch): share its prefill
            job = jobs[-1]
            job.sampling.n += 1
            job.sampling.row_seeds.append(sampling.sampling_seed)
            job.sample_rids.append(rids[index] or uuid.uuid4().hex)
            continue
        try:
            inputs = prompting.encode_prompt(
                engine.processor, prompt,
                videos=[media.video(item) for item in videos[index]],
                images=[media.image(item) for item in images[index]],
            )
        except ValueError as exc:  # PromptError, MediaError
            raise RequestError(f"prompt {index}: {exc}") from None
        check_prompt(inputs, sampling, engine)
        rid = rids[index] or uuid.uuid4().hex
        if key is not None:
            sampling.row_seeds = [sampling.sampling_seed]
        jobs.append(PromptJob(
            inputs=dict(inputs),
            sampling=sampling,
            rid=rid,
            input_logprob_start=start[index] if return_logprob[index] and start[index] >= 0 else -1,
            sample_rids=[rid] if key is not None else None,
        ))
        keys.append(key)
    return jobs


def _share_key(prompt: Any, videos: list, images: list, params: Any, return_logprob: Any, start: Any) -> Any:
    """What must be equal for two batch entries to share one prefill (n = 1, same everything but
    the seed), or None when this entry cannot share."""
    params = dict(params or {})
    if params.get("n", 1) != 1:
        return None
    params.pop("sampling_seed", None)
    import json

    return (json.dumps(prompt), tuple(videos), tuple(images), json.dumps(params, sort_keys=True),
            bool(return_logprob), start)


def generate_response(request: GenerateIn, jobs: list[PromptJob], results: list[JobResult], latency_s: float,
                      tokenizer: Any) -> dict[str, Any] | list[dict[str, Any]]:
    count = len(jobs)
    return_logprob = request.per_prompt("return_logprob", count, False)
    outputs = []
    for index, (job, result) in enumerate(zip(jobs, results)):
        for number, sample in enumerate(result.samples):
            meta: dict[str, Any] = {
                "id": (job.sample_rids[number] if job.sample_rids is not None
                       else job.rid if job.sampling.n == 1 else f"{job.rid}_{number}"),
                "finish_reason": sample.finish_reason,
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": len(sample.output_ids),
                "cached_tokens": 0,
                "weight_version": result.weight_version,
                "e2e_latency": latency_s,
            }
            if return_logprob[index]:
                meta["output_token_logprobs"] = [
                    [logprob, token, tokenizer.decode([token]) if request.return_text_in_logprobs else None]
                    for logprob, token in zip(sample.logprobs, sample.output_ids)
                ]
                if result.input_logprobs is not None:
                    meta["input_token_logprobs"] = [
                        [logprob, token, tokenizer.decode([token]) if request.return_text_in_logprobs else None]
                        for logprob, token in result.input_logprobs
                    ]
            outputs.append({"text": sample.text, "output_ids": sample.output_ids, "meta_info": meta})
    if not request.is_batch and len(outputs) == 1:
        return outputs[0]
    return outputs
