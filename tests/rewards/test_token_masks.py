"""Token masks against real tokenizers: a byte-level BPE (like the tiny model's) and BERT WordPiece."""

from __future__ import annotations

import numpy as np
import pytest

from videop2r.rewards import (
    HFTokenizer,
    WhitespaceTokenizer,
    load_tokenizer,
    segment_response,
    token_masks,
    token_masks_for_ids,
)

TEMPLATE = "<observation> I see a red ball. </observation>\n<think> Red, so B. </think>\n<answer> B </answer>"


def tokens_of(tokenizer: HFTokenizer, text: str, mask: np.ndarray) -> list[str]:
    return [text[start:end] for (start, end), chosen in zip(tokenizer.offsets(text), mask) if chosen]


def test_whitespace_masks_hand_counted() -> None:
    masks = token_masks(TEMPLATE, WhitespaceTokenizer())
    # <observation> I see a red ball. </observation> | <think> Red, so B. </think> <answer> B </answer>
    assert masks.perception.tolist() == [True] * 7 + [False] * 8
    assert masks.reasoning.tolist() == [False] * 7 + [True] * 8
    assert (masks.perception_length, masks.reasoning_length, masks.n_tokens) == (7, 8, 15)


def test_bpe_masks_follow_the_spans(bpe_tokenizer: HFTokenizer) -> None:
    masks = token_masks(TEMPLATE, bpe_tokenizer)
    perception_tokens = tokens_of(bpe_tokenizer, TEMPLATE, masks.perception)
    reasoning_tokens = tokens_of(bpe_tokenizer, TEMPLATE, masks.reasoning)
    assert perception_tokens[0] == "<observation>" and perception_tokens[-1] == "</observation>"
    # The newline between the segments is a token of its own and belongs to the reasoning.
    assert reasoning_tokens[0].isspace() and reasoning_tokens[1] == "<think>"
    assert reasoning_tokens[-1] == "</answer>"
    assert "".join(perception_tokens) == segment_response(TEMPLATE).perception.of(TEMPLATE)
    assert "".join(reasoning_tokens) == segment_response(TEMPLATE).reasoning.of(TEMPLATE)
    assert not (masks.perception & masks.reasoning).any()


def test_trailing_text_is_in_no_mask(bpe_tokenizer: HFTokenizer) -> None:
    text = TEMPLATE + " and some chatter after"
    masks = token_masks(text, bpe_tokenizer)
    outside = ~(masks.perception | masks.reasoning)
    assert "".join(tokens_of(bpe_tokenizer, text, outside)) == " and some chatter after"


def test_masks_for_generated_ids_match_the_text_path(bpe_tokenizer: HFTokenizer) -> None:
    text = TEMPLATE.replace("red ball", "rød bål 日本 😀")
    ids = bpe_tokenizer.encode(text)
    decoded, segments, masks = token_masks_for_ids(ids, bpe_tokenizer)
    assert decoded == text
    assert segments.answer == "B"
    expected = token_masks(text, bpe_tokenizer)
    assert masks.perception.tolist() == expected.perception.tolist()
    assert masks.reasoning.tolist() == expected.reasoning.tolist()


def test_ids_that_are_not_the_canonical_tokenisation(bpe_tokenizer: HFTokenizer) -> None:
    # A sampler may emit "<think>" byte by byte instead of as one token: masks follow the ids.
    ids = bpe_tokenizer.encode("<observation>a</observation>")
    ids += [i for ch in "<think>" for i in bpe_tokenizer.encode(ch)]
    ids += bpe_tokenizer.encode("b</think><answer>C</answer>")
    decoded, segments, masks = token_masks_for_ids(ids, bpe_tokenizer)
    assert decoded == "<observation>a</observation><think>b</think><answer>C</answer>"
    assert masks.n_tokens == len(ids)
    assert masks.perception_length == 3
    assert masks.reasoning_length == len(ids) - 3
    assert segments.answer == "C"


