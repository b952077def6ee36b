"""Fixtures of the learner tests: the tiny model, rollouts from the embedded engine, a private Ray."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

VIDEO_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
QUESTION = {"problem": "What colour is the shape?", "options": ["red", "blue", "green", "yellow"],
            "problem_type": "multiple choice", "data_type": "video"}


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from videop2r.model import init_model

    return init_model("tiny", tmp_path_factory.mktemp("learner") / "tiny", seed=0)


@pytest.fixture(scope="session")
def processor(tiny_dir):
    from videop2r.model import load_processor

    return load_processor(tiny_dir)


@pytest.fixture(scope="session")
def engine(tiny_dir, processor):
    """The embedded rollout server's generation engine (services/rollout), weight version "v0"."""
    from services.rollout.engine import GenerationEngine
    from videop2r.model import load_model

    torch.set_num_threads(1)
    return GenerationEngine(load_model(tiny_dir, device="cpu"), processor, model_path=str(tiny_dir),
                            weight_version="v0")


def _make_rollouts(engine, processor, prompts: int = 2, n: int = 2, max_new_tokens: int = 12, seed: int = 0,
                  frames: int = 4, side: int = 56):
    """`prompts` × `n` sampled rollouts (temperature 1) as `RolloutSample`s, with their log-probs."""
    from services.rollout.prompt_job import PromptJob, SamplingOptions
    from videop2r.learner.batch import RolloutSample
    from videop2r.prompting import build_inputs

    rng = np.random.default_rng(seed)
    jobs = []
    for index in range(prompts):
        clip = rng.integers(0, 256, (frames, side, side, 3), dtype=np.uint8)
        # prompts and responses of different lengths: the batch needs left and right padding
        question = {**QUESTION, "options": QUESTION["options"][: 4 - index % 3]}
        inputs = dict(build_inputs(processor, question, media=clip, fps=2.0))
        sampling = SamplingOptions(max_new_tokens=max(2, max_new_tokens - 3 * index), temperature=1.0, n=n,
                                   ignore_eos=True, sampling_seed=seed * 1000 + index)
        jobs.append(PromptJob(inputs=inputs, sampling=sampling, rid=f"p{index}"))
    samples = []
    for job, result in zip(jobs, engine.generate(jobs), strict=True):
        multi_modal = {key: job.inputs[key] for key in VIDEO_KEYS}
        for sample in result.samples:
            samples.append(RolloutSample(job.inputs["input_ids"][0], sample.output_ids, multi_modal,
                                         sample.logprobs, uid=job.rid, weight_version=_version(result)))
    return samples


@pytest.fixture(scope="session")
def make_rollouts(engine, processor):
    """`make_rollouts(prompts=2, n=2, max_new_tokens=12, seed=0) -> list[RolloutSample]` from the engine."""

    def make(**kwargs):
        return _make_rollouts(engine, processor, **kwargs)

    return make


def _version(result) -> int:
    text = str(result.weight_version)
    return int(text.lstrip("v")) if text.lstrip("v").isdigit() else -1


@pytest.fixture(scope="session")
def local_ray():
    """A private local Ray (token auth in the env, own temp dir), shared by the learner tests."""
    import ray

    from videop2r.learner.local_ray import init_local_ray

    temp_dir = init_local_ray(num_cpus=6)  # logical: two learner groups of 2 bundles may coexist
    yield
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)
