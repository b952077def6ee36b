"""Images: which rendered image runs as what on this machine.

- The chart's own images (`image`, `rewardImage`) are this checkout: the venv's binaries on PATH and
  the repository on PYTHONPATH, with the image's ENV (infra/docker/*.Dockerfile) and WORKDIR.
- SGLang (`lmsysorg/sglang`) → `videop2r serve rollout`, the embedded server that speaks SGLang's
  native API, started from the chart's *own* `sglang.launch_server` arguments; an argument the
  translation does not know is an error, never dropped.
- MinIO (`quay.io/minio/minio`) → `juicefs gateway` (MinIO's S3 gateway code on a JuiceFS volume
  whose metadata and data live in the pod's /data volume), with MINIO_ROOT_USER/PASSWORD.
- mc (`quay.io/minio/mc`) → the rendered shell script itself, with an `mc` on PATH (infra/rehearsal/bin/mc)
  that implements the subcommands the chart uses on the MinIO Python SDK.
Any other image cannot be pulled: the pod fails with ErrImagePull, as on a cluster.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from infra.rehearsal.render import REPO, Container, RenderError

SHIM_BIN = Path(__file__).resolve().parent / "bin"
IMAGE = REPO / ".cache" / "rehearsal-image"
VENV_BIN = IMAGE / "bin"
JUICEFS = VENV_BIN / "juicefs"
_build_lock = threading.Lock()


def build_image(base_python: str = "/usr/bin/python3.11") -> Path:
    """The image's interpreter: a venv of a system Python any uid can run (the checkout's venv may
    point at an interpreter under /root), seeing the locked packages of the current venv through a
    .pth file, with the venv's console scripts re-pointed at it. Made once, under .cache/."""
    with _build_lock:
        if (VENV_BIN / "python3").exists() and (IMAGE / ".built").exists():
            return VENV_BIN
        import site
        import subprocess

        subprocess.run([base_python, "-m", "venv", "--without-pip", "--clear", str(IMAGE)], check=True, timeout=120)
        packages = [p for p in site.getsitepackages() if p.endswith("site-packages")]
        target = next(IMAGE.glob("lib/python3*/site-packages"))
        (target / "zz-checkout-venv.pth").write_text("\n".join(packages) + "\n")
        source_bin = Path(sys.prefix) / "bin"
        for script in source_bin.iterdir():
            if script.name.startswith("python") or (VENV_BIN / script.name).exists():
                continue
            head = script.read_bytes()[:200] if script.is_file() else b""
            if head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0]:
                body = script.read_text().split("\n", 1)[1]
                (VENV_BIN / script.name).write_text(f"#!{VENV_BIN / 'python3'}\n{body}")
                (VENV_BIN / script.name).chmod(0o755)
            elif script.is_file() and os.access(script, os.X_OK):
                (VENV_BIN / script.name).symlink_to(script.resolve())
        for folder in (IMAGE, *IMAGE.parents[:1]):
            folder.chmod(0o755)
        (IMAGE / ".built").write_text("ok\n")
        return VENV_BIN


@dataclass
class Launch:
    command: list[str]
    base_env: dict[str, str]
    working_dir: str
    substitute: str          # "" when the image itself runs


def _image_env(extra_path: str = "") -> dict[str, str]:
    build_image()
    path = ":".join(p for p in (extra_path, str(VENV_BIN), "/usr/local/bin", "/usr/bin", "/bin") if p)
    return {"PATH": path, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "RAY_USAGE_STATS_ENABLED": "0", "LANG": "C.UTF-8"}


def _repo(image: str) -> str:
    return image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image


def sglang_to_embedded(args: list[str]) -> list[str]:
    """`python3 -m sglang.launch_server ARGS` → `videop2r serve rollout ARGS`. The embedded server takes
    SGLang 0.5.23's launch arguments itself (`services/rollout/main.py`, names from
    sglang/srt/server_args.py) and its argparse refuses unknown ones as SGLang's does; only a
    tensor-parallel size above 1 is refused here, since a rehearsal pod has one CPU device."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--tp-size", default="1")
    tp_size = parser.parse_known_args(args)[0].tp_size
    if int(tp_size) != 1:
        raise RenderError(f"sglang --tp-size {tp_size}: the embedded server runs one device")
    return ["videop2r", "serve", "rollout", *args]


def launch(c: Container, images: dict[str, str]) -> Launch:
    """How container `c` runs here; `images` maps the chart's image repositories to their role."""
    repo = _repo(c.image)
    role = images.get(repo, "")
    argv = c.command + c.args
    if role == "videop2r":
        return Launch(argv, _image_env(), c.working_dir or "/home/videop2r", "")
    if repo.endswith("lmsysorg/sglang") or role == "sglang":
        if argv[:3] not in (["python3", "-m", "sglang.launch_server"], ["python", "-m", "sglang.launch_server"]):
            raise RenderError(f"{c.name}: SGLang image with command {argv[:3]}: expected python3 -m sglang.launch_server")
        return Launch(sglang_to_embedded(c.args), _image_env(), c.working_dir or "/sgl-workspace",
                      "videop2r serve rollout (embedded SGLang-API server) with the chart's SGLang arguments")
    if repo.endswith("minio/minio"):
        return Launch(_minio(argv), _image_env(), c.working_dir or "/",
                      "juicefs gateway (MinIO's S3 gateway on a JuiceFS volume in the pod's /data)")
    if repo.endswith("minio/mc"):
        return Launch(argv, _image_env(str(SHIM_BIN)), c.working_dir or "/",
                      "the rendered script with infra/rehearsal/bin/mc (alias set, mb, mirror on the MinIO SDK)")
    raise RenderError(f"ErrImagePull: {c.image} is neither built from the chart's values nor substituted")


def _minio(argv: list[str]) -> list[str]:
    if argv[:2] != ["minio", "server"]:
        raise RenderError(f"minio command {argv[:2]}: expected `minio server DIR ...`")
    data, address, i = argv[2], ":9000", 3
    while i < len(argv):
        if argv[i] == "--address":
            address = argv[i + 1]
        elif argv[i] not in ("--console-address", "--certs-dir"):
            raise RenderError(f"minio argument {argv[i]!r}: the substitute does not know it")
        i += 2
    host, port = address.rsplit(":", 1)
    meta = f"sqlite3://{data}/juicefs-meta.db"
    # MinIO keeps its config under $MINIO_CONFIG_DIR; the gateway derives it from $HOME.
    script = (f'export HOME="${{MINIO_CONFIG_DIR:-/tmp}}"; [ -f {data}/juicefs-meta.db ] || {JUICEFS} format {meta} videop2r --storage file '
              f'--bucket {data}/blobs/ --trash-days 0 --no-update >/dev/null; '
              f'exec {JUICEFS} gateway {meta} {host or "0.0.0.0"}:{port} --multi-buckets --no-banner '
              f'--no-usage-report --no-bgjob --backup-meta 0 --cache-dir /tmp/juicefs-cache --metrics 127.0.0.1:9567 '
              f'--log /tmp/juicefs-gateway.log')
    return ["/bin/sh", "-ec", script]


def chart_images(values: dict) -> dict[str, str]:
    """Image repositories the chart's values name, and what each is."""
    return {values["image"]["repository"]: "videop2r", values["rewardImage"]["repository"]: "videop2r",
            values["sglangImage"]["repository"]: "sglang"}

