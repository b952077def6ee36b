"""MVBench (OpenGVLab/MVBench): 20 temporal tasks, 200 multiple-choice questions each.

Release: ``json/<task>.json`` per task, lists of ``{video, question, candidates, answer}``
(``answer`` is the text of the right candidate); bounded tasks add ``start``/``end`` seconds.
Videos live under ``video/<prefix>`` per task (the table below, as the official
``mvbench.ipynb`` lists it); "Episodic Reasoning" is a folder of frames sampled at 3 fps, not a
file. Candidates become options A, B, ...; the ground truth is the letter of ``answer``. Score:
accuracy over all questions, with per-task breakdown (every task has the same size, so the
mean of task accuracies is the same number).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from videop2r.eval.benchmarks.base import BenchmarkAdapter, dedupe
from videop2r.eval.items import BadRow, EvalItem, letter_of
from videop2r.eval.source import AnnotationError, BenchmarkSource

# task -> (annotation file, media folder under video/, media kind, bounded by start/end)
TASKS: dict[str, tuple[str, str, str, bool]] = {
    "Action Sequence": ("action_sequence.json", "star/Charades_v1_480/", "video", True),
    "Action Prediction": ("action_prediction.json", "star/Charades_v1_480/", "video", True),
    "Action Antonym": ("action_antonym.json", "ssv2_video/", "video", False),
    "Fine-grained Action": ("fine_grained_action.json", "Moments_in_Time_Raw/videos/", "video", False),
    "Unexpected Action": ("unexpected_action.json", "FunQA_test/test/", "video", False),
    "Object Existence": ("object_existence.json", "clevrer/video_validation/", "video", False),
    "Object Interaction": ("object_interaction.json", "star/Charades_v1_480/", "video", True),
    "Object Shuffle": ("object_shuffle.json", "perception/videos/", "video", False),
    "Moving Direction": ("moving_direction.json", "clevrer/video_validation/", "video", False),
    "Action Localization": ("action_localization.json", "sta/sta_video/", "video", True),
    "Scene Transition": ("scene_transition.json", "scene_qa/video/", "video", False),
    "Action Count": ("action_count.json", "perception/videos/", "video", False),
    "Moving Count": ("moving_count.json", "clevrer/video_validation/", "video", False),
    "Moving Attribute": ("moving_attribute.json", "clevrer/video_validation/", "video", False),
    "State Change": ("state_change.json", "perception/videos/", "video", False),
    "Fine-grained Pose": ("fine_grained_pose.json", "nturgbd/", "video", False),
    "Character Order": ("character_order.json", "perception/videos/", "video", False),
    "Egocentric Navigation": ("egocentric_navigation.json", "vlnqa/", "video", False),
    "Episodic Reasoning": ("episodic_reasoning.json", "tvqa/frames_fps3_hq/", "frames", True),
    "Counterfactual Inference": (
        "counterfactual_inference.json",
        "clevrer/video_validation/",
        "video",
        False,
    ),
}
FRAME_FOLDER_FPS = 3.0


class MVBench(BenchmarkAdapter):
    name = "mvbench"
    title = "MVBench"
    aliases = ("mv-bench",)

    def items(self, source: BenchmarkSource) -> Iterator[EvalItem | BadRow]:
        present = [(task, spec) for task, spec in TASKS.items() if source.exists(f"json/{spec[0]}")]
        if not present:
            raise AnnotationError(f"{source.uri}: no MVBench task file (json/<task>.json) found")
        return dedupe(self._rows(source, present))

    def _rows(
        self, source: BenchmarkSource, tasks: list[tuple[str, tuple[str, str, str, bool]]]
    ) -> Iterator[EvalItem | BadRow]:
        for task, spec in tasks:
            for location, row in source.rows(f"json/{spec[0]}"):
                index = location.rsplit(" ", 1)[-1]
                bad = self.unreadable(location, row)
                yield bad or self.guarded(location, lambda: self._item(task, spec, index, location, row))

    def _item(
        self, task: str, spec: tuple[str, str, str, bool], index: str, location: str, row: dict[str, Any]
    ) -> EvalItem | BadRow:
        _, prefix, kind, bounded = spec
        ident = f"{spec[0].removesuffix('.json')}/{index}"
        groups = {"task": task}
        candidates = row.get("candidates")
        if (
            not row.get("video")
            or not row.get("question")
            or not isinstance(candidates, list)
            or not candidates
        ):
            return self.bad(
                ident, "missing_field", f"{location}: needs video, question and candidates", **groups
            )
        candidates = [str(c) for c in candidates]
        answer = str(row.get("answer", ""))
        if answer not in candidates:
            return self.bad(
                ident, "answer_not_in_options", f"{location}: answer {answer!r} is not a candidate", **groups
            )
        media: dict[str, Any] = {
            "kind": kind,
            "keys": (f"video/{prefix}{row['video']}",),
            "frames_fps": FRAME_FOLDER_FPS,
        }
        if bounded:
            try:
                media["bound"] = (float(row["start"]), float(row["end"]))
            except (KeyError, TypeError, ValueError):
                return self.bad(
                    ident, "missing_field", f"{location}: bounded task without numeric start/end", **groups
                )
        return self.make_item(
            location,
            ident,
            question=row["question"],
            options=tuple(f"{letter_of(i)}. {c.strip()}" for i, c in enumerate(candidates)),
            answer=letter_of(candidates.index(answer)),
            problem_type="multiple choice",
            metric="accuracy",
            media=media,
            groups=groups,
        )
