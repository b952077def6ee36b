"""Rollout fixtures: a tiny checkpoint, an engine, the server in a thread, servers as processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from videop2r.local_services import free_port

# one thread: OpenMP spinning under a shared, oversubscribed CPU costs 10-50x
torch.set_num_threads(1)

MC = {"problem": "What colour is the square?", "options": ["A. red", "B. green", "C. blue", "D. yellow"],
      "problem_type": "multiple choice", "data_type": "video"}


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    from videop2r.model import init_model

    return init_model("tiny", tmp_path_factory.mktemp("rollout-models") / "tiny")


@pytest.fixture(scope="session")
def engine(tiny_dir):
    from services.rollout.engine import GenerationEngine

    return GenerationEngine.load(str(tiny_dir), device="cpu")


def moving_square(frames: int = 8, size: int = 84, step: int = 5) -> np.ndarray:
    clip = np.full((frames, size, size, 3), 128, dtype=np.uint8)
    for index in range(frames):
        clip[index, 30:50, 4 + index * step:24 + index * step] = (220, 40, 40)
    return clip


@pytest.fixture
def clip() -> np.ndarray:
    return moving_square()



@dataclass
class ServerProcess:
    """``videop2r serve rollout`` as a child process (its own process group)."""

    model: str
    log_path: Path
    extra: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ServerProcess":
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                # SGLang's launch argv (the chart's rollout command) plus the pod video config for 84x84 clips
                [sys.executable, "-m", "videop2r", "serve", "rollout", "--model-path", self.model, "--port", str(self.port),
                 "--threads", "1", "--tp-size", "1", "--mem-fraction-static", "0.8",
                 "--mm-process-config", '{"video": {"fps": 2.0, "min_pixels": 7056, "max_pixels": 7056}}', *self.extra],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        return self

    def wait_healthy(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not healthy: {self.log_path.read_text()[-2000:]}")

    def signal(self, number: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, number)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope="module")
def server_pair(tiny_dir, tmp_path_factory):
    """Two real server processes on the same checkpoint, started in parallel."""
    logs = tmp_path_factory.mktemp("server-logs")
    servers = [ServerProcess(str(tiny_dir), logs / f"rollout-{index}.log") for index in range(2)]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_healthy()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def video_prompt(engine):
    """(learner inputs from build_inputs, frames, fps) of a multiple-choice video question."""
    from videop2r import prompting

    frames = moving_square()
    return prompting.build_inputs(engine.processor, MC, frames, fps=2.0), frames, 2.0


@pytest.fixture(scope="session")
def text_prompt(engine):
    """Learner inputs of a text-only chat prompt."""
    from videop2r import prompting

    return prompting.build_chat_inputs(engine.processor, prompting.chat_messages("Name a colour.", None))
