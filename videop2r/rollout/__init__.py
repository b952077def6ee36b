"""Rollout: an async client for SGLang's native HTTP API over N endpoints, and weight sync.

The same client talks to SGLang pods in the cluster and to the embedded CPU server
(``videop2r serve rollout``, ``services/rollout``). API matched: SGLang 0.5.x (details, field
names and the video transport are in ``videop2r.rollout.client``'s docstring).

Public API (stable):

- ``RolloutClient(endpoints, *, balance="least_loaded"|"round_robin", timeout_s, connect_timeout_s,
  max_retries, retry_backoff_s, check_version=True)``; ``RolloutClient.from_config(RolloutConfig)``.
  ``await client.generate(payload) -> list[Completion]``, ``chat(openai_body)``,
  ``health()``, ``wait_ready()``, ``model_info(url)``, ``flush_cache()``,
  ``update_weights(path, version, require_all=False) -> list[EndpointUpdate]``, ``aclose()``.
- ``Completion``: text, output_ids, output_logprobs (one per output id), finish_reason
  ("stop"|"length"), matched_stop, prompt_tokens, weight_version, endpoint, meta_info.
- ``update_weights(endpoints, path, version)`` — strict one-shot weight sync (all must succeed).
- Payloads: ``sample_payload(processor, sample, sampling, inputs=None, rid=None, transport="frames",
  source=None)`` (training: exact ids + exact frames; ``transport="source"``: text prompt + media
  URI for SGLang pods), ``generate_payload(...)``, ``sampling_params(RolloutConfig,
  blocked_token_ids=...)``, ``video_item`` / ``image_item``; wire codec in ``videop2r.rollout.media``.
- Errors: ``RolloutRequestError`` (4xx, not retried), ``RolloutUnavailable`` (all attempts
  failed, lists them), ``WeightSyncError``.
"""

from videop2r.rollout.client import (
    Completion,
    EndpointUpdate,
    RolloutClient,
    RolloutError,
    RolloutRequestError,
    RolloutUnavailable,
    WeightSyncError,
    update_weights,
)
from videop2r.rollout.payload import generate_payload, image_item, sample_payload, sampling_params, video_item

__all__ = [
    "Completion",
    "EndpointUpdate",
    "RolloutClient",
    "RolloutError",
    "RolloutRequestError",
    "RolloutUnavailable",
    "WeightSyncError",
    "generate_payload",
    "image_item",
    "sample_payload",
    "sampling_params",
    "update_weights",
    "video_item",
]
