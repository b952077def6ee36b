"""Sizes of the offline Qwen2.5-VL models `videop2r model init` builds from scratch.

``tiny`` is the configuration measured to learn the synthetic task on 2 CPU cores in minutes
(notes/tiny-model-learning.md, 3.3 M parameters); ``small`` is a ~25 M-parameter step up for
longer CPU runs. Both use Qwen2.5-VL's architecture unchanged (M-RoPE, windowed vision
attention, 2×2 patch merger), so every code path is the one a real 3B/7B checkpoint takes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelPreset:
    name: str
    # -- tokenizer
    vocab_size: int
    # -- language model
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    mrope_section: tuple[int, int, int]
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    # -- vision tower
    vision_depth: int
    vision_hidden_size: int
    vision_num_heads: int
    vision_intermediate_size: int
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    window_size: int = 112
    fullatt_block_indexes: tuple[int, ...] = (1,)
    tokens_per_second: int = 2

    def __post_init__(self) -> None:
        head_dim = self.hidden_size // self.num_attention_heads
        if sum(self.mrope_section) * 2 != head_dim:
            raise ValueError(f"{self.name}: mrope_section {self.mrope_section} must sum to head_dim/2 = {head_dim // 2}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"{self.name}: attention heads must be a multiple of KV heads")
        if any(index >= self.vision_depth for index in self.fullatt_block_indexes):
            raise ValueError(f"{self.name}: fullatt_block_indexes beyond vision depth {self.vision_depth}")


PRESETS: dict[str, ModelPreset] = {
    "tiny": ModelPreset(
        name="tiny",
        vocab_size=512,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=512,
        mrope_section=(8, 12, 12),
        rope_theta=1e4,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        vision_depth=2,
        vision_hidden_size=128,
        vision_num_heads=4,
        vision_intermediate_size=256,
        fullatt_block_indexes=(1,),
    ),
    "small": ModelPreset(
        name="small",
        vocab_size=4096,
        hidden_size=512,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=4,
        intermediate_size=1408,
        mrope_section=(8, 12, 12),
        rope_theta=1e4,
        max_position_embeddings=16384,
        tie_word_embeddings=True,
        vision_depth=4,
        vision_hidden_size=256,
        vision_num_heads=4,
        vision_intermediate_size=512,
        fullatt_block_indexes=(1, 3),
    ),
}


def get_preset(name: str) -> ModelPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; choose from {sorted(PRESETS)}") from None


def build_config(preset: ModelPreset, tokenizer):  # noqa: ANN001 - PreTrainedTokenizerFast
    """A `Qwen2_5_VLConfig` for `preset`, with token ids taken from `tokenizer`."""
    from transformers import Qwen2_5_VLConfig

    def token_id(token: str) -> int:
        value = tokenizer.convert_tokens_to_ids(token)
        if value is None or value == tokenizer.unk_token_id:
            raise ValueError(f"tokenizer has no {token}")
        return int(value)

    eos = token_id("<|im_end|>")
    end_of_text = token_id("<|endoftext|>")
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": preset.hidden_size,
        "intermediate_size": preset.intermediate_size,
        "num_hidden_layers": preset.num_hidden_layers,
        "num_attention_heads": preset.num_attention_heads,
        "num_key_value_heads": preset.num_key_value_heads,
        "max_position_embeddings": preset.max_position_embeddings,
        "max_window_layers": preset.num_hidden_layers,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": preset.rope_theta,
            "mrope_section": list(preset.mrope_section),
        },
        "bos_token_id": end_of_text,
        "eos_token_id": eos,
        "pad_token_id": end_of_text,
        "tie_word_embeddings": preset.tie_word_embeddings,
    }
    vision_config = {
        "depth": preset.vision_depth,
        "hidden_size": preset.vision_hidden_size,
        "num_heads": preset.vision_num_heads,
        "intermediate_size": preset.vision_intermediate_size,
        "patch_size": preset.patch_size,
        "temporal_patch_size": preset.temporal_patch_size,
        "spatial_merge_size": preset.spatial_merge_size,
        "window_size": preset.window_size,
        "fullatt_block_indexes": list(preset.fullatt_block_indexes),
        "out_hidden_size": preset.hidden_size,
        "tokens_per_second": preset.tokens_per_second,
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
        tie_word_embeddings=preset.tie_word_embeddings,
    )
