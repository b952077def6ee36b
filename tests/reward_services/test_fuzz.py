"""Fuzz both reward services from their own OpenAPI documents (issue 16): bodies generated from the
request schema, then mutated the way hostile clients do (lone surrogates, booleans for ids, huge
and non-finite numbers, deep nesting, missing and extra fields, wrong types). Every answer must be
a 200 whose body matches the documented response schema (one result per item), or a 4xx
`ErrorBody` — never a 5xx. Bounded: a fixed number of examples per endpoint, derandomised.

schemathesis 4.32.5 resolves against requirements.lock (it adds harfile, hypothesis-graphql,
graphql-core, pyrate-limiter and the compiled jsonschema_rs), but helpers may not add compiled
packages to the shared venv, so this drives the schema with plain hypothesis strategies.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from services.reward.accuracy_service import ScoreResults, create_accuracy_app
from services.reward.judge_service import create_judge_app
from services.reward.payload import MAX_DEPTH, ErrorBody
from videop2r.config import VideoP2RConfig
from videop2r.rewards.judges import JudgeBatchResult

EXAMPLES = 300
STATS: dict[str, dict[str, float]] = {}

# Containers are deep-copied per draw: `sampled_from` hands out the same object every time, so a
# mutation that edited one changed every later example, and a body could come to contain itself
# (the walk that `mutated` used then grew without end: 19 GB before the OOM killer, on a slow machine
# where hypothesis's time-dependent choices took that path).
HOSTILE = st.one_of(
    st.sampled_from(["\ud800", "a\udfffb", "", " ", "\x00", "é" * 3, True, False, None, 0, -1, 2**70,
                     -(2**64), 1e308, -0.0, "Infinity"]),
    st.sampled_from([[], {}, [[[[]]]]]).map(copy.deepcopy),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.integers(min_value=-(2**100), max_value=2**100),
)


# fields whose valid values a schema cannot say (the problem types are parsed, not an enum)
FIELD_HINTS = {
    "problem_type": st.sampled_from(["multiple choice", "numerical", "OCR", "free-form", "regression",
                                     "Multiple_Choice", "ocr"]) | st.text(max_size=8),
    "answer": st.sampled_from(["A", "3", "3.0", "red ball", "a dog runs", ""]) | st.text(max_size=30),
}


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def from_schema(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> st.SearchStrategy:
    """Valid instances of a pydantic-generated JSON schema (the subset FastAPI emits)."""
    schema = _resolve(schema, components)
    if "anyOf" in schema:
        return st.one_of(*(from_schema(option, components, depth) for option in schema["anyOf"]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        return st.text(max_size=40) | st.sampled_from(["A", "3", "3.0", "red", "OCR", "multiple choice",
                                                       "numerical", "free-form", "regression", "colour: red",
                                                       "<observation>a red ball</observation><think>t</think>"
                                                       "<answer>A</answer>"])
    if kind == "integer":
        return st.integers(min_value=-(2**63), max_value=2**63)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(schema.get("items", {}), components, depth + 1)
        return st.lists(items, max_size=min(schema.get("maxItems", 4), 4 if depth == 0 else 3))
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fields = {name: FIELD_HINTS[name] if name in FIELD_HINTS else from_schema(sub, components, depth + 1)
                  for name, sub in properties.items()}
        return st.fixed_dictionaries(
            {name: fields[name] for name in required},
            optional={name: fields[name] for name in properties if name not in required},
        )
    return HOSTILE


def containers(body: Any) -> list[Any]:
    """Every dict and list of `body`, each once (a container seen again is not walked again)."""
    seen: dict[int, Any] = {}
    stack: list[Any] = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, (dict, list)) and id(node) not in seen:
            seen[id(node)] = node
            stack.extend(node.values() if isinstance(node, dict) else node)
    return list(seen.values())


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy) -> Any:
    """A valid body, with a few hostile changes at random places (or none)."""
    body = draw(valid)
    nested_deep = False
    for _ in range(draw(st.integers(0, 3))):
        nodes = [(node, key) for node in containers(body)
                 for key in (node.keys() if isinstance(node, dict) else range(len(node)))]
        if not nodes:
            break
        parent, key = draw(st.sampled_from(nodes))
        action = draw(st.sampled_from(["replace", "replace", "delete", "extra", "nest"]))
        if action == "replace":
            parent[key] = draw(HOSTILE)
        elif action == "delete" and isinstance(parent, dict):
            del parent[key]
        elif action == "extra" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["\ud800", "extra", "id", ""]))] = draw(HOSTILE)
        elif action == "nest" and not nested_deep:  # one deep nest a body: json.dumps must still encode it
            nested_deep = True
            depth = draw(st.sampled_from([10, 40, 900]))
            nested: Any = parent[key]
            for _ in range(depth):
                nested = [nested]
            parent[key] = nested
    return body


def _encode(body: Any) -> bytes:
    # ASCII escapes carry lone surrogates the way a JSON client sends them; out-of-range floats
    # become the non-standard tokens some clients emit
    return json.dumps(body, allow_nan=True).encode()


def _hostile_text_or_depth(body: Any) -> bool:
    """Whether the body holds a lone surrogate (string or key) or nests deeper than the services allow."""
    stack = [(body, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        texts = [node] if isinstance(node, str) else list(node) if isinstance(node, dict) else []
        if any(any(0xD800 <= ord(char) <= 0xDFFF for char in text) for text in texts):
            return True
        values = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((value, depth + 1) for value in values)
    return False


def _check(response, body: Any, results_model) -> int:
    status = response.status_code
    assert status < 500, (status, response.text[:500])
    if _hostile_text_or_depth(body):
        assert status in (400, 422), (status, response.text[:300])
    items = body.get("items") if isinstance(body, dict) else None
    body = response.json()
    if status == 200:
        parsed = results_model.model_validate(body)
        assert len(parsed.results) == len(items)
    else:
        ErrorBody.model_validate(body)
    return status


def _fuzz(client: TestClient, path: str, name: str, results_model) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    request = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "200" in schema["paths"][path]["post"]["responses"] and "422" in schema["paths"][path]["post"]["responses"]
    stats = STATS.setdefault(name, {"cases": 0, "200": 0, "4xx": 0, "5xx": 0, "seconds": 0.0})
    started = time.perf_counter()

    # no explain phase: its line tracing makes a failing run crawl through the deep bodies
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(body=mutated(from_schema(request, components)))
    def case(body: Any) -> None:
        stats["cases"] += 1
        response = client.post(path, content=_encode(body), headers={"content-type": "application/json"})
        if response.status_code >= 500:
            stats["5xx"] += 1
        status = _check(response, body, results_model)
        stats["200" if status == 200 else "4xx"] += 1

    case()
    stats["seconds"] = time.perf_counter() - started
    print(f"\nfuzz {name}: {stats}")  # the closing note's figures (pytest -s)
    assert stats["200"] > 0 and stats["4xx"] > 0  # both branches were exercised


@pytest.fixture(scope="module")
def accuracy_client() -> Iterator[TestClient]:
    with TestClient(create_accuracy_app(VideoP2RConfig(), workers=1), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def judge_client() -> Iterator[TestClient]:
    with TestClient(create_judge_app(VideoP2RConfig(), kind="evidence"), raise_server_exceptions=False) as client:
        yield client


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_bodies_share_no_container_and_never_contain_themselves(data) -> None:
    """Two bodies drawn one after the other have no dict or list in common, and no body holds a
    container twice (the shared `[]` of a plain `sampled_from` failed this within a few draws)."""
    request = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}},
                                                "extra": {}}, "required": ["items"]}
    strategy = mutated(from_schema(request, {}))
    first, second = data.draw(strategy), data.draw(strategy)
    for body in (first, second):
        distinct = len(containers(body))
        walked = 0
        stack = [body]
        while stack and walked <= distinct:  # a container met twice stops the walk
            node = stack.pop()
            if isinstance(node, (dict, list)):
                walked += 1
                stack.extend(node.values() if isinstance(node, dict) else node)
        assert walked == distinct, "a container occurs twice in one body"
    assert not {id(c) for c in containers(first)} & {id(c) for c in containers(second)}


def test_fuzz_score(accuracy_client):
    _fuzz(accuracy_client, "/v1/score", "reward-accuracy /v1/score", ScoreResults)


def test_fuzz_judge(judge_client):
    _fuzz(judge_client, "/v1/judge", "reward-judge /v1/judge", JudgeBatchResult)


@pytest.mark.parametrize("raw", [b"NaN", b'{"items": [{"id": Infinity}]}', b"\xff\xfe", b"", b"null",
                                 b'{"items": null}', b'{"items": [' + b"[" * 3000 + b"]" * 3000 + b"]}"])
def test_raw_non_json_and_odd_tokens(accuracy_client, judge_client, raw):
    for client, path in ((accuracy_client, "/v1/score"), (judge_client, "/v1/judge")):
        response = client.post(path, content=raw, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (path, raw[:40], response.text[:300])
        ErrorBody.model_validate(response.json())
