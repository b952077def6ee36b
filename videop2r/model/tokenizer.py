"""An offline byte-level BPE tokenizer with Qwen2.5-VL's special tokens and the method §1 tags.

`train_tokenizer(texts, vocab_size)` learns merges from a corpus (the synthetic QA set plus the
prompt template), with the same normaliser / pre-tokeniser / decoder as Qwen2's tokenizer, and
returns a `PreTrainedTokenizerFast` that `save_pretrained` writes as an ordinary HF tokenizer.

Ids: the Qwen2.5-VL special tokens come first (0..13, `<|endoftext|>` = 0), then the template tags
`<observation>` ... `</answer>` as single, *non-special* added tokens (so they survive
`skip_special_tokens=True` decoding, which reward parsing relies on), then the 256 byte symbols and
the learned merges.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# Qwen2.5-VL's special tokens, in Qwen's order (names matter: the processor and the chat template
# look them up by string).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# method §1 template tags, one token each in our tokenizer (real Qwen checkpoints split them).
TEMPLATE_TAGS: tuple[str, ...] = (
    "<observation>",
    "</observation>",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
)

# Qwen2's pre-tokenisation split: contractions, letter runs, single digits, punctuation runs,
# newlines and whitespace.
_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"


def chat_template() -> str:
    """The Jinja chat template saved with offline checkpoints (Qwen2.5-VL's rendering)."""
    return (_TEMPLATE_DIR / "chat_template.jinja").read_text()


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512, min_frequency: int = 2):
    """Learn a byte-level BPE tokenizer from `texts`.

    Returns a `transformers.PreTrainedTokenizerFast` with eos `<|im_end|>`, pad `<|endoftext|>`,
    the chat template set, and `len(tokenizer) <= vocab_size` (smaller if the corpus runs out of
    merges). Deterministic for the same corpus and arguments.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    floor = len(SPECIAL_TOKENS) + len(TEMPLATE_TAGS) + 256
    if vocab_size < floor:
        raise ValueError(f"vocab_size {vocab_size} is below the {floor} tokens every tokenizer needs")

    tokenizer = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(TEMPLATE_TAGS),
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_without_tags(texts), trainer=trainer)
    # Tags after training so that no merge is spent on them; normalized=False keeps them literal.
    tokenizer.add_tokens([AddedToken(tag, normalized=False, special=False) for tag in TEMPLATE_TAGS])

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        model_max_length=32768,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = chat_template()
    return fast


def _without_tags(texts: Iterable[str]) -> Iterable[str]:
    """The corpus with template tags removed: they become whole tokens anyway."""
    for text in texts:
        for tag in TEMPLATE_TAGS:
            text = text.replace(tag, " ")
        yield text


# Tokens that only the processor may place: a sampled one makes the learner's re-forward fail
# ("video features and tokens do not match").
VISION_TOKENS: tuple[str, ...] = (
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


def vision_token_ids(tokenizer) -> list[int]:  # noqa: ANN001 - any HF tokenizer
    """Ids of the vision placeholder tokens present in `tokenizer` (never to be sampled)."""
    ids = []
    for token in VISION_TOKENS:
        value = tokenizer.convert_tokens_to_ids(token)
        if isinstance(value, int) and value >= 0 and value != tokenizer.unk_token_id:
            ids.append(value)
    return sorted(set(ids))
