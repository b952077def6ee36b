"""64 perception judgments against a judge LLM endpoint with a fixed latency L.

Starts, as real local processes, a scripted OpenAI-compatible judge that answers after L seconds
and a reward-judge service (openai judge) in front of it, then times

  fan-out:  one `RewardClient.judge` call with all 64 items (what the trainer does)
  serial:   64 calls of one item each, one after the other (the peer: a judge called per sample)

Goal: fan-out wall time <= 1.5 * L.

    .venv/bin/python bench/judge_fanout.py --latency 0.25 --items 64
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from prometheus_client import CollectorRegistry
from tqdm import tqdm

from videop2r.local_services import LocalService, videop2r_service
from videop2r.rewards.client import RewardClient


def _items(run: str, count: int) -> list[dict]:
    # distinct observations, so that no verdict comes from the cache
    return [{"id": f"{run}-{i}", "question": "What colour is the ball?", "answer": "red",
             "observation": f"Run {run}, rollout {i}: a red ball rolls to the left.", "data_type": "video"}
            for i in range(count)]


async def _fan_out(client: RewardClient, items: list[dict]) -> float:
    started = time.perf_counter()
    results = await client.judge(items)
    elapsed = time.perf_counter() - started
    assert len(results) == len(items) and all(r.sufficient and not r.error for r in results), results[:3]
    return elapsed


async def _serial(client: RewardClient, items: list[dict]) -> float:
    started = time.perf_counter()
    for item in tqdm(items, desc="serial baseline", leave=False):
        [result] = await client.judge([item])
        assert result.sufficient and not result.error, result
    return time.perf_counter() - started


def _cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(url: str, latency: float, count: int, repeats: int, pids: dict[str, int]) -> None:
    async with RewardClient(judge_endpoints=[url], registry=CollectorRegistry()) as client:
        await _fan_out(client, _items("warm-up", 4))
        cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        fan_out = [await _fan_out(client, _items(f"fan-{r}", count)) for r in range(repeats)]
        cpu = {name: (_cpu_seconds(pid) - cpu_before[name]) / repeats for name, pid in pids.items()}
        serial = await _serial(client, _items("serial", count))
    best, median = min(fan_out), statistics.median(fan_out)
    print(f"machine load (1-min average)    {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"judge latency L                 {latency:.3f} s")
    verdict = "met" if median <= 1.5 * latency else "NOT met"
    print(f"fan-out, {count} items (median of {repeats})  {median:.3f} s   (best {best:.3f} s)"
          f"  = {median / latency:.2f} x L   goal <= 1.5 x L: {verdict}")
    print(f"serial,  {count} calls of 1 item     {serial:.3f} s   = {serial / latency:.1f} x L")
    print(f"speed-up fan-out vs serial      {serial / median:.1f} x")
    print("CPU per fan-out of %d items:   " % count
          + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in cpu.items())
          + "  (what the overhead above L costs on an idle machine)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.25, help="seconds the judge takes per call (L)")
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    judge_llm = LocalService(["-m", "services.reward.scripted_judge", "--port", "{port}",
                              "--latency", str(args.latency)])
    with judge_llm:
        service = videop2r_service("reward-judge", "--judge", "openai", "--judge-url", judge_llm.url,
                                   f"reward.max_in_flight={max(64, args.items)}", "reward.timeout_s=30")
        with service:
            assert service.process is not None and judge_llm.process is not None
            pids = {"reward-judge": service.process.pid, "judge LLM stand-in": judge_llm.process.pid}
            asyncio.run(_measure(service.url, args.latency, args.items, args.repeats, pids))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
