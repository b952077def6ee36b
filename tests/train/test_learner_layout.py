"""Learner workers spread over the nodes of the Ray cluster (verl's process_on_nodes): one STRICT_PACK
placement group per entry, so no entry may exceed what one node holds."""

from __future__ import annotations

import pytest

from videop2r.train.cluster import learner_layout


def node(cpus: float, gpus: float = 0, alive: bool = True, **custom: float) -> dict:
    """One element of `ray.nodes()` (the keys it has: Alive, Resources)."""
    resources = {"CPU": cpus, "memory": 1e9, "node:10.0.0.1": 1.0, **custom}
    if gpus:
        resources["GPU"] = gpus
    return {"Alive": alive, "Resources": resources, "NodeManagerAddress": "10.0.0.1"}


HEAD = node(2, videop2r_driver=1, videop2r_head=1000)  # the chart's head: no GPU


@pytest.mark.parametrize(("workers", "nodes", "layout"), [
    (8, [HEAD, node(64, 8)], [8]),                           # one learner pod holds them all
    (16, [HEAD, node(64, 8), node(64, 8)], [8, 8]),          # learner.replicas=2 x 8 GPUs
    (12, [HEAD, node(64, 8), node(64, 8)], [8, 4]),
    (24, [HEAD, node(64, 8), node(64, 8), node(64, 8)], [8, 8, 8]),
    (16, [HEAD, node(64, 8), node(64, 8, alive=False), node(64, 8)], [8, 8]),  # a dead node holds nothing
    (4, [HEAD, node(2, 8), node(2, 8)], [2, 2]),              # each bundle needs a CPU too
    (32, [HEAD, node(64, 8), node(64, 8)], [32]),             # too small: the Learner refuses it by name
])
def test_gpu_workers_fill_the_fewest_nodes(workers, nodes, layout):
    assert learner_layout(workers, True, nodes) == layout
    assert sum(layout) == workers


def test_cpu_workers_count_cpus():
    assert learner_layout(2, False, [HEAD]) == [2]
    assert learner_layout(6, False, [HEAD, node(4), node(4)]) == [4, 2]
    assert learner_layout(1, False, []) == [1]
