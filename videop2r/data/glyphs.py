"""A 5×7 bitmap font for A–Z, so the synthetic OCR clips need no font files.

`render_word(word, scale)` gives a boolean mask (7·scale rows, (6·len − 1)·scale columns):
5-pixel glyphs with one blank column between letters, each pixel a scale×scale block.
"""

from __future__ import annotations

import numpy as np

GLYPH_HEIGHT = 7
GLYPH_WIDTH = 5

_GLYPHS = {
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "B": ("####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."),
    "C": (".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."),
    "D": ("####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "F": ("#####", "#....", "#....", "####.", "#....", "#....", "#...."),
    "G": (".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"),
    "H": ("#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "I": (".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "J": ("..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."),
    "K": ("#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"),
    "L": ("#....", "#....", "#....", "#....", "#....", "#....", "#####"),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "N": ("#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"),
    "O": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "Q": (".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"),
    "R": ("####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"),
    "S": (".####", "#....", "#....", ".###.", "....#", "....#", "####."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "V": ("#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "W": ("#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."),
    "X": ("#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"),
    "Y": ("#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."),
    "Z": ("#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"),
}
LETTERS = "".join(sorted(_GLYPHS))

_BITMAPS = {
    letter: np.array([[c == "#" for c in row] for row in rows], dtype=bool) for letter, rows in _GLYPHS.items()
}


def word_width(length: int, scale: int) -> int:
    """Width in pixels of a word of `length` letters."""
    return ((GLYPH_WIDTH + 1) * length - 1) * scale if length else 0


def render_word(word: str, scale: int = 1) -> np.ndarray:
    """Boolean mask of `word` (letters A–Z, case-insensitive), shape (7·scale, word_width)."""
    word = word.upper()
    unknown = sorted({c for c in word if c not in _BITMAPS})
    if unknown:
        raise ValueError(f"no glyph for {''.join(unknown)!r}; the font has A-Z only")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    mask = np.zeros((GLYPH_HEIGHT, max(word_width(len(word), 1), 0)), dtype=bool)
    for i, letter in enumerate(word):
        left = i * (GLYPH_WIDTH + 1)
        mask[:, left : left + GLYPH_WIDTH] = _BITMAPS[letter]
    return np.kron(mask, np.ones((scale, scale), dtype=bool)).astype(bool)
