"""Scenes of coloured shapes on grey, drawn frame by frame and encoded as deterministic H.264 clips.

The drawing of the synthetic set (`videop2r.data.synth`) and of the replication's hard task
(`videop2r.data.hard_task`): plain grey background, solid shapes, an optional word in the built-in
bitmap font; libx264 yuv444p crf 10 with one encoder thread, so colours survive and the bytes are
the same on every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from videop2r.data.glyphs import render_word, word_width

BACKGROUND = (128, 128, 128)
TEXT_COLOUR = (16, 16, 16)
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 90, 230), "yellow": (235, 205, 30)}
SHAPES = ("circle", "square", "triangle")


def shape_size(size: int) -> int:
    """The side of a shape on a `size`-pixel frame: a fifth of it, even, at least 6 px."""
    return max(6, int(round(size * 0.2)) // 2 * 2)


@dataclass(frozen=True)
class ShapeTrack:
    """One shape: top-left corner at frame t is (x + dx·t, y + dy·t) plus a horizontal wobble."""

    shape: str
    colour: str
    size: int
    x: int
    y: int
    dx: int = 0
    dy: int = 0
    wobble: int = 0  # amplitude in px of a sine sway over the clip (count clips)
    phase: float = 0.0

    def corner(self, t: int, frames: int) -> tuple[int, int]:
        sway = round(self.wobble * math.sin(2 * math.pi * t / frames + self.phase)) if self.wobble else 0
        return self.x + self.dx * t + sway, self.y + self.dy * t

    def centre(self, t: int, frames: int) -> tuple[float, float]:
        x, y = self.corner(t, frames)
        return x + self.size / 2, y + self.size / 2


@dataclass(frozen=True)
class Scene:
    """What one clip shows, frame by frame."""

    kind: str  # motion | count | word
    size: int  # frame side in pixels
    fps: int
    frames: int
    shapes: tuple[ShapeTrack, ...] = ()
    word: str | None = None
    word_frames: tuple[int, int] = (0, -1)  # first and last frame (inclusive) showing the word

    def render(self, t: int) -> np.ndarray:
        """Frame t as (size, size, 3) uint8 RGB."""
        image = np.empty((self.size, self.size, 3), dtype=np.uint8)
        image[:] = BACKGROUND
        for track in self.shapes:
            draw_shape(image, track, *track.corner(t, self.frames))
        if self.word and self.word_frames[0] <= t <= self.word_frames[1]:
            scale = _text_scale(self.size, len(self.word))
            mask = render_word(self.word, scale)
            top = (self.size - mask.shape[0]) // 2
            left = (self.size - mask.shape[1]) // 2
            region = image[top : top + mask.shape[0], left : left + mask.shape[1]]
            region[mask] = TEXT_COLOUR
        return image


def _text_scale(size: int, letters: int) -> int:
    scale = max(1, size // 40)
    while scale > 1 and word_width(letters, scale) > size - 4:
        scale -= 1
    return scale


def draw_shape(image: np.ndarray, track: ShapeTrack, x: int, y: int) -> None:
    s = track.size
    yy, xx = np.mgrid[0:s, 0:s]
    if track.shape == "square":
        mask = np.ones((s, s), dtype=bool)
    elif track.shape == "circle":
        r = s / 2
        mask = (xx + 0.5 - r) ** 2 + (yy + 0.5 - r) ** 2 <= r * r
    elif track.shape == "triangle":  # apex up, base at the bottom
        mask = np.abs(xx + 0.5 - s / 2) <= (yy + 1) / 2
    else:
        raise ValueError(f"cannot draw shape {track.shape!r}")
    h, w = image.shape[:2]
    top, left = max(y, 0), max(x, 0)
    bottom, right = min(y + s, h), min(x + s, w)
    if top >= bottom or left >= right:
        return
    sub = mask[top - y : bottom - y, left - x : right - x]
    image[top:bottom, left:right][sub] = COLOURS[track.colour]


def write_clip(scene: Scene, path: Path, crf: int = 10) -> None:
    """Encode a scene as H.264 (yuv444p, one encoder thread: deterministic bytes) in an mp4."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(scene.fps))
        stream.width = stream.height = scene.size
        stream.pix_fmt = "yuv444p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(crf), "preset": "medium"}
        for t in range(scene.frames):
            frame = av.VideoFrame.from_ndarray(scene.render(t), format="rgb24")
            frame.pts = t
            frame.time_base = Fraction(1, scene.fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
