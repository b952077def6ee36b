"""CoT fixtures: a small synthetic record set with its clips, and the scripted-model server of
tests/eval/scripted_model.py (one per session, shared with tests/eval when both run)."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path

import pytest

_MODULE = "videop2r_tests_scripted_model"
_HELPER = Path(__file__).resolve().parents[1] / "eval" / "scripted_model.py"


def scripted_model():
    if _MODULE not in sys.modules:
        spec = importlib.util.spec_from_file_location(_MODULE, _HELPER)
        module = importlib.util.module_from_spec(spec)
        sys.modules[_MODULE] = module
        spec.loader.exec_module(module)
    return sys.modules[_MODULE]


@pytest.fixture(scope="session")
def scripted():
    return scripted_model()


@pytest.fixture(scope="session")
def emitter_server(tmp_path_factory):
    return scripted_model().shared_server(tmp_path_factory.getbasetemp() / "emitter")


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Path:
    """`videop2r data synth`'s output for 3 clips (7 records, every problem type): eval.jsonl + videos/."""
    from videop2r.data.synth import synthesize

    out = tmp_path_factory.mktemp("synth")
    synthesize(out, 3, seed=0, splits=["eval"], write_json=False, progress=False)
    return out


class ThreadServer:
    """A FastAPI app under uvicorn in a thread of this process (for scripted judges)."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = scripted_model().free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", log_config=None)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("in-thread server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def thread_server():
    return ThreadServer
