"""`videop2r data synth|pack|inspect`: the synthetic set, tar shards on the object store, summaries."""

from __future__ import annotations

import argparse


def _register_synth(area: argparse._SubParsersAction) -> None:
    """`videop2r data synth`: short clips of coloured shapes + Video-R1 records of all five problem types."""
    from videop2r.cli.config import add_config_arguments

    synth = area.add_parser(
        "synth", help="write synthetic video QA: mp4 clips of moving shapes and Video-R1 records",
        description="Write short mp4 clips (coloured shapes on grey, 2-4 s) under OUT/videos/<split>/ and "
        "records OUT/<split>.jsonl and OUT/<split>.json covering all five problem types (colour, shape, "
        "direction: multiple choice; count: numerical; word: OCR; description: free-form; distance: "
        "regression), each with evidence facts and a reference observation/process/output. The same "
        "arguments give the same bytes. Record paths are relative to OUT (use it as --media-root).",
    )
    synth.add_argument("--out", required=True, help="output directory (also the media root of the records)")
    synth.add_argument("--num", type=int, default=100, help="clips per split (default 100)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--split", action="append", default=None, metavar="NAME[=N]",
                       help="a split to write, with its own clip count or --num; repeatable (default: train)")
    synth.add_argument("--questions", default=None,
                       help="comma-separated question kinds: colour,shape,direction,description,distance,count,word "
                       "(default all)")
    synth.add_argument("--size", type=int, default=84, help="frame side in pixels (default 84)")
    synth.add_argument("--fps", type=int, default=8, help="clip frame rate (default 8)")
    synth.add_argument("--durations", default="2,3,4",
                       help="clip lengths in seconds to draw from, comma-separated (default 2,3,4)")
    synth.add_argument("--no-json", action="store_true", help="write only the .jsonl records, not the .json list")
    add_config_arguments(synth)
    synth.set_defaults(handler=_synth)


def _parse_splits(specs: list[str] | None, num: int) -> dict[str, int]:
    from videop2r.config import ConfigError

    splits: dict[str, int] = {}
    for spec in specs or ["train"]:
        name, sep, count = spec.partition("=")
        name = name.strip()
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"config error: --split {spec!r}: expected NAME or NAME=N")
        try:
            splits[name] = int(count) if sep else num
        except ValueError:
            raise ConfigError(f"config error: --split {spec!r}: N must be an integer") from None
        if splits[name] < 0:
            raise ConfigError(f"config error: --split {spec!r}: N must be >= 0")
    return splits


def _synth(args: argparse.Namespace) -> int:
    import sys

    from videop2r.config import ConfigError, load_config
    from videop2r.data.synth import synthesize

    config = load_config(args.config, args.overrides)
    if args.num < 0:
        raise ConfigError("config error: --num must be >= 0")
    questions = [q.strip() for q in args.questions.split(",") if q.strip()] if args.questions else None
    try:
        durations = [int(d) for d in args.durations.split(",") if d.strip()]
    except ValueError:
        raise ConfigError(f"config error: --durations {args.durations!r}: expected integers like 2,3,4") from None
    try:
        summary = synthesize(args.out, args.num, args.seed, splits=_parse_splits(args.split, args.num),
                             questions=questions, size=args.size, fps=args.fps, durations=durations, config=config.data,
                             write_json=not args.no_json, progress=sys.stderr.isatty())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split in summary.splits.values():
        types = ", ".join(f"{k}: {v}" for k, v in split.by_problem_type.items()) or "none"
        print(f"{split.name}: {split.clips} clips, {split.records} records ({types}) -> {split.records_jsonl}")
    print(f"media root: {summary.out_dir}")
    return 0


def _register_pack(area: argparse._SubParsersAction) -> None:
    """`videop2r data pack`: records + media -> tar shards and an index on a local dir or s3://."""
    from videop2r.cli.config import add_config_arguments

    pack = area.add_parser(
        "pack", help="pack records and their media into tar shards with an index (local dir or s3://)",
        description="Write tar shards (records + media) and index.json to --out; the index is written "
        "last, so readers never see a half-written dataset. Missing, empty or unreadable media are "
        "skipped and reported. Settings: data.shard_size, data.shard_max_mb, storage.* (endpoint, keys).",
    )
    pack.add_argument("--records", required=True, help="Video-R1/VideoP2R records (.json list or .jsonl)")
    pack.add_argument("--media-root", required=True, help="directory the records' `path` fields are relative to")
    pack.add_argument("--out", required=True, help="output URI: a directory or s3://bucket/prefix")
    pack.add_argument("--shard-size", type=int, default=None, help="records per shard (default data.shard_size)")
    pack.add_argument("--no-probe", action="store_true", help="do not decode media to check them (faster)")
    add_config_arguments(pack)
    pack.set_defaults(handler=_pack)


def _pack(args: argparse.Namespace) -> int:
    import sys

    from videop2r.config import load_config
    from videop2r.data.records import RecordsError
    from videop2r.data.packing import pack_shards
    from videop2r.storage import StorageError

    config = load_config(args.config, args.overrides)
    if args.shard_size is not None:
        if args.shard_size < 1:
            print("error: --shard-size must be at least 1", file=sys.stderr)
            return 2
        config.data.shard_size = args.shard_size
    try:
        report = pack_shards(args.records, args.media_root, args.out, data_config=config.data,
                             storage_config=config.storage, probe=False if args.no_probe else None,
                             progress=sys.stderr.isatty())
    except (RecordsError, FileNotFoundError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    for skip in report.skipped:
        print(f"  skipped {skip.id or '<no id>'} ({skip.location}): {skip.reason}: {skip.detail}")
    return 0 if report.num_records else 1


def _register_inspect(area: argparse._SubParsersAction) -> None:
    """`videop2r data inspect URI`: counts by data_type / problem_type, skips, unreadable media."""
    from videop2r.cli.config import add_config_arguments

    inspect = area.add_parser(
        "inspect", help="summarise packed shards: counts by data_type and problem_type, unreadable media",
        description="Read the index and every shard's entries at URI, count records by data_type and "
        "problem_type, list what pack skipped, and decode each media lightly (first and last frame) "
        "to report the unreadable ones.",
    )
    inspect.add_argument("uri", help="dataset URI: a directory or s3://bucket/prefix written by `data pack`")
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    inspect.add_argument("--no-decode", action="store_true", help="counts only, do not decode media")
    inspect.add_argument("--strict", action="store_true", help="exit 1 if any media is unreadable")
    add_config_arguments(inspect)
    inspect.set_defaults(handler=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    import json
    import sys

    from videop2r.config import load_config
    from videop2r.data.inspect import inspect_shards
    from videop2r.storage import StorageError

    config = load_config(args.config, args.overrides)
    try:
        report = inspect_shards(args.uri, config.data, config.storage, decode=not args.no_decode,
                                progress=sys.stderr.isatty())
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.format_text())
    return 1 if args.strict and (report.unreadable or report.problems) else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="video QA data: synthesize, pack into shards, inspect")
    area = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    _register_synth(area)
    _register_pack(area)
    _register_inspect(area)
