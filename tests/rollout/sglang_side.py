"""SGLang's own code in the test process: the pinned wheel installed ``--no-deps`` into a side folder.

``ensure()`` pip-installs ``REQUIREMENTS`` into ``.cache/sglang-<version>/`` (once; a clean clone
creates it here), puts it first on ``sys.path`` and stubs the modules that are not installed and
not used by request handling. Installed for real (pure front-end dependencies missing from the
project's venv): msgspec, pybase64, pyzmq, uvloop, compressed-tensors, einops,
partial-json-parser, loguru, gguf, openai, jiter, distro, setproctitle. Stubbed (``STUBS``):
IPython.display (notebook helpers), tvm_ffi (GPU kernel FFI), sentencepiece (tokenizers of other
model families), xgrammar / xgrammar.structural_tag (grammar-constrained decoding kernels),
soundfile (audio). Nothing the Qwen-VL request path runs is stubbed; video decoding uses the
venv's decord through SGLang's own ``VideoDecoderWrapper``.
"""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
import types
from pathlib import Path

from videop2r.rollout.sglang_release import SGLANG_VERSION

ROOT = Path(__file__).resolve().parents[2]
SIDE = ROOT / ".cache" / f"sglang-{SGLANG_VERSION}"
REQUIREMENTS = [
    f"sglang=={SGLANG_VERSION}", "msgspec==0.23.0", "pybase64==1.5.1", "pyzmq==27.3.0", "uvloop==0.23.0",
    "compressed-tensors==0.18.0", "einops==0.8.2", "partial-json-parser==0.2.1.1.post7", "loguru==0.7.3",
    "gguf==0.19.0", "openai==2.8.0", "jiter==0.19.0", "distro==1.9.0", "setproctitle",
]
STUBS = ("IPython.display", "tvm_ffi", "sentencepiece", "xgrammar", "xgrammar.structural_tag", "soundfile")


class _Stub(types.ModuleType):
    """A module whose every attribute is an inert class (imported names, never called on this path)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = type(name, (), {"__init__": lambda self, *a, **k: None})
        setattr(self, name, value)
        return value


def install() -> str | None:
    """Install into the side folder; None on success, else why not (pip could not fetch)."""
    marker = SIDE / ".complete"
    if marker.exists():
        return None
    SIDE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(SIDE), *REQUIREMENTS],
        capture_output=True, text=True, timeout=900,
    )
    if done.returncode != 0:
        return f"pip could not install {REQUIREMENTS[0]} into {SIDE}: {done.stderr.strip()[-400:]}"
    marker.write_text("\n".join(REQUIREMENTS))
    return None


def activate() -> None:
    import pydantic

    if str(SIDE) not in sys.path:
        sys.path.insert(0, str(SIDE))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for dotted in STUBS:
        parts = dotted.split(".")
        for count in range(1, len(parts) + 1):
            name = ".".join(parts[:count])
            if name not in sys.modules:
                module = _Stub(name)
                module.__path__ = []
                module.__spec__ = importlib.machinery.ModuleSpec(name, None)
                sys.modules[name] = module

    class StructuralTag(pydantic.BaseModel):  # a pydantic field type in SGLang's OpenAI protocol
        model_config = pydantic.ConfigDict(extra="allow")

    sys.modules["xgrammar"].StructuralTag = StructuralTag
    # what a plain (non-notebook) process gets; ray and others in this test process ask for it
    ipython = sys.modules["IPython"]
    if isinstance(ipython, _Stub):
        ipython.get_ipython = lambda: None
