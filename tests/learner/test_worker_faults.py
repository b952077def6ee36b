"""A learner worker that raises, exits or is killed: an error that names it, never a hang.

The workers here skip the model (the failure handling is the group's, not the model's) and have
methods that fail on one rank while the other rank waits for it in a collective — the case where
verl's plain `ray.get` over all workers would wait forever.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import pytest
import ray
import torch
import torch.distributed as dist

from verl.single_controller.base.decorator import Dispatch, register

from videop2r.config import AlgorithmConfig, LearnerConfig
from videop2r.learner.group import (
    Learner,
    LearnerError,
    LearnerGroupBroken,
    LearnerWorkerDied,
    LearnerWorkerFailed,
)
from videop2r.learner.settings import LearnerSettings
from videop2r.learner.worker import LearnerWorker

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # a local Ray cluster

GRACE_S = 3.0


class FaultyWorker(LearnerWorker):
    """A learner worker without a model and with ways to fail on one rank."""

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def init_model(self) -> dict[str, Any]:
        vision = {"image_token_id": 1, "video_token_id": 2, "merge_size": 2, "blocked_ids": ()}
        return {"rank": self.rank, "reference": False, "vision": vision}

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def load_model_for_real(self) -> dict[str, Any]:
        """The real start-up of a learner worker (what `Learner(...)` runs first)."""
        return LearnerWorker.init_model(self)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def raise_on(self, failing_rank: int) -> int:
        if self.rank == failing_rank:
            raise ValueError("injected failure")
        return self.rank

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def exit_in_collective(self, dying_rank: int) -> float:
        if self.rank == dying_rank:
            os._exit(1)
        value = torch.ones(1)
        dist.all_reduce(value)  # the dead peer never joins
        return float(value)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def wait_in_collective(self, sleeping_rank: int, seconds: float) -> float:
        if self.rank == sleeping_rank:
            time.sleep(seconds)
        value = torch.ones(1)
        dist.all_reduce(value)
        return float(value)


# Ray must ship this class by value: the workers cannot import a pytest test module
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def faulty_group(model_path: str = "unused") -> Learner:
    settings = LearnerSettings(model_path=model_path, algorithm=AlgorithmConfig(kl_coef=0.0),
                               learner=LearnerConfig(threads=1, device="cpu"), collective_timeout_s=120)
    return Learner(settings, num_workers=2, worker_cls=FaultyWorker, failure_grace_s=GRACE_S)


def test_a_raising_worker_is_named_then_one_dying_in_a_collective_breaks_the_group(local_ray, tmp_path):
    missing = tmp_path / "no-such-model"
    learner = faulty_group(str(missing))
    try:
        names = learner.worker_names
        # bad input at start: a model path that does not exist is a clear error, on every rank alike
        expected = rf"ModelLoadError: model path does not exist.*{missing.name}"
        with pytest.raises(LearnerWorkerFailed, match=expected):
            learner.group.load_model_for_real()

        with pytest.raises(LearnerWorkerFailed) as info:
            learner.group.raise_on(1)
        message = str(info.value)
        assert names[1] in message and "rank 1" in message and "ValueError: injected failure" in message
        assert [reply["rank"] for reply in learner.ping()] == [0, 1]  # its peer returned: the group lives

        started = time.monotonic()
        with pytest.raises(LearnerWorkerDied, match=rf"{names[1]} \(rank 1\) died during exit_in_collective"):
            learner.group.exit_in_collective(1)
        # bounded by the grace period, not by the 120 s collective timeout
        assert time.monotonic() - started < GRACE_S + 60
        with pytest.raises(LearnerGroupBroken, match="rank 1"):
            learner.ping()
    finally:
        learner.shutdown()


def test_a_worker_killed_while_its_peer_waits_in_a_collective_is_named(local_ray):
    learner = faulty_group()
    try:
        names = learner.worker_names
        outcome: dict[str, BaseException] = {}

        def call() -> None:
            try:
                learner.group.wait_in_collective(1, 300.0)
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                outcome["error"] = exc

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        time.sleep(2.0)  # rank 0 is in all_reduce, rank 1 asleep
        ray.kill(learner.group.workers[1], no_restart=True)
        caller.join(timeout=GRACE_S + 90)
        assert not caller.is_alive(), "the driver still waits for the killed worker"
        error = outcome.get("error")
        assert isinstance(error, LearnerWorkerDied), error
        assert f"{names[1]} (rank 1) died during wait_in_collective" in str(error)
    finally:
        learner.shutdown()



def test_more_workers_than_the_cluster_can_place_is_refused_not_awaited(local_ray):
    settings = LearnerSettings(model_path="unused", algorithm=AlgorithmConfig(kl_coef=0.0),
                                learner=LearnerConfig(device="cpu"))
    with pytest.raises(LearnerError, match=r"100 learner workers need 100 CPUs; the Ray cluster has 6"):
        Learner(settings, num_workers=100)
