"""The reward services against the hostile and broken input of issue 16, as real processes with
their default limits: every case is a 4xx `ErrorBody` (or a counted error line), the innocent
items of the same request are scored, `/healthz` keeps answering, and nothing is logged whole."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from videop2r.local_services import LocalService, videop2r_service

pytestmark = pytest.mark.integration

JSON = {"content-type": "application/json"}
TAGS = "<observation>{o}</observation><think>t</think><answer>{a}</answer>"


@pytest.fixture(scope="module")
def accuracy() -> Iterator[LocalService]:
    with videop2r_service("reward-accuracy", "--workers", "2") as service:
        yield service


@pytest.fixture(scope="module")
def judge() -> Iterator[LocalService]:
    with videop2r_service("reward-judge", "--judge", "evidence") as service:
        yield service


def _item(ident, **extra) -> dict:
    return {"id": ident, "problem_type": "numerical", "response": TAGS.format(o="3 dots", a="3"), "answer": "3",
            **extra}


def _judge_item(ident, observation: str = "a red ball", **extra) -> dict:
    return {"id": ident, "question": "What colour?", "answer": "red", "observation": observation,
            "evidence": ["colour: red"], **extra}


def _post(service: LocalService, path: str, body: bytes, timeout: float = 120) -> httpx.Response:
    return httpx.post(service.url + path, content=body, headers=JSON, timeout=timeout)


def _assert_error(response: httpx.Response, status: int, code: str, text: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code"} and body["code"] == code, body
    assert text in body["error"] and len(body["error"]) < 700


DEEP = b'{"items": [' + b'{"id": 1, "problem_type": "OCR", "response": "x", "answer": "x", "extra": ' + \
    b"[" * 500 + b"]" * 500 + b"}]}"
ACCURACY_CASES = {
    "surrogate key": (rb'{"items": [], "\ud800": 1}', 422, "invalid_request", "lone surrogate"),
    "surrogate value": (json.dumps({"items": [_item(1, response="hi \\ud800")]}).replace("\\\\", "\\").encode(),
                        422, "invalid_request", "lone surrogate"),
    "depth 500": (DEEP, 422, "invalid_request", "nested more than"),
    "depth 100000": (b"[" * 100_000 + b"]" * 100_000, 422, "invalid_request", "nested more than"),
    "unknown problem_type": (json.dumps({"items": [_item(1, problem_type="dance")]}).encode(), 422,
                             "invalid_request", "unknown problem_type"),
    "boolean id": (json.dumps({"items": [_item(False)]}).encode(), 422, "invalid_request", "items.0.id"),
    "not json": (b"{", 400, "invalid_json", "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(ACCURACY_CASES))
def test_accuracy_refuses_hostile_bodies_with_one_error_shape(accuracy, case):
    body, status, code, text = ACCURACY_CASES[case]
    _assert_error(_post(accuracy, "/v1/score", body), status, code, text)
    assert _post(accuracy, "/v1/score", json.dumps({"items": [_item(1)]}).encode()).status_code == 200


JUDGE_CASES = {
    "surrogate id": (rb'{"items": [{"id": "\ud800", "question": "q", "answer": "a", "observation": "o"}]}',
                     422, "invalid_request", "lone surrogate"),
    "boolean id": (json.dumps({"items": [_judge_item(False)]}).encode(), 422, "invalid_request", "items.0.id"),
    "surrogate observation": (rb'{"items": [{"id": 1, "question": "q", "answer": "a", "observation": "\udfff"}]}',
                              422, "invalid_request", "lone surrogate"),
    "depth 500": (b'{"items": [], "x": ' + b"[" * 500 + b"]" * 500 + b"}", 422, "invalid_request", "nested"),
}


@pytest.mark.parametrize("case", sorted(JUDGE_CASES))
def test_judge_refuses_hostile_bodies_with_one_error_shape(judge, case):
    body, status, code, text = JUDGE_CASES[case]
    _assert_error(_post(judge, "/v1/judge", body), status, code, text)
    ok = _post(judge, "/v1/judge", json.dumps({"items": [_judge_item("x")]}).encode())
    assert ok.status_code == 200 and ok.json()["results"][0]["sufficient"] is True


@pytest.mark.parametrize("service_name", ["accuracy", "judge"])
def test_unknown_paths_and_methods_have_the_same_error_shape(request, service_name):
    service = request.getfixturevalue(service_name)
    _assert_error(httpx.get(service.url + "/nope"), 404, "not_found")
    path = "/v1/score" if service_name == "accuracy" else "/v1/judge"
    _assert_error(httpx.get(service.url + path), 405, "method_not_allowed")


def test_integer_ids_stay_integers_and_strings_strings(judge):
    results = _post(judge, "/v1/judge", json.dumps({"items": [_judge_item(0), _judge_item("0")]}).encode())
    assert [result["id"] for result in results.json()["results"]] == [0, "0"]


class _HealthProbe:
    """Polls /healthz in a thread while something else runs; records each answer's latency."""

    def __init__(self, url: str) -> None:
        self.url, self.latencies, self.failures = url, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get(self.url + "/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - started)
                self.failures += not ok
                time.sleep(0.05)

    def __enter__(self) -> "_HealthProbe":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def test_the_quadratic_ocr_item_is_refused_by_budget_and_its_batch_is_scored(accuracy):
    """1M words in answer and response (a 4 MB body): over the scoring budget, an error line; the
    innocent items of the same request are scored and /healthz answers throughout."""
    words = " ".join(["ab"] * 1_000_000)
    poisoned = {"id": "ocr", "problem_type": "OCR", "response": TAGS.format(o="x", a=words), "answer": words}
    items = [_item(index) for index in range(4)] + [poisoned] + [_item(index) for index in range(4, 8)]
    before = accuracy.metric('videop2r_samples_skipped_total{reason="over_budget"}')
    with _HealthProbe(accuracy.url) as probe:
        response = _post(accuracy, "/v1/score", json.dumps({"items": items}).encode())
    assert response.status_code == 200, response.text[:500]
    lines = response.json()["results"]
    assert lines[4]["id"] == "ocr" and lines[4]["error"].startswith("OverBudget")
    assert all(line["reasoning"]["accuracy"] == 1.0 for index, line in enumerate(lines) if index != 4)
    assert accuracy.metric('videop2r_samples_skipped_total{reason="over_budget"}') == before + 1
    assert probe.latencies and probe.failures == 0


def test_a_large_judge_request_does_not_hold_healthz(judge):
    items = [_judge_item(index, observation=f"a red ball number {index}") for index in range(20_000)]
    with _HealthProbe(judge.url) as probe:
        response = _post(judge, "/v1/judge", json.dumps({"items": items}).encode())
    assert response.status_code == 200 and len(response.json()["results"]) == 20_000
    assert len(probe.latencies) >= 2 and probe.failures == 0


def test_rejected_messages_are_logged_truncated(accuracy):
    huge_key = "k" * 2_000_000
    body = json.dumps({"items": [], huge_key: 1}).encode()
    _assert_error(_post(accuracy, "/v1/score", body), 422, "invalid_request", "Extra inputs")
    assert max(len(line) for line in accuracy.log_text().splitlines()) < 2000