def test_wordpiece_ids_streamed_and_exact_decoding_agree(minilm_tokenizer: HFTokenizer) -> None:
    # WordPiece decoding lower-cases, joins "##" pieces and spaces tokens apart; the linear path
    # still agrees with exact prefix decoding.
    ids = minilm_tokenizer.encode(TEMPLATE + " unbelievably, ok")
    decoded, segments, masks = token_masks_for_ids(ids, minilm_tokenizer)
    assert decoded.startswith("< observation > i see a red ball. < / observation >")
    streamed = minilm_tokenizer._streamed_starts(ids, decoded)
    assert streamed is not None
    assert streamed.tolist() == minilm_tokenizer._exact_starts(ids, decoded).tolist()
    # Its decoded text spells no tags ("< observation >"), so no token belongs to a process.
    assert masks.n_tokens == len(ids) and masks.perception_length == masks.reasoning_length == 0


def test_exact_prefix_fallback_gives_the_same_masks(bpe_tokenizer: HFTokenizer, monkeypatch) -> None:
    ids = bpe_tokenizer.encode(TEMPLATE.replace("red", "rød 😀"))
    fast = token_masks_for_ids(ids, bpe_tokenizer)
    monkeypatch.setattr(HFTokenizer, "_streamed_starts", lambda self, ids, text: None)
    slow = token_masks_for_ids(ids, bpe_tokenizer)
    assert fast[0] == slow[0]
    assert fast[2].perception.tolist() == slow[2].perception.tolist()
    assert fast[2].reasoning.tolist() == slow[2].reasoning.tolist()


def test_wordpiece_masks(minilm_tokenizer: HFTokenizer) -> None:
    masks = token_masks(TEMPLATE, minilm_tokenizer)
    perception_tokens = tokens_of(minilm_tokenizer, TEMPLATE, masks.perception)
    # WordPiece splits "<observation>" into "<", "observation", ">": all three are perception.
    assert perception_tokens[:3] == ["<", "observation", ">"]
    assert perception_tokens[-4:] == ["<", "/", "observation", ">"]
    assert tokens_of(minilm_tokenizer, TEMPLATE, masks.reasoning)[:3] == ["<", "think", ">"]
    assert masks.perception_length + masks.reasoning_length == masks.n_tokens


def test_load_tokenizer_from_a_directory_and_errors(bpe_tokenizer_dir, tmp_path) -> None:
    assert isinstance(load_tokenizer(str(bpe_tokenizer_dir)), HFTokenizer)
    assert isinstance(load_tokenizer("whitespace"), WhitespaceTokenizer)
    with pytest.raises(ValueError, match="no tokenizer.json"):
        load_tokenizer(str(tmp_path))
    with pytest.raises(ValueError, match="no such file"):
        load_tokenizer(str(tmp_path / "missing"))
    broken = tmp_path / "broken.json"
    broken.write_text("{not a tokenizer")
    with pytest.raises(ValueError, match="cannot load"):
        load_tokenizer(str(broken))


def test_padding_and_truncation_are_off(minilm_tokenizer: HFTokenizer) -> None:
    # The shipped MiniLM tokenizer.json pads to 128 and truncates; lengths must not see either.
    long_text = "<observation>" + " word" * 1000 + "</observation>"
    # 1000 words + "<", "observation", ">" + "<", "/", "observation", ">"
    assert token_masks(long_text, minilm_tokenizer).perception_length == 1000 + 7
    assert minilm_tokenizer.offsets("a b").shape == (2, 2)


def test_transformers_style_objects_are_accepted(bpe_tokenizer: HFTokenizer) -> None:
    class FastTokenizerLike:
        backend_tokenizer = bpe_tokenizer.backend

    wrapped = load_tokenizer(FastTokenizerLike())
    assert wrapped.offsets(TEMPLATE).tolist() == bpe_tokenizer.offsets(TEMPLATE).tolist()


def test_whitespace_table_covers_all_of_unicode() -> None:
    from videop2r.rewards.token_offsets import _LAST_WHITESPACE

    assert not any(chr(c).isspace() for c in range(_LAST_WHITESPACE + 1, 0x110000))
