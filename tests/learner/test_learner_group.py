"""The learner end to end on 2 FSDP2 workers (gloo, CPU) under verl's single controller.

One module-scoped story, recorded once and checked by the tests below: rollouts from the
embedded engine → log-probs (learner vs rollout) → PA-GRPO update → export (weight version 1)
→ the rollout engine reloads it → rollouts carry version 1 and match the learner again →
save state → a second update; then a fresh worker group loads the state and repeats that update.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from verl import DataProto

from videop2r.algorithms import compute_process_advantages
from videop2r.config import AlgorithmConfig, LearnerConfig, StorageConfig
from videop2r.learner.batch import RolloutBatchError, build_batch
from videop2r.learner.export import WEIGHT_VERSION_FILE, read_weight_version
from videop2r.learner.group import Learner, LearnerWorkerFailed
from videop2r.learner.logprob import response_log_probs
from videop2r.learner.settings import LearnerSettings
from videop2r.storage import open_store

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # a local Ray cluster (and S3 gateway)

TOLERANCE = 1e-4  # float32 on CPU; padded batch vs the engine's KV-cached decode


@pytest.fixture(scope="module")
def settings(tiny_dir) -> LearnerSettings:
    return LearnerSettings(model_path=str(tiny_dir), lr=1e-3, lr_schedule="constant", mini_batch_size=4,
                           micro_batch_size=2, learner=LearnerConfig(threads=1, device="cpu", reference_dtype="float32"),
                           algorithm=AlgorithmConfig(kl_coef=0.04))


@pytest.fixture(scope="module")
def learner(local_ray, settings):
    learner = Learner(settings, num_workers=2, failure_grace_s=5)
    yield learner
    learner.shutdown()


def training_batch(batch: DataProto, *parts: DataProto, seed: int) -> DataProto:
    """A copy of `batch` with `parts` joined (DataProto.union works in place) and PA-GRPO
    advantages from random process rewards; first half of each response = perception."""
    batch = copy.deepcopy(batch)
    for part in parts:
        batch = batch.union(part)
    mask = batch.batch["response_mask"]
    lengths = mask.sum(-1, keepdim=True)
    position = torch.arange(mask.shape[1])[None]
    perception = (position < lengths // 2).long() * mask
    reasoning = mask - perception
    rng = np.random.default_rng(seed)
    result = compute_process_advantages(
        "pa_grpo", torch.tensor(rng.integers(0, 3, len(batch)), dtype=torch.float32),
        torch.tensor(rng.integers(0, 3, len(batch)), dtype=torch.float32), mask,
        batch.non_tensor_batch["uid"], perception_mask=perception, reasoning_mask=reasoning)
    batch.batch["advantages"] = result.advantages.float()
    batch.batch["perception_mask"] = perception
    batch.batch["reasoning_mask"] = reasoning
    return batch


def fresh_engine(tiny_dir, processor):
    from services.rollout.engine import GenerationEngine
    from videop2r.model import load_model

    return GenerationEngine(load_model(tiny_dir, device="cpu"), processor, model_path=str(tiny_dir),
                            weight_version="0")


@pytest.fixture(scope="module")
def story(learner, make_rollouts, processor, tiny_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("story")
    pad = processor.tokenizer.pad_token_id
    # 5 rollouts: not a multiple of the 2 workers, so the learner pads and unpads
    batch = build_batch(make_rollouts(prompts=3, n=2, max_new_tokens=10)[:5], pad_token_id=pad)
    record = {"root": root, "batch": batch}
    record["log_probs_0"] = learner.compute_log_prob(batch)
    record["ref_0"] = learner.compute_ref_log_prob(batch)
    record["export_0"] = learner.export_weights(str(root / "w0"), version=0)

    step_1 = training_batch(batch, record["log_probs_0"], record["ref_0"], seed=1)
    record["metrics_1"] = learner.update_policy(step_1)
    record["export_1"] = learner.export_weights(str(root / "w1"), version=1)
    record["log_probs_1"] = learner.compute_log_prob(batch)

    # weight sync: the rollout side reloads version 1 and generates with it
    engine = fresh_engine(tiny_dir, processor)
    engine.reload(str(root / "w1"), "1")
    from services.rollout.prompt_job import PromptJob, SamplingOptions
    from videop2r.learner.batch import RolloutSample

    multi_modal = batch.non_tensor_batch["multi_modal_inputs"][0]
    prompt_width = batch.batch["prompts"].shape[1]
    prompt = batch.batch["prompts"][0][batch.batch["attention_mask"][0, :prompt_width].bool()]
    video_tokens = (prompt == engine.model.config.video_token_id).int()[None]
    inputs = {"input_ids": prompt[None], "attention_mask": torch.ones_like(prompt)[None],
              "mm_token_type_ids": video_tokens * 2, **multi_modal}
    result = engine.generate([PromptJob(inputs, SamplingOptions(max_new_tokens=8, n=2, ignore_eos=True,
                                                                sampling_seed=7), rid="sync")])[0]
    record["synced_version"] = result.weight_version
    version = int(result.weight_version)
    synced = build_batch([RolloutSample(prompt, s.output_ids, multi_modal, s.logprobs, uid="sync",
                                        weight_version=version) for s in result.samples], pad)
    record["synced"] = synced
    record["synced_learner"] = learner.compute_log_prob(synced)

    record["state"] = learner.save_state(str(root / "state"))
    step_2 = training_batch(batch, record["log_probs_1"], record["ref_0"], seed=2)
    record["step_2"] = step_2
    record["metrics_2"] = learner.update_policy(step_2)
    record["export_2"] = learner.export_weights(str(root / "w2"), version=2)
    return record


def weights(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of an export (streamed: one safetensors file per bucket, listed in the index; a
    single bucket is one `model.safetensors`, as save_pretrained writes it)."""
    if not (path / "model.safetensors.index.json").exists():
        return load_file(str(path / "model.safetensors"))
    index = json.loads((path / "model.safetensors.index.json").read_text())
    tensors: dict[str, torch.Tensor] = {}
    for name in sorted(set(index["weight_map"].values())):
        tensors.update(load_file(str(path / name)))
    assert set(tensors) == set(index["weight_map"])
    return tensors


