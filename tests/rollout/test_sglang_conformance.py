"""Conformance: what the project sends, judged by SGLang 0.5.23's own code (``sglang_side``).

SGLang code run here (paths inside the wheel's ``sglang/``; lines are 0.5.23's):
- ``srt/entrypoints/api_contract.py`` ``generate_contract_error`` (called at ``http_server.py``
  933-939) → ``api/v1/api_types.py`` ``decode_GenerateRequest`` / ``decode_SamplingParams`` /
  ``decode_MediaInput`` (1259, 1413, 2034): the schema gate;
- ``srt/managers/io_struct.py`` ``GenerateReqInput.normalize_batch_and_arguments`` (406; parallel
  sampling 531-560, video_data 722-729);
- ``srt/sampling/sampling_params.py`` ``SamplingParams(**params)``, ``verify`` (252-313);
- ``srt/utils/common.py`` ``load_video`` / ``_normalize_video_input`` (2203-2260) with
  ``srt/utils/video_decoder.py`` ``VideoDecoderWrapper`` (decord backend);
- ``srt/multimodal/processors/qwen_vl.py`` ``preprocess_video`` / ``smart_nframes`` /
  ``smart_resize`` (151-330) under the pod's ``--mm-process-config``.
The HTTP app (with a stand-in tokenizer manager), chat, the weight-update body and the model
loader's rule for ``model_path`` are judged in ``test_sglang_conformance_chat.py``. Not run
anywhere: the HF processor call SGLang makes after ``preprocess_video`` (it needs the model's
processor files), the scheduler and the model forward (GPU).
"""

from __future__ import annotations

import asyncio
import copy

import numpy as np
import pytest
import torch

from tests.rollout import sglang_side
from services.rollout.contract import contract_error
from services.rollout.media_sources import MediaSources
from videop2r import prompting
from videop2r.config import DataConfig
from videop2r.rollout import sample_payload, sampling_params
from videop2r.rollout.media import encode_video_uri
from videop2r.rollout.sglang_release import mm_process_config

pytestmark = pytest.mark.integration

DATA = DataConfig(fps=2.0, min_frames=4, max_frames=8, video_min_pixels=84 * 84, video_max_pixels=84 * 84)
MC = {"problem": "Where does the square go?", "options": ["A. left", "B. right"],
      "problem_type": "multiple choice", "data_type": "video"}


@pytest.fixture(scope="module")
def sgl():
    why = sglang_side.install()
    if why is not None:
        pytest.skip(why)
    sglang_side.activate()
    from sglang.srt.entrypoints.api_contract import generate_contract_error
    from sglang.srt.managers.io_struct import GenerateReqInput
    from sglang.srt.multimodal.processors.qwen_vl import preprocess_video
    from sglang.srt.sampling.sampling_params import SamplingParams
    from sglang.srt.utils.common import load_video

    import sglang.srt.multimodal.processors.qwen_vl as qwen_vl
    import sglang.srt.utils.video_decoder as video_decoder

    # the only patches on the video path: a CPU engine does not pin memory (pin_memory needs a
    # CUDA driver). video_decoder.py 150-157 and qwen_vl.py 311-312 ask is_cpu(), which also wants
    # the SGLANG_USE_CPU_ENGINE import-time path (sgl_kernel, not installable here).
    monkeypatch_env = pytest.MonkeyPatch()
    monkeypatch_env.setattr(video_decoder, "_is_cpu_engine", lambda: True)
    monkeypatch_env.setattr(qwen_vl, "is_cpu", lambda: True)
    yield {"gate": generate_contract_error, "GenerateReqInput": GenerateReqInput, "SamplingParams": SamplingParams,
            "load_video": load_video, "preprocess_video": preprocess_video}
    monkeypatch_env.undo()


class _Clip:
    def __init__(self, frames: np.ndarray, fps: float) -> None:
        self.frames, self.sample_fps = frames, fps


class _Sample:
    record = MC

    def __init__(self, clip: np.ndarray) -> None:
        self.video = _Clip(clip, 2.0)
        self.image = None


