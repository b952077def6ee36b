"""VideoP2R: process-aware SFT and PA-GRPO for video-language models (see SPEC.md)."""

__version__ = "0.1.0"
