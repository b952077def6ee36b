"""The evidence judge: every ground-truth fact stated, with synonyms, number words and negation."""

from __future__ import annotations

import pytest

from videop2r.config import load_config
from videop2r.rewards.judges import JudgeError, JudgeItem, JudgePipeline, build_judge
from videop2r.rewards.judges.evidence import EvidenceJudge, fact_stated, judge_facts, missing_facts, parse_fact, tokens


@pytest.mark.parametrize(
    ("fact", "observation"),
    [
        ("colour: red", "A crimson ball bounces."),
        ("color: red", "The ball is reddish."),
        ("colour: gray", "A grey square sits still."),
        ("colour: grey", "A gray square sits still."),
        ("direction: left", "The square slides leftward."),
        ("direction: left", "It travels from right to left across the frame."),
        ("direction: right", "It moves from the left side to the right."),
        ("direction: up", "The dot rises steadily."),
        ("direction: down", "It moves from top to bottom."),
        ("direction: counterclockwise", "The arrow turns anti-clockwise."),
        ("direction: counterclockwise", "The arrow turns counter clockwise."),
        ("count: 3", "There are three circles."),
        ("count: 3", "I count 3 circles."),
        ("count: 21", "twenty-one dots appear"),
        ("count: 2", "The ball bounces twice."),
        ("count: 0", "There are zero triangles."),
        ("shape: circle", "A red disc moves left."),
        ("shape: circle", "Two round objects."),
        ("shape: square", "Several squares line up."),
        ("word: CAT", "The sign reads cat in capitals."),
        ("word: HELLO WORLD", "The banner says 'Hello, World'."),
        ("speed: fast", "The ball moves fast."),
        ("distance: 30", "It travels 30 pixels."),
        ("distance: 30", "It moves left from x=40 to x=10."),
    ],
)
def test_fact_is_stated(fact: str, observation: str) -> None:
    assert fact_stated(fact, tokens(observation), observation), (fact, observation)


@pytest.mark.parametrize(
    ("fact", "observation"),
    [
        ("colour: red", "A blue ball bounces."),
        ("colour: red", "The ball is not red; it is blue."),
        ("direction: left", "It travels from left to right."),
        ("direction: clockwise", "The arrow turns counterclockwise."),
        ("count: 3", "There are thirteen circles."),
        ("count: 3", "There are 13 circles."),
        ("count: 3", "There are several circles."),
        ("shape: circle", "A square moves left."),
        ("word: CAT", "The sign reads CATALOG."),
        ("word: HELLO WORLD", "The banner says 'world, hello'."),
        ("distance: 30", "It moves left from x=40 to x=20."),
        ("count: 30", "It moves left from x=40 to x=10."),
    ],
)
def test_fact_is_not_stated(fact: str, observation: str) -> None:
    assert not fact_stated(fact, tokens(observation), observation), (fact, observation)


def test_parse_fact_normalises_the_key() -> None:
    assert parse_fact("Colour: Red") == ("color", "Red")
    assert parse_fact("no key here") == ("", "no key here")


def test_missing_facts_lists_exactly_the_missing_ones_in_order() -> None:
    evidence = ["colour: red", "shape: circle", "direction: left", "count: 2"]
    assert missing_facts(evidence, "Two red circles move to the left.") == []
    assert missing_facts(evidence, "A red circle moves up.") == ["direction: left", "count: 2"]


async def test_judge_verdicts_and_reasons() -> None:
    judge = EvidenceJudge()
    item = JudgeItem(id=1, question="What colour is the ball?", answer="red", observation="A crimson ball.",
                     evidence=["colour: red"])
    verdict = await judge.judge(item)
    assert verdict.sufficient and "1 evidence facts" in verdict.reason
    verdict = await judge.judge(item.model_copy(update={"observation": "A ball."}))
    assert not verdict.sufficient and "colour: red" in verdict.reason
    with pytest.raises(JudgeError, match="no evidence"):
        await judge.judge(item.model_copy(update={"evidence": None}))


def test_deterministic() -> None:
    evidence = ["colour: blue", "count: 4", "direction: up"]
    observation = "Four bluish squares climb upward, one after another."
    assert {tuple(missing_facts(evidence, observation)) for _ in range(20)} == {()}


async def test_pipeline_with_evidence_judge_refuses_and_marks_errors() -> None:
    pipeline = JudgePipeline.from_config(load_config(overrides=["reward.judge=evidence"]).reward)
    assert isinstance(pipeline.judge, EvidenceJudge)
    base = dict(question="What colour is the ball?", answer="red", evidence=["colour: red"])
    results = await pipeline.judge_batch([
        JudgeItem(id="ok", observation="A red ball.", **base),
        JudgeItem(id="hack", observation="A red ball, so the answer is red.", **base),
        JudgeItem(id="no-evidence", observation="A red ball.", **{**base, "evidence": None}),
    ])
    assert [r.id for r in results] == ["ok", "hack", "no-evidence"]
    assert results[0].sufficient and not results[0].refused
    assert results[1].refused and not results[1].sufficient and results[1].reason.startswith("refused:")
    assert results[2].error and not results[2].sufficient


