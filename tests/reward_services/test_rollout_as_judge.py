"""The embedded rollout server (`videop2r serve rollout`) as a real chat-completions judge.

A tiny random checkpoint writes no `<judgement>`, so every judged item must come back as an
unparseable No (counted), never as an error; hacked observations never reach it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from videop2r.local_services import LocalService, videop2r_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def rollout_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    from videop2r.model import init_model

    model = init_model("tiny", tmp_path_factory.mktemp("judge-model") / "tiny")
    with LocalService(["-m", "videop2r", "serve", "rollout", "--model", str(Path(model)), "--port", "{port}",
                       "--device", "cpu", "--threads", "1", "--chat-max-tokens", "16"],
                      health_path="/health", startup_timeout_s=240) as server:
        yield server


def test_rollout_server_answers_the_judge_protocol(rollout_server: LocalService) -> None:
    with videop2r_service("reward-judge", "--judge", "openai", "--judge-url", rollout_server.url,
                          "reward.judge_max_tokens=16", "reward.timeout_s=120") as judge:
        tokens_before = rollout_server.metric("videop2r_rollout_generated_tokens_total")
        observations = ["A red square moves right.", "The square is crimson.", "red square, left side",
                        "The square is red, so the answer is A."]
        items = [{"id": i, "question": "What colour is the square?", "options": ["A. red", "B. green"],
                  "answer": "A", "observation": text, "data_type": "video"}
                 for i, text in enumerate(observations)]
        response = httpx.post(judge.url + "/v1/judge", json={"items": items}, timeout=300)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["id"] for r in results] == [0, 1, 2, 3]
        for judged in results[:3]:
            assert not judged["error"] and not judged["refused"] and not judged["sufficient"], judged
            assert "no <judgement>" in judged["reason"]
        assert results[3]["refused"]
        assert judge.metric('videop2r_judge_unparseable_total{judge="openai"}') == 3
        assert judge.metric('videop2r_judge_verdicts_total{judge="openai",verdict="error"}') == 0
        generated = rollout_server.metric("videop2r_rollout_generated_tokens_total") - tokens_before
        assert 3 <= generated <= 3 * 16  # three real generations, each cut at judge_max_tokens
