"""The trained policy on one learner worker: an FSDP2 shard, its AdamW optimizer and LR schedule.

`update_policy` runs PA-GRPO (the loss function of `videop2r.algorithms`) over mini-batches and
micro-batches of this worker's share of the batch. Gradients of a mini-batch are accumulated over
its micro-batches and averaged over the workers by FSDP; each micro-batch loss is weighted so that
the sum is the loss the aggregation mode defines over the whole global mini-batch (e.g. the mean
over all its response tokens on all workers), whatever the split.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from verl import DataProto

from videop2r.learner.logprob import response_log_probs
from videop2r.learner.schedule import build_lr_schedule
from videop2r.learner.settings import LearnerSettings

#: (old_log_prob, log_prob, advantages, response_mask, ref_log_prob | None, algorithm config)
#: → (loss over this micro-batch, aggregated locally by config.loss_agg_mode; metrics). Tensors (bs, R).
PolicyLossFn = Callable[..., tuple[torch.Tensor, dict[str, Any]]]


def default_policy_loss() -> PolicyLossFn:
    """PA-GRPO's clipped surrogate + KL from `videop2r.algorithms` (imported late: workers only)."""
    from videop2r.algorithms import pa_grpo_policy_loss

    return pa_grpo_policy_loss


def micro_loss_weight(loss_agg_mode: str, micro_mask: torch.Tensor, global_tokens: float, global_seqs: float,
                      world_size: int) -> float:
    """Factor that turns a locally aggregated micro-batch loss into its share of the global mini-batch loss.

    FSDP averages gradients over `world_size` workers, hence the ×world_size. token-mean weights by
    response tokens, the seq-mean modes by sequences that have any response token.
    """
    if loss_agg_mode == "token-mean":
        share = float(micro_mask.sum()) / max(global_tokens, 1.0)
    else:
        share = float((micro_mask.sum(dim=-1) > 0).sum()) / max(global_seqs, 1.0)
    return share * world_size


