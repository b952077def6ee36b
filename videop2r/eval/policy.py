"""The model being asked: one SPEC §1 prompt + one medium in, the response text out.

Two transports, the same question:

- `GenerateTransport` — SGLang's native ``/generate`` through `videop2r.rollout.RolloutClient`
  (the embedded server or SGLang pods, failover across endpoints): the prompt goes as the exact
  token ids `videop2r.prompting.build_inputs` makes, the video as the exact frames sampled at
  the inference settings, so the server sees what the learner would. Needs the checkpoint's
  processor.
- `ChatTransport` — ``/v1/chat/completions`` of any OpenAI-compatible server; the server renders
  the chat template, the medium travels as `videop2r.eval.media_parts` makes it.

Both raise `RequestFailed` (worth retrying later: the endpoint was unreachable or overloaded) or
`RequestRejected` (the request itself is wrong for this model, e.g. too long: retrying will not help).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from videop2r import prompting
from videop2r.eval.chat_client import ChatClient, ChatRequestError, ChatUnavailable
from videop2r.eval.clips import LoadedMedia
from videop2r.eval.media_parts import data_uri, jpeg_uri, media_parts, video_file_uri
from videop2r.rollout import (
    RolloutClient,
    RolloutRequestError,
    RolloutUnavailable,
    generate_payload,
    sampling_params,
)


class RequestFailed(RuntimeError):
    """Every attempt to reach the model failed; the item is retried on the next run."""


class RequestRejected(RuntimeError):
    """The model's server refused this request (4xx, or the prompt cannot be built)."""


class Policy(ABC):
    """Answers one question about one medium."""

    @abstractmethod
    async def respond(self, fields: dict[str, Any], media: LoadedMedia | None) -> str:
        """The response to the SPEC §1 prompt of `fields` (problem, options, problem_type, data_type)."""

    async def aclose(self) -> None:
        """Release connections."""


class GenerateTransport(Policy):
    """The SPEC §1 prompt to SGLang ``/generate`` endpoints.

    `video_transport` (``rollout.video_transport``): ``frames`` sends the exact prompt ids and the exact
    sampled frames (the embedded server: bit-identical visual tokens); ``source`` sends the rendered
    prompt text and the video file as a base64 data URI, which SGLang pods decode and sample themselves.
    """

    def __init__(
        self,
        rollout: RolloutClient,
        processor: Any,
        *,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        blocked_token_ids: Sequence[int] = (),
        video_transport: str = "frames",
    ) -> None:
        if video_transport not in ("frames", "source"):
            raise ValueError(f"video_transport must be frames or source, got {video_transport!r}")
        self.rollout = rollout
        self.processor = processor
        self.video_transport = video_transport
        self.sampling = sampling_params(
            None,
            blocked_token_ids=blocked_token_ids,
            n=1,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
        )

    def _payload(self, fields: dict[str, Any], media: LoadedMedia | None) -> dict[str, Any]:
        if media is None:
            raise RequestRejected("the generate transport needs the item's medium")
        try:
            if self.video_transport == "source":
                return self._source_payload(fields, media)
            if media.kind == "video":
                inputs = prompting.build_inputs(self.processor, fields, media.frames, fps=media.fps)
                return generate_payload(
                    input_ids=inputs["input_ids"][0].tolist(),
                    video=(media.frames, media.fps),
                    sampling=self.sampling,
                    return_logprob=False,
                )
            inputs = prompting.build_inputs(self.processor, fields, media.image)
            return generate_payload(
                input_ids=inputs["input_ids"][0].tolist(),
                image=media.image,
                sampling=self.sampling,
                return_logprob=False,
            )
        except (prompting.PromptError, ValueError) as exc:
            raise RequestRejected(f"cannot build the prompt: {exc}") from exc

    def _source_payload(self, fields: dict[str, Any], media: LoadedMedia) -> dict[str, Any]:
        """Prompt text with one media placeholder (the server expands it) and the medium as a data URI."""
        text = prompting.user_prompt(
            fields["problem"], fields.get("options"), fields["problem_type"], media.kind
        )
        prompt = self.processor.apply_chat_template(
            prompting.chat_messages(text, media.kind), tokenize=False, add_generation_prompt=True
        )
        if media.kind == "video":
            return generate_payload(
                text=prompt, video=video_file_uri(media), sampling=self.sampling, return_logprob=False
            )
        image = data_uri(media.source, media.mime) if media.source is not None else jpeg_uri(media.image)
        return generate_payload(text=prompt, image=image, sampling=self.sampling, return_logprob=False)

    async def respond(self, fields: dict[str, Any], media: LoadedMedia | None) -> str:
        payload = await asyncio.to_thread(self._payload, fields, media)
        try:
            completions = await self.rollout.generate(payload)
        except RolloutRequestError as exc:
            raise RequestRejected(str(exc)) from exc
        except RolloutUnavailable as exc:
            raise RequestFailed(str(exc)) from exc
        if not completions:
            raise RequestFailed("the server answered no completion")
        return completions[0].text

    async def aclose(self) -> None:
        await self.rollout.aclose()


class ChatTransport(Policy):
    """SPEC §1 prompt as an OpenAI chat message, the medium as `media_parts(mode)`."""

    def __init__(
        self,
        chat: ChatClient,
        *,
        media_mode: str,
        temperature: float,
        max_tokens: int,
        top_p: float | None = None,
    ) -> None:
        self.chat = chat
        self.media_mode = media_mode
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens

    def messages(self, fields: dict[str, Any], media: LoadedMedia | None) -> list[dict[str, Any]]:
        modality = fields.get("data_type", "video")
        try:
            text = prompting.user_prompt(
                fields["problem"], fields.get("options"), fields["problem_type"], modality
            )
        except prompting.PromptError as exc:
            raise RequestRejected(f"cannot build the prompt: {exc}") from exc
        parts = media_parts(media, self.media_mode) if media is not None else []
        return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]

    async def respond(self, fields: dict[str, Any], media: LoadedMedia | None) -> str:
        messages = await asyncio.to_thread(self.messages, fields, media)
        try:
            reply = await self.chat.complete(
                messages, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens
            )
        except ChatRequestError as exc:
            raise RequestRejected(str(exc)) from exc
        except ChatUnavailable as exc:
            raise RequestFailed(str(exc)) from exc
        return reply.text

    async def aclose(self) -> None:
        await self.chat.aclose()