def test_learner_log_probs_match_the_rollout_before_the_update(story):
    batch, learned = story["batch"], story["log_probs_0"]
    mask = batch.batch["response_mask"].bool()
    assert learned.batch["old_log_probs"].shape == mask.shape == (5, mask.shape[1])
    gap = (learned.batch["old_log_probs"] - batch.batch["rollout_log_probs"])[mask].abs().max()
    assert gap < TOLERANCE, gap
    assert (learned.batch["entropys"][mask] > 0).all()
    # π_ref is the starting policy: identical log-probs at step 0
    assert torch.allclose(story["ref_0"].batch["ref_log_prob"], learned.batch["old_log_probs"], atol=1e-6)


def test_one_update_on_two_workers_changes_the_weights(story):
    before, after = weights(story["root"] / "w0"), weights(story["root"] / "w1")
    assert before.keys() == after.keys()
    changed = [key for key in before if not torch.equal(before[key], after[key])]
    assert len(changed) > len(before) // 2, f"only {len(changed)} of {len(before)} tensors changed"
    metrics = story["metrics_1"]
    assert metrics["actor/step"] == 1 and metrics["actor/lr"] == pytest.approx(1e-3)
    assert metrics["actor/grad_norm"] > 0 and all(np.isfinite(v) for v in metrics.values())
    assert "actor/pg_clipfrac/perception" in metrics and "actor/kl" in metrics
    moved = (story["log_probs_1"].batch["old_log_probs"] - story["log_probs_0"].batch["old_log_probs"]).abs()
    assert moved.max() > 1e-3


