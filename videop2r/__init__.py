"""VideoP2R: process-aware SFT and PA-GRPO for video-language models (see docs/method.md)."""

__version__ = "0.1.0"
