"""Real service processes on 127.0.0.1: the scripted judge LLM, reward-judge, reward-accuracy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from videop2r.local_services import LocalService, videop2r_service

TOKEN = "s3cret-token-for-tests-7f3a"


@pytest.fixture(scope="session")
def service_token() -> str:
    """The bearer token `openai_judge_service` requires."""
    return TOKEN


@pytest.fixture(scope="session")
def scripted_judge() -> Iterator[LocalService]:
    """The judge LLM stand-in: 50 ms per call, faults on #directives in the observation."""
    with LocalService(["-m", "services.reward.scripted_judge", "--port", "{port}", "--latency", "0.05",
                       "--slow", "20"]) as service:
        yield service


@pytest.fixture(scope="session")
def openai_judge_service(scripted_judge: LocalService) -> Iterator[LocalService]:
    """reward-judge with the openai judge: 4 calls in flight, 1 s timeout, 2 retries, bearer auth."""
    with videop2r_service(
        "reward-judge", "--judge", "openai", "--judge-url", scripted_judge.url + "/v1",
        "reward.max_in_flight=4", "reward.timeout_s=1", "reward.max_retries=2",
        "reward.retry_backoff_s=0.05", "reward.retry_backoff_max_s=0.2", "reward.max_body_bytes=4096",
        env={"VIDEOP2R_REWARD_TOKEN": TOKEN},
    ) as service:
        yield service


@pytest.fixture(scope="session")
def evidence_judge_services() -> Iterator[list[LocalService]]:
    """Two reward-judge replicas with the evidence judge (no auth)."""
    with videop2r_service("reward-judge", "--judge", "evidence") as first, \
            videop2r_service("reward-judge", "--judge", "evidence") as second:
        yield [first, second]


@pytest.fixture(scope="session")
def accuracy_service() -> Iterator[LocalService]:
    """reward-accuracy with 2 scoring processes and a 64 KiB body limit."""
    with videop2r_service("reward-accuracy", "--workers", "2", "reward.max_body_bytes=65536") as service:
        yield service
