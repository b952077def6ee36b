"""The method §1 prompt and the model inputs built from it — one code path for rollout and learner.

Public API (stable; the learner, SFT, evaluation and the rollout server import it):

- ``user_prompt(problem, options, problem_type, modality="video") -> str``
  The user turn: the template of ``videop2r/templates/prompt.yaml`` filled with the question,
  its ``Options:`` lines and the per-problem-type answer-form hint (Video-R1 convention).
- ``chat_messages(user_text, modality) -> list[dict]`` — one user message, media part first.
- ``prompt_text(processor, sample) -> str`` — the rendered chat prompt with ONE media placeholder
  (for servers that decode the media themselves).
- ``prompt_fields(sample) -> PromptFields`` — problem/options/problem_type/data_type of a
  ``Sample`` (``.record``), a ``VideoR1Record``, or a raw Video-R1 JSON dict.
- ``build_inputs(processor, sample, media=None, *, fps=None) -> BatchFeature``
  Tokenised chat prompt (generation prompt appended) plus pixel tensors, batch of 1:
  ``input_ids (1, L)``, ``attention_mask (1, L)``, ``mm_token_type_ids (1, L)`` (0 text,
  1 image, 2 video) and either ``pixel_values_videos (P, C·tp·14·14)``, ``video_grid_thw (1, 3)``,
  ``second_per_grid_ts (1,)`` or ``pixel_values (P, C·tp·14·14)``, ``image_grid_thw (1, 3)``.
  Pass it unchanged to ``Qwen2_5_VLForConditionalGeneration.forward`` (``mm_token_type_ids`` is
  what makes the model compute 3-D M-RoPE positions; drop it and positions silently become 1-D).
- ``encode_prompt(processor, prompt_text_or_ids, videos=[(frames, fps)], images=[...])`` — the
  same inputs from a rendered prompt (text or ids, pads expanded or not); the rollout server
  rebuilds the learner's tensors from the wire with it.
- ``encode_video(processor, frames, fps)`` / ``encode_image(processor, image)`` — pixel tensors.
- ``append_response(inputs, response_ids) -> dict`` — inputs of prompt + response for a
  teacher-forced forward (learner log-probs); response tokens get ``mm_token_type_ids`` 0.
- ``declared_fps(sample_fps, temporal_patch_size) -> float`` — see below.

Frame rate: the processor turns the declared fps into ``second_per_grid_ts = temporal_patch / fps``
and transformers 5.10's ``get_rope_index`` truncates ``int(second_per_grid_ts)`` before scaling it by
``tokens_per_second``. Declaring the *container* fps (24) — or sampling faster than
``temporal_patch_size`` frames per second — gives every video token the same temporal position
(notes/tiny-model-learning.md). We therefore declare the *sampled* frame rate, capped at
``temporal_patch_size`` fps (≥ 1 s per temporal grid), so consecutive grids always get distinct
temporal positions. Frames that are already multiples of 28 pixels (``videop2r.data.video`` output)
are not resized again (``do_resize=False``); others are resized by the processor's own budget.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

log = logging.getLogger(__name__)

TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "prompt.yaml"
MODALITIES = ("video", "image")
_OPTION_LETTER = re.compile(r"^\s*[A-Z]\s*[.):]")


class PromptError(ValueError):
    """A sample that cannot be turned into a prompt (unknown problem type, missing media, ...)."""


@dataclass(frozen=True)
class PromptTemplate:
    template: str
    answer_hints: dict[str, str]
    options_header: str


@dataclass(frozen=True)
class PromptFields:
    problem: str
    options: tuple[str, ...]
    problem_type: str
    data_type: str


@functools.lru_cache(maxsize=4)
def load_template(path: str | Path = TEMPLATE_PATH) -> PromptTemplate:
    """The prompt template file, parsed once."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return PromptTemplate(
        template=data["template"],
        answer_hints=dict(data["answer_hints"]),
        options_header=data.get("options_header", "Options:"),
    )


