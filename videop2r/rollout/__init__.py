"""Rollout: an async client for SGLang's native HTTP API over N endpoints, and weight sync.

The same client talks to SGLang pods in the cluster and to the embedded CPU server
(``videop2r serve rollout``, ``services/rollout``). API matched: SGLang 0.5.x (details, field
names and the request format are in ``videop2r.rollout.client``'s docstring).

Public API (stable):

- ``RolloutClient(endpoints, *, balance="least_loaded"|"round_robin", timeout_s, connect_timeout_s,
  max_retries, retry_backoff_s, check_version=True)``; ``RolloutClient.from_config(RolloutConfig)``.
  ``await client.generate(payload) -> list[Completion]``, ``health()``,
  ``wait_ready()``, ``model_info(url)``, ``flush_cache()``,
  ``update_weights(path, version, require_all=False) -> list[EndpointUpdate]``, ``aclose()``.
- ``Completion``: text, output_ids, output_logprobs (one per output id), finish_reason
  ("stop"|"length"), matched_stop, prompt_tokens, weight_version, endpoint, meta_info.
- ``update_weights(endpoints, path, version)`` — strict one-shot weight sync (all must succeed).
- Payloads (one format, SGLang 0.5.23's; ``videop2r.rollout.payload``): ``sample_payload(processor,
  sample, sampling, rid=None, seed=None, source=None)`` — ``text`` with the Qwen2.5-VL placeholder,
  the exact frames as a lossless ``data:`` URI, one seed per sample; ``generate_payload(...)``,
  ``sampling_params(RolloutConfig, blocked_token_ids=...)``, ``video_item`` / ``image_item``; media
  codec in ``videop2r.rollout.media``; the pinned release in ``videop2r.rollout.sglang_release``.
- Errors: ``RolloutRequestError`` (4xx, not retried), ``RolloutUnavailable`` (all attempts
  failed, lists them), ``WeightSyncError``; the first two are ``videop2r.http``'s ``RequestRefused``
  and ``EndpointUnavailable``. Endpoint choice, retries and failover: ``videop2r.http.pool``.
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
from videop2r.rollout.payload import (
    generate_payload,
    image_item,
    sample_payload,
    sample_seeds,
    sampling_params,
    video_item,
)

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
    "sample_seeds",
    "sampling_params",
    "update_weights",
    "video_item",
]
