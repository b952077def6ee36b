"""The text a fresh tokenizer is trained on: the prompt template, the answer form, and the records.

`tokenizer_corpus(records)` yields the user prompt of every problem type (so the template's words
become few tokens), method §1-shaped responses, and — when `records` names a Video-R1/VideoP2R JSON,
JSONL file or a directory of them (e.g. the output of `videop2r data synth`) — every text field of
every record. Without records it falls back to a small built-in set of video-QA sentences, enough
for a tokenizer that encodes any text (byte-level BPE never fails) but compresses our domain well.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from videop2r import prompting

log = logging.getLogger(__name__)

# Fields of Video-R1 / VideoP2R records that carry text the model reads or writes (method §7).
_TEXT_FIELDS = ("problem", "solution", "answer", "observation", "process", "output")

_FALLBACK_SENTENCES = (
    "What colour is the moving shape?",
    "Which direction does the object move?",
    "What shape appears in the video?",
    "How many objects are visible in the video?",
    "What text is written on the sign?",
    "Describe what happens in the video.",
    "a red circle, a green square, a blue triangle, a yellow star, on a grey background",
    "moving left, moving right, moving up, moving down, it stays still",
    "0 1 2 3 4 5 6 7 8 9 10 12 16 20 24 32 64 100 0.5 2.5 3.14",
    "Based on the question, I need to notice the colour, the shape and the direction of motion.",
    "The observation says the shape is red, so the answer is option A.",
    "Let me check: the object starts on the left and ends on the right, so it moves right.",
)


def tokenizer_corpus(records: str | Path | None = None, repeat_template: int = 20) -> Iterator[str]:
    """Texts for tokenizer training; see the module docstring. `records`: file or directory."""
    examples = [
        ("What colour is the shape?", ["A. red", "B. green", "C. blue", "D. yellow"], "multiple choice"),
        ("How many objects move?", None, "numerical"),
        ("What word is shown?", None, "OCR"),
        ("What happens in the video?", None, "free-form"),
        ("How far does the shape move, in pixels?", None, "regression"),
    ]
    for _ in range(repeat_template):
        for problem, options, problem_type in examples:
            for modality in ("video", "image"):
                yield prompting.user_prompt(problem, options, problem_type, modality)
        yield (
            "<observation>Based on the question, I need to notice the colour of the shape. I see a red "
            "circle moving left.</observation><think>The observation shows a red circle, which is option "
            "A. Checking again: the colour is red.</think><answer>A</answer>"
        )
    found = 0
    if records is not None:
        for record in _read_records(Path(records)):
            found += 1
            for text in _record_texts(record):
                yield text
        log.info("tokenizer corpus: %d records from %s", found, records)
    if not found:
        for _ in range(repeat_template):
            yield from _FALLBACK_SENTENCES


def _record_texts(record: dict[str, Any]) -> Iterator[str]:
    for name in _TEXT_FIELDS:
        value = record.get(name)
        if isinstance(value, str) and value:
            yield value
    options = record.get("options")
    if isinstance(options, list):
        yield "\n".join(str(option) for option in options)


def _read_records(path: Path) -> Iterator[dict[str, Any]]:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.suffix in (".json", ".jsonl"):
                yield from _read_records(child)
        return
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer corpus not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("tokenizer corpus: %s line %d is not JSON, skipped", path, number)
                    continue
                if isinstance(item, dict):
                    yield item
        return
    data = json.loads(text)
    items = data if isinstance(data, list) else [data]
    for item in items:
        if isinstance(item, dict):
            yield item
