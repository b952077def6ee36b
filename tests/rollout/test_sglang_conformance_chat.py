"""Conformance: the chat and weight-update bodies the project sends, judged by SGLang 0.5.23's own code.

SGLang code run here (the wheel ``sglang_side`` installs; paths inside ``sglang/srt/``, 0.5.23 lines):
- ``entrypoints/openai/protocol.py`` ``ChatCompletionRequest`` (909; its message and content-part
  models) and ``to_sampling_params`` (1185-1235), then ``sampling/sampling_params.py``
  ``SamplingParams(**params).verify`` (252-313) — what ``serving_chat.py`` does at 1332;
- ``entrypoints/openai/serving_chat.py`` ``OpenAIServingChat._validate_request`` (1103-1197) and
  ``_validate_media_content`` (1199-1219);
- ``utils/common.py`` ``load_video`` (the media of each ``video_url`` part we send);
- ``managers/io_struct.py`` ``UpdateWeightFromDiskReqInput`` (1970-1992), parsed as FastAPI does
  for ``http_server.py:1300-1326`` (``Body()`` → a pydantic TypeAdapter of the dataclass);
- ``model_loader/loader.py`` ``DefaultModelLoader._prepare_weights`` (480-540): a local directory
  loads, a non-local ``model_path`` goes to the hub, which fails under ``HF_HUB_OFFLINE=1``.
- ``entrypoints/http_server.py`` ``app`` itself: ``/generate`` (927-990; the contract gate at 937-939,
  ``_create_error_response`` for a ValueError) and ``/health`` (721-800, SGLang's own one-token
  ``GenerateReqInput``), driven by the project's ``RolloutClient`` over ``httpx.ASGITransport``.
Stand-ins (no GPU, no running server here): the tokenizer manager behind the app
(``_StandInTokenizerManager``: it runs SGLang's ``normalize_batch_and_arguments`` and
``SamplingParams.verify``, then answers as the scheduler would), ``get_disagg()`` read by /health
(``disaggregation_mode="null"``, a plain server), the loader's ``get_server_args()`` (None: no
launched server, so the checksum step at loader.py 540-545 is skipped); ``_validate_request``
reads launch settings through ``runtime_context.get_model()`` / ``get_serving()``
(``context_length``, ``trust_request_chat_template``,
``allow_auto_truncate``), given here as the tiny checkpoint's positions and SGLang's defaults (False),
and ``self.tokenizer_manager.model_config.is_multimodal`` (True: Qwen2.5-VL). The instance is made
without ``__init__`` (which wants a running TokenizerManager). The stubbed modules are
``sglang_side.STUBS``. Not run: the tokenizer manager and scheduler themselves, the app's chat
route (it needs a TemplateManager and a tokenizer), chat-template rendering, the model forward.
"""

from __future__ import annotations

import asyncio
import copy
import json
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from tests.rollout import sglang_side
from services.rollout.chat import chat_job
from services.rollout.jobs import RequestError
from services.rollout.media_sources import MediaSources
from services.rollout.protocol import ChatCompletionIn
from videop2r.config import CoTConfig, DataConfig, RewardConfig
from videop2r.rollout.media import encode_video_uri

pytestmark = pytest.mark.integration

DATA = DataConfig(fps=2.0, min_frames=4, max_frames=8, video_min_pixels=84 * 84, video_max_pixels=84 * 84)
FIELDS = {"problem": "Where does the square go?", "options": ["A. left", "B. right"],
          "problem_type": "multiple choice", "data_type": "video"}
REPLY = {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "Yes"}, "finish_reason": "stop"}]}


@pytest.fixture(scope="module")
def sgl(engine):
    why = sglang_side.install()
    if why is not None:
        pytest.skip(why)
    sglang_side.activate()
    import pydantic
    import sglang.srt.entrypoints.openai.serving_chat as serving_chat
    import sglang.srt.model_loader.loader as loader_module
    import sglang.srt.utils.video_decoder as video_decoder
    from sglang.srt.configs.load_config import LoadConfig
    from sglang.srt.entrypoints.openai.protocol import ChatCompletionRequest
    from sglang.srt.managers.io_struct import UpdateWeightFromDiskReqInput
    from sglang.srt.model_loader.loader import DefaultModelLoader
    from sglang.srt.sampling.sampling_params import SamplingParams
    from sglang.srt.utils.common import load_video

    patch = pytest.MonkeyPatch()
    positions = int(engine.model.config.text_config.max_position_embeddings)
    patch.setattr(serving_chat, "get_model", lambda: SimpleNamespace(context_length=positions))
    patch.setattr(serving_chat, "get_serving", lambda: SimpleNamespace(
        trust_request_chat_template=False, allow_auto_truncate=False))
    patch.setattr(video_decoder, "_is_cpu_engine", lambda: True)  # no pin_memory without a CUDA driver
    patch.setattr(loader_module, "get_server_args", lambda: None)  # no launched server: no checksum step
    serving = object.__new__(serving_chat.OpenAIServingChat)
    serving.tokenizer_manager = SimpleNamespace(model_config=SimpleNamespace(is_multimodal=True))
    serving.is_minimax_m3 = False
    yield SimpleNamespace(
        ChatCompletionRequest=ChatCompletionRequest, serving=serving, SamplingParams=SamplingParams,
        ValidationError=pydantic.ValidationError, load_video=load_video,
        update_body=pydantic.TypeAdapter(UpdateWeightFromDiskReqInput), LoadConfig=LoadConfig,
        DefaultModelLoader=DefaultModelLoader,
    )
    patch.undo()


