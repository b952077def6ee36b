"""The stage skeleton's parts that need no Ray: the teardown and the sample feed."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from videop2r.config import load_config
from videop2r.train.feed import SampleFeed, SkipRule
from videop2r.train.stage import StageRuntime, close_stage


class Part:
    def __init__(self, name: str, calls: list[str], error: Exception | None = None) -> None:
        self.name, self.calls, self.error = name, calls, error

    def close(self) -> None:
        self.calls.append(self.name)
        if self.error is not None:
            raise self.error

    shutdown = close


def test_teardown_closes_every_part_in_order_and_logs_each_failure(caplog):
    calls: list[str] = []
    feed_error, learner_error = OSError("feed gone"), RuntimeError("worker died")
    runtime, feed = Part("runtime", calls), Part("feed", calls, feed_error)
    learner = Part("learner", calls, learner_error)
    with caplog.at_level(logging.ERROR, logger="videop2r.train.stage"):
        first = close_stage(learner, runtime, feed)
    assert calls == ["runtime", "feed", "learner"]  # the learner is shut down although the feed failed
    assert first is feed_error
    logged = [(r.getMessage(), r.exc_info[1]) for r in caplog.records if r.name == "videop2r.train.stage"]
    assert logged == [("teardown: closing the data feed failed", feed_error),
                      ("teardown: closing the learner workers failed", learner_error)]


def test_teardown_before_the_runtime_existed_shuts_the_learner_down():
    calls: list[str] = []
    assert close_stage(Part("learner", calls), None, None) is None
    assert calls == ["learner"]


def test_closing_the_clients_logs_a_failure_and_closes_the_others(caplog):
    closed: list[str] = []

    def client(name: str, error: Exception | None = None) -> SimpleNamespace:
        async def aclose() -> None:
            closed.append(name)
            if error is not None:
                raise error

        return SimpleNamespace(aclose=aclose)

    runtime = StageRuntime.__new__(StageRuntime)  # only the clients: no endpoints, no processor
    runtime.rollout, runtime._remote_rewards = client("rollout", ConnectionError("reset")), client("reward")
    runtime._local_rewards = client("local")
    with asyncio.Runner() as runner, caplog.at_level(logging.ERROR, logger="videop2r.train.stage"):
        runtime.runner = runner
        runtime.close()
    assert closed == ["rollout", "reward", "local"]
    logged = [r for r in caplog.records if r.name == "videop2r.train.stage"]
    assert [r.getMessage() for r in logged] == ["teardown: closing the rollout client failed"]
    assert isinstance(logged[0].exc_info[1], ConnectionError)


class Refused(ValueError):
    pass


def _refusing(calls: set[int]):
    seen = {"n": 0}

    def prepare(processor, sample):
        index = seen["n"]
        seen["n"] += 1
        if index in calls:
            raise Refused(f"sample {index}")
        return (processor, sample.record.problem_id)

    return prepare


@pytest.mark.parametrize("warn_once", [False, True])
def test_the_feed_skips_counts_and_resumes_after_the_last_sample_it_read(assets, make_config, tmp_path, caplog,
                                                                        warn_once):
    config = load_config(make_config(tmp_path / "c.yaml", tmp_path / "run"))
    uri = str(assets["train_shards"])
    counted: list[str] = []
    rule = SkipRule(Refused, "refused_here", warn_once=warn_once)
    feed = SampleFeed(config, uri, None, counted.append, "proc", _refusing({1, 3}), rule)
    reference = SampleFeed(config, uri, None, lambda reason: None, "proc", _refusing(set()), rule)
    try:
        with caplog.at_level(logging.WARNING, logger="videop2r.train.feed"):
            taken = feed.take(3)
        order = [sample.record.problem_id for sample, _ in reference.take(6)]
        assert [prepared for _, prepared in taken] == [("proc", order[i]) for i in (0, 2, 4)]
        assert counted == ["refused_here"] * 2 and feed.skipped["refused_here"] == 2
        warned = [r.getMessage() for r in caplog.records if r.name == "videop2r.train.feed"]
        assert warned == [f"skipping record {order[1]} (refused_here): sample 1"] + \
            ([] if warn_once else [f"skipping record {order[3]} (refused_here): sample 3"])
        resumed = SampleFeed(config, uri, feed.cursor, counted.append, None, _refusing(set()), rule)
        try:
            assert [sample.record.problem_id for sample, _ in resumed.take(1)] == [order[5]]
        finally:
            resumed.close()
    finally:
        feed.close()
        reference.close()
