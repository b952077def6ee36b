"""The trained policy on one learner worker: an FSDP2 shard, its AdamW optimizer and LR schedule.

`update_policy` runs PA-GRPO (the loss function of `videop2r.algorithms`) over mini-batches and
micro-batches of this worker's share of the batch. Gradients of a mini-batch are accumulated over
its micro-batches and averaged over the workers by FSDP; each micro-batch loss is weighted so that
the sum is the loss the aggregation mode defines over the whole global mini-batch (e.g. the mean
over all its response tokens on all workers), whatever the split. Micro-batches follow the token
budget (`learner.max_tokens_per_micro_batch`, see `micro`), the same count on every worker.

Torch only (no Ray, no verl): the worker converts verl's DataProto to `Rows` at the boundary.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from videop2r.learner.logprob import response_log_probs
from videop2r.learner.micro import equalise, filler_row, plan_micro_batches, row_shapes
from videop2r.learner.rows import Rows
from videop2r.learner.schedule import build_lr_schedule

if TYPE_CHECKING:  # pydantic config models: not needed to run the actor (bench/gpu_smoke.py)
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


def micro_plan(rows: Rows, settings: LearnerSettings, device: torch.device) -> list[list[int] | None]:
    """This worker's micro-batches (row indices; None = a weightless step to match the other workers)."""
    plan = plan_micro_batches(row_shapes(rows), settings.micro_batch_size,
                              settings.learner.max_tokens_per_micro_batch)
    return equalise(plan, device)


def forward_in_micro_batches(rows: Rows, settings: LearnerSettings, device: torch.device,
                             forward: Callable[[Rows], Sequence[torch.Tensor | None]]) -> list[torch.Tensor | None]:
    """Run `forward` (no grad) over the token-budget micro-batches of `rows`; outputs in row order."""
    outputs: list[list[torch.Tensor]] = []
    order: list[int] = []
    filler = filler_row(row_shapes(rows))
    for indices in micro_plan(rows, settings, device):
        result = forward(rows.select(indices if indices is not None else [filler]))
        if indices is None:
            continue  # only there so every worker runs the same forwards
        order.extend(indices)
        outputs.append([part.cpu() if part is not None else None for part in result])
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.as_tensor(order, dtype=torch.long)] = torch.arange(len(order))
    merged = []
    for column in zip(*outputs, strict=True):
        merged.append(None if column[0] is None else torch.cat(column)[inverse])
    return merged


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
        self.world_size = dist.get_world_size() if dist.is_initialized() else 1
        #: optimizer steps taken (one per update_policy call)
        self.step = 0

    def _forward(self, micro: Rows, with_entropy: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        return response_log_probs(self.model, micro, self.settings.temperature, with_entropy, self.device,
                                  self.blocked_token_ids)

    @torch.no_grad()
    def compute_log_prob(self, data: Any) -> dict[str, torch.Tensor]:
        """`old_log_probs` and `entropys`, (bs, R), for this worker's share of the batch."""
        self.model.eval()
        log_probs, entropies = forward_in_micro_batches(Rows.of(data), self.settings, self.device, self._forward)
        return {"old_log_probs": log_probs, "entropys": entropies}

    def _mini_batch_size(self) -> int:
        if self.settings.mini_batch_size % self.world_size:
            raise ValueError(f"mini_batch_size {self.settings.mini_batch_size} is not a multiple of the "
                             f"{self.world_size} learner workers")
        return self.settings.mini_batch_size // self.world_size

    def _global_counts(self, mask: torch.Tensor) -> tuple[float, float]:
        # collectives run on the worker's device (NCCL has no CPU tensors)
        counts = torch.tensor([float(mask.sum()), float((mask.sum(dim=-1) > 0).sum())], dtype=torch.float64,
                              device=self.device)
        if dist.is_initialized():
            dist.all_reduce(counts)
        return float(counts[0]), float(counts[1])

    def _micro_step(self, micro: Rows, weight: float, reuse_old: bool) -> dict[str, float]:
        mask = micro.tensors["response_mask"].to(self.device)
        log_prob, entropy = self._forward(micro)
        if weight == 0.0:
            # padding rows only: still forward/backward so every worker runs the same collectives
            (log_prob.sum() * 0.0).backward()
            return {}
        keys = micro.keys()
        ref = micro.tensors["ref_log_prob"].to(self.device) if "ref_log_prob" in keys else None
        # one update per batch: π_old is π_θ now, so the old log-probs are the current ones (ratio 1)
        old = log_prob.detach() if reuse_old else micro.tensors["old_log_probs"].to(self.device)
        # per-process masks, when the driver attached them, feed per-process metrics (and aggregation)
        spans = {f"{name}_mask": micro.tensors[f"{name}_mask"].to(self.device)
                 for name in ("perception", "reasoning") if f"{name}_mask" in keys}
        loss, metrics = self.loss_fn(
            old_log_prob=old,
            log_prob=log_prob,
            advantages=micro.tensors["advantages"].to(self.device),
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

    def update_policy(self, data: Any) -> dict[str, float]:
        """One training step: ppo_epochs × mini-batches (one optimizer step each), then one LR step.

        `data` needs responses, input_ids, attention_mask, response_mask, advantages (and
        ref_log_prob when the KL term is on); old_log_probs unless the step is one optimizer step
        (one epoch, one mini-batch), where they are the current log-probs. Metrics averaged over workers.
        """
        rows = Rows.of(data)
        if "advantages" not in rows.keys():
            raise KeyError("update_policy needs 'advantages' in the batch")
        mini_size = self._mini_batch_size()
        minis = [list(range(start, min(start + mini_size, len(rows)))) for start in range(0, len(rows), mini_size)]
        reuse_old = "old_log_probs" not in rows.keys()
        if reuse_old and (self.settings.ppo_epochs > 1 or len(minis) > 1):
            raise KeyError("update_policy needs 'old_log_probs' in the batch: this step takes "
                           f"{self.settings.ppo_epochs * len(minis)} optimizer steps, so π_old is not π_θ")
        self.model.train()
        mode = self.settings.algorithm.loss_agg_mode
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        grad_norms, skipped = [], 0
        for _ in range(self.settings.ppo_epochs):
            for indices in minis:
                mini = rows.select(indices)
                global_tokens, global_seqs = self._global_counts(mini.tensors["response_mask"])
                filler = filler_row(row_shapes(mini))
                for micro_indices in micro_plan(mini, self.settings, self.device):
                    micro = mini.select(micro_indices if micro_indices is not None else [filler])
                    weight = 0.0 if micro_indices is None else micro_loss_weight(
                        mode, micro.tensors["response_mask"], global_tokens, global_seqs, self.world_size)
                    for key, value in self._micro_step(micro, weight, reuse_old).items():
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
        if dist.is_initialized():
            dist.all_reduce(values)
        values = values.cpu()
        return {k: float(values[i, 0] / values[i, 1]) for i, k in enumerate(keys) if values[i, 1] > 0}

    def _all_gather_keys(self, metrics: dict[str, float]) -> list[list[str]]:
        if not dist.is_initialized():
            return [sorted(metrics)]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, sorted(metrics))
        return gathered
