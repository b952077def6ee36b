"""`videop2r eval --blind`: the same benchmark again with every frame blanked.

A model that ignores the video — or a rollout engine that silently drops it — scores about the
same without the pixels. The blind pass sends each item exactly as the normal pass does (same
prompt, same number and size of frames, same fps, so the same visual token count) but with every
pixel set to 0, and writes its own ledger under ``<output>/blind/``. The summary puts the two
accuracies side by side; the gap is what the video is worth to the model.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from videop2r.eval.clips import LoadedMedia

BLIND_DIR = "blind"


def blank(media: LoadedMedia) -> LoadedMedia:
    """`media` with black frames (or a black image) of the same shape; the file bytes are dropped so
    a ``video_url`` request encodes the blank frames instead of sending the original."""
    return dataclasses.replace(
        media,
        frames=None if media.frames is None else np.zeros_like(media.frames),
        image=None if media.image is None else np.zeros_like(media.image),
        source=None,
    )


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def video_ablation(reports: list, blind_reports: list) -> str:
    """Markdown: accuracy with the video and with blank frames, per benchmark."""
    blind = {report.name: report for report in blind_reports}
    lines = ["| Benchmark | With video | Blank frames | Δ (points) |", "|---|---|---|---|"]
    for report in reports:
        other = blind.get(report.name)
        score = None if other is None else other.score
        delta = (None if report.score is None or score is None
                 else f"{100 * (report.score - score):+.1f}")
        lines.append(f"| {report.title} | {_pct(report.score)} | {_pct(score)} | {delta or '–'} |")
    return ("Every item again with its frames blanked (same count, size and fps): a Δ near 0 means the "
            "answers do not depend on the video.\n\n" + "\n".join(lines))


def ablation_json(reports: list, blind_reports: list) -> dict[str, dict[str, float | None]]:
    blind = {report.name: report.score for report in blind_reports}
    return {r.name: {"with_video": r.score, "blank_frames": blind.get(r.name)} for r in reports}