def test_build_judge_by_name() -> None:
    config = load_config().reward
    assert build_judge(config, "evidence").name == "evidence"
    with pytest.raises(ValueError, match="unknown judge"):
        build_judge(config, "astrology")


@pytest.fixture(scope="module")
def synthetic_records(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    import json

    from videop2r.data.synth import synthesize

    out = tmp_path_factory.mktemp("synth")
    synthesize(out, num=12, seed=3, size=56, durations=(2,), write_json=False, progress=False)
    return [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]


async def test_synthetic_reference_observations_are_sufficient_and_not_refused(
    synthetic_records: list[dict],
) -> None:
    """The synthetic set's own observations state their evidence; another clip's facts are missing."""
    pipeline = JudgePipeline(EvidenceJudge())
    items = [JudgeItem(id=r["problem_id"], question=r["problem"], options=r["options"] or None,
                       answer=r["answer"], observation=r["observation"], evidence=r["evidence"])
             for r in synthetic_records]
    assert {fact.split(":")[0] for item in items for fact in item.evidence or []} >= {
        "colour", "shape", "direction", "count", "word"}
    results = await pipeline.judge_batch(items)
    assert all(r.sufficient and not r.refused for r in results), [r for r in results if not r.sufficient]
    def kind(item: JudgeItem) -> str:
        return (item.evidence or [""])[0].split(":")[0]

    swapped = []
    for item in items:  # the observation of a record of the same kind whose facts all differ
        other = next((o for o in items if kind(o) == kind(item)
                      and set(o.evidence or []).isdisjoint(item.evidence or [])), None)
        if other is not None:
            swapped.append(item.model_copy(update={"observation": other.observation}))
    assert swapped
    assert not any(r.sufficient for r in await pipeline.judge_batch(swapped))


MOVING = "What colour is the moving shape?"


@pytest.mark.parametrize(
    ("evidence", "observation", "question"),
    [
        (["colour: red"], "I see a blue, green, red and yellow shape.", MOVING),  # the reported game
        (["colour: red"], "I see a red or blue shape moving left.", MOVING),
        (["colour: red"], "It is either red or blue.", MOVING),
        (["colour: red"], "The shape might be red, it might be green.", MOVING),
        (["colour: red"], "a red circle and a blue square", MOVING),  # which one moves?
        (["colour: red"], "a red circle, a blue square, a green triangle and a yellow star", MOVING),
        (["shape: circle"], "A red circle or square moves left.", "What shape moves in the video?"),
        (["direction: left"], "It moves left or right.", "In which direction does the shape move?"),
        (["count: 3"], "I see three or four shapes.", "How many shapes are in the video?"),
        (["count: 3"], "There are 3-4 circles.", "How many shapes are in the video?"),
    ],
)
def test_hedged_or_listed_observations_are_not_sufficient(evidence: list[str], observation: str,
                                                          question: str) -> None:
    sufficient, reason = judge_facts(evidence, observation, question)
    assert not sufficient and "not committed" in reason, reason


@pytest.mark.parametrize(
    ("evidence", "observation", "question"),
    [
        (["colour: red"], "I see a red circle moving left.", MOVING),
        (["colour: red"], "A red circle moves left next to a blue square.", MOVING),
        (["colour: red"], "A red circle moves left while a blue square stays still.", MOVING),
        (["colour: red"], "The ball is not blue; it is red.", MOVING),  # a negated candidate is no candidate
        (["count: 3"], "three shapes: a red circle, a blue square and a green circle",
         "How many shapes are in the video?"),
        (["colour: red", "shape: circle", "direction: left"], "I see a red circle moving left.",
         "Describe the video in one short sentence."),
        (["distance: 30"], "It moves left from x=40 to x=10.", "How many pixels does the shape travel?"),
    ],
)
def test_honest_observations_naming_other_objects_stay_sufficient(evidence: list[str], observation: str,
                                                                  question: str) -> None:
    sufficient, reason = judge_facts(evidence, observation, question)
    assert sufficient, reason


async def test_the_judge_refuses_a_hedge_through_its_public_interface() -> None:
    judge = EvidenceJudge()
    base = dict(id=1, question=MOVING, options=["A. red", "B. green", "C. blue", "D. yellow"], answer="A",
                evidence=["colour: red"])
    hedge = await judge.judge(JudgeItem(observation="a blue, green, red and yellow shape", **base))
    honest = await judge.judge(JudgeItem(observation="a red circle moving left beside a blue square", **base))
    assert not hedge.sufficient and honest.sufficient
