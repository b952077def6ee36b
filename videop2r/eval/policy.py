"""The model being asked: one method §1 prompt + one medium in, the response text out.

Two transports, the same question:

- `GenerateTransport` — SGLang's native ``/generate`` through `videop2r.rollout.RolloutClient`
  (the embedded server or SGLang pods, failover across endpoints): the prompt goes as ``text``
  with one media placeholder, the video as a lossless data URI of the exact frames sampled at
  the inference settings (SGLang 0.5.23's format), so the server sees what the learner would. Needs the checkpoint's
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
        """The response to the method §1 prompt of `fields` (problem, options, problem_type, data_type)."""

    async def aclose(self) -> None:
        """Release connections."""


class GenerateTransport(Policy):
    """The method §1 prompt to SGLang ``/generate`` endpoints.

    Both transports send SGLang 0.5.23's format: the rendered prompt as ``text`` with one media
    placeholder. `video_transport` (``rollout.video_transport``): ``frames`` sends the exact sampled
    frames as a lossless data URI (learner-identical visual tokens); ``source`` sends the video file
    itself as a data URI, which the server decodes and samples.
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
            # "frames": the exact sampled frames as a lossless data: URI (SGLang's own format)
            prompt = self._prompt(fields, media.kind)
            if media.kind == "video":
                return generate_payload(text=prompt, video=(media.frames, media.fps), sampling=self.sampling,
                                        return_logprob=False)
            return generate_payload(text=prompt, image=media.image, sampling=self.sampling, return_logprob=False)
        except (prompting.PromptError, ValueError) as exc:
            raise RequestRejected(f"cannot build the prompt: {exc}") from exc

    def _prompt(self, fields: dict[str, Any], kind: str) -> str:
        """The rendered prompt with one media placeholder (the server expands it)."""
        text = prompting.user_prompt(fields["problem"], fields.get("options"), fields["problem_type"], kind)
        return self.processor.apply_chat_template(
            prompting.chat_messages(text, kind), tokenize=False, add_generation_prompt=True
        )

    def _source_payload(self, fields: dict[str, Any], media: LoadedMedia) -> dict[str, Any]:
        """Prompt text with one media placeholder (the server expands it) and the medium as a data URI."""
        prompt = self._prompt(fields, media.kind)
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
    """method §1 prompt as an OpenAI chat message, the medium as `media_parts(mode)`."""

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
