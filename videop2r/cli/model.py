"""`videop2r model init|info`: build an offline Qwen2.5-VL checkpoint, or describe one."""

from __future__ import annotations

import argparse
import json
import sys


def _init(args: argparse.Namespace) -> int:
    from videop2r.config import load_config
    from videop2r.model import init_model

    config = load_config(args.config, args.overrides)
    try:
        path = init_model(args.preset or config.model.preset, args.out, corpus=args.corpus, seed=args.seed,
                          data_config=config.data, overwrite=args.overwrite)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _info(args: argparse.Namespace) -> int:
    from videop2r.model import ModelLoadError, load_model, load_processor

    try:
        model = load_model(args.path, device="cpu")
        processor = load_processor(args.path)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text, vision = model.config.text_config, model.config.vision_config
    print(json.dumps({
        "path": str(args.path),
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "vocab_size": len(processor.tokenizer),
        "text": {"hidden_size": text.hidden_size, "layers": text.num_hidden_layers,
                 "heads": text.num_attention_heads, "kv_heads": text.num_key_value_heads},
        "vision": {"depth": vision.depth, "hidden_size": vision.hidden_size, "out_hidden_size": vision.out_hidden_size},
        "processor": type(processor).__name__,
    }, indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from videop2r.cli.config import add_config_arguments

    model = subparsers.add_parser("model", help="offline Qwen2.5-VL checkpoints: init, info")
    area = model.add_subparsers(dest="model_command", required=True, metavar="SUBCOMMAND")

    init = area.add_parser("init", help="build a randomly initialised checkpoint with an offline tokenizer")
    init.add_argument("--preset", choices=("tiny", "small"), default=None, help="size (default: model.preset)")
    init.add_argument("--out", required=True, help="output directory (an ordinary Hugging Face checkpoint)")
    init.add_argument("--corpus", default=None,
                      help="Video-R1 records (JSON/JSONL file or directory) to train the tokenizer on")
    init.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    init.add_argument("--overwrite", action="store_true", help="replace a non-empty output directory")
    add_config_arguments(init)
    init.set_defaults(handler=_init)

    info = area.add_parser("info", help="load a checkpoint (dir or s3:// URI) and print its sizes")
    info.add_argument("path")
    info.set_defaults(handler=_info)
