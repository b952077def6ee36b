"""The chart gives the reward services the same connection limits as the config (issue 16)."""

from __future__ import annotations

import pytest
import yaml

from tests.k8s.conftest import CHART, render, run_helm
from videop2r.config import RewardConfig, ServerConfig, load_config

pytestmark = pytest.mark.integration


def _overrides(args: list[str]) -> list[str]:
    return [arg for arg in args if arg.startswith(("server.", "reward.max_body_bytes="))]


def test_reward_deployments_get_the_limits_with_the_config_defaults(helm):
    values = yaml.safe_load((CHART / "values.yaml").read_text())["serverLimits"]
    server, reward = ServerConfig(), RewardConfig()
    assert (values["headerTimeoutSeconds"], values["bodyTimeoutSeconds"], values["keepAliveSeconds"],
            values["maxConnections"], values["maxHeaderBytes"], values["maxBodyBytes"]) == (
        server.header_timeout_s, server.body_timeout_s, server.keep_alive_s, server.max_connections,
        server.max_header_bytes, reward.max_body_bytes)
    rendered = render(helm, None)
    for name in ("rel-videop2r-reward-accuracy", "rel-videop2r-reward-judge"):
        container = rendered.get("Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        overrides = _overrides(container["args"])
        assert len(overrides) == 6, container["args"]
        config = load_config(None, overrides)
        assert config.server == server and config.reward.max_body_bytes == reward.max_body_bytes


def test_changed_limits_reach_the_pods_and_bad_ones_are_refused(helm):
    rendered = render(helm, None, "--set-json", "serverLimits.headerTimeoutSeconds=2.5",
                      "--set", "serverLimits.maxConnections=32")
    container = rendered.get("Deployment", "rel-videop2r-reward-judge")["spec"]["template"]["spec"]["containers"][0]
    config = load_config(None, _overrides(container["args"]))
    assert config.server.header_timeout_s == 2.5 and config.server.max_connections == 32
    done = run_helm(helm, "template", "rel", str(CHART), "--set", "serverLimits.maxConnections=0")
    assert done.returncode != 0 and "maxConnections" in done.stderr
