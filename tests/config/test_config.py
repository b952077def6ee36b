"""The config tree: YAML + overrides, one-line errors naming the field path, the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from videop2r.config import ConfigError, VideoP2RConfig, dump_config, load_config, parse_override


def test_defaults_match_spec_section_4() -> None:
    config = load_config()
    assert config.algorithm.adv_estimator == "pa_grpo"
    assert config.algorithm.clip_ratio == 0.2
    assert config.algorithm.kl_coef == 0.04
    assert config.algorithm.norm_eps == 1e-6
    assert config.reward.perception_length == (128, 320)
    assert config.reward.reasoning_length == (320, 512)
    assert config.reward.length_bonus == 0.2
    assert config.rollout.n == 8 and config.rollout.temperature == 1.0
    assert config.rollout.max_new_tokens == 1024


def test_yaml_then_overrides(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("trainer:\n  lr: 1.0e-5\n  run_name: first\nrollout:\n  n: 4\n")
    config = load_config(path, ["trainer.run_name=second", "rollout.endpoints=[http://a:1, http://b:2]"])
    assert config.trainer.lr == 1e-5
    assert config.trainer.run_name == "second"
    assert config.rollout.n == 4
    assert config.rollout.endpoints == ["http://a:1", "http://b:2"]


@pytest.mark.parametrize(
    ("override", "path"),
    [
        ("trainer.lrr=1", "trainer.lrr"),
        ("trainer.lr=fast", "trainer.lr"),
        ("rollout.n=0", "rollout.n"),
        ("nosuchsection.x=1", "nosuchsection"),
        ("algorithm.adv_estimator=ppo", "algorithm.adv_estimator"),
        ("reward.perception_length=[300, 100]", "reward"),
    ],
)
def test_bad_key_or_type_is_one_line_naming_the_field(override: str, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"config error: {path}")


def test_bad_yaml_and_missing_file_are_clear(tmp_path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listing)


def test_override_parsing() -> None:
    assert parse_override("a.b=3") == ("a.b", 3)
    assert parse_override("a.b=true") == ("a.b", True)
    assert parse_override("a.b=s3://bucket/x") == ("a.b", "s3://bucket/x")
    with pytest.raises(ConfigError):
        parse_override("no-equals-sign")


def test_dump_round_trips_and_masks_secrets(tmp_path) -> None:
    config = load_config(None, ["storage.secret_key=hunter2", "trainer.total_steps=7"])
    text = dump_config(config)
    assert "hunter2" not in text
    path = tmp_path / "resolved.yaml"
    path.write_text(text.replace("'**********'", "null"))
    again = load_config(path)
    assert again.trainer.total_steps == 7
    assert isinstance(again, VideoP2RConfig)


def test_cli_config_show() -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "videop2r", "config", "show", "trainer.seed=5"], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "seed: 5" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "videop2r", "config", "show", "trainer.sed=5"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "config error: trainer.sed: Extra inputs are not permitted"
