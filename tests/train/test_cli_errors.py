"""Bad input fails fast with one clear line, before Ray, servers or checkpoints exist."""

from __future__ import annotations

import pytest

from videop2r.cli import main


@pytest.fixture(autouse=True)
def no_ray_running():
    """Earlier tests in the same process may leave a Ray session up; these tests assert none is started."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def config_path(make_config, tmp_path):
    return make_config(tmp_path / "c.yaml", tmp_path / "run")


def _error(capsys, argv: list[str]) -> str:
    import ray

    assert main(argv) == 2
    assert not ray.is_initialized()  # nothing started
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    return err


@pytest.mark.parametrize("command", ["train", "sft"])
def test_unknown_key_is_named(capsys, config_path, command):
    err = _error(capsys, [command, "--config", str(config_path), "trainer.learning_rate=1"])
    assert err.startswith("config error: trainer.learning_rate")


def test_wrong_type_is_named(capsys, config_path):
    assert "trainer.total_steps" in _error(capsys, ["train", "--config", str(config_path), "trainer.total_steps=many"])


@pytest.mark.parametrize("command", ["train", "sft"])
def test_missing_data_uri(capsys, config_path, tmp_path, command):
    err = _error(capsys, [command, "--config", str(config_path), f"data.train_uri={tmp_path}/no/such/shards"])
    assert "data.train_uri" in err and "no such location" in err


def test_missing_eval_shards(capsys, config_path, tmp_path):
    (tmp_path / "empty").mkdir()
    err = _error(capsys, ["train", "--config", str(config_path), f"data.eval_uri={tmp_path}/empty"])
    assert "data.eval_uri" in err and "no shards here" in err


def test_missing_model(capsys, config_path, tmp_path):
    err = _error(capsys, ["train", "--config", str(config_path), f"model.path={tmp_path}/nothing"])
    assert "model.path" in err and "videop2r model init" in err


def test_inconsistent_batch_sizes(capsys, config_path):
    err = _error(capsys, ["train", "--config", str(config_path), "trainer.mini_batch_size=64"])
    assert "trainer.mini_batch_size" in err and "prompts_per_step × rollout.n" in err
    err = _error(capsys, ["train", "--config", str(config_path), "learner.num_workers=3"])
    assert "learner.num_workers" in err


def test_resume_without_a_checkpoint(capsys, config_path):
    err = _error(capsys, ["train", "--config", str(config_path), "--resume"])
    assert err.startswith("error: --resume: no complete checkpoint")