class PolicyActor:
    """Policy shard + optimizer + scheduler; every public method is collective (all workers call it)."""

    def __init__(self, model: nn.Module, settings: LearnerSettings, device: torch.device,
                 loss_fn: PolicyLossFn | None = None, blocked_token_ids: Sequence[int] = ()) -> None:
        self.model = model
        self.blocked_token_ids = list(blocked_token_ids)
        self.settings = settings
        self.device = device
        self.loss_fn = loss_fn or default_policy_loss()
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=settings.lr, betas=settings.adam_betas, weight_decay=settings.weight_decay,
        )
        self.scheduler = build_lr_schedule(self.optimizer, settings.lr_schedule, settings.warmup_steps,
                                           settings.total_steps, settings.min_lr_ratio)
        self.world_size = dist.get_world_size()
        #: optimizer steps taken (one per update_policy call)
        self.step = 0

    def _forward(self, micro: DataProto) -> tuple[torch.Tensor, torch.Tensor]:
        return response_log_probs(self.model, micro, self.settings.temperature, True, self.device,
                                  self.blocked_token_ids)

    @torch.no_grad()
    def compute_log_prob(self, data: DataProto) -> DataProto:
        """DataProto with `old_log_probs` and `entropys`, (bs, R), for this worker's share of the batch."""
        self.model.eval()
        log_probs, entropies = [], []
        for micro in data.split(self.settings.micro_batch_size):
            lp, ent = self._forward(micro)
            log_probs.append(lp.cpu())
            entropies.append(ent.cpu())
        tensors = {"old_log_probs": torch.cat(log_probs), "entropys": torch.cat(entropies)}
        return DataProto.from_dict(tensors=tensors)

    def _mini_batch_size(self) -> int:
        if self.settings.mini_batch_size % self.world_size:
            raise ValueError(f"mini_batch_size {self.settings.mini_batch_size} is not a multiple of the "
                             f"{self.world_size} learner workers")
        return self.settings.mini_batch_size // self.world_size

    def _global_counts(self, mask: torch.Tensor) -> tuple[float, float]:
        # collectives run on the worker's device (NCCL has no CPU tensors)
        counts = torch.tensor([float(mask.sum()), float((mask.sum(dim=-1) > 0).sum())], dtype=torch.float64,
                              device=self.device)
        dist.all_reduce(counts)
        return float(counts[0]), float(counts[1])

    def _micro_step(self, micro: DataProto, weight: float) -> dict[str, float]:
        mask = micro.batch["response_mask"].to(self.device)
        log_prob, entropy = self._forward(micro)
        if weight == 0.0:
            # padding rows only: still forward/backward so every worker runs the same collectives
            (log_prob.sum() * 0.0).backward()
            return {}
        keys = micro.batch.keys()
        ref = micro.batch["ref_log_prob"].to(self.device) if "ref_log_prob" in keys else None
        # per-process masks, when the driver attached them, only feed per-process metrics
        spans = {f"{name}_mask": micro.batch[f"{name}_mask"].to(self.device)
                 for name in ("perception", "reasoning") if f"{name}_mask" in keys}
        loss, metrics = self.loss_fn(
            old_log_prob=micro.batch["old_log_probs"].to(self.device),
            log_prob=log_prob,
            advantages=micro.batch["advantages"].to(self.device),
            response_mask=mask,
            ref_log_prob=ref,
            config=self.settings.algorithm,
            **spans,
        )
        (loss * weight).backward()
        out = {key: float(value) for key, value in metrics.items()}
        out["actor/loss"] = float(loss.detach())
        out["actor/entropy"] = float((entropy.detach() * mask).sum() / mask.sum().clamp(min=1))
        return out

    def update_policy(self, data: DataProto) -> dict[str, float]:
        """One training step: ppo_epochs × mini-batches (one optimizer step each), then one LR step.

        `data` needs responses, input_ids, attention_mask, response_mask, advantages, old_log_probs
        (and ref_log_prob when the KL term is on). Returns metrics averaged over workers.
        """
        for key in ("advantages", "old_log_probs"):
            if key not in data.batch.keys():
                raise KeyError(f"update_policy needs '{key}' in the batch")
        self.model.train()
        mini_size = self._mini_batch_size()
        mode = self.settings.algorithm.loss_agg_mode
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        grad_norms, skipped = [], 0
        for _ in range(self.settings.ppo_epochs):
            for mini in data.split(mini_size):
                global_tokens, global_seqs = self._global_counts(mini.batch["response_mask"])
                for micro in mini.split(self.settings.micro_batch_size):
                    weight = micro_loss_weight(mode, micro.batch["response_mask"], global_tokens, global_seqs,
                                               self.world_size)
                    for key, value in self._micro_step(micro, weight).items():
                        sums[key] += value
                        counts[key] += 1
                norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
                norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
                if global_tokens == 0:
                    pass  # padding only: an AdamW step on zero gradients would still move the weights
                elif math.isfinite(norm):
                    self.optimizer.step()
                else:  # a bad mini-batch must not poison the weights
                    skipped += 1
                self.optimizer.zero_grad(set_to_none=True)
                grad_norms.append(norm)
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        self.step += 1
        local = {key: sums[key] / counts[key] for key in sums}
        local["actor/grad_norm"] = sum(grad_norms) / len(grad_norms)
        return self._mean_over_workers(local) | {"actor/lr": lr, "actor/skipped_steps": float(skipped),
                                                 "actor/step": float(self.step)}

    def _mean_over_workers(self, metrics: dict[str, float]) -> dict[str, float]:
        # workers whose share was all padding report no loss metrics: average over those that have them
        keys = sorted(set().union(*self._all_gather_keys(metrics)))
        values = torch.tensor([[metrics.get(k, 0.0), 1.0 if k in metrics else 0.0] for k in keys],
                              dtype=torch.float64, device=self.device).reshape(-1, 2)
        dist.all_reduce(values)
        values = values.cpu()
        return {k: float(values[i, 0] / values[i, 1]) for i, k in enumerate(keys) if values[i, 1] > 0}

    def _all_gather_keys(self, metrics: dict[str, float]) -> list[list[str]]:
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, sorted(metrics))
        return gathered
