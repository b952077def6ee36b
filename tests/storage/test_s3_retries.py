"""Retries with backoff against real network faults: resets, 503 SlowDown, a body cut mid-stream,
and the S3 server itself going away and coming back."""

from __future__ import annotations

import os
import threading
import time

import pytest
from prometheus_client import REGISTRY

from videop2r.config import StorageConfig
from videop2r.storage import StorageError, open_store

pytestmark = pytest.mark.integration

MiB = 1 << 20


def retries_counted(operation: str) -> float:
    value = REGISTRY.get_sample_value("videop2r_storage_retries_total",
                                      {"backend": "s3", "operation": operation})
    return value or 0.0


def test_connection_resets_are_retried(s3_config_for, fault_proxy, bucket):
    store = open_store(f"s3://{bucket}", s3_config_for(fault_proxy.endpoint))
    fault_proxy.plan.extend(["reset", "reset"])
    before = retries_counted("make_bucket")
    store.put_bytes("obj", b"payload")
    assert retries_counted("make_bucket") - before == 2
    assert fault_proxy.connections >= 3
    assert store.get_bytes("obj") == b"payload"


def test_throttling_503_is_retried(s3_config_for, s3_gateway, fault_proxy, bucket):
    open_store(f"s3://{bucket}", s3_config_for()).put_bytes("obj", b"v1")  # direct, no faults
    store = open_store(f"s3://{bucket}", s3_config_for(fault_proxy.endpoint, region="us-east-1"))
    fault_proxy.plan.extend(["503", "503"])
    before = retries_counted("stat")
    assert store.stat("obj").size == 2
    assert retries_counted("stat") - before == 2


def test_persistent_failure_gives_up_after_max_retries_with_backoff(s3_config_for, fault_proxy, bucket):
    store = open_store(f"s3://{bucket}", s3_config_for(fault_proxy.endpoint, max_retries=3, retry_backoff_s=0.05,
                                                       region="us-east-1"))
    fault_proxy.plan.extend(["reset"] * 10)
    started = time.monotonic()
    with pytest.raises(StorageError, match="failed after 4 attempts"):
        store.stat("obj")
    elapsed = time.monotonic() - started
    assert fault_proxy.connections == 4
    # waits of 0.05, 0.1, 0.2 s (±25 % jitter): the backoff really happened
    assert elapsed >= 0.75 * (0.05 + 0.1 + 0.2)


def test_read_cut_mid_body_resumes_with_a_range_request(s3_config_for, fault_proxy, bucket):
    payload = os.urandom(6 * MiB)
    open_store(f"s3://{bucket}", s3_config_for()).put_bytes("video.tar", payload)
    store = open_store(f"s3://{bucket}", s3_config_for(fault_proxy.endpoint, region="us-east-1"))
    fault_proxy.plan.append(("cut", 2 * MiB))
    before = retries_counted("get")
    with store.open_read("video.tar") as stream:
        got = stream.read()
    assert got == payload
    assert retries_counted("get") - before == 1
    gets = [path for method, path in fault_proxy.requests if method == "GET"]
    assert len(gets) == 2 and fault_proxy.connections == 2


def test_ranged_read_cut_mid_body_resumes_inside_the_range(s3_config_for, fault_proxy, bucket):
    payload = os.urandom(5 * MiB)
    open_store(f"s3://{bucket}", s3_config_for()).put_bytes("blob", payload)
    store = open_store(f"s3://{bucket}", s3_config_for(fault_proxy.endpoint, region="us-east-1"))
    fault_proxy.plan.append(("cut", MiB))
    assert store.get_range("blob", 123, 3 * MiB) == payload[123:123 + 3 * MiB]
    assert fault_proxy.connections == 2


def test_gateway_restart_during_writes(private_gateway, bucket):
    """Stop the real server, start it again 1 s later: a write issued meanwhile succeeds."""
    gateway = private_gateway
    config = StorageConfig(endpoint=gateway.endpoint, access_key=gateway.access_key,
                           secret_key=gateway.secret_key, max_retries=8, retry_backoff_s=0.1,
                           retry_max_backoff_s=0.5)
    store = open_store(f"s3://{bucket}", config)
    store.put_bytes("before", b"1")
    gateway.stop()
    restarter = threading.Timer(1.0, gateway.start)
    restarter.start()
    try:
        before = retries_counted("put")
        store.put_bytes("during", b"2")
    finally:
        restarter.join()
    assert retries_counted("put") > before
    assert store.get_bytes("before") == b"1" and store.get_bytes("during") == b"2"
