"""CoT fixtures: a small synthetic record set with its clips, and the scripted-model server of
tests/eval/scripted_model.py (one per session, shared with tests/eval when both run)."""

from __future__ import annotations

import importlib.util
import sys
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
