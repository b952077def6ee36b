"""Requests/s that reward-accuracy sustains for 30 s with zero errors; p50/p99 latency.

Starts reward-accuracy as a real local process (scoring pool sized to this machine's CPUs, or
--workers), then keeps `--concurrency` requests in flight for `--duration` seconds, each a group
of `--group` rollouts of mixed problem types. The peer, measured in the same run: the same items
scored in this process, one after another, with the rewards library (no service, one core).
The load generator runs on the same cores as the service, so the figures are a lower bound.

    .venv/bin/python bench/reward_service_load.py --duration 30 --concurrency 8 --group 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time

import httpx
from tqdm import tqdm

from services.reward.cpus import available_cpus
from videop2r.local_services import videop2r_service
from videop2r.rewards import ScoreRequest, ScoringSettings, score_response

_WORDS = "a red ball rolls left then a blue square slides up past two green circles near the wall".split()


def _response(rng: random.Random, answer: str) -> str:
    observation = " ".join(rng.choices(_WORDS, k=rng.randint(100, 300)))
    think = " ".join(rng.choices(_WORDS, k=rng.randint(250, 500)))
    return f"<observation>{observation}</observation>\n<think>{think}</think>\n<answer>{answer}</answer>"


def make_groups(count: int, group: int, seed: int = 0) -> list[list[dict]]:
    """`count` groups of `group` rollouts; each group shares one question of one of the five types."""
    rng = random.Random(seed)
    groups = []
    for index in range(count):
        kind = index % 5
        items = []
        for k in range(group):
            if kind == 0:
                item = {"problem_type": "multiple choice", "answer": "B",
                        "options": ["A. red", "B. blue", "C. green"],
                        "response": _response(rng, rng.choice("ABC"))}
            elif kind == 1:
                item = {"problem_type": "numerical", "answer": "3",
                        "response": _response(rng, str(rng.randint(1, 5)))}
            elif kind == 2:
                item = {"problem_type": "OCR", "answer": "stop here now",
                        "response": _response(rng, " ".join(rng.choices(["stop", "here", "now", "go"], k=3)))}
            elif kind == 3:
                item = {"problem_type": "free-form", "answer": "a red ball rolls left past two green circles",
                        "response": _response(rng, " ".join(rng.choices(_WORDS, k=10)))}
            else:
                item = {"problem_type": "regression", "answer": "2.5",
                        "response": _response(rng, f"{rng.uniform(0, 5):.2f}")}
            items.append({"id": f"{index}-{k}", **item})
        groups.append(items)
    return groups


async def _load(
    url: str, groups: list[list[dict]], duration: float, concurrency: int
) -> tuple[list[float], int, int]:
    """Latencies of every request, errors, items scored."""
    latencies: list[float] = []
    errors = 0
    items_done = 0
    deadline = time.perf_counter() + duration
    progress = tqdm(total=int(duration), desc="load", unit="s", leave=False)
    async with httpx.AsyncClient(timeout=60) as client:

        async def worker(offset: int) -> None:
            nonlocal errors, items_done
            index = offset
            while time.perf_counter() < deadline:
                group = groups[index % len(groups)]
                index += concurrency
                started = time.perf_counter()
                try:
                    response = await client.post(url + "/v1/score", json={"items": group})
                    ok = response.status_code == 200 and len(response.json()["results"]) == len(group)
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                if ok:
                    items_done += len(group)
                else:
                    errors += 1

        async def tick() -> None:
            while time.perf_counter() < deadline:
                await asyncio.sleep(1)
                progress.update(1)

        await asyncio.gather(tick(), *(worker(i) for i in range(concurrency)))
    progress.close()
    return latencies, errors, items_done


def _cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of a process (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_tree_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of the service process and of its children (the scoring workers)."""
    children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    return _cpu_seconds(pid), sum(_cpu_seconds(int(child)) for child in children)


def _in_process_items_per_s(groups: list[list[dict]], seconds: float) -> float:
    settings = ScoringSettings()
    items = [ScoreRequest.model_validate(item) for group in groups for item in group]
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        score_response(items[done % len(items)], settings)
        done += 1
    return done / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--group", type=int, default=8, help="items per request (one group of G rollouts)")
    parser.add_argument("--workers", type=int, default=0, help="scoring processes (0 = CPUs available)")
    args = parser.parse_args()
    workers = args.workers or available_cpus()
    groups = make_groups(200, args.group)
    score_response(ScoreRequest.model_validate(groups[3][0]))  # pay the lazy imports before timing the peer
    peer = _in_process_items_per_s(groups, 5.0)
    with videop2r_service("reward-accuracy", "--workers", str(workers)) as service:
        asyncio.run(_load(service.url, groups, 3.0, args.concurrency))  # warm-up
        assert service.process is not None
        main_before, workers_before = _process_tree_cpu(service.process.pid)
        run = _load(service.url, groups, args.duration, args.concurrency)
        latencies, errors, items_done = asyncio.run(run)
        main_after, workers_after = _process_tree_cpu(service.process.pid)
    peer = (peer + _in_process_items_per_s(groups, 5.0)) / 2  # before and after: the machine is shared
    requests = len(latencies)
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load {load:.1f}; service: {workers} scoring workers")
    print(f"{args.duration:.0f} s, {args.concurrency} in flight, {args.group} items per request")
    print(f"requests/s      {requests / args.duration:8.1f}   ({requests} requests, {errors} errors)")
    print(f"items/s         {items_done / args.duration:8.1f}")
    print(f"latency p50     {p50 * 1000:8.1f} ms")
    print(f"latency p99     {p99 * 1000:8.1f} ms")
    per_k = 1000 / max(items_done, 1)
    print(f"CPU per 1000 items: service process {(main_after - main_before) * per_k:.2f} s (HTTP, JSON), "
          f"scoring workers {(workers_after - workers_before) * per_k:.2f} s")
    rate = items_done / args.duration
    print(f"peer: in-process serial scoring {peer:8.1f} items/s -> service / peer = {rate / peer:.2f} x")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
