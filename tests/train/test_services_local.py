"""Local service processes: health wait, fast failure with the log, kill/stop, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from videop2r.local_services import LocalServices, ServiceProcess, ServiceStartError, free_port


def _http_server(tmp_path, name="web") -> ServiceProcess:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)]
    return ServiceProcess(name, argv, port, "/", tmp_path / f"{name}.log")


def test_healthy_service_then_kill_and_stop(tmp_path):
    web = _http_server(tmp_path)
    with LocalServices([web], start_timeout_s=30) as running:
        assert running.urls("web") == [web.url] and web.alive()
        web.kill()
        assert not web.alive()
    other = _http_server(tmp_path, "other")
    with LocalServices([other], start_timeout_s=30):
        pid = other.process.pid
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_service_that_exits_fails_fast_with_its_log(tmp_path):
    broken = ServiceProcess("broken", [sys.executable, "-c", "print('model path does not exist'); raise SystemExit(3)"],
                            free_port(), "/health", tmp_path / "broken.log")
    started = time.monotonic()
    with pytest.raises(ServiceStartError, match="broken exited with 3: model path does not exist"):
        with LocalServices([broken], start_timeout_s=60):
            pass
    assert time.monotonic() - started < 30


def test_services_die_with_a_sigkilled_driver(tmp_path):
    """The driver may be SIGKILLed (OOM, a killed pod): its local servers must not outlive it."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from videop2r.local_services import ServiceProcess, free_port
        port = free_port()
        web = ServiceProcess("web", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                             port, "/", Path({str(tmp_path)!r}) / "web.log")
        web.start()
        web.wait_healthy(30)
        print(web.process.pid, flush=True)
        time.sleep(600)
    """)
    driver = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(driver.stdout.readline())
    assert psutil.pid_exists(child)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 15
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the service outlived its driver"
        time.sleep(0.1)
