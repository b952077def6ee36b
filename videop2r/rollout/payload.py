"""Build SGLang ``/generate`` bodies: the one request format of the pinned release (0.5.23).

- The prompt is ``text``: the rendered chat prompt with the Qwen2.5-VL placeholder
  ``<|vision_start|><|video_pad|><|vision_end|>`` that SGLang's Qwen-VL processor expands itself.
- ``video_data`` / ``image_data`` are list-wrapped as ``GenerateReqInput.normalize_batch_and_arguments``
  (``srt/managers/io_struct.py``) reads them: ``[src]`` for one prompt, ``[[src], [src], ...]``
  (one list per prompt) for a batch.
- A medium is a ``data:`` URI of the exact frames the learner sees (``videop2r.rollout.media``)
  or an ``http(s)://`` URL the pod can fetch; ``s3://`` and driver-only paths are refused here,
  before a pod refuses them.
- G samples of one prompt: SGLang's seeded sampler (``layers/sampler.py``
  ``multinomial_with_seed``) hashes (seed, position), so one ``sampling_seed`` shared by the n
  samples of a request gives n identical samples under deterministic inference. ``seeds=[...]``
  therefore sends a batch of G copies of the prompt, each with ``n = 1`` and its own seed (SGLang's
  radix cache and the embedded server share the prompt's prefill among them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from videop2r.data.media import MediaError
from videop2r.rollout.media import encode_image_uri, encode_video_uri

# SGLang adds logit_bias before sampling; -100 removes a token for any practical logits (and,
# unlike -inf, is valid JSON for SGLang's orjson parser).
BLOCK_BIAS = -100.0
REMOTE_SCHEMES = ("http://", "https://", "data:")


def sampling_params(config: Any = None, *, blocked_token_ids: Sequence[int] = (), **overrides: Any) -> dict[str, Any]:
    """SGLang ``sampling_params`` from a ``RolloutConfig`` (n, temperature, top_p, max_new_tokens,
    min_new_tokens), vision placeholder ids blocked through ``logit_bias``, then `overrides`."""
    params: dict[str, Any] = {}
    if config is not None:
        params.update(n=config.n, temperature=config.temperature, top_p=config.top_p,
                      max_new_tokens=config.max_new_tokens)
        if getattr(config, "min_new_tokens", 0):
            params["min_new_tokens"] = config.min_new_tokens
    if blocked_token_ids:
        params["logit_bias"] = {str(int(token)): BLOCK_BIAS for token in blocked_token_ids}
    params.update(overrides)
    return params


def media_source(value: str) -> str:
    """A media string a rollout pod can read (``data:``, ``http(s)://``); anything else is refused."""
    if not isinstance(value, str) or not value.startswith(REMOTE_SCHEMES):
        shown = value[:80] if isinstance(value, str) else type(value).__name__
        raise MediaError("invalid", f"media source {shown!r}: a rollout pod reads only data: URIs and http(s) URLs "
                                    f"(not s3://, not a path on this machine)")
    return value


def video_item(video: Any) -> str:
    """A ``video_data`` source: a data:/http(s) string as is, a clip (``.frames``, ``.sample_fps``)
    or a (frames, fps) pair as a lossless ``data:`` URI of exactly those frames."""
    if isinstance(video, str):
        return media_source(video)
    if hasattr(video, "frames"):
        return encode_video_uri(video.frames, float(video.sample_fps))
    if isinstance(video, tuple) and len(video) == 2:
        return encode_video_uri(video[0], float(video[1]))
    raise TypeError(f"cannot send {type(video).__name__} as video_data")


def image_item(image: Any) -> str:
    """An ``image_data`` source: a data:/http(s) string as is, a uint8 (H, W, 3) array as a PNG URI."""
    if isinstance(image, str):
        return media_source(image)
    return encode_image_uri(image)


def generate_payload(*, text: str, video: Any = None, image: Any = None, sampling: Mapping[str, Any] | None = None,
                     return_logprob: bool = True, rid: str | None = None, logprob_start_len: int | None = None,
                     seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """A ``GenerateReqInput`` body for one prompt (see the module docstring).

    `seeds`: one sample per seed, as a batch of ``len(seeds)`` copies of the prompt (``n`` of
    `sampling` is replaced by 1); rids become ``{rid}-{i}``."""
    if not isinstance(text, str) or not text:
        raise ValueError("the prompt text is empty")
    video_src = None if video is None else video_item(video)
    image_src = None if image is None else image_item(image)
    params = dict(sampling or {})
    body: dict[str, Any] = {"return_logprob": return_logprob}
    if seeds is None:
        body.update(text=text, sampling_params=params)
        if video_src is not None:
            body["video_data"] = [video_src]
        if image_src is not None:
            body["image_data"] = [image_src]
        if rid is not None:
            body["rid"] = rid
    else:
        seeds = [int(seed) for seed in seeds]
        if not seeds:
            raise ValueError("seeds is empty")
        count = len(seeds)
        params.pop("n", None)
        body.update(text=[text] * count,
                    sampling_params=[{**params, "n": 1, "sampling_seed": seed} for seed in seeds])
        if video_src is not None:
            body["video_data"] = [[video_src] for _ in seeds]
        if image_src is not None:
            body["image_data"] = [[image_src] for _ in seeds]
        if rid is not None:
            body["rid"] = [f"{rid}-{index}" for index in range(count)]
    if logprob_start_len is not None:
        body["logprob_start_len"] = logprob_start_len
    return body


def sample_seeds(seed: int, count: int) -> list[int]:
    """`count` distinct per-sample seeds derived from a prompt's seed (reproducible)."""
    return [(int(seed) * 1_000_003 + index * 7_919 + 1) % (2**31 - 1) for index in range(count)]


def sample_payload(processor: Any, sample: Any, sampling: Mapping[str, Any], *, rid: str | None = None,
                   seed: int | None = None, source: str | None = None) -> dict[str, Any]:
    """The rollout request for a ``Sample`` (record + decoded media): the rendered prompt as
    ``text`` and the sample's exact decoded frames (or image) as a lossless ``data:`` URI — or
    `source`, an http(s) URL of the same medium the pods can fetch. With `seed`, ``sampling["n"]``
    samples each get their own seed (``sample_seeds``)."""
    from videop2r import prompting

    text = prompting.prompt_text(processor, sample)
    image_record = prompting.prompt_fields(sample).data_type == "image"
    media = source if source is not None else (getattr(sample, "image", None) if image_record
                                               else getattr(sample, "video", None))
    if media is None:
        raise prompting.PromptError(f"{'image' if image_record else 'video'} record without decoded media")
    seeds = None if seed is None else sample_seeds(seed, int(sampling.get("n", 1) or 1))
    return generate_payload(text=text, video=None if image_record else media, image=media if image_record else None,
                            sampling=sampling, rid=rid, seeds=seeds)
