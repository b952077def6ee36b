"""Load with a poisoned minority: the innocent requests' error rate (target 0) and latency, the
poisoned ones' statuses (target: all 4xx or counted error lines, no 5xx), and /healthz latency.

Starts reward-accuracy and reward-judge (evidence judge) as real local processes with their
default limits, then for `--duration` seconds keeps `--concurrency` clients busy on each. A
fraction `--poison` of the requests is hostile (issue 16's list: lone surrogates, nesting 900
deep, boolean ids, unknown problem_type, a 1M-word OCR item, bodies over the limit, non-JSON),
and `--slow` sockets per service hold partial headers or bodies open the whole time (slowloris).
A thread polls /healthz every 50 ms. Same cores for load and services: figures are a lower bound.

    .venv/bin/python bench/service_abuse.py --duration 30 --concurrency 8 --poison 0.1 --slow 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import threading
import time
from collections import Counter

import httpx

from videop2r.local_services import LocalService, videop2r_service

TAGS = "<observation>{o}</observation><think>t</think><answer>{a}</answer>"
HUGE = " ".join(["ab"] * 1_000_000)


def innocent(service: str, rng: random.Random, size: int) -> bytes:
    if service == "accuracy":
        items = [{"id": f"i{k}", "problem_type": "numerical", "answer": "3",
                  "response": TAGS.format(o="three dots " * 20, a=rng.choice("345"))} for k in range(size)]
    else:
        items = [{"id": k, "question": "What colour?", "answer": "red", "evidence": ["colour: red"],
                  "observation": f"a {rng.choice(['red', 'blue'])} ball number {k}"} for k in range(size)]
    return json.dumps({"items": items}).encode()


def poisoned(service: str, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["surrogate", "deep", "bool id", "problem_type", "huge ocr", "too big", "not json"])
    return kind, _poisoned(service, rng, kind)


def _poisoned(service: str, rng: random.Random, kind: str) -> bytes:
    good = json.loads(innocent(service, rng, 4))["items"]
    if kind == "surrogate":
        return json.dumps({"items": good}).encode().replace(b'{"items"', b'{"\\ud800": 1, "items"', 1)
    if kind == "deep":
        return b'{"items": [], "x": ' + b"[" * 900 + b"]" * 900 + b"}"
    if kind == "bool id":
        good[1]["id"] = False
    elif kind == "problem_type":
        good[1]["problem_type" if service == "accuracy" else "data_type"] = "dance"
    elif kind == "huge ocr":
        if service == "accuracy":
            good[1] = {"id": "ocr", "problem_type": "OCR", "response": TAGS.format(o="x", a=HUGE), "answer": HUGE}
        else:
            good[1]["observation"] = HUGE
    elif kind == "too big":
        return b'{"items": []}' + b" " * (17 * 1024 * 1024)
    else:
        return b'{"items": [{'
    return json.dumps({"items": good}).encode()


def hold_slow(url: str, count: int, stop: threading.Event) -> None:
    """Keep `count` sockets sending partial requests; reopen each one the server closes."""
    host, port = url.removeprefix("http://").split(":")
    partial = [b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Le",
               b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"]
    sockets: list[socket.socket | None] = [None] * count
    while not stop.is_set():
        for index in range(count):
            sock = sockets[index]
            try:
                if sock is None:
                    sock = socket.create_connection((host, int(port)), timeout=1)
                    sock.sendall(partial[index % 2])
                    sock.setblocking(False)
                    sockets[index] = sock
                elif sock.recv(4096) == b"":
                    raise ConnectionError
            except BlockingIOError:
                pass
            except OSError:
                if sock is not None:
                    sock.close()
                sockets[index] = None
        time.sleep(0.1)
    for sock in sockets:
        if sock is not None:
            sock.close()


def probe(url: str, latencies: list[float], stop: threading.Event) -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                client.get(url + "/healthz")
            except httpx.HTTPError:
                pass
            latencies.append(time.perf_counter() - started)
            time.sleep(0.05)


async def load(service: str, url: str, path: str, args: argparse.Namespace) -> dict:
    rng = random.Random(0)
    innocent_latency: list[float] = []
    outcomes: Counter = Counter()
    deadline = time.monotonic() + args.duration

    async def client(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            bad = rng.random() < args.poison
            kind, body = poisoned(service, rng) if bad else ("", innocent(service, rng, args.group))
            started = time.perf_counter()
            try:
                response = await client.post(path, content=body, headers={"content-type": "application/json"})
                status = response.status_code
                ok = status == 200 and len(response.json()["results"]) == args.group
            except (httpx.HTTPError, ValueError) as exc:  # "too big": 413 and closed before the upload ends
                status, ok = type(exc).__name__, False
            if bad:
                outcomes[f"poisoned {kind}: {status}"] += 1
            else:
                outcomes["innocent ok" if ok else f"innocent FAILED {status}"] += 1
                innocent_latency.append(time.perf_counter() - started)

    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        await asyncio.gather(*(client(http) for _ in range(args.concurrency)))
    innocent_total = sum(count for key, count in outcomes.items() if key.startswith("innocent"))
    failed = innocent_total - outcomes["innocent ok"]
    innocent_latency.sort()
    return {"outcomes": dict(outcomes), "innocent": innocent_total, "innocent_error_rate": failed / max(1, innocent_total),
            "innocent_p50_s": statistics.median(innocent_latency) if innocent_latency else None,
            "innocent_p99_s": innocent_latency[int(0.99 * (len(innocent_latency) - 1))] if innocent_latency else None}


def run(service: str, process: LocalService, path: str, args: argparse.Namespace) -> None:
    stop = threading.Event()
    health: list[float] = []
    threads = [threading.Thread(target=probe, args=(process.url, health, stop), daemon=True),
               threading.Thread(target=hold_slow, args=(process.url, args.slow, stop), daemon=True)]
    for thread in threads:
        thread.start()
    try:
        figures = asyncio.run(load(service, process.url, path, args))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    figures["healthz_max_s"] = max(health) if health else None
    figures["healthz_p99_s"] = sorted(health)[int(0.99 * (len(health) - 1))] if health else None
    figures["service_alive"] = process.alive()
    print(f"{service}: " + json.dumps(figures, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--group", type=int, default=8, help="items per innocent request")
    parser.add_argument("--poison", type=float, default=0.1, help="fraction of hostile requests")
    parser.add_argument("--slow", type=int, default=16, help="slowloris sockets held per service")
    parser.add_argument("--only", choices=("accuracy", "judge"), default=None)
    args = parser.parse_args()
    print(f"duration {args.duration:g}s, concurrency {args.concurrency}, poison {args.poison:.0%}, slow {args.slow}")
    if args.only in (None, "accuracy"):
        with videop2r_service("reward-accuracy") as process:
            run("accuracy", process, "/v1/score", args)
    if args.only in (None, "judge"):
        with videop2r_service("reward-judge", "--judge", "evidence") as process:
            run("judge", process, "/v1/judge", args)


if __name__ == "__main__":
    main()