def format_question(problem: str, options: Sequence[str] | None, header: str = "Options:") -> str:
    """The problem followed by ``Options:`` and one line per option ("A. red"); letters are added
    when the options do not carry them already."""
    problem = problem.strip()
    if not options:
        return problem
    lines = []
    for index, option in enumerate(options):
        option = str(option).strip()
        lines.append(option if _OPTION_LETTER.match(option) else f"{chr(ord('A') + index)}. {option}")
    return f"{problem}\n{header}\n" + "\n".join(lines)


def answer_hint(problem_type: str) -> str:
    hints = load_template().answer_hints
    try:
        return hints[problem_type]
    except KeyError:
        raise PromptError(f"unknown problem_type {problem_type!r}; known: {sorted(hints)}") from None


def user_prompt(problem: str, options: Sequence[str] | None, problem_type: str, modality: str = "video") -> str:
    """The user turn of method §1 for one question (text only; the media part is separate)."""
    if modality not in MODALITIES:
        raise PromptError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    template = load_template()
    question = format_question(problem, options, template.options_header)
    return template.template.format(modality=modality, question=question, answer_hint=answer_hint(problem_type))


def chat_messages(user_text: str, modality: str | None) -> list[dict[str, Any]]:
    """One user message: the media placeholder (if any) first, then the text."""
    content: list[dict[str, Any]] = []
    if modality is not None:
        content.append({"type": modality})
    content.append({"type": "text", "text": user_text})
    return [{"role": "user", "content": content}]


def prompt_fields(sample: Any) -> PromptFields:
    """Problem, options, problem_type and data_type of a Sample, a record object or a JSON dict."""
    record = getattr(sample, "record", sample)

    def field(name: str, default: Any = None) -> Any:
        if isinstance(record, dict):
            return record.get(name, default)
        return getattr(record, name, default)

    problem = field("problem")
    if not isinstance(problem, str) or not problem.strip():
        raise PromptError("record has no problem text")
    options = field("options") or ()
    if isinstance(options, str):
        options = (options,)
    return PromptFields(
        problem=problem,
        options=tuple(str(option) for option in options),
        problem_type=str(field("problem_type", "free-form")),
        data_type=str(field("data_type", "video")),
    )


def declared_fps(sample_fps: float, temporal_patch_size: int = 2) -> float:
    """The fps to declare to the processor for frames sampled at `sample_fps` (module docstring)."""
    if not sample_fps or sample_fps <= 0:
        raise PromptError(f"sample_fps must be positive, got {sample_fps!r}")
    cap = float(temporal_patch_size)
    if sample_fps > cap:
        _warn_fps_cap(sample_fps, cap)
        return cap
    return float(sample_fps)


@functools.lru_cache(maxsize=32)
def _warn_fps_cap(sample_fps: float, cap: float) -> None:
    log.warning(
        "frames sampled at %.3g fps > %.3g: declaring %.3g fps so temporal positions stay distinct",
        sample_fps, cap, cap,
    )


def _factor(processor_part: Any) -> int:
    return int(processor_part.patch_size) * int(processor_part.merge_size)


def encode_video(processor: Any, frames: np.ndarray, fps: float) -> dict[str, Any]:
    """Pixel tensors of one clip: frames uint8 (T, H, W, 3), sampled at `fps` frames per second.

    Returns ``pixel_values_videos (T/tp·H/14·W/14, 3·tp·14·14)``, ``video_grid_thw (1, 3)`` and
    ``second_per_grid_ts`` (list of 1) — exactly what ``build_inputs`` puts in the model inputs.
    """
    frames = _check_frames(frames)
    video_processor = processor.video_processor
    fps = declared_fps(fps, int(video_processor.temporal_patch_size))
    count = int(frames.shape[0])
    metadata = {"total_num_frames": count, "fps": fps, "frames_indices": list(range(count))}
    factor = _factor(video_processor)
    resize = frames.shape[1] % factor != 0 or frames.shape[2] % factor != 0
    out = video_processor(
        videos=[frames], video_metadata=[metadata], do_resize=resize, do_sample_frames=False, return_tensors="pt"
    )
    temporal = int(video_processor.temporal_patch_size)
    return {
        "pixel_values_videos": out["pixel_values_videos"],
        "video_grid_thw": out["video_grid_thw"],
        "second_per_grid_ts": [temporal / fps],
    }


