"""Tokenizers seen as character offsets: what segment lengths and token masks are measured with.

Two kinds: a HF fast tokenizer (`tokenizer.json`, the `tokenizers` library, which reports the
character span of every token) and a whitespace fallback (one token per run of non-space
characters) for when no model tokenizer is at hand. Both turn any string into a
``(n_tokens, 2)`` array of ``[start, end)`` character offsets; a token belongs to whatever
segment holds its first character.
"""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

WHITESPACE = "whitespace"
# U+FFFD stands in for a UTF-8 character cut between two byte-level tokens (see decode_with_offsets).
_REPLACEMENT_CHAR = "\ufffd"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_DECODE_CHUNK = 256


@runtime_checkable
class SegmentTokenizer(Protocol):
    """Anything that maps text to token character offsets."""

    name: str

    def offsets(self, text: str) -> np.ndarray:
        """``(n_tokens, 2)`` int64 array of ``[start, end)`` character offsets, in token order."""
        ...


# Every character for which str.isspace() holds is at or below U+3000 (a test checks all of Unicode).
_LAST_WHITESPACE = 0x3000


@functools.cache
def _is_space_table() -> np.ndarray:
    """Lookup by code point; index _LAST_WHITESPACE + 1 stands for every code point above (none is space)."""
    return np.array([chr(c).isspace() for c in range(_LAST_WHITESPACE + 1)] + [False])


class WhitespaceTokenizer:
    """One token per maximal run of non-whitespace characters (`str.split` semantics)."""

    name = WHITESPACE

    def offsets(self, text: str) -> np.ndarray:
        # Vectorised over code points: a regex finditer costs ~1 µs per token in Python.
        code_points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        padded = np.zeros(code_points.shape[0] + 2, dtype=np.int8)
        padded[1:-1] = ~_is_space_table()[np.minimum(code_points, _LAST_WHITESPACE + 1)]
        edges = padded[1:] - padded[:-1]  # +1 where a word starts, −1 one past where it ends
        return np.column_stack((np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))).astype(np.int64)

    def __repr__(self) -> str:
        return "WhitespaceTokenizer()"


