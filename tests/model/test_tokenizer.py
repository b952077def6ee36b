"""The offline tokenizer: Qwen2.5-VL's special tokens, method §1 tags as single tokens, lossless text."""

from __future__ import annotations

import pytest

from videop2r.model.tokenizer import SPECIAL_TOKENS, TEMPLATE_TAGS, train_tokenizer, vision_token_ids

CORPUS = ["What colour is the moving square?", "<observation>I see a red square.</observation>"] * 30


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CORPUS, vocab_size=320)


def test_special_tokens_and_tags_are_single_tokens(tokenizer):
    for token in (*SPECIAL_TOKENS, *TEMPLATE_TAGS):
        ids = tokenizer.encode(token, add_special_tokens=False)
        assert len(ids) == 1, token
        assert tokenizer.convert_ids_to_tokens(ids[0]) == token
    assert SPECIAL_TOKENS.index("<|endoftext|>") == tokenizer.convert_tokens_to_ids("<|endoftext|>") == 0
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert len(tokenizer) <= 320


def test_tags_survive_skip_special_tokens_but_chat_tokens_do_not(tokenizer):
    text = "<observation>red</observation><think>so A</think><answer>A</answer>"
    ids = tokenizer.encode(text + "<|im_end|>", add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


@pytest.mark.parametrize("text", ["plain ascii 123", "ünïcödé — 视频 🙂", "  spaces\n\nand\ttabs ", ""])
def test_any_text_round_trips(tokenizer, text):
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def test_training_is_deterministic(tokenizer):
    again = train_tokenizer(CORPUS, vocab_size=320)
    sample = "What colour is the square moving left?"
    assert again.encode(sample) == tokenizer.encode(sample)


def test_vocab_below_the_fixed_tokens_is_refused():
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(CORPUS, vocab_size=100)


def test_vision_token_ids_lists_the_placeholders(tokenizer):
    ids = vision_token_ids(tokenizer)
    names = set(tokenizer.convert_ids_to_tokens(ids))
    assert names == {"<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"}
