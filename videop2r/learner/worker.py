"""The learner worker: one Ray actor per FSDP2 shard, driven through verl's single controller.

Each `@register`ed method is called on all workers of the `RayWorkerGroup` at once:
`DP_COMPUTE_PROTO` splits a DataProto into one chunk per worker and concatenates the results;
`ONE_TO_ALL` sends the same arguments to every worker (collective operations: init, export,
save/load). The process group (gloo on CPU, NCCL on CUDA) is joined in `__init__` from the env
verl's worker group sets (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from verl import DataProto
from verl.single_controller.base import Worker
from verl.single_controller.base.decorator import Dispatch, register

from videop2r.learner.actor import PolicyActor, PolicyLossFn
from videop2r.learner.export import export_hf_weights
from videop2r.learner.reference import ReferencePolicy
from videop2r.learner.settings import LearnerSettings
from videop2r.learner.loading import load_sharded_model
from videop2r.learner.sharding import DTYPES, init_distributed, pick_device
from videop2r.learner.training_state import load_training_state, save_training_state

log = logging.getLogger(__name__)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class LearnerWorker(Worker):
    """Policy shard (+ frozen reference shard) of one learner process."""

    def __init__(self, settings: LearnerSettings | dict[str, Any]) -> None:
        super().__init__()
        if not isinstance(settings, LearnerSettings):
            settings = LearnerSettings.model_validate(settings)
        self.settings = settings
        if self.settings.learner.threads:
            torch.set_num_threads(self.settings.learner.threads)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # model hubs are never reached from a worker
        self.device = pick_device(self.settings.learner.device)
        self.mesh = init_distributed(self.device, self.settings.collective_timeout_s)
        _seed_everything(self.settings.seed + self.rank)
        self.actor: PolicyActor | None = None
        self.reference: ReferencePolicy | None = None
        self.source_dir = None

    # -- setup

    def _resolve(self, paths: list[str]) -> list[Any]:
        """Local copies of `paths` on the ranks that read checkpoints (rank 0, or all with every_rank)."""
        from videop2r.model import resolve_model_path
        from videop2r.model.loading import is_remote

        if self.settings.learner.load == "rank0":
            return [resolve_model_path(path, self.settings.storage) for path in paths] if self.rank == 0 else \
                [None] * len(paths)
        if any(is_remote(path) for path in paths):
            # one rank at a time: remote checkpoints download into a per-node cache that concurrent
            # downloads of the same URI would trample; later ranks on a node find it complete
            for turn in range(self.world_size):
                if turn == self.rank:
                    for path in paths:
                        resolve_model_path(path, self.settings.storage)
                dist.barrier()
        return [resolve_model_path(path, self.settings.storage) for path in paths]

    def _checkpoint_facts(self, paths: list[str]) -> tuple[list[Any], list[Any], list[int]]:
        """(local dirs, model configs, blocked token ids): rank 0 reads them and tells the others, so
        a rank that does not read the checkpoint needs no copy of it; a failure fails every rank."""
        from transformers import AutoConfig

        facts: list[Any] = [None]
        local: list[Any] = [None] * len(paths)
        try:
            local = self._resolve(paths)
            if self.rank == 0:
                configs = [AutoConfig.from_pretrained(path, local_files_only=True).to_dict() for path in local]
                facts = [{"configs": configs, "blocked": self._blocked_token_ids(local[0])}]
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
            facts = [{"error": f"{type(exc).__name__}: {exc}"}]
            if self.settings.learner.load != "rank0":
                raise
        dist.broadcast_object_list(facts, src=0)
        if "error" in facts[0]:
            raise RuntimeError(f"loading the checkpoint failed on rank 0: {facts[0]['error']}")
        from transformers import Qwen2_5_VLConfig

        configs = [Qwen2_5_VLConfig.from_dict(config) for config in facts[0]["configs"]]
        return local, configs, list(facts[0]["blocked"])

    def _blocked_token_ids(self, source_dir: Any) -> list[int]:
        """Vision placeholder ids the rollout never samples; the learner's distribution excludes them too."""
        if not self.settings.block_vision_tokens:
            return []
        from transformers import AutoTokenizer

        from videop2r.model import vision_token_ids

        return vision_token_ids(AutoTokenizer.from_pretrained(source_dir, local_files_only=True))

    def _policy_loss(self) -> PolicyLossFn | None:
        """The PA-GRPO loss; None = the default from videop2r.algorithms (subclasses may swap it)."""
        return None

    def _load(self, local: Any, config: Any, reference: bool) -> torch.nn.Module:
        learner = self.settings.learner
        master = DTYPES[learner.reference_dtype] if reference else torch.float32
        compute = master if reference else DTYPES[self.settings.dtype]
        return load_sharded_model(local, config, self.mesh, self.device, dtype=master, param_dtype=compute,
                                  attn_implementation=self.settings.attn_implementation, load=learner.load,
                                  gradient_checkpointing=learner.gradient_checkpointing and not reference,
                                  offload=reference and learner.reference_offload)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def init_model(self) -> dict[str, Any]:
        """Load the policy (and the reference when the settings name one), shard both, build the optimizer."""
        paths = [self.settings.model_path, self.settings.reference_path] if self.settings.reference_path \
            else [self.settings.model_path]
        local, configs, blocked = self._checkpoint_facts(paths)
        self.source_dir = local[0]
        torch.manual_seed(self.settings.seed)  # same init on all ranks for anything not in the checkpoint
        self.actor = PolicyActor(self._load(local[0], configs[0], reference=False), self.settings, self.device,
                                 loss_fn=self._policy_loss(), blocked_token_ids=blocked)
        if self.settings.reference_path:
            self.reference = ReferencePolicy(self._load(local[1], configs[1], reference=True), self.settings,
                                             self.device, blocked_token_ids=blocked)
        _seed_everything(self.settings.seed + self.rank)
        params = sum(p.numel() for p in self.actor.model.parameters())  # sharded: count of the full model
        config = self.actor.model.config
        vision = {"image_token_id": int(config.image_token_id), "video_token_id": int(config.video_token_id),
                  "merge_size": int(config.vision_config.spatial_merge_size), "blocked_ids": tuple(blocked)}
        return {"rank": self.rank, "device": str(self.device), "parameters": int(params),
                "reference": bool(self.reference), "backend": dist.get_backend(), "vision": vision}

    def _require_actor(self) -> PolicyActor:
        if self.actor is None:
            raise RuntimeError("learner worker: init_model() has not been called")
        return self.actor

    # -- batch computations (split over workers)

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def compute_log_prob(self, data: DataProto) -> DataProto:
        """`old_log_probs` and `entropys` (bs, R) under the current policy."""
        return DataProto.from_dict(tensors=self._require_actor().compute_log_prob(data))

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def compute_ref_log_prob(self, data: DataProto) -> DataProto:
        """`ref_log_prob` (bs, R) under the frozen reference."""
        if self.reference is None:
            raise RuntimeError("learner worker: no reference policy (reference_path is empty: KL is off)")
        return DataProto.from_dict(tensors=self.reference.compute_ref_log_prob(data))

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def update_policy(self, data: DataProto) -> DataProto:
        """One PA-GRPO training step on this worker's share; metrics (same on all workers) in meta_info."""
        metrics = self._require_actor().update_policy(data)
        return DataProto(meta_info={"metrics": metrics})

    # -- weights and state (collective, same arguments everywhere)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def export_hf_weights(self, uri: str, version: int) -> dict[str, Any]:
        """Publish the consolidated HF checkpoint at `uri` with `weight_version.json` = `version`."""
        actor = self._require_actor()
        # in the compute dtype (model.dtype: bf16 at paper scale), streamed in learner.export_bucket_mb buckets
        return export_hf_weights(actor.model, self.source_dir, uri, version, DTYPES[self.settings.dtype],
                                 self.settings.storage, extra={"step": actor.step},
                                 bucket_mb=self.settings.learner.export_bucket_mb)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def save_state(self, uri: str) -> dict[str, Any]:
        """Sharded model + optimizer, scheduler and RNG state at `uri` (see training_state)."""
        return save_training_state(self._require_actor(), uri, self.settings.storage)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def load_state(self, uri: str) -> dict[str, Any]:
        """Restore what `save_state` wrote at `uri`."""
        return load_training_state(self._require_actor(), uri, self.settings.storage)

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def ping(self) -> dict[str, Any]:
        """Liveness and identity of this worker (no collective)."""
        return {"rank": self.rank, "pid": os.getpid(), "device": str(self.device)}
