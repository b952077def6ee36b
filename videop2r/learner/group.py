"""The driver's handle on the learner: a verl `RayWorkerGroup` of `LearnerWorker`s that fails fast.

verl's worker group waits on all workers with one `ray.get`: when a worker dies while its peers sit
in a collective, the peers never return and the driver waits forever. `LearnerWorkerGroup` waits on
the workers one result at a time instead; the first failure gives the others
`worker_failure_grace_s` to finish, then the group is torn down and the error names the worker
(`LearnerWorkerDied` for a dead process, `LearnerWorkerFailed` for an exception). A torn-down
group refuses further calls (`LearnerGroupBroken`); the driver builds a new one and loads state.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import numpy as np
import ray
import torch
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

from verl import DataProto
from verl.protocol import _padding_size_key
from verl.single_controller.ray import RayClassWithInitArgs, RayResourcePool, RayWorkerGroup

from videop2r.learner.batch import VisionTokens, check_batch
from videop2r.learner.settings import LearnerSettings, one_update_per_batch
from videop2r.learner.worker import LearnerWorker

log = logging.getLogger(__name__)

_POLL_S = 0.5


def wants_gpu(device: str, num_workers: int) -> bool:
    """Whether the workers run on GPUs: `cuda`, or `auto` with a GPU per worker in the Ray cluster."""
    return device == "cuda" or (device == "auto" and ray.cluster_resources().get("GPU", 0) >= num_workers)


class LearnerError(RuntimeError):
    """Base of the learner group's errors."""


class LearnerWorkerDied(LearnerError):
    """A learner worker process is gone (killed, crashed, OOM); the message names it."""


class LearnerWorkerFailed(LearnerError):
    """A learner worker raised; the message names it and carries the worker's error."""


class LearnerGroupBroken(LearnerError):
    """The group lost a worker earlier and was torn down; build a new one (and load state)."""