def encode_image(processor: Any, image: Any) -> dict[str, Any]:
    """Pixel tensors of one image (uint8 (H, W, 3) array or PIL image):
    ``pixel_values (H/14·W/14, 3·tp·14·14)`` and ``image_grid_thw (1, 3)``."""
    array = _image_array(image)
    image_processor = processor.image_processor
    factor = _factor(image_processor)
    resize = array.shape[0] % factor != 0 or array.shape[1] % factor != 0
    out = image_processor(images=[array], do_resize=resize, return_tensors="pt")
    return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}


def build_inputs(processor: Any, sample: Any, media: Any = None, *, fps: float | None = None):
    """Model inputs (batch of 1) for a sample; see the module docstring for the keys and shapes.

    `media` defaults to the sample's decoded media (``sample.media``/``.video``/``.image``); it is a
    clip with ``frames`` and ``sample_fps`` (``videop2r.data.video.VideoClip``), a frames array
    (T, H, W, 3) with `fps`, or an image (array (H, W, 3) or PIL). Text-only records need none.
    """
    fields = prompt_fields(sample)
    if media is None:
        media = _sample_media(sample)
    modality = fields.data_type if fields.data_type in MODALITIES else "video"
    if media is None:
        raise PromptError(f"{modality} record without decoded media")
    text = user_prompt(fields.problem, fields.options, fields.problem_type, modality)
    return build_chat_inputs(processor, chat_messages(text, modality), media, fps=fps, modality=modality)


def prompt_text(processor: Any, sample: Any) -> str:
    """The rendered chat prompt of a sample, its media as ONE placeholder token (unexpanded):
    what a server that decodes the media itself (an SGLang pod) is sent as ``text``."""
    fields = prompt_fields(sample)
    modality = fields.data_type if fields.data_type in MODALITIES else "video"
    text = user_prompt(fields.problem, fields.options, fields.problem_type, modality)
    return processor.apply_chat_template(chat_messages(text, modality), tokenize=False, add_generation_prompt=True)


def build_chat_inputs(processor: Any, messages: list[dict[str, Any]], media: Any = None, *,
                      fps: float | None = None, modality: str | None = None,
                      add_generation_prompt: bool = True):
    """Inputs for chat `messages` with at most one image or video part; returns a
    ``BatchFeature`` like ``build_inputs``."""
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    videos: list[tuple[np.ndarray, float]] = []
    images: list[Any] = []
    if media is not None:
        if (modality or _media_modality(media)) == "video":
            videos.append(_clip_frames(media, fps))
        else:
            images.append(media)
    return encode_prompt(processor, text, videos=videos, images=images)


def encode_prompt(processor: Any, prompt: str | Sequence[int], *, videos: Sequence[tuple[np.ndarray, float]] = (),
                  images: Sequence[Any] = ()):
    """Model inputs (batch of 1) of a rendered prompt and its media, in order of appearance.

    `prompt` is text or token ids. Each medium appears as its pad token (``<|video_pad|>`` /
    ``<|image_pad|>``): either once, and is expanded here to the number of visual tokens its grid
    gives, or already expanded to exactly that number (ids built by ``build_inputs``). Any other
    count raises ``PromptError``. `videos` are (frames uint8 (T, H, W, 3), sampled fps) pairs.
    """
    import torch
    from transformers import BatchFeature

    video_parts = [encode_video(processor, frames, fps) for frames, fps in videos]
    image_parts = [encode_image(processor, image) for image in images]
    video_counts = [int(part["video_grid_thw"].prod()) // processor.video_processor.merge_size ** 2
                    for part in video_parts]
    image_counts = [int(part["image_grid_thw"].prod()) // processor.image_processor.merge_size ** 2
                    for part in image_parts]
    video_id, image_id = int(processor.video_token_id), int(processor.image_token_id)
    if isinstance(prompt, str):
        ids = processor.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    else:
        ids = [int(token) for token in prompt]
    ids = _expand_pads(ids, video_id, video_counts, "video")
    ids = _expand_pads(ids, image_id, image_counts, "image")
    input_ids = torch.tensor([ids], dtype=torch.long)
    mm_types = torch.zeros_like(input_ids, dtype=torch.int32)
    mm_types[input_ids == image_id] = 1
    mm_types[input_ids == video_id] = 2
    data: dict[str, Any] = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
                            "mm_token_type_ids": mm_types}
    if video_parts:
        data["pixel_values_videos"] = torch.cat([part["pixel_values_videos"] for part in video_parts])
        data["video_grid_thw"] = torch.cat([part["video_grid_thw"] for part in video_parts])
        data["second_per_grid_ts"] = torch.tensor(
            [part["second_per_grid_ts"][0] for part in video_parts], dtype=torch.float32
        )
    if image_parts:
        data["pixel_values"] = torch.cat([part["pixel_values"] for part in image_parts])
        data["image_grid_thw"] = torch.cat([part["image_grid_thw"] for part in image_parts])
    return BatchFeature(data)


