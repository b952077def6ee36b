"""The embedded rollout server: SGLang's native HTTP API on transformers (CPU, or CUDA if present).

``videop2r serve rollout --model DIR|s3://... --port P`` (``main.py``) loads a Qwen2.5-VL
checkpoint and serves ``app.py``: ``/generate`` with input ids or text plus video/image data,
sampling params (n, temperature, top_p/top_k/min_p, stop, stop_token_ids, min_new_tokens,
logit_bias, seed), per-token log-probs and finish reasons; ``/update_weights_from_disk`` with a
weight version; ``/flush_cache``; health and model info; OpenAI ``/v1/chat/completions`` and
``/v1/models``; Prometheus ``/metrics``. Modules: ``engine`` (prefill once per prompt, one decode
batch), ``sampling`` (SGLang log-prob semantics), ``stopping``, ``scheduler`` (batches concurrent
requests), ``protocol`` (pydantic bodies), ``jobs`` / ``chat`` (request ↔ engine), ``media_sources``;
the HTTP side: ``app`` (assembly), ``routes/`` (one APIRouter per concern), ``state`` (what the
handlers share), ``errors`` (SGLang's error shapes), ``body_checks``.
"""