class LearnerWorkerGroup(RayWorkerGroup):
    """verl's RayWorkerGroup whose registered methods wait fail-fast instead of with one ray.get."""

    def __init__(self, *args: Any, failure_grace_s: float = 10.0, **kwargs: Any) -> None:
        self.failure_grace_s = failure_grace_s
        self.broken: str | None = None
        super().__init__(*args, **kwargs)

    def _bind_worker_method(self, user_defined_cls, func_generator):  # noqa: ANN001 - verl's signature
        return super()._bind_worker_method(user_defined_cls, _fail_fast_method)

    def _worker_label(self, index: int) -> str:
        names = self.worker_names
        name = names[index] if index < len(names) else f"#{index}"
        return f"learner worker {name} (rank {index})"

    def wait(self, refs: list[ray.ObjectRef], method: str) -> list[Any]:
        """Results of `refs` (one per worker, in rank order); raises on the first failure, never hangs."""
        pending = {ref: index for index, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        failures: list[tuple[int, BaseException]] = []
        deadline: float | None = None
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=_POLL_S)
            for ref in ready:
                index = pending.pop(ref)
                try:
                    results[index] = ray.get(ref)
                except (RayActorError, RayTaskError, ActorUnavailableError) as exc:
                    failures.append((index, exc))
            if failures and deadline is None:
                deadline = time.monotonic() + self.failure_grace_s
            if pending and deadline is not None and time.monotonic() >= deadline:
                # the survivors are stuck in a collective with the failed worker: nothing will finish
                self.teardown(f"{self._worker_label(failures[0][0])} failed in {method}")
                break
        if failures:
            error, cause = self._named_error(failures, method)
            raise error from cause
        return results

    def _named_error(self, failures: list[tuple[int, BaseException]],
                     method: str) -> tuple[LearnerError, BaseException]:
        # a dead process is the cause; its peers' collective errors are only consequences
        died = [(i, exc) for i, exc in failures if isinstance(exc, (ActorDiedError, ActorUnavailableError))
                or (isinstance(exc, RayActorError) and not isinstance(exc, RayTaskError))]
        index, exc = (died or failures)[0]
        if died:
            self.teardown(f"{self._worker_label(index)} died")
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            cause = lines[0] if lines else type(exc).__name__
            return LearnerWorkerDied(f"{self._worker_label(index)} died during {method}: {cause}"), exc
        torn_down = "; its peers were stuck, the group was torn down" if self.broken else ""
        message = f"{self._worker_label(index)} failed in {method}: {_describe(exc)}{torn_down}"
        return LearnerWorkerFailed(message), exc

    def teardown(self, reason: str, failed: bool = True) -> None:
        """Kill every worker and mark the group unusable (idempotent)."""
        if self.broken is None:
            self.broken = reason
            log.log(logging.ERROR if failed else logging.INFO, "tearing down the learner group: %s", reason)
        for worker in self._workers:
            try:
                ray.kill(worker, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead is fine
                pass


_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def _describe(exc: BaseException) -> str:
    """`Type: message (at file.py:line in function)` of a worker's exception (innermost remote frame)."""
    cause = exc.cause if isinstance(exc, RayTaskError) and exc.cause is not None else exc
    frames = _FRAME.findall(str(exc)) if isinstance(exc, RayTaskError) else []
    where = f" (at {frames[-1][0].rsplit('/', 1)[-1]}:{frames[-1][1]} in {frames[-1][2]})" if frames else ""
    lines = str(cause).strip().splitlines()
    message = f": {lines[0]}" if lines else ""
    return f"{type(cause).__name__}{message}{where}"


def _fail_fast_method(group: LearnerWorkerGroup, method_name: str, dispatch_fn, collect_fn,  # noqa: ANN001
                      execute_fn, blocking: bool):  # noqa: ANN001 - verl's func_generator contract
    """Like verl's func_generator (dispatch → execute → collect, drop padding) with `group.wait`."""

    def call(*args: Any, **kwargs: Any) -> Any:
        if group.broken:
            raise LearnerGroupBroken(f"learner group is unusable ({group.broken}); build a new one")
        args, kwargs = dispatch_fn(group, *args, **kwargs)
        padding = kwargs.pop(_padding_size_key, 0)
        output = execute_fn(method_name, *args, **kwargs)
        if blocking:
            if isinstance(output, list):  # Execute.ALL: one ref per worker
                output = group.wait(output, method_name)
            else:  # Execute.RANK_ZERO
                output = group.wait([output], method_name)[0]
        output = collect_fn(group, output)
        if padding and isinstance(output, DataProto):
            output = output.select_idxs(list(range(len(output) - padding)))
        elif padding and isinstance(output, list):
            output = output[:-padding]
        return output

    call.__name__ = method_name
    return call


def _pad_rows(batch: DataProto, multiple: int, zero_mask: bool) -> tuple[DataProto, int]:
    """Append copies of the last row so len % multiple == 0; zero_mask makes them weightless."""
    pad = (-len(batch)) % multiple
    if pad == 0:
        return batch, 0
    filler = batch.select_idxs([len(batch) - 1] * pad)
    if zero_mask:
        filler.batch["response_mask"] = torch.zeros_like(filler.batch["response_mask"])
    return DataProto.concat([batch, filler]), pad


class Learner:
    """PA-GRPO learner: N FSDP2 workers (CPU/gloo or CUDA/NCCL), driven from the trainer.

    Every method blocks until all workers finish and raises a `LearnerError` naming the worker
    that died or failed; batches of any size are padded to a multiple of the worker count.
    """

    def __init__(self, settings: LearnerSettings, num_workers: int, *, use_gpu: bool | None = None,
                 worker_cls: type[LearnerWorker] = LearnerWorker, failure_grace_s: float = 10.0,
                 process_on_nodes: list[int] | None = None, name_prefix: str | None = None) -> None:
        if not ray.is_initialized():
            raise LearnerError("Ray is not initialised: call ray.init(...) (or connect to the cluster) first")
        if use_gpu is None:
            use_gpu = wants_gpu(settings.learner.device, num_workers)
        self.settings = settings
        self.use_gpu = use_gpu
        nodes = process_on_nodes or [num_workers]
        if sum(nodes) != num_workers:
            raise ValueError(f"process_on_nodes {nodes} does not add up to {num_workers} workers")
        # verl waits for its placement group without a deadline: refuse what the cluster can never give
        resource = "GPU" if use_gpu else "CPU"
        total = ray.cluster_resources().get(resource, 0)
        if total < num_workers:
            raise LearnerError(f"{num_workers} learner workers need {num_workers} {resource}s; the Ray "
                               f"cluster has {total:g} (ray.init(num_cpus=...) counts logical CPUs)")
        # one bundle per worker; max_colocate_count=1 or Ray waits for CPUs the bundles never free
        self.pool = RayResourcePool(process_on_nodes=nodes, use_gpu=use_gpu, max_colocate_count=1,
                                    name_prefix=name_prefix)
        worker = RayClassWithInitArgs(cls=ray.remote(worker_cls), settings=settings.model_dump())
        self.group = LearnerWorkerGroup(resource_pool=self.pool, ray_cls_with_init=worker, use_gpu=use_gpu,
                                        device_name="cuda" if use_gpu else "cpu",
                                        failure_grace_s=failure_grace_s, name_prefix=name_prefix)
        try:
            self.workers_info = self.group.init_model()
        except BaseException:
            self.shutdown()
            raise
        #: what `check_batch` needs to reject a batch on the driver, before any worker sees it (a row
        #: that fails on one worker only would leave the others waiting in a collective)
        self.vision = VisionTokens(**self.workers_info[0]["vision"])

    @property
    def world_size(self) -> int:
        return self.group.world_size

    @property
    def worker_names(self) -> list[str]:
        return list(self.group.worker_names)

    # -- batch computations

    def compute_log_prob(self, batch: DataProto) -> DataProto:
        """`old_log_probs`, `entropys` (bs, R) of `batch` under the current policy."""
        check_batch(batch, self.vision)
        padded, pad = _pad_rows(batch, self.world_size, zero_mask=False)
        out = self.group.compute_log_prob(padded)
        return out.select_idxs(list(range(len(batch)))) if pad else out

    def compute_ref_log_prob(self, batch: DataProto) -> DataProto:
        """`ref_log_prob` (bs, R) under the frozen reference (needs settings.reference_path)."""
        if not self.workers_info[0]["reference"]:
            raise LearnerError("no reference policy: the KL term is off (algorithm.kl_coef = 0)")
        check_batch(batch, self.vision)
        padded, pad = _pad_rows(batch, self.world_size, zero_mask=False)
        out = self.group.compute_ref_log_prob(padded)
        return out.select_idxs(list(range(len(batch)))) if pad else out

    def update_policy(self, batch: DataProto) -> dict[str, float]:
        """One training step on `batch` (needs advantages, ref_log_prob if KL, and old_log_probs unless
        the batch is one optimizer step: then the workers use the current log-probs, detached)."""
        required = ["responses", "input_ids", "attention_mask", "response_mask", "advantages"]
        if not one_update_per_batch(self.settings, len(batch)):
            required.append("old_log_probs")
        if self.settings.algorithm.kl_coef > 0:
            required.append("ref_log_prob")
        missing = [key for key in required if key not in batch.batch.keys()]
        if missing:
            raise KeyError(f"update_policy: the batch lacks {missing} (old_log_probs: compute_log_prob; "
                           f"ref_log_prob: compute_ref_log_prob; advantages: the driver)")
        check_batch(batch, self.vision)
        padded, _ = _pad_rows(batch, self.world_size, zero_mask=True)
        out = self.group.update_policy(padded)
        per_worker = out.meta_info.get("metrics", {})
        # every worker reports the same (all-reduced) metrics; take rank 0's
        return {key: float(np.asarray(values)[0]) for key, values in per_worker.items()}

    # -- weights and state

    def export_weights(self, uri: str, version: int) -> dict[str, Any]:
        """Consolidated HF checkpoint at `uri`, `weight_version.json` = {"version": version, ...}."""
        return self.group.export_hf_weights(uri, version)[0]

    def save_state(self, uri: str) -> dict[str, Any]:
        """Model, optimizer, scheduler, RNG of every worker at `uri` (sharded DCP)."""
        return self.group.save_state(uri)[0]

    def load_state(self, uri: str) -> dict[str, Any]:
        """Restore a state saved by `save_state` (any worker count for model/optimizer)."""
        return self.group.load_state(uri)[0]

    def ping(self) -> list[dict[str, Any]]:
        return self.group.ping()

    def shutdown(self) -> None:
        """Kill the workers and free their placement groups (idempotent)."""
        group = getattr(self, "group", None)
        if group is not None:
            group.teardown("shut down", failed=False)
        for pg in self.pool.pgs or []:
            try:
                ray.util.remove_placement_group(pg)
            except Exception:  # noqa: BLE001 - already removed
                pass
        self.pool.pgs = None
