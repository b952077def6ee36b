"""The training driver: `videop2r sft` (stage 1) and `videop2r train` (stage 2, PA-GRPO).

Modules, one job each:

- `loop`: the PA-GRPO step loop and `run_pa_grpo`; `sft`: supervised fine-tuning and `run_sft`;
- `stage`: what both stages share on the driver (clients, held-out set, weight sync, evaluation);
- `group_rewards`: per-process rewards of a group through the reward services (in-process fallback);
- `batches`: samples and rollouts → the learner's DataProto; `sft_worker`: the learner worker with NLL;
- `evaluate`: greedy held-out evaluation;
- `checkpoint`: step-N checkpoints with a "latest" that only names complete ones;
- `metrics_log`: metrics.jsonl, Prometheus, and the experiment trackers of `tracking` (verl's Tracking);
- `report`: report.md and reward plots; `model_card`: the card and inference settings of a published model;
- `run`: run directories and up-front input checks; `cluster`: connecting to Ray.

The rollout and reward services as local processes (laptop, demo, tests) are `videop2r.local_services`.

The CLI (`videop2r.cli.train`) imports these modules inside its handlers, so `videop2r --help` stays fast.
"""