def sglang_chat_verdict(sgl, body: dict, vocab_size: int) -> str | None:
    """SGLang's answer to a chat body up to rendering: None (accepted) or the error text."""
    try:
        request = sgl.ChatCompletionRequest(**copy.deepcopy(body))
    except sgl.ValidationError as exc:
        return str(exc)
    error = sgl.serving._validate_request(request)
    if error is not None:
        return error
    stop = request.stop if isinstance(request.stop, list) else ([request.stop] if request.stop else [])
    try:
        params = sgl.SamplingParams(**request.to_sampling_params(stop=stop, model_generation_config={}))
        params.verify(vocab_size)
    except (ValueError, TypeError) as exc:
        return str(exc) or type(exc).__name__
    return None


def embedded_chat_verdict(body: dict, engine) -> str | None:
    """The embedded server's answer up to generation (``services.rollout.routes.chat``)."""
    from pydantic import ValidationError

    try:
        chat_job(ChatCompletionIn.model_validate(copy.deepcopy(body)), engine, MediaSources(DATA), 512)
    except (ValidationError, RequestError, ValueError) as exc:
        return str(exc)
    return None


def _capture(answer: dict) -> tuple[list[dict], httpx.MockTransport]:
    bodies: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.content:
            bodies.append(json.loads(request.content))
        return httpx.Response(200, json=answer)

    return bodies, httpx.MockTransport(handler)


def _project_chat_bodies(clip: np.ndarray) -> dict[str, dict]:
    """Every chat body the project sends: the judge, eval / CoT teacher in each media mode."""
    from videop2r.eval.chat_client import ChatClient
    from videop2r.eval.clips import LoadedMedia
    from videop2r.eval.policy import ChatTransport
    from videop2r.rewards.judges.openai_judge import openai_from_config
    from videop2r.rewards.judges.schema import JudgeItem

    bodies: dict[str, dict] = {}
    reward = RewardConfig(judge="openai", judge_url="http://judge:8000")
    captured, transport = _capture(REPLY)
    judge = openai_from_config(reward)
    judge._transport = transport

    async def run_judge() -> None:
        await judge.judge(JudgeItem(id=1, question="Where?", options=["A. left"], answer="A",
                                    observation="<observation>a square</observation>"))
        await judge.close()

    asyncio.run(run_judge())
    bodies["judge"] = captured[-1]
    media = LoadedMedia(kind="video", key="k", frames=clip, fps=2.0)
    image = LoadedMedia(kind="image", key="i", image=clip[0])
    cot = CoTConfig()
    for mode in ("video_url", "images", "frames"):
        for kind, item in (("video", media), ("image", image)):
            captured, transport = _capture(REPLY)

            async def run_chat() -> None:
                async with ChatClient("http://teacher:8000", cot.teacher_model, transport=transport) as chat:
                    policy = ChatTransport(chat, media_mode=mode, temperature=cot.temperature,
                                           max_tokens=min(cot.max_tokens, 256))
                    await policy.respond(FIELDS, item)

            asyncio.run(run_chat())
            bodies[f"chat-{mode}-{kind}"] = captured[-1]
    return bodies


def test_every_chat_body_the_project_sends_passes_sglangs_protocol_and_validation(sgl, engine, clip):
    bodies = _project_chat_bodies(clip)
    assert len(bodies) == 7
    for name, body in bodies.items():
        assert sglang_chat_verdict(sgl, body, engine.vocab_size) is None, name
        assert embedded_chat_verdict(body, engine) is None, name
        request = sgl.ChatCompletionRequest(**copy.deepcopy(body))
        parts = [part for message in request.messages if isinstance(message.content, list)
                 for part in message.content]
        for part in parts:  # SGLang parsed each part as the media kind we meant, and can load the video
            assert part.type in ("text", "image_url", "video_url"), (name, part)
            if part.type == "video_url":
                reader = sgl.load_video(part.video_url.url, use_gpu=False)
                assert len(reader) == len(clip), name