def test_export_reloads_into_the_same_policy(story, learner):
    from videop2r.model import load_model, load_processor

    export = story["root"] / "w1"
    record = json.loads((export / WEIGHT_VERSION_FILE).read_text())
    assert record["version"] == 1 and record["step"] == 1 == story["export_1"]["step"]
    assert read_weight_version(str(export)) == record
    expected = {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"}  # one bucket
    assert set(record["files"]) >= expected
    load_processor(export)  # tokenizer, image and video processor travel with the weights
    model = load_model(export, device="cpu")
    with torch.no_grad():
        reloaded, _ = response_log_probs(model, story["batch"], 1.0, False, "cpu", learner.vision.blocked_ids)
    learned = story["log_probs_1"].batch["old_log_probs"]
    assert torch.allclose(reloaded, learned, atol=1e-5), (reloaded - learned).abs().max()


def test_rollouts_after_the_weight_sync_carry_the_version_and_match_the_learner(story):
    synced, learned = story["synced"], story["synced_learner"]
    assert story["synced_version"] == "1"
    assert synced.non_tensor_batch["weight_version"].tolist() == [1, 1]
    mask = synced.batch["response_mask"].bool()
    gap = (learned.batch["old_log_probs"] - synced.batch["rollout_log_probs"])[mask].abs().max()
    assert gap < TOLERANCE, gap


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """(store URI prefix, StorageConfig) of a real S3 server (the juicefs gateway), else a local dir."""
    script = Path(__file__).resolve().parents[2] / "infra" / "s3_gateway.py"
    spec = importlib.util.spec_from_file_location("videop2r_infra_s3_gateway", script)
    gateway_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gateway_module)
    if gateway_module.find_juicefs() is None:  # the local store still runs the same test
        yield str(tmp_path_factory.mktemp("no-s3")), StorageConfig()
        return
    gateway = gateway_module.S3Gateway(tmp_path_factory.mktemp("s3gw")).start()
    try:
        yield "s3://learner/run", StorageConfig(endpoint=gateway.endpoint, access_key=gateway.access_key,
                                                secret_key=gateway.secret_key, part_size_mb=5)
    finally:
        gateway.stop()


def test_a_step_after_loading_state_in_new_workers_equals_the_uninterrupted_step(story, settings, local_ray,
                                                                                  s3):
    store_uri, storage = s3
    fresh = Learner(settings.model_copy(update={"storage": storage}), num_workers=2, failure_grace_s=5)
    try:
        with pytest.raises(LearnerWorkerFailed, match="no complete learner state"):
            fresh.load_state(f"{store_uri}/nothing-here")
        record = fresh.load_state(str(story["root"] / "state"))
        assert record["step"] == 1 and record["world_size"] == 2
        # and once more through the object store: what these workers save is what they load
        assert fresh.save_state(f"{store_uri}/state")["step"] == 1
        assert fresh.load_state(f"{store_uri}/state")["step"] == 1
        metrics = fresh.update_policy(story["step_2"])
        fresh.export_weights(f"{store_uri}/w2-resumed", version=2)
    finally:
        fresh.shutdown()
    assert metrics["actor/step"] == 2
    assert read_weight_version(f"{store_uri}/w2-resumed", storage)["version"] == 2
    local = story["root"] / "w2-resumed"
    remote = open_store(f"{store_uri}/w2-resumed", storage)
    for info in remote.list(""):
        if info.key.startswith("model"):
            remote.get_file(info.key, local / info.key)
    uninterrupted, resumed = weights(story["root"] / "w2"), weights(local)
    assert all(torch.equal(uninterrupted[key], resumed[key]) for key in uninterrupted)
    assert metrics == pytest.approx(story["metrics_2"])
    # the second step moved the weights again: the equality is not trivially "nothing changed"
    assert not all(torch.equal(uninterrupted[k], weights(story["root"] / "w1")[k]) for k in uninterrupted)


def test_bad_batches_are_refused_on_the_driver_and_the_group_survives(story, learner):
    batch = story["batch"]
    with pytest.raises(KeyError, match="advantages"):
        learner.update_policy(copy.deepcopy(batch).union(story["log_probs_0"]).union(story["ref_0"]))
    broken = copy.deepcopy(batch.select_idxs([0, 1]))
    responses = broken.batch["responses"].clone()
    responses[1, 0] = learner.vision.video_token_id  # a sampled <|video_pad|> cannot be re-forwarded
    broken.batch["responses"] = responses
    broken.batch["input_ids"] = torch.cat([broken.batch["prompts"], responses], dim=1)
    with pytest.raises(RolloutBatchError, match=r"rollout 1 .*vision placeholder"):
        learner.compute_log_prob(broken)
    assert [info["rank"] for info in learner.ping()] == [0, 1]
