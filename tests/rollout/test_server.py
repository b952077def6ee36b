"""The embedded server over loopback HTTP: SGLang's paths and fields, bad input, weights, batching."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import shutil

import av
import httpx
import numpy as np
import pytest
import torch

from services.rollout.app import create_app
from services.rollout.engine import GenerationEngine
from services.rollout.media_sources import MediaSources
from videop2r import prompting
from videop2r.config import DataConfig
from videop2r.model import load_model, load_processor
from videop2r.rollout.media import encode_video_uri

pytestmark = pytest.mark.integration


def mp4_bytes(frames: np.ndarray, fps: int = 8) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server_engine(tiny_dir):
    """An engine of this module's own: the weight tests below change its weights."""
    model = load_model(tiny_dir, device="cpu")
    return GenerationEngine(model, load_processor(tiny_dir), model_path=str(tiny_dir))


@pytest.fixture(scope="module")
def url(server_engine, thread_server):
    media = MediaSources(DataConfig(video_min_pixels=84 * 84, video_max_pixels=84 * 84, fps=2.0))
    app = create_app(server_engine, media=media, served_model_name="tiny", max_batch_rows=32)
    with thread_server(app) as server:
        yield server.url


@pytest.fixture
def http(url):
    with httpx.Client(base_url=url, timeout=60) as client:
        yield client


def body_for(video_prompt, **sampling):
    inputs, frames, fps = video_prompt
    return {"input_ids": inputs["input_ids"][0].tolist(), "video_data": [encode_video_uri(frames, fps)],
            "sampling_params": {"max_new_tokens": 8, **sampling}, "return_logprob": True}