def _bodies(engine, clip) -> dict[str, dict]:
    """Every /generate body the project builds: training (G per-sample seeds), evaluation (greedy)."""
    from videop2r.config import RolloutConfig

    config = RolloutConfig(n=4, max_new_tokens=16)
    train_params = sampling_params(config, blocked_token_ids=engine.blocked_ids)
    eval_params = sampling_params(None, n=1, temperature=0.0, top_p=1.0, max_new_tokens=16)
    return {
        "training": sample_payload(engine.processor, _Sample(clip), train_params, rid="3-0", seed=17),
        "evaluation": sample_payload(engine.processor, _Sample(clip), eval_params, rid="eval-0"),
    }


def sglang_verdict(sgl, body: dict, vocab_size: int) -> str | None:
    """SGLang's answer to `body` up to tokenisation: None (accepted) or the error text."""
    error = sgl["gate"](body)
    if error is not None:
        return error
    try:
        request = sgl["GenerateReqInput"](**copy.deepcopy(body))
        request.normalize_batch_and_arguments()
        params = request.sampling_params if isinstance(request.sampling_params, list) else [request.sampling_params]
        for item in params:
            sp = sgl["SamplingParams"](**item)
            sp.verify(vocab_size)
    except (ValueError, TypeError) as exc:
        return str(exc) or type(exc).__name__
    return None


def test_every_request_the_project_builds_passes_sglangs_gate_normalisation_and_verify(sgl, engine, clip):
    for name, body in _bodies(engine, clip).items():
        assert sglang_verdict(sgl, body, engine.vocab_size) is None, name
        request = sgl["GenerateReqInput"](**copy.deepcopy(body))
        request.normalize_batch_and_arguments()
        # after SGLang's normalisation the Qwen-VL loader iterates a list of sources per prompt
        per_prompt = [request.video_data] if request.is_single else request.video_data
        assert all(isinstance(item, list) and len(item) == 1 and item[0].startswith("data:video/")
                   for item in per_prompt), name
        assert all(text.count("<|vision_start|><|video_pad|><|vision_end|>") == 1
                   for text in (request.text if isinstance(request.text, list) else [request.text])), name
    seeds = [params["sampling_seed"] for params in _bodies(engine, clip)["training"]["sampling_params"]]
    assert len(set(seeds)) == len(seeds) == 4  # G distinct seeds: no collapsed GRPO group


def test_sglang_decodes_and_samples_exactly_the_learners_frames(sgl, engine, clip):
    """SGLang's load_video + Qwen-VL preprocess_video of our data: URI, under the pod's video config,
    give the learner's frames bit for bit, hence the learner's pixel values and grid; the embedded
    server computes the same."""
    uri = encode_video_uri(clip, 2.0)
    reader = sgl["load_video"](uri, use_gpu=False)
    video, metadata = asyncio.run(sgl["preprocess_video"](reader, video_config=mm_process_config(DATA)["video"]))
    frames = video.permute(0, 2, 3, 1).contiguous().numpy()
    assert frames.dtype == np.uint8 and np.array_equal(frames, clip)
    assert metadata["fps"] == pytest.approx(2.0)
    learner = prompting.encode_video(engine.processor, clip, 2.0)
    from_sglang = prompting.encode_video(engine.processor, frames, len(frames) / metadata["duration"])
    assert torch.equal(from_sglang["pixel_values_videos"], learner["pixel_values_videos"])
    assert torch.equal(from_sglang["video_grid_thw"], learner["video_grid_thw"])
    embedded, fps = MediaSources(DATA).video(uri)
    assert np.array_equal(embedded, frames) and fps == pytest.approx(2.0)


def test_sglang_default_video_config_would_resize_the_demo_frames(sgl, clip):
    """Why pods need the config: with 0.5.23's defaults (min 128·28² pixels) an 84×84 frame is upscaled,
    and the embedded server, mirroring it, upscales to the same size."""
    reader = sgl["load_video"](encode_video_uri(clip, 2.0), use_gpu=False)
    video, _ = asyncio.run(sgl["preprocess_video"](reader, video_config={}))
    ours, _ = MediaSources(video_config={}).video(encode_video_uri(clip, 2.0))
    assert tuple(video.shape[2:]) == ours.shape[1:3] != clip.shape[1:3]


