"""Checks of a parsed request body before anything tokenizes or logs it: valid Unicode, and no
text field longer than the model's positions could hold (``/generate`` and the chat route)."""

from __future__ import annotations

from typing import Any

from services.rollout.engine import GenerationEngine


def text_char_limit(engine: GenerationEngine) -> int:
    """Characters above which a text cannot fit the model's positions, whatever it tokenizes to.

    A token stands for at most as many characters as its vocabulary entry is long (byte-level BPE:
    one entry character per byte, a character takes >= 1 byte), so a text longer than positions x the
    longest entry has more tokens than positions. Refusing it before tokenizing costs nothing and
    refuses nothing the tokenizer would let through."""
    longest = max(map(len, engine.tokenizer.get_vocab()))
    return int(engine.model.config.text_config.max_position_embeddings) * longest


def overlong_text(value: Any, limit: int, path: str = "body") -> str | None:
    """The path of the first string field (not media: a `data:` URI may be long) over `limit` chars."""
    if isinstance(value, str):
        return path if len(value) > limit and not value.startswith(("data:", "http://", "https://")) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if key in ("video_data", "image_data", "audio_data", "image_url", "video_url"):
            continue
        found = overlong_text(item, limit, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if found:
            return found
    return None


def lone_surrogate(value: Any, path: str = "body") -> str | None:
    """The path of the first string in a parsed JSON body that is not valid Unicode (a lone
    surrogate from a ``\\ud800`` escape), or None. Checked before anything tokenizes or logs it."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
    elif isinstance(value, dict):
        for key, item in value.items():
            found = lone_surrogate(key, f"{path} key") or lone_surrogate(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = lone_surrogate(item, f"{path}[{index}]")
            if found:
                return found
    return None


def text_problem(body: Any, max_chars: int) -> str | None:
    """Why the body's text cannot be served (the field named, without ``body.``), or None."""
    bad_text = lone_surrogate(body)
    if bad_text is not None:
        return f"{bad_text.removeprefix('body.')} is not valid Unicode (a lone surrogate)"
    too_long = overlong_text(body, max_chars)
    if too_long is not None:
        return (f"{too_long.removeprefix('body.')} has more than {max_chars} characters: "
                "more tokens than the model's positions")
    return None
