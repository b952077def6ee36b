"""reward-accuracy as a real process: same lines as the library, in order, from a process pool."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from videop2r.local_services import LocalService
from videop2r.rewards import ScoreRequest, score_response

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}


def _response(observation: str, think: str, answer: str) -> str:
    return f"<observation>{observation}</observation>\n<think>{think}</think>\n<answer>{answer}</answer>"


def _items() -> list[dict]:
    """A mixed batch: every problem type, right and wrong answers, broken templates."""
    return [
        {"id": "mc", "problem_type": "multiple choice", "response": _response("red ball", "red is A", "A"),
         "solution": "<answer>A</answer>", "options": ["A. red", "B. blue"]},
        {"id": "mc-wrong", "problem_type": "multiple choice", "response": _response("red", "so B", "B"),
         "answer": "A", "options": ["A. red", "B. blue"]},
        {"id": 7, "problem_type": "numerical", "response": _response("3 dots", "count", "3"), "answer": "3"},
        {"id": "ocr", "problem_type": "OCR", "response": _response("a sign", "read it", "hello world"),
         "answer": "hello there world"},
        {"id": "free", "problem_type": "free-form",
         "response": _response("dog", "chase", "a dog chases a bike"),
         "solution": "<answer>a dog chases a bicycle</answer>"},
        {"id": "reg", "problem_type": "regression", "response": _response("x", "y", "2.5"), "answer": "3.0"},
        {"id": "no-tags", "problem_type": "numerical", "response": "just 3", "answer": "3"},
        {"id": "verdict", "problem_type": "numerical", "response": _response("3 dots", "count", "3"),
         "answer": "3", "perception_verdict": True},
    ]


def _score(service: LocalService, items: list[dict]) -> httpx.Response:
    return httpx.post(service.url + "/v1/score", json={"items": items}, timeout=60)


def test_results_are_the_library_lines_in_order(accuracy_service: LocalService) -> None:
    items = _items()
    response = _score(accuracy_service, items)
    assert response.status_code == 200, response.text
    expected = [score_response(ScoreRequest.model_validate(item)) for item in items]
    assert response.json()["results"] == expected
    assert [line["id"] for line in response.json()["results"]] == [item["id"] for item in items]


def test_large_batch_is_split_over_the_workers_and_reassembled(accuracy_service: LocalService) -> None:
    items = [{**item, "id": f"{index}-{item['id']}"} for index in range(30) for item in _items()]
    response = _score(accuracy_service, items)
    assert response.status_code == 200
    assert [line["id"] for line in response.json()["results"]] == [item["id"] for item in items]
    assert response.json()["results"][0] == score_response(ScoreRequest.model_validate(items[0]))


def test_concurrent_requests_all_succeed(accuracy_service: LocalService) -> None:
    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda _: _score(accuracy_service, _items()), range(24)))
    assert [r.status_code for r in responses] == [200] * 24
    assert all(len(r.json()["results"]) == len(_items()) for r in responses)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"items": [', 400, "not valid JSON"),
        (b'{"items": [{"id": 1, "problem_type": "OCR", "answer": "a"}]}', 422,
         "items.0.response: Field required"),
        (b'{"items": [{"id": 1, "problem_type": 5, "response": "x", "answer": "a"}]}', 422,
         "items.0.problem_type"),
        (b'{"items": [{"id": 1, "problem_type": "OCR", "response": "x"}]}', 422, "'solution' or an 'answer'"),
        (b'{"items": {"id": 1}}', 422, "items"),
        (b'{"items": [{"id": 1, "problem_type": "interpretive dance", "response": "x", "answer": "a"}]}', 422,
         "items.0.problem_type: unknown problem_type"),
        (b'{"items": []}' + b" " * 70_000, 413, "exceeds the limit of 65536"),
    ],
)
def test_bad_input_gets_a_4xx_and_the_service_stays_up(
    accuracy_service: LocalService, body: bytes, status: int, message: str
) -> None:
    response = httpx.post(accuracy_service.url + "/v1/score", content=body, headers=JSON)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert response.json()["code"] == {400: "invalid_json", 413: "body_too_large", 422: "invalid_request"}[status]
    assert _score(accuracy_service, _items()[:1]).status_code == 200


def test_empty_batch(accuracy_service: LocalService) -> None:
    assert _score(accuracy_service, []).json() == {"results": []}


def test_health_and_metrics(accuracy_service: LocalService) -> None:
    health = httpx.get(accuracy_service.url + "/healthz").json()
    assert health == {"status": "ok", "service": "reward-accuracy", "workers": 2}
    _score(accuracy_service, _items())
    ok_series = 'videop2r_reward_requests_total{service="reward-accuracy",status="200"}'
    assert accuracy_service.metric(ok_series) > 0
    assert accuracy_service.metric('videop2r_reward_items_total{service="reward-accuracy"}') >= len(_items())
    assert accuracy_service.metric('videop2r_reward_request_seconds_count{service="reward-accuracy"}') >= 1
    exposition = httpx.get(accuracy_service.url + "/metrics").text
    assert 'videop2r_reward_in_flight{service="reward-accuracy"} 0.0' in exposition


def _scoring_workers(service: LocalService) -> list[int]:
    assert service.process is not None
    children = Path(f"/proc/{service.process.pid}/task/{service.process.pid}/children").read_text().split()
    return [int(pid) for pid in children
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            and b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]


@pytest.mark.slow
def test_a_killed_worker_is_replaced(accuracy_service: LocalService) -> None:
    workers = _scoring_workers(accuracy_service)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    response = _score(accuracy_service, _items())
    assert response.status_code == 200 and len(response.json()["results"]) == len(_items())
    assert accuracy_service.alive() and workers[0] not in _scoring_workers(accuracy_service)
