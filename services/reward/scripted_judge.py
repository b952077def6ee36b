"""A scripted OpenAI-compatible chat-completions server: the judge LLM stand-in for tests and benches.

It answers `<judgement>Yes</judgement>` after a fixed latency, unless the observation in the
prompt (between the template's `<<<OBSERVATION` markers) carries a directive:

  #no        answer No                 #500      HTTP 500
  #429       HTTP 429, Retry-After 0   #garbage  HTTP 200 with a body that is not JSON
  #ramble    a completion with no <judgement> in it
  #slow      sleep `slow_s` first (to trip the caller's timeout)
  #flaky     HTTP 500 for the first `flaky_failures` calls with this observation, then Yes

`--mode` forces one behaviour for every call. `GET /stats` reports calls and peak concurrency,
`POST /stats/reset` clears them.

    python -m services.reward.scripted_judge --port 8099 --latency 0.25
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from collections import Counter

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

DIRECTIVES = ("no", "500", "429", "garbage", "ramble", "slow", "flaky")
_OBSERVATION = re.compile(r"<<<OBSERVATION\n(.*?)\nOBSERVATION>>>", re.S)


def _completion(content: str, model: str) -> dict:
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def create_scripted_judge_app(
    latency_s: float = 0.0, mode: str | None = None, slow_s: float = 30.0, flaky_failures: int = 2
) -> FastAPI:
    app = FastAPI(title="scripted judge")
    calls_by_observation: Counter[str] = Counter()
    stats = {"calls": 0, "in_flight": 0, "max_in_flight": 0}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        stats["calls"] += 1
        stats["in_flight"] += 1
        stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
        try:
            body = await request.json()
            prompt = str(body["messages"][-1]["content"])
            found = _OBSERVATION.search(prompt)
            observation = found.group(1) if found else prompt
            calls_by_observation[observation] += 1
            action = mode or next((d for d in DIRECTIVES if f"#{d}" in observation), "yes")
            await asyncio.sleep(slow_s if action == "slow" else latency_s)
            if action == "500" or (action == "flaky" and calls_by_observation[observation] <= flaky_failures):
                return JSONResponse({"error": "scripted failure"}, status_code=500)
            if action == "429":
                return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "0"})
            if action == "garbage":
                return PlainTextResponse("<html>502 upstream garbage", status_code=200)
            model = str(body.get("model", "scripted"))
            if action == "ramble":
                return JSONResponse(_completion("Hard to say. Maybe? I would lean towards yes-ish.", model))
            verdict = "No" if action == "no" else "Yes"
            reply = f"The observation was checked.\n<judgement>{verdict}</judgement>"
            return JSONResponse(_completion(reply, model))
        finally:
            stats["in_flight"] -= 1

    @app.get("/stats")
    async def get_stats() -> dict:
        return {**stats, "distinct_observations": len(calls_by_observation)}

    @app.post("/stats/reset")
    async def reset_stats() -> dict:
        calls_by_observation.clear()
        stats.update(calls=0, max_in_flight=stats["in_flight"])
        return {"ok": True}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    parser.add_argument("--mode", choices=("yes",) + DIRECTIVES, default=None, help="force one behaviour")
    parser.add_argument("--slow", type=float, default=30.0, help="seconds a #slow call sleeps")
    parser.add_argument("--flaky-failures", type=int, default=2)
    args = parser.parse_args(argv)
    app = create_scripted_judge_app(args.latency, args.mode, args.slow, args.flaky_failures)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