class HFTokenizer:
    """A `tokenizers.Tokenizer` (the Rust core of every HF fast tokenizer), padding and truncation off.

    Special tokens are never added around the text: only the response's own tokens are counted.
    """

    def __init__(self, backend: Any, name: str = "hf") -> None:
        from tokenizers import Tokenizer

        if not isinstance(backend, Tokenizer):
            raise TypeError(f"expected a tokenizers.Tokenizer, got {type(backend).__name__}")
        # Copy, so that switching padding/truncation off never changes the caller's object.
        self._backend = Tokenizer.from_str(backend.to_str())
        self._backend.no_padding()
        self._backend.no_truncation()
        self.name = name

    @classmethod
    def from_file(cls, path: str | Path) -> "HFTokenizer":
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)), name=str(path))

    @property
    def backend(self) -> Any:
        return self._backend

    def offsets(self, text: str) -> np.ndarray:
        try:
            encoding = self._backend.encode(text, add_special_tokens=False)
        except TypeError:
            # Lone surrogates (e.g. from a JSON "\\ud800" escape) cannot cross into Rust; one
            # replacement character each keeps every offset where it was.
            encoding = self._backend.encode(_LONE_SURROGATE.sub(_REPLACEMENT_CHAR, text), add_special_tokens=False)
        return np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)

    def encode(self, text: str) -> list[int]:
        return list(self._backend.encode(text, add_special_tokens=False).ids)

    def decode_with_offsets(self, token_ids: list[int]) -> tuple[str, np.ndarray]:
        """Decode generated ids; return the text and each token's start offset in it, shape ``(n,)``.

        Generated ids need not equal the re-tokenisation of their text, so masks for training are
        built from the ids themselves. Token i starts where the decoded ``ids[:i]`` ends; a prefix
        that ends inside a multi-byte character decodes with trailing U+FFFD, which is not counted,
        so all pieces of one character start at that character.
        """
        ids = [int(i) for i in token_ids]
        text = self._backend.decode(ids, skip_special_tokens=False)
        starts = self._streamed_starts(ids, text)
        return text, starts if starts is not None else self._exact_starts(ids, text)

    def _streamed_starts(self, ids: list[int], text: str) -> np.ndarray | None:
        """Linear in the usual case: tokenizers' streaming detokeniser (`DecodeStream`) yields each
        token's new text, or nothing while a character is incomplete. A token right after such a
        pending one gets its start from its exact prefix, as `_exact_starts` would. None when the
        pieces do not rebuild `text` (or the library is too old): the caller then decodes exactly."""
        try:
            from tokenizers.decoders import DecodeStream
        except ImportError:  # tokenizers < 0.21
            return None
        stream = DecodeStream(skip_special_tokens=False)
        starts = np.zeros(len(ids), dtype=np.int64)
        pieces: list[str] = []
        after_pending: list[int] = []
        committed = 0
        try:
            for i, token in enumerate(ids):
                starts[i] = committed
                piece = stream.step(self._backend, token)
                if piece:
                    pieces.append(piece)
                    committed += len(piece)
                elif i + 1 < len(ids):
                    after_pending.append(i + 1)
        except Exception:  # the stream refuses a sequence it cannot decode incrementally
            return None
        if "".join(pieces) != text:
            return None
        if after_pending:
            prefixes = self._backend.decode_batch([ids[:i] for i in after_pending], skip_special_tokens=False)
            for i, prefix in zip(after_pending, prefixes):
                starts[i] = len(prefix.rstrip(_REPLACEMENT_CHAR))
        return starts

    def _exact_starts(self, ids: list[int], text: str) -> np.ndarray:
        """Quadratic but exact for any decoder: decode every prefix (in Rust batches)."""
        starts = np.zeros(len(ids), dtype=np.int64)
        for chunk in range(1, len(ids), _DECODE_CHUNK):
            stop = min(len(ids), chunk + _DECODE_CHUNK)
            prefixes = self._backend.decode_batch([ids[:i] for i in range(chunk, stop)], skip_special_tokens=False)
            for offset, prefix in enumerate(prefixes):
                starts[chunk + offset] = len(prefix.rstrip(_REPLACEMENT_CHAR))
        # Decoders that clean up spaces can make a prefix longer than its place in the full text.
        np.minimum(starts, len(text), out=starts)
        np.maximum.accumulate(starts, out=starts)
        return starts

    def __repr__(self) -> str:
        return f"HFTokenizer({self.name!r})"


_cache: dict[str, SegmentTokenizer] = {}
_cache_lock = threading.Lock()


def load_tokenizer(spec: str | Path | Any = WHITESPACE) -> SegmentTokenizer:
    """``"whitespace"``, a HF tokenizer directory / ``tokenizer.json`` path, or a tokenizer object.

    Objects accepted: a `SegmentTokenizer`, a `tokenizers.Tokenizer`, or a transformers fast
    tokenizer (anything with ``backend_tokenizer``). Paths are loaded once per process.
    Raises ``ValueError`` with the path when nothing usable is there.
    """
    if isinstance(spec, (str, Path)):
        key = str(spec)
        with _cache_lock:
            found = _cache.get(key)
            if found is None:
                found = _load_path(key)
                _cache[key] = found
            return found
    if isinstance(spec, SegmentTokenizer):
        return spec
    backend = getattr(spec, "backend_tokenizer", spec)
    return HFTokenizer(backend, name=type(spec).__name__)


def _load_path(spec: str) -> SegmentTokenizer:
    if spec == WHITESPACE:
        return WhitespaceTokenizer()
    path = Path(spec)
    candidate = path / "tokenizer.json" if path.is_dir() else path
    if candidate.is_file():
        try:
            return HFTokenizer.from_file(candidate)
        except Exception as exc:  # a corrupt file: say which one
            raise ValueError(f"tokenizer {candidate}: cannot load: {exc}") from exc
    if path.is_dir():
        raise ValueError(f"tokenizer {path}: no tokenizer.json (a HF fast tokenizer is needed for offsets)")
    raise ValueError(f"tokenizer {spec!r}: not 'whitespace' and no such file or directory")
