"""Both request transports, every media form, against the embedded rollout server (scripted model)."""

from __future__ import annotations

import asyncio

import pytest

from videop2r.config import EvalConfig
from videop2r.eval import BenchmarkSource, ChatTransport, GenerateTransport, MediaRef
from videop2r.eval.chat_client import ChatClient
from videop2r.eval.clips import MediaLoader, inference_data_config
from videop2r.rollout import RolloutClient

pytestmark = pytest.mark.integration
FIELDS = {
    "problem": "What colour is the square?",
    "options": ["A. red", "B. yellow"],
    "problem_type": "multiple choice",
    "data_type": "video",
}


@pytest.fixture(scope="module")
def media(release):
    """A whole file (with its bytes) and a segment (no file of its own) from the MVBench fixture."""
    config = inference_data_config(EvalConfig(frames=4, min_pixels=3136, max_pixels=3136))
    load = MediaLoader(BenchmarkSource.open(str(release / "mvbench")), config, keep_source=True).load
    clip = "video/star/Charades_v1_480/ZS9XR.mp4"
    return {"file": load(MediaRef(keys=(clip,))), "segment": load(MediaRef(keys=(clip,), bound=(0.5, 2.0)))}


@pytest.mark.parametrize("video_transport", ["frames", "source"])
def test_generate_transport(emitter_server, emitted, media, video_transport):
    from videop2r.model import load_processor

    processor = load_processor(emitter_server.model)

    async def ask() -> list[str]:
        policy = GenerateTransport(
            RolloutClient([emitter_server.url], check_version=False),
            processor,
            temperature=0.01,
            top_p=0.001,
            max_new_tokens=24,
            video_transport=video_transport,
        )
        try:
            return [await policy.respond(FIELDS, media[kind]) for kind in ("file", "segment")]
        finally:
            await policy.aclose()

    assert asyncio.run(ask()) == [emitted, emitted]


@pytest.mark.parametrize("mode", ["video_url", "images", "frames"])
def test_chat_transport(emitter_server, emitted, media, mode):
    async def ask() -> list[str]:
        policy = ChatTransport(
            ChatClient(emitter_server.url), media_mode=mode, temperature=0.0, max_tokens=24
        )
        try:
            return [await policy.respond(FIELDS, media[kind]) for kind in ("file", "segment")]
        finally:
            await policy.aclose()

    assert asyncio.run(ask()) == [emitted, emitted]
