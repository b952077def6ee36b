"""The process-aware CoT data pipeline of method §3 (VideoP2R-CoT-162K): generate, verify, judge.

Public API:

- ``run_pipeline(CoTRequest, config, steps=STEPS) -> counts`` — the `videop2r cot` commands;
  ``CoTPipeline`` for finer control (``run``, ``counts``, ``write_output``).
- ``generate`` / ``verify`` / ``judge`` / ``cot_record`` (``videop2r.cot.steps``) — one record
  through one step.
- ``Shard``, ``shard_of`` — the split of the records by id across workers.

Outputs (in ``--output``): the per-step ledgers, ``cot.jsonl`` (kept records, VideoP2R layout,
ready for `videop2r data pack` + `videop2r sft`) and ``cot.counts.json``. See
``videop2r/eval/README.md``.
"""

from videop2r.cot.inputs import Shard, read_input_records, shard_of
from videop2r.cot.pipeline import STEPS, CoTPipeline, CoTRequest, run_pipeline
from videop2r.cot.steps import Verification, cot_record, generate, judge, verify

__all__ = [
    "STEPS",
    "CoTPipeline",
    "CoTRequest",
    "Shard",
    "Verification",
    "cot_record",
    "generate",
    "judge",
    "read_input_records",
    "run_pipeline",
    "shard_of",
    "verify",
]
