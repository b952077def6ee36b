"""`videop2r serve rollout` whose engine silently drops the video (test double for test_parity_e2e).

It accepts every request the embedded server accepts and answers in the same shape, but its
prefill replaces the video's pixels with zeros: the failure peers report of SGLang rollouts that
lose ``video_data`` and go on generating from the text alone, with no error anywhere.
Run as ``python tests/train/blind_rollout.py serve rollout --model ... --port ...``.
"""

from __future__ import annotations

import sys

import torch


def install() -> None:
    from services.rollout.engine import GenerationEngine

    real = GenerationEngine._prefill

    def blind_prefill(self, job, copies, encode_once):
        if job.inputs.get("pixel_values_videos") is not None:
            inputs = {**job.inputs, "pixel_values_videos": torch.zeros_like(job.inputs["pixel_values_videos"])}
            job = type(job)(inputs, job.sampling, job.rid, job.input_logprob_start)
        return real(self, job, copies, encode_once)

    GenerationEngine._prefill = blind_prefill


if __name__ == "__main__":
    install()
    from videop2r.cli import main

    sys.exit(main(sys.argv[1:]))