def _expand_pads(ids: list[int], pad_id: int, counts: list[int], what: str) -> list[int]:
    """Expand one pad per medium to its token count, or accept pads already expanded."""
    found = sum(1 for token in ids if token == pad_id)
    if found == sum(counts) and (found > 0 or not counts):
        return ids
    runs = _runs(ids, pad_id)
    if len(runs) != len(counts) or any(length != 1 for _, length in runs):
        raise PromptError(
            f"prompt has {found} {what} pad tokens in {len(runs)} spans for {len(counts)} {what}(s) needing "
            f"{counts} tokens: give one pad token per {what}, or exactly the expanded count"
        )
    out: list[int] = []
    previous = 0
    for (start, _), count in zip(runs, counts):
        out.extend(ids[previous:start])
        out.extend([pad_id] * count)
        previous = start + 1
    out.extend(ids[previous:])
    return out


def _runs(ids: list[int], token: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    index = 0
    while index < len(ids):
        if ids[index] == token:
            start = index
            while index < len(ids) and ids[index] == token:
                index += 1
            runs.append((start, index - start))
        else:
            index += 1
    return runs


def append_response(inputs: dict[str, Any], response_ids: Sequence[int] | Any) -> dict[str, Any]:
    """Inputs of prompt + response for one teacher-forced forward pass (batch of 1).

    ``input_ids``/``attention_mask``/``mm_token_type_ids`` grow by R = len(response_ids); the pixel
    tensors are shared. Logits at positions ``L-1 .. L+R-2`` score the response tokens.
    """
    import torch

    response = torch.as_tensor(list(response_ids) if not torch.is_tensor(response_ids) else response_ids,
                               dtype=inputs["input_ids"].dtype).reshape(1, -1)
    out = dict(inputs)
    out["input_ids"] = torch.cat([inputs["input_ids"], response], dim=1)
    out["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(response)], dim=1)
    out["mm_token_type_ids"] = torch.cat(
        [inputs["mm_token_type_ids"], torch.zeros_like(response, dtype=inputs["mm_token_type_ids"].dtype)], dim=1
    )
    return out


# -- media helpers


def _sample_media(sample: Any) -> Any:
    for name in ("media", "video", "clip", "image"):
        value = getattr(sample, name, None)
        if value is not None:
            return value
    return None


def _media_modality(media: Any) -> str:
    if hasattr(media, "frames"):
        return "video"
    if isinstance(media, np.ndarray) and media.ndim == 4:
        return "video"
    return "image"


def _clip_frames(media: Any, fps: float | None) -> tuple[np.ndarray, float]:
    if hasattr(media, "frames"):
        frames = np.asarray(media.frames)
        fps = fps if fps is not None else getattr(media, "sample_fps", None)
    else:
        frames = np.asarray(media)
    if fps is None:
        raise PromptError("video frames given without their sampled fps")
    return frames, float(fps)


def _check_frames(frames: Any) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise PromptError(f"frames must be (T, H, W, 3), got shape {tuple(frames.shape)}")
    if frames.dtype != np.uint8:
        raise PromptError(f"frames must be uint8, got {frames.dtype}")
    return frames


def _image_array(image: Any) -> np.ndarray:
    for name in ("pixels", "array", "image"):
        inner = getattr(image, name, None)
        if isinstance(inner, np.ndarray):
            image = inner
            break
    array = np.asarray(image.convert("RGB")) if hasattr(image, "convert") else np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise PromptError(f"image must be uint8 (H, W, 3), got {array.dtype} {tuple(array.shape)}")
    return array
