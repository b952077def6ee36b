"""A real Qwen2.5-VL checkpoint that always answers the same method §1 output, and a server for it.

A random tiny model writes no template, so nothing would reach verification or judging. Rather
than train one (minutes on 2 cores), `build_emitter` edits a tiny checkpoint into a deterministic
"bigram chain": every attention and MLP output projection is zeroed, so the last hidden state is
the (normed) embedding of the current token, and an untied ``lm_head`` maps each token of the
chain to the next one. Greedy decoding then writes `EMITTED` then ``<|im_end|>`` for any prompt,
through the real embedded server, chat template, vision tower and sampler.

Shared by tests/eval and tests/cot: `shared_server` starts one server per pytest session (the
module is loaded under one name by both conftests) and stops it at exit.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from videop2r.local_services import free_port

EMITTED = "<observation>yellow</observation><think>so</think><answer>D</answer>"
_SERVER: "ServerProcess | None" = None


def build_emitter(out_dir: Path) -> Path:
    """A tiny Qwen2.5-VL checkpoint in `out_dir` whose greedy output is always `EMITTED`."""
    import torch

    from videop2r.model import init_model, load_model, load_processor

    base = init_model("tiny", out_dir / "base")
    model = load_model(base, device="cpu")
    processor = load_processor(base)
    tokenizer = processor.tokenizer
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": "q"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    last = tokenizer(prompt, add_special_tokens=False)["input_ids"][-1]
    chain = [
        last,
        *tokenizer(EMITTED, add_special_tokens=False)["input_ids"],
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
    ]
    if len(set(chain)) != len(chain):
        raise RuntimeError(f"the emitted text must tokenize to distinct ids, got {chain}")
    text = model.model.language_model
    with torch.no_grad():
        for layer in text.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embeddings, gain = text.embed_tokens.weight, text.norm.weight
        head = torch.zeros_like(embeddings)
        for token, successor in zip(chain[:-1], chain[1:]):
            vector = embeddings[token]
            normed = gain * vector / torch.sqrt(vector.pow(2).mean() + 1e-5)
            head[successor] = 50.0 * normed / normed.norm()
        model.config.tie_word_embeddings = False
        model.config.text_config.tie_word_embeddings = False
        model.lm_head.weight = torch.nn.Parameter(head)
    target = out_dir / "emitter"
    model.save_pretrained(target)
    processor.save_pretrained(target)
    return target



def child_env() -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


class ServerProcess:
    """`videop2r serve rollout` on a checkpoint, in its own process group."""

    def __init__(self, model: Path, log_path: Path) -> None:
        self.model = model
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 300.0) -> "ServerProcess":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "videop2r",
                    "serve",
                    "rollout",
                    "--model",
                    str(self.model),
                    "--port",
                    str(self.port),
                    "--threads",
                    "1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server not healthy after {timeout_s:.0f}s: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def counter(self, name: str) -> float:
        """Sum of a Prometheus counter's samples on the server's /metrics."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        return sum(float(value) for value in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))

    def wait_idle(self, timeout_s: float = 120.0) -> None:
        """Until no request is in flight on the server."""
        deadline = time.monotonic() + timeout_s
        while self.counter("videop2r_rollout_in_flight") > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("server still busy")
            time.sleep(0.1)


def shared_server(root: Path) -> ServerProcess:
    """One emitter server per test session (built under `root` on first use), stopped at exit."""
    global _SERVER
    if _SERVER is None or _SERVER.process is None or _SERVER.process.poll() is not None:
        root.mkdir(parents=True, exist_ok=True)
        checkpoint = build_emitter(root)
        _SERVER = ServerProcess(checkpoint, root / "server.log").start()
        atexit.register(_SERVER.stop)
    return _SERVER


def run_until_lines(
    argv: list[str], ledger: Path, lines: int, log_path: Path, timeout_s: float = 300.0
) -> int:
    """Start `argv`, SIGKILL it once `ledger` has `lines` complete lines; returns the lines found.

    Raises if the command finishes first (then the kill would test nothing)."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=child_env(), start_new_session=True
        )
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            found = ledger.read_bytes().count(b"\n") if ledger.exists() else 0
            if found >= lines:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return ledger.read_bytes().count(b"\n")
            if process.poll() is not None:
                raise RuntimeError(
                    f"finished (exit {process.returncode}) before {lines} lines: "
                    f"{log_path.read_text()[-2000:]}"
                )
            time.sleep(0.05)
        raise RuntimeError(
            f"no {lines} lines in {ledger} after {timeout_s:.0f}s: {log_path.read_text()[-2000:]}"
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