def test_info_endpoints(http):
    assert http.get("/health").status_code == 200
    info = http.get("/get_model_info").json()
    assert info["is_generation"] is True and info["model_type"] == "qwen2_5_vl"
    assert info["weight_version"] == http.get("/get_weight_version").json()["weight_version"]
    assert http.get("/model_info").json() == info
    models = http.get("/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "tiny"
    assert http.get("/health_generate").status_code == 200


def test_generate_returns_sglang_results_whose_logprobs_the_learner_reproduces(http, video_prompt, server_engine):
    inputs, _, _ = video_prompt
    out = http.post("/generate", json=body_for(video_prompt, n=3, temperature=1.0, ignore_eos=True)).json()
    assert isinstance(out, list) and len(out) == 3
    for item in out:
        meta = item["meta_info"]
        assert set(meta) >= {"id", "finish_reason", "prompt_tokens", "completion_tokens", "weight_version",
                             "output_token_logprobs", "e2e_latency"}
        assert meta["finish_reason"] == {"type": "length", "length": 8}
        assert meta["prompt_tokens"] == inputs["input_ids"].shape[1] and meta["completion_tokens"] == 8
        assert [entry[1] for entry in meta["output_token_logprobs"]] == item["output_ids"]
        full = prompting.append_response(inputs, item["output_ids"])
        with torch.no_grad():
            logits = server_engine.model(**full).logits[0, inputs["input_ids"].shape[1] - 1:-1].float()
        logits[:, server_engine.blocked_ids] = float("-inf")
        expected = torch.log_softmax(logits, -1).gather(1, torch.tensor(item["output_ids"])[:, None])[:, 0]
        assert torch.allclose(torch.tensor([entry[0] for entry in meta["output_token_logprobs"]]), expected, atol=1e-4)
    single = http.post("/generate", json=body_for(video_prompt, n=1)).json()
    assert isinstance(single, dict) and len(single["output_ids"]) <= 8


def test_batch_of_prompts_with_per_prompt_media_and_params(http, video_prompt, engine):
    inputs, frames, fps = video_prompt
    text_ids = prompting.build_chat_inputs(engine.processor, prompting.chat_messages("Hi.", None))["input_ids"][0]
    body = {"input_ids": [inputs["input_ids"][0].tolist(), text_ids.tolist()],
            "video_data": [[encode_video_uri(frames, fps)], None],
            "sampling_params": [{"max_new_tokens": 3, "n": 2, "ignore_eos": True},
                                {"max_new_tokens": 5, "ignore_eos": True}],
            "rid": ["video", "text"]}
    out = http.post("/generate", json=body).json()
    assert [item["meta_info"]["id"] for item in out] == ["video_0", "video_1", "text"]
    assert [len(item["output_ids"]) for item in out] == [3, 3, 5]
    assert "output_token_logprobs" not in out[0]["meta_info"]


def test_text_prompt_with_a_video_file_source_is_decoded_by_the_server(http, tmp_path, clip, engine):
    path = tmp_path / "clip.mp4"
    path.write_bytes(mp4_bytes(np.repeat(clip, 2, axis=0)))  # 16 frames at 8 fps = 2 s -> 4 frames at 2 fps
    text = engine.processor.apply_chat_template(prompting.chat_messages("What moves?", "video"), tokenize=False,
                                                add_generation_prompt=True)
    by_path = http.post("/generate", json={"text": text, "video_data": str(path),
                                           "sampling_params": {"max_new_tokens": 2, "temperature": 0}}).json()
    by_b64 = http.post("/generate", json={"text": text, "video_data": base64.b64encode(path.read_bytes()).decode(),
                                          "sampling_params": {"max_new_tokens": 2, "temperature": 0}}).json()
    text_tokens = len(engine.tokenizer(text, add_special_tokens=False)["input_ids"])
    # 4 frames of 84x84 -> grid (2, 6, 6) -> 18 video tokens replace the one placeholder
    assert by_path["meta_info"]["prompt_tokens"] == text_tokens - 1 + 18
    assert by_path["output_ids"] == by_b64["output_ids"]
    # both sources stay decoded in the cache until /flush_cache
    assert "0 decoded media entries dropped" not in http.post("/flush_cache").text
    assert "0 decoded media entries dropped" in http.get("/flush_cache").text


# (change to a valid body, error shape, text in the message). Shapes as SGLang 0.5.23 answers
# (http_server.py): "gate" {"error": str} from the schema check; "processing" {"error": {"message"}};
# "validation" the OpenAI error object.
@pytest.mark.parametrize("change, shape, message", [
    ({"sampling_params": {"max_new_tokens": 2, "min_new_tokens": 3}}, "processing", "min_new_tokens"),
    ({"sampling_params": {"max_new_tokens": 100000}}, "processing", "exceeds the model's"),
    ({"sampling_params": {"stop_token_ids": [100000]}}, "processing", "outside the vocabulary"),
    ({"sampling_params": {"temperatur": 0.5}}, "gate", "unknown field `temperatur`"),
    ({"sampling_params": {"temperature": "0.7"}}, "gate", 'invalid type: string "0.7", expected f64'),
    ({"sampling_params": {"ignore_eos": 1}}, "gate", "invalid type: integer `1`, expected a boolean"),
    ({"sampling_params": {"logit_bias": {"x": 1.0}}}, "processing", "logit_bias"),
    ({"stream": True}, "validation", "stream"),  # SGLang streams; this server refuses it by name
    ({"top_logprobs_num": 5}, "validation", "top_logprobs_num"),
    ({"input_ids": [1, 2, 100000], "video_data": None}, "processing", "outside the vocabulary"),
    ({"video_data": [{"url": "x", "frames": "%%%"}]}, "gate", "unknown field `frames`"),
    ({"video_data": {"format": "frames", "frames": "%%%", "fps": 2.0}}, "gate", "unknown field `format`"),
    ({"video_data": [{"url": "data:video/quicktime;base64,AAAA"}]}, "processing", "must be a string"),
    ({"video_data": ["/no/such/file.mp4"]}, "processing", "is not a data: URI"),
    ({"video_data": ["s3://bucket/clip.mp4"]}, "processing", "s3://"),
    ({"video_data": [encode_video_uri(np.zeros((2, 28, 28, 3), np.uint8), 2.0)] * 2}, "processing", "pad tokens"),
    ({"video_data": None}, "processing", "pad tokens"),
    ({"sampling_params": [{"n": 1}, {"n": 2}]}, "processing", "sampling_params has 2 entries for 1 prompts"),
    ({"input_ids": "abc"}, "validation", "input_ids"),  # the dataclass body check runs before the gate
])
def test_bad_requests_are_400_with_sglangs_error_shape(http, video_prompt, change, shape, message):
    body = {**body_for(video_prompt), **change}
    body = {key: value for key, value in body.items() if value is not None}  # None: leave the field out
    response = http.post("/generate", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    if shape == "gate":
        text = error["error"]
        assert isinstance(text, str)
    elif shape == "processing":
        text = error["error"]["message"]
    else:
        assert error["object"] == "error" and error["code"] == 400
        text = error["message"]
    assert message in text, text
    assert http.get("/health").status_code == 200  # and the server stays up


def test_unknown_top_level_fields_are_ignored_as_sglang_does(http, video_prompt):
    assert http.post("/generate", json={**body_for(video_prompt), "bogus_field": 1}).status_code == 200


def test_chat_completions_stand_in_for_a_judge(http, clip):
    body = {"model": "tiny", "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Is the square red? Answer Yes or No."}],
            "max_tokens": 6, "temperature": 0, "n": 2, "logprobs": True}
    out = http.post("/v1/chat/completions", json=body).json()
    assert out["object"] == "chat.completion" and len(out["choices"]) == 2
    choice = out["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] in ("stop", "length")
    assert len(choice["logprobs"]["content"]) <= 6
    assert out["usage"]["total_tokens"] == out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"]
    assert out["choices"][0]["message"]["content"] == out["choices"][1]["message"]["content"]  # greedy
    data_uri = "data:video/mp4;base64," + base64.b64encode(mp4_bytes(np.repeat(clip, 2, axis=0))).decode()
    with_video = {"messages": [{"role": "user", "content": [
        {"type": "video_url", "video_url": {"url": data_uri}}, {"type": "text", "text": "What moves?"}]}],
        "max_tokens": 3}
    answer = http.post("/v1/chat/completions", json=with_video).json()
    assert answer["usage"]["prompt_tokens"] > 18
    bad = http.post("/v1/chat/completions", json={"messages": [], "max_tokens": 3})
    assert bad.status_code == 400 and "messages" in bad.json()["message"]
    assert http.post("/v1/chat/completions", json={**body, "stream": True}).status_code == 400


def test_concurrent_requests_share_batches(url, video_prompt):
    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            before = (await client.get("/get_server_info")).json()["batches"]
            responses = await asyncio.gather(*(
                client.post("/generate", json=body_for(video_prompt, n=2, ignore_eos=True, max_new_tokens=16))
                for _ in range(6)))
            after = (await client.get("/get_server_info")).json()["batches"]
            return responses, after - before

    responses, batches = asyncio.run(fire())
    assert all(response.status_code == 200 for response in responses)
    assert all(len(response.json()) == 2 for response in responses)
    assert batches < 6


def test_weights_reload_between_batches_and_results_carry_the_version(http, video_prompt, tiny_dir, tmp_path):
    from videop2r.model import init_model

    greedy = body_for(video_prompt, temperature=0, ignore_eos=True)
    before = http.post("/generate", json=greedy).json()
    other = init_model("tiny", tmp_path / "step-7", seed=7)
    ok = http.post("/update_weights_from_disk", json={"model_path": str(other), "weight_version": "7"})
    assert ok.status_code == 200 and ok.json()["success"] is True
    after = http.post("/generate", json=greedy).json()
    assert after["meta_info"]["weight_version"] == "7" and http.get("/get_weight_version").json()["weight_version"] == "7"
    assert after["output_ids"] != before["output_ids"]
    assert 'videop2r_rollout_weight_version 7.0' in http.get("/metrics").text

    # failures keep the served weights and version
    missing = http.post("/update_weights_from_disk", json={"model_path": str(tmp_path / "nope"), "weight_version": "8"})
    assert missing.status_code == 400 and missing.json()["success"] is False and "nope" in missing.json()["message"]
    shallow = tmp_path / "shallow"
    shutil.copytree(other, shallow)
    config = json.loads((shallow / "config.json").read_text())
    config["text_config"]["num_hidden_layers"] = 2
    (shallow / "config.json").write_text(json.dumps(config))
    mismatch = http.post("/update_weights_from_disk", json={"model_path": str(shallow), "weight_version": "9"})
    assert mismatch.status_code == 400 and "num_hidden_layers" in mismatch.json()["message"]
    again = http.post("/generate", json=greedy).json()
    assert again["output_ids"] == after["output_ids"] and again["meta_info"]["weight_version"] == "7"
    assert http.post("/update_weights_from_disk", json={"model_path": "x", "bad": 1}).status_code == 400
    # back to the session weights for the other tests of this module
    assert http.post("/update_weights_from_disk", json={"model_path": str(tiny_dir), "weight_version": "0"}).json()[
        "success"]


def test_metrics_are_catalogued(http):
    from videop2r.metrics import CATALOG

    lines = [line for line in http.get("/metrics").text.splitlines() if line.startswith("videop2r_")]
    families = set()
    for line in lines:
        name = line.split("{")[0].split(" ")[0]
        for suffix in ("_bucket", "_count", "_sum", "_created", "_total"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        families.add(name)
    assert families and families <= {name.removesuffix("_total") for name in CATALOG}
    assert any(line.startswith('videop2r_rollout_requests_total{status="400"}') for line in lines)
    assert any(line.startswith("videop2r_rollout_generated_tokens_total") for line in lines)


def test_sglang_format_carries_the_exact_learner_frames(http, tmp_path, clip, engine):
    """sample_payload's text + lossless data: URI gives the server the learner's frames: the prompt
    has the learner's token count and the greedy output equals the one from the exact input_ids."""
    from videop2r.data.video import load_video
    from videop2r.rollout import sample_payload

    path = tmp_path / "clip.mp4"
    path.write_bytes(mp4_bytes(np.repeat(clip, 2, axis=0)))

    class Sample:
        record = {"problem": "Where does the square go?", "options": ["left", "right"],
                  "problem_type": "multiple choice", "data_type": "video"}
        video = load_video(path, DataConfig(video_min_pixels=84 * 84, video_max_pixels=84 * 84, fps=2.0))
        image = None

    sampling = {"max_new_tokens": 6, "temperature": 0, "ignore_eos": True}
    body = sample_payload(engine.processor, Sample(), sampling)
    assert set(body) >= {"text", "video_data", "sampling_params"} and "input_ids" not in body
    assert "<|vision_start|><|video_pad|><|vision_end|>" in body["text"]
    assert isinstance(body["video_data"], list) and body["video_data"][0].startswith("data:video/quicktime;base64,")
    learner = prompting.build_inputs(engine.processor, Sample.record, Sample.video)
    exact = {"input_ids": learner["input_ids"][0].tolist(), "sampling_params": sampling,
             "video_data": body["video_data"]}
    first, second = (http.post("/generate", json=item).json() for item in (body, exact))
    assert first["meta_info"]["prompt_tokens"] == learner["input_ids"].shape[1]
    assert first["output_ids"] == second["output_ids"]
    with pytest.raises(ValueError, match="s3://"):
        sample_payload(engine.processor, Sample(), sampling, source="s3://bucket/clip.mp4")


def test_per_sample_seeds_give_distinct_reproducible_samples(http, engine, clip):
    from videop2r.rollout import sample_payload

    class Sample:
        record = {"problem": "Where does the square go?", "options": ["left", "right"],
                  "problem_type": "multiple choice", "data_type": "video"}
        video = (clip, 2.0)
        image = None

    Sample.video = type("Clip", (), {"frames": clip, "sample_fps": 2.0})()
    sampling = {"max_new_tokens": 8, "temperature": 1.0, "ignore_eos": True, "n": 4}
    body = sample_payload(engine.processor, Sample(), sampling, rid="p", seed=11)
    assert [params["n"] for params in body["sampling_params"]] == [1, 1, 1, 1]
    assert len({params["sampling_seed"] for params in body["sampling_params"]}) == 4
    assert body["video_data"] == [[body["video_data"][0][0]]] * 4
    first, again = (http.post("/generate", json=body).json() for _ in range(2))
    assert [item["meta_info"]["id"] for item in first] == ["p-0", "p-1", "p-2", "p-3"]
    assert [item["output_ids"] for item in first] == [item["output_ids"] for item in again]
    assert len({tuple(item["output_ids"]) for item in first}) > 1
