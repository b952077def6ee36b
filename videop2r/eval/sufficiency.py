"""Perception sufficiency (the paper's diagnostic): answer from the observation text alone.

A text-only model behind an OpenAI-compatible endpoint gets the question, its options and the
observation the evaluated model wrote — never the video — and answers in ``<answer>``; the
answer is scored with the benchmark's own metric. The paper reports 55.5 for Qwen2.5-VL-7B
answering from VideoP2R's observations (52.9 with the video itself). The prompt lives in
``videop2r/templates/observation_answer.txt``.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from videop2r.eval.chat_client import ChatClient
from videop2r.eval.items import EvalItem
from videop2r.eval.scoring import answer_score
from videop2r.prompting import answer_hint, format_question

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


@functools.lru_cache(maxsize=1)
def observation_answer_template() -> str:
    return (
        resources.files("videop2r").joinpath("templates/observation_answer.txt").read_text(encoding="utf-8")
    )


def observation_prompt(item: EvalItem, observation: str) -> str:
    return observation_answer_template().format(
        modality=item.data_type,
        observation=observation.strip(),
        question=format_question(item.question, list(item.options)),
        answer_hint=answer_hint(item.problem_type),
    )


async def answer_from_observation(
    chat: ChatClient, item: EvalItem, observation: str, *, max_tokens: int
) -> tuple[str | None, float]:
    """(answer, score) of the text model answering `item` from `observation` alone (temperature 0).

    Raises `videop2r.eval.chat_client.ChatError` when the endpoint cannot answer."""
    reply = await chat.complete(
        [{"role": "user", "content": observation_prompt(item, observation)}],
        temperature=0.0,
        max_tokens=max_tokens,
    )
    found = _ANSWER.search(reply.text or "")
    prediction = found.group(1).strip() if found else None
    return prediction, answer_score(item, prediction)