@pytest.mark.parametrize("source", ["s3://bucket/clip.mp4", "/no/such/dir/clip.mp4"])
def test_sources_sglang_cannot_read_are_refused_by_both(sgl, source):
    with pytest.raises(ValueError):
        sgl["load_video"](source, use_gpu=False)
    with pytest.raises(ValueError):
        MediaSources(DATA).video(source)


# A differential corpus for the schema gate: SGLang's decode_GenerateRequest and the embedded
# server's services.rollout.contract must give the same verdict (and the same text) on each.
GOOD = {"text": "hi", "sampling_params": {"max_new_tokens": 4}}
CORPUS = [
    GOOD,
    {**GOOD, "video_data": ["data:video/quicktime;base64,AAAA"]},
    {**GOOD, "video_data": [["data:x"], ["data:y"]], "text": ["a", "b"]},
    {**GOOD, "video_data": "data:x"},
    {**GOOD, "video_data": [None]},
    {**GOOD, "video_data": {"url": "data:x", "fps": 2.0}},
    {**GOOD, "video_data": {"format": "frames", "frames": "AAAA", "fps": 2.0}},
    {**GOOD, "video_data": [{"url": "x", "bogus": 1}]},
    {**GOOD, "video_data": 7},
    {**GOOD, "video_data": [3]},
    {**GOOD, "sampling_params": {"temperatur": 0.5}},
    {**GOOD, "sampling_params": {"temperature": "0.7"}},
    {**GOOD, "sampling_params": {"temperature": 1}},
    {**GOOD, "sampling_params": {"max_new_tokens": 4.0}},
    {**GOOD, "sampling_params": {"ignore_eos": 1}},
    {**GOOD, "sampling_params": {"stop": ["a", 3]}},
    {**GOOD, "sampling_params": {"stop_token_ids": [1, "2"]}},
    {**GOOD, "sampling_params": {"logit_bias": {"5": "x"}}},
    {**GOOD, "sampling_params": {"sampling_seed": 3, "n": 2}},
    {**GOOD, "sampling_params": [{"n": 1}, {"n": 1, "top_k": "5"}]},
    {**GOOD, "sampling_params": "hot"},
    {**GOOD, "sampling_params": {}},
    {**GOOD, "bogus_top_level": 1},
    {**GOOD, "return_logprob": "yes"},
    {**GOOD, "return_logprob": [True, 1]},
    {**GOOD, "logprob_start_len": 1.5},
    {**GOOD, "rid": 5},
    {**GOOD, "text": ["a", 1]},
    {**GOOD, "input_ids": [[1, 2], [3, "4"]]},
    {**GOOD, "stream": "no"},
    {**GOOD, "text": "x" * 100_000},
]


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_differential_schema_gate_agrees_with_sglang(sgl, index):
    body = CORPUS[index]
    assert contract_error(body) == sgl["gate"](body), body


SAMPLING_CORPUS = [
    {"max_new_tokens": 2, "min_new_tokens": 3},
    {"max_new_tokens": -1},
    {"temperature": -0.5},
    {"top_p": 0.0},
    {"top_p": 1.5},
    {"min_p": 2.0},
    {"n": 1, "sampling_seed": 5},
    {"logit_bias": {"100000": 1.0}},
    {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 8},
]


@pytest.mark.parametrize("index", range(len(SAMPLING_CORPUS)))
def test_differential_sampling_params_verdict_agrees_with_sglang(sgl, engine, index):
    from services.rollout.jobs import RequestError, sampling_options

    params = SAMPLING_CORPUS[index]
    theirs = sglang_verdict(sgl, {"text": "hi", "sampling_params": params}, engine.vocab_size)
    try:
        sampling_options(params, engine.vocab_size)
        ours = None
    except RequestError as exc:
        ours = str(exc)
    assert (ours is None) == (theirs is None), (params, ours, theirs)
