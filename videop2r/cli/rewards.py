"""`videop2r rewards score`: per-process reward components of the responses in a JSONL file."""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

from videop2r.cli.config import add_config_arguments

SCORE_HELP = """\
Score every line of INPUT.jsonl (use - for stdin). Input line:
  {"id", "problem_type", "response", "solution" (or "answer"), "options"?, "perception_verdict"?}
Output line, in input order:
  {"id", "perception": {"format", "length", ...}, "reasoning": {"accuracy", "format", "length", ...}}
"length" counts tokens of the segment; "perception.accuracy"/"total" appear only when the
line carries the judge's "perception_verdict" (true/false). A line that is not JSON, lacks a
field or has an unknown problem_type is reported on stderr with its line number and skipped;
the exit code is 1 if any line was skipped. Length ranges, bonus and ablation switches come
from the config (reward.*, algorithm.use_*_reward).
"""


def _pydantic_reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    parts = []
    for error in errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = "missing field" if error.get("type") == "missing" else error.get("msg", "invalid")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _score_lines(args: argparse.Namespace, settings: Any, source: IO[bytes], sink: IO[str]) -> tuple[int, int]:
    from tqdm import tqdm

    from videop2r.rewards.accuracy import UnknownProblemType
    from videop2r.rewards.scoring import ScoreRequest, score_response

    scored = skipped = 0

    def skip(number: int, reason: str) -> None:
        nonlocal skipped
        skipped += 1
        print(f"{args.input}:{number}: skipped: {reason}", file=sys.stderr)

    lines = enumerate(source, start=1)
    for number, raw in tqdm(lines, desc="scoring", unit=" lines", disable=None, file=sys.stderr):
        if not raw.strip():
            continue  # blank lines are not records
        try:
            record: Any = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            skip(number, f"not UTF-8 ({exc.reason} at byte {exc.start})")
            continue
        except json.JSONDecodeError as exc:
            skip(number, f"not JSON ({exc.msg}, column {exc.colno})")
            continue
        if not isinstance(record, dict):
            skip(number, f"not a JSON object (a {type(record).__name__})")
            continue
        try:
            request = ScoreRequest.model_validate(record)
            result = score_response(request, settings, strict=True)
        except UnknownProblemType as exc:
            skip(number, str(exc))
            continue
        except ValueError as exc:  # pydantic ValidationError is a ValueError
            skip(number, _pydantic_reason(exc).replace("Value error, ", ""))
            continue
        sink.write(json.dumps(result) + "\n")
        scored += 1
    return scored, skipped


def _score(args: argparse.Namespace) -> int:
    from videop2r.config import load_config
    from videop2r.rewards.scoring import ScoringSettings

    config = load_config(args.config, args.overrides)  # ConfigError: main prints it, exit 2
    try:
        settings = ScoringSettings.from_config(config, tokenizer=args.tokenizer)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        source = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")
    except OSError as exc:
        print(f"error: cannot read {args.input}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        if args.output:
            try:
                sink = open(args.output, "w", encoding="utf-8")
            except OSError as exc:
                print(f"error: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
                return 2
            with sink:
                scored, skipped = _score_lines(args, settings, source, sink)
        else:
            scored, skipped = _score_lines(args, settings, source, sys.stdout)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    print(f"scored {scored} line(s), skipped {skipped}", file=sys.stderr)
    return 1 if skipped else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    rewards = subparsers.add_parser("rewards", help="score responses (format, accuracy, length per process)")
    area = rewards.add_subparsers(dest="rewards_command", required=True, metavar="SUBCOMMAND")
    score = area.add_parser(
        "score",
        help="per-process reward components of a JSONL file of responses",
        description=SCORE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument("input", metavar="INPUT.jsonl", help="responses to score, one JSON object per line (- = stdin)")
    score.add_argument("-o", "--output", metavar="OUT.jsonl", default=None, help="where to write (default: stdout)")
    score.add_argument(
        "--tokenizer",
        metavar="DIR|whitespace",
        default=None,
        help="tokenizer for segment lengths: a HF tokenizer directory (with tokenizer.json, e.g. the "
        "tiny model's from `videop2r model init`) or 'whitespace' (one token per whitespace-separated "
        "word). Default: reward.tokenizer from the config, which defaults to 'whitespace'.",
    )
    add_config_arguments(score)
    score.set_defaults(handler=_score)