GOOD = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
USER = {"role": "user"}
CHAT_CORPUS = [
    GOOD,
    {**GOOD, "messages": []},
    {**GOOD, "messages": [{"role": "judge", "content": "x"}]},
    {**GOOD, "messages": [{**USER, "content": [{"type": "video", "video": "VIDEO"}]}]},
    {**GOOD, "messages": [{**USER, "content": [{"type": "video", "video": {"url": "VIDEO"}}]}]},
    {**GOOD, "messages": [{**USER, "content": [{"type": "video_url", "video_url": {"url": "VIDEO"}}]}]},
    {**GOOD, "messages": [{**USER, "content": [{"type": "video_url", "video_url": "VIDEO"}]}]},
    {**GOOD, "messages": [{**USER, "content": [{"type": "video_url", "video_url": {}}]}]},
    {**GOOD, "messages": [{**USER, "content": [{"type": "image", "image": "IMAGE"}]}]},
    {**GOOD, "messages": [{**USER, "content": [{"type": "image_url", "image_url": {"url": "IMAGE"}}]}]},
    {**GOOD, "messages": [{**USER, "content": [{"type": "image_url", "image_url": {"url": "IMAGE"}, "x": 1}]}]},
    {**GOOD, "messages": [{"role": "developer", "content": "be brief"}, {**USER, "content": "hi"}]},
    {**GOOD, "messages": [{"role": "system", "content": None}, {**USER, "content": "hi"}]},
    {**GOOD, "messages": [{**USER, "content": [{"type": "text", "text": 5}]}]},
    {**GOOD, "messages": [{**USER, "content": None}]},
    {**GOOD, "messages": [{"role": "assistant", "content": None}, {**USER, "content": "hi"}]},
    {**GOOD, "top_k": -5},
    {**GOOD, "messages": [{**USER, "content": [{"type": "audio_url"}]}]},
    {**GOOD, "messages": [{**USER, "content": [{"type": "text"}]}]},
    {**GOOD, "messages": [{**USER, "content": 5}]},
    {**GOOD, "temperature": -0.1},
    {**GOOD, "temperature": 2.5},
    {**GOOD, "temperature": "hot"},
    {**GOOD, "top_p": 0.0},
    {**GOOD, "top_p": 1.5},
    {**GOOD, "top_k": 0},
    {**GOOD, "top_k": 5},
    {**GOOD, "max_tokens": 10**6},
    {**GOOD, "max_completion_tokens": 10**6},
    {**GOOD, "stop": ["</answer>"], "seed": 3},
    {**GOOD, "seed": "x"},
    {**GOOD, "unknown_field": 1},
    {**GOOD, "temperature": 0.0, "n": 1},
]


@pytest.mark.parametrize("index", range(len(CHAT_CORPUS)))
def test_differential_chat_verdict_agrees_with_sglang(sgl, engine, clip, index):
    from videop2r.rollout.media import encode_image_uri

    media = {"VIDEO": encode_video_uri(clip, 2.0), "IMAGE": encode_image_uri(clip[0])}
    body = json.loads(json.dumps(CHAT_CORPUS[index]), object_hook=lambda item: {
        key: media.get(value, value) if isinstance(value, str) else value for key, value in item.items()})
    theirs = sglang_chat_verdict(sgl, body, engine.vocab_size)
    ours = embedded_chat_verdict(body, engine)
    assert (ours is None) == (theirs is None), (body, ours, theirs)


