"""What a run reads: the object store (`storage:`), the shards and their sampling (`data:`), the model (`model:`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from videop2r.config.section import Section


class StorageConfig(Section):
    # -- where runs, checkpoints and shards live: a local directory or s3://bucket/prefix
    uri: str = "runs/store"
    # -- S3 endpoint host:port (falls back to $S3_ENDPOINT / $AWS_ENDPOINT_URL)
    endpoint: str | None = None
    # -- credentials (fall back to $AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY or $MINIO_ROOT_USER/...)
    access_key: str | None = None
    secret_key: SecretStr | None = None
    region: str | None = None
    # -- use https to reach the S3 endpoint
    secure: bool = False
    # -- objects above this size are uploaded in parts of this size (MiB, S3 minimum 5)
    part_size_mb: int = Field(16, ge=5, le=5120)
    # -- attempts on transient errors (connection reset, 5xx, throttling), exponential backoff
    max_retries: int = Field(5, ge=0, le=20)
    retry_backoff_s: float = Field(0.2, gt=0)
    # -- longest single wait between retries
    retry_max_backoff_s: float = Field(10.0, gt=0)
    # -- S3 connect and read timeouts per request
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(120.0, gt=0)
    # -- create the bucket on the first write when it does not exist
    create_bucket: bool = True


class DataConfig(Section):
    # -- shards to train on (local dir or s3://...), as written by `videop2r data pack`
    train_uri: str = "runs/demo/shards/train"
    # -- held-out shards for evaluation
    eval_uri: str | None = "runs/demo/shards/eval"
    # -- Qwen2.5-VL reference frame sampling (qwen_vl_utils.vision_process)
    fps: float = Field(2.0, gt=0)
    nframes: int | None = Field(None, ge=2)
    min_frames: int = Field(4, ge=2)
    max_frames: int = Field(16, ge=2)
    video_min_pixels: int = Field(128 * 28 * 28, gt=0)
    video_max_pixels: int = Field(128 * 28 * 28, gt=0)
    video_total_pixels: int | None = Field(None, gt=0)
    image_min_pixels: int = Field(4 * 28 * 28, gt=0)
    image_max_pixels: int = Field(16384 * 28 * 28, gt=0)
    # -- swscale filter for the video frame resize (the reference uses antialiased bicubic)
    resize_interpolation: Literal["bicubic", "bilinear", "area"] = "bicubic"
    # -- shuffling and streaming
    seed: int = 0
    shuffle: bool = True
    prefetch: int = Field(8, ge=0)
    decode_workers: int = Field(2, ge=1)
    # -- records per tar shard when packing
    shard_size: int = Field(256, ge=1)
    # -- a shard is closed early once its media reach this size (MiB)
    shard_max_mb: int = Field(1024, ge=1)
    # -- check every media at pack time by decoding its first and last frames (skip unreadable ones)
    probe_media_on_pack: bool = True

    @model_validator(mode="after")
    def _frames_ordered(self) -> "DataConfig":
        if self.min_frames > self.max_frames:
            raise ValueError(f"min_frames ({self.min_frames}) > max_frames ({self.max_frames})")
        if self.video_min_pixels > self.video_max_pixels:
            raise ValueError("video_min_pixels > video_max_pixels")
        return self


class ModelConfig(Section):
    # -- HF checkpoint directory or s3:// URI of one (Qwen2.5-VL family)
    path: str = "runs/demo/model/init"
    # -- preset used by `videop2r model init` when path does not exist yet
    preset: Literal["tiny", "small"] = "tiny"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] = "sdpa"
    # -- local cache of checkpoints downloaded from s3:// (empty = $VIDEOP2R_MODEL_CACHE or ~/.cache/videop2r/models)
    cache_dir: str = ""
