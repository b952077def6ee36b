"""Build SGLang ``/generate`` bodies from prompts, media and the rollout config.

``sample_payload(processor, sample, sampling)`` is the training path: the prompt as the exact
``input_ids`` of ``videop2r.prompting.build_inputs`` plus the sample's exact frames, so the
server (and later the learner) see the same visual tokens (``transport="source"`` sends the text
prompt and a media URI instead, for SGLang pods). ``generate_payload`` is the general
form; ``sampling_params(config, ...)`` turns ``RolloutConfig`` into SGLang sampling params.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from videop2r.rollout.media import encode_frames, encode_image

# SGLang adds logit_bias before sampling; -100 removes a token for any practical logits (and,
# unlike -inf, is valid JSON for SGLang's orjson parser).
BLOCK_BIAS = -100.0


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


def video_item(video: Any, compression: str | None = "zlib") -> Any:
    """A ``video_data`` item: a source string / item dict as is, a clip (``.frames``,
    ``.sample_fps``) or a (frames, fps) pair as exact frames."""
    if isinstance(video, (str, dict)):
        return video
    if hasattr(video, "frames"):
        return encode_frames(np.asarray(video.frames), float(video.sample_fps), compression)
    if isinstance(video, tuple) and len(video) == 2:
        return encode_frames(np.asarray(video[0]), float(video[1]), compression)
    raise TypeError(f"cannot send {type(video).__name__} as video_data")


def image_item(image: Any, compression: str | None = "zlib") -> Any:
    """An ``image_data`` item: a source string / item dict as is, a uint8 (H, W, 3) array exactly."""
    if isinstance(image, (str, dict)):
        return image
    return encode_image(np.asarray(image), compression)


def generate_payload(*, input_ids: Sequence[int] | None = None, text: str | None = None, video: Any = None,
                     image: Any = None, sampling: Mapping[str, Any] | None = None, return_logprob: bool = True,
                     rid: str | None = None, logprob_start_len: int | None = None) -> dict[str, Any]:
    """One-prompt ``GenerateReqInput`` body."""
    if (input_ids is None) == (text is None):
        raise ValueError("give exactly one of input_ids and text")
    body: dict[str, Any] = {"sampling_params": dict(sampling or {}), "return_logprob": return_logprob}
    if input_ids is not None:
        body["input_ids"] = [int(token) for token in input_ids]
    else:
        body["text"] = text
    if video is not None:
        body["video_data"] = video_item(video)
    if image is not None:
        body["image_data"] = image_item(image)
    if rid is not None:
        body["rid"] = rid
    if logprob_start_len is not None:
        body["logprob_start_len"] = logprob_start_len
    return body


def sample_payload(processor: Any, sample: Any, sampling: Mapping[str, Any], *, inputs: Mapping[str, Any] | None = None,
                   rid: str | None = None, transport: str = "frames", source: str | None = None) -> dict[str, Any]:
    """The training request for a ``Sample`` (record + decoded media).

    ``transport="frames"`` (default): the exact ``input_ids`` of ``build_inputs`` (`inputs`, if the
    caller has them already) plus the sample's exact frames/pixels — learner-identical visual
    tokens. ``transport="source"``: the rendered prompt as ``text`` and `source` (a path or URI the
    servers can read) as the media, for SGLang pods that decode and sample media themselves."""
    from videop2r import prompting

    if transport == "source":
        if not source:
            raise ValueError("the source transport needs the media path/URI the rollout servers can read")
        text = prompting.prompt_text(processor, sample)
        image_record = prompting.prompt_fields(sample).data_type == "image"
        return generate_payload(text=text, video=None if image_record else source,
                                image=source if image_record else None, sampling=sampling, rid=rid)
    if transport != "frames":
        raise ValueError(f"unknown video transport {transport!r}; expected frames or source")
    if inputs is None:
        inputs = prompting.build_inputs(processor, sample)
    video = getattr(sample, "video", None)
    image = getattr(sample, "image", None)
    return generate_payload(input_ids=inputs["input_ids"][0].tolist(), video=video, image=image,
                            sampling=sampling, rid=rid)