def test_the_weight_update_body_is_sglangs_and_the_model_path_rule_matches(sgl, engine, tiny_dir, tmp_path,
                                                                          monkeypatch):
    """The driver's /update_weights_from_disk body parses as SGLang's request; for a local directory,
    an s3:// path and a missing path, SGLang's loader and the embedded server give the same verdict."""
    from fastapi.testclient import TestClient

    from services.rollout.app import create_app
    from services.rollout.engine import GenerationEngine
    from videop2r.rollout.client import RolloutClient

    info = {"model_path": str(tiny_dir), "weight_version": "7"}
    captured, transport = _capture({"success": True, "message": "ok", "num_paused_requests": 0, **info})

    async def sync() -> None:
        async with RolloutClient(["http://pod:30000"], transport=transport) as client:
            await client.update_weights(str(tiny_dir), "7")

    asyncio.run(sync())
    body = next(item for item in captured if "model_path" in item)
    parsed = sgl.update_body.validate_python(body)
    assert parsed.model_path == str(tiny_dir) and parsed.weight_version == "7"

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ours_engine = GenerationEngine.load(str(tiny_dir), device="cpu")
    with TestClient(create_app(ours_engine)) as server:
        verdicts = []
        for path in (str(tiny_dir), "s3://bucket/weights/v7", str(tmp_path / "no-such-dir")):
            loader = sgl.DefaultModelLoader(sgl.LoadConfig(load_format=body.get("load_format") or "auto"))
            try:
                folder, files, _ = loader._prepare_weights(path, None, fall_back_to_pt=False)
                theirs = folder == path and bool(files)
            except Exception as exc:  # noqa: BLE001 - the hub download's own error, whichever it is
                theirs = False
                assert path != str(tiny_dir), exc
            answer = server.post("/update_weights_from_disk", json={**body, "model_path": path})
            assert (answer.status_code == 200) == theirs, (path, answer.text)
            if not theirs:
                assert answer.status_code == 400 and answer.json()["success"] is False, path
            verdicts.append(theirs)
    assert verdicts == [True, False, False]


class _StandInTokenizerManager:
    """What SGLang's app calls on ``_global_state.tokenizer_manager`` for /generate and /health, with
    the request steps it runs before the scheduler replayed by SGLang's own functions
    (``GenerateReqInput.normalize_batch_and_arguments``, ``SamplingParams.verify``); the scheduler's
    answer is two tokens per sample in SGLang's output shape."""

    gracefully_exit = False
    is_generation = True

    def __init__(self, server_status, sampling_params_cls, vocab_size: int) -> None:
        self.server_status, self.rid_to_state, self.last_receive_tstamp = server_status, {}, 0.0
        self._params, self._vocab, self.seen = sampling_params_cls, vocab_size, []

    async def generate_request(self, obj, request=None):
        import time

        obj.normalize_batch_and_arguments()
        params = obj.sampling_params if isinstance(obj.sampling_params, list) else [obj.sampling_params]
        for item in params:
            self._params(**item).verify(self._vocab)  # a ValueError is the app's 400
        self.seen.append(obj)
        self.last_receive_tstamp = time.time() + 1.0
        out = {"text": "ab", "output_ids": [1, 2], "meta_info": {
            "id": "r", "finish_reason": {"type": "length"}, "prompt_tokens": 1, "weight_version": "default",
            "output_token_logprobs": [[-0.5, 1, None], [-0.7, 2, None]]}}
        yield out if obj.is_single else [dict(out) for _ in range(obj.batch_size * obj.parallel_sample_num)]


def test_sglangs_own_http_app_serves_the_projects_generate_and_health_requests(sgl, engine, clip, monkeypatch):
    """SGLang's FastAPI app (``entrypoints/http_server.py``: /generate 927-990 with the contract gate at
    937-939, /health 721-800) with a stand-in tokenizer manager, driven by the project's RolloutClient."""
    import sglang.srt.entrypoints.http_server as http_server

    from tests.rollout.test_sglang_conformance import _bodies
    from videop2r.rollout.client import RolloutClient, RolloutError

    manager = _StandInTokenizerManager(http_server.ServerStatus.Up, sgl.SamplingParams, engine.vocab_size)
    monkeypatch.setattr(http_server, "_global_state", http_server._GlobalState(
        tokenizer_manager=manager, template_manager=None, scheduler_info={}))
    # /health reads the launch setting disaggregation_mode (http_server.py 763): a plain server, "null"
    monkeypatch.setattr(http_server, "get_disagg", lambda: SimpleNamespace(disaggregation_mode="null"))
    transport = httpx.ASGITransport(app=http_server.app)

    async def drive() -> None:
        async with RolloutClient(["http://pod:30000"], transport=transport, check_version=False) as client:
            assert await client.health() == {"http://pod:30000": True}
            for name, body in _bodies(engine, clip).items():
                completions = await client.generate(body)
                groups = len(body["sampling_params"]) if isinstance(body["sampling_params"], list) else 1
                assert len(completions) == groups and all(c.output_ids == [1, 2] for c in completions), name
            bad = {"text": "hi", "video_data": {"format": "frames", "frames": "AAAA"}, "sampling_params": {}}
            with pytest.raises(RolloutError, match="video_data|unknown"):
                await client.generate(bad)

    asyncio.run(drive())
    health, *generated = manager.seen
    assert health.input_ids == [0] and len(generated) == 2  # SGLang's own one-token health request
    for request in generated:  # after SGLang's normalisation: one data: URI source list per prompt
        per_prompt = [request.video_data] if request.is_single else request.video_data
        assert all(isinstance(item, list) and item[0].startswith("data:video/") for item in per_prompt)
