"""``videop2r serve rollout``: load a checkpoint, then serve the SGLang-API app with uvicorn.

The model is loaded before the port opens, so ``/health`` answering 200 means "ready"; a model
path that does not exist (or holds no checkpoint) is an error at start, exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)

# sglang/srt/server_args.py 0.5.23 names (checked against its parser in
# tests/rollout/test_sglang_launch_args.py); values taken and ignored here
GPU_ONLY_VALUE_ARGS = ("--tp-size", "--dp-size", "--mem-fraction-static", "--chunked-prefill-size",
                       "--max-running-requests", "--attention-backend", "--context-length",
                       "--log-level", "--kv-cache-dtype", "--quantization", "--schedule-policy")
# the embedded server's names that are SGLang's too (the rest, e.g. --threads, are its own)
SGLANG_NAMED = ("--model-path", "--served-model-name", "--host", "--port", "--device", "--dtype",
                "--weight-version", "--mm-process-config")
GPU_ONLY_FLAGS = ("--enable-metrics", "--trust-remote-code", "--disable-cuda-graph", "--enable-deterministic-inference",
                  "--disable-radix-cache", "--skip-server-warmup")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's own flags; `videop2r serve rollout` adds the config arguments (`--config`, overrides)."""
    parser.add_argument("--model", "--model-path", dest="model", required=True,
                        help="checkpoint directory or s3:// URI (Qwen2.5-VL family); --model-path as SGLang")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a pod)")
    parser.add_argument("--port", type=int, default=30000, help="SGLang's default port")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    parser.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                        help="weights dtype (default: model.dtype)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--weight-version", default="default", help="initial weight version (SGLang's default)")
    parser.add_argument("--served-model-name", default=None, help="name in /v1/models (default: the model path)")
    parser.add_argument("--max-batch-rows", type=int, default=64, help="samples decoded together at most")
    parser.add_argument("--chat-max-tokens", type=int, default=512, help="max_tokens default of chat completions")
    parser.add_argument("--allow-vision-tokens", action="store_true",
                        help="let the sampler emit vision placeholder tokens (off: they are masked)")
    parser.add_argument("--access-log", action="store_true", help="log every request line")
    parser.add_argument("--mm-process-config", default=None,
                        help='SGLang\'s multimodal config JSON, e.g. {"video": {"fps": 2, "min_pixels": 7056}} '
                             "(default: the data config's sampling settings)")
    # SGLang launch arguments that only matter on a GPU server: accepted (so the chart's rollout
    # command runs unchanged on a CPU) and logged as ignored
    for name in GPU_ONLY_VALUE_ARGS:
        parser.add_argument(name, default=None, help=argparse.SUPPRESS)
    for name in GPU_ONLY_FLAGS:
        parser.add_argument(name, action="store_true", help=argparse.SUPPRESS)


def serve(args: argparse.Namespace) -> int:
    import torch
    import uvicorn

    from services.limits import ServerLimits, uvicorn_settings
    from services.rollout.app import create_app
    from services.rollout.engine import GenerationEngine
    from services.rollout.media_sources import MediaSources
    from videop2r.config import load_config
    from videop2r.model import ModelLoadError

    config = load_config(args.config, args.overrides)
    ignored = [name for name in (*GPU_ONLY_VALUE_ARGS, *GPU_ONLY_FLAGS)
               if getattr(args, name.lstrip("-").replace("-", "_"), None) not in (None, False)]
    if ignored:
        log.info("SGLang launch arguments ignored by the embedded CPU server: %s", ", ".join(ignored))
    video_config = None
    if args.mm_process_config:
        import json

        try:
            video_config = json.loads(args.mm_process_config).get("video", {})
        except (ValueError, AttributeError) as exc:
            print(f"error: --mm-process-config is not a JSON object: {exc}", file=sys.stderr)
            return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        engine = GenerationEngine.load(
            args.model,
            dtype=args.dtype or config.model.dtype,
            device=args.device,
            attn_implementation=config.model.attn_implementation,
            weight_version=args.weight_version,
            block_vision_tokens=not args.allow_vision_tokens,
            storage_config=config.storage,
            cache_dir=config.model.cache_dir or None,
        )
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    media = MediaSources(config.data, config.storage, video_config=video_config)
    app = create_app(engine, media=media, served_model_name=args.served_model_name,
                     max_batch_rows=args.max_batch_rows, chat_max_tokens=args.chat_max_tokens,
                     storage_config=config.storage, max_body_bytes=config.server.rollout_max_body_bytes)
    log.info("serving %s on %s:%d (device %s, weight version %s)", args.model, args.host, args.port,
             engine.device, engine.weight_version)
    server = uvicorn.Server(uvicorn.Config(
        app, host=args.host, port=args.port, access_log=args.access_log, log_config=None,
        log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower(),
        timeout_graceful_shutdown=5, **uvicorn_settings(ServerLimits.from_config(config.server)),
    ))
    server.run()
    return 0 if server.started else 1
