"""The replication study: does PA-GRPO beat GRPO and its ablations where perception is the bottleneck?

`python -m videop2r.replication --config configs/replication.yaml` (`make replication`):

1. `videop2r.data.hard_task` writes the task (teacher-filtered SFT split, RL pool, validation,
   held-out test) and packs it;
2. per seed: `videop2r model init` + `videop2r sft` (keep-best on validation), then every RL arm
   from that SFT checkpoint with the same prompt order and budget (`videop2r train`, rollouts
   and per-item evaluations dumped);
3. `analysis` computes the gate, accuracies, paired bootstrap differences, collapse per process
   (also with every estimator applied to the same logged rewards) and writes results.json;
   `report` writes report.md and the plots.

Modules: spec (the study file), study (runs the jobs), stats (bootstrap), analysis, report.
"""
