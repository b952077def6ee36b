"""The generation engine of the embedded rollout server: transformers, CPU (or CUDA), no vLLM.

``GenerationEngine.generate(jobs)`` runs one batch of prompt jobs to completion:

1. **Prefill once per prompt.** Each prompt (with its video/image) runs through the model once,
   batch 1 — vision tower and prompt — and its KV cache is shared by its ``n`` samples, never
   copied: decode attention reads it once per step for all of them
   (``services.rollout.shared_prefix``; ``encode_once=True``). The naive path
   (``encode_once=False``; what TRL and ``generate(num_return_sequences=n)`` do) repeats the
   prompt ``n`` times *before* prefill; ``bench/rollout_throughput.py`` compares the two.
2. **One decode batch.** All samples of all prompts decode together, one token per row per step,
   with explicit 3-D M-RoPE positions (``prompt max position + 1 + step``, the positions
   ``get_rope_index`` gives the learner's teacher-forced forward). Finished rows leave the batch
   at once. (The naive path left-pads the caches to one length and copies them into in-place
   buffers, ``services.rollout.kv_cache``.)
3. **Sampling** per request (temperature, top-p/k, min-p, logit bias, seed) with SGLang's
   log-prob semantics (``services.rollout.sampling``); vision placeholder tokens are never
   sampled (``block_vision_tokens``); stop checks as ``services.rollout.stopping``.

The engine is not thread-safe: the server calls it from one worker thread. `check_job` is: the
scheduler calls it before a job joins a batch, so a job the engine cannot run fails alone.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from services.rollout import prompt_job, shared_prefix
from services.rollout.kv_cache import preallocated
from services.rollout.prompt_job import JobResult, PromptJob
from services.rollout.sampling import sample_next
from services.rollout.stopping import SampleOutput, StopRule, final_text

log = logging.getLogger(__name__)

_VISUAL_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts", "pixel_values", "image_grid_thw")


@dataclass
class _Row:
    job: int
    rule: StopRule
    min_new_tokens: int
    position: int  # M-RoPE position of the next token fed to the model
    number: int = 0  # which of the job's samples
    sample: SampleOutput = field(default_factory=SampleOutput)


class GenerationEngine:
    """A loaded model + processor that generates batches of prompt jobs (module docstring)."""

    def __init__(self, model: Any, processor: Any, *, model_path: str, weight_version: str = "default",
                 block_vision_tokens: bool = True, dtype: str = "float32", attn_implementation: str = "sdpa",
                 cache_dir: str | None = None) -> None:
        from videop2r.model import vision_token_ids

        self.model = model
        shared_prefix.install(model)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.model_path = str(model_path)
        self.weight_version = weight_version
        self.dtype = dtype
        self.attn_implementation = attn_implementation
        self.cache_dir = cache_dir
        self.vocab_size = int(model.config.text_config.vocab_size)
        self.blocked_ids = vision_token_ids(self.tokenizer) if block_vision_tokens else []
        self.eos_ids = self._eos_ids()
        # time.monotonic() of the last prefill or decode step: liveness while a long batch runs
        self.heartbeat = time.monotonic()

    @classmethod
    def load(cls, path: str, *, dtype: str = "float32", device: str | None = None, attn_implementation: str = "sdpa",
             weight_version: str = "default", block_vision_tokens: bool = True,
             storage_config: Any = None, cache_dir: str | None = None) -> "GenerationEngine":
        from videop2r.model import load_model, load_processor

        model = load_model(path, dtype=dtype, device=device, attn_implementation=attn_implementation,
                           storage_config=storage_config, cache_dir=cache_dir)
        processor = load_processor(path, storage_config=storage_config, cache_dir=cache_dir)
        return cls(model, processor, model_path=path, weight_version=weight_version,
                   block_vision_tokens=block_vision_tokens, dtype=dtype, attn_implementation=attn_implementation,
                   cache_dir=cache_dir)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for value in (configured, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(item) for item in value)
        return ids

    # -- checks

    def check_job(self, job: PromptJob) -> None:
        """Raise `InvalidJob` if `job` would fail a batch (`services.rollout.prompt_job.check_job`)."""
        prompt_job.check_job(job, self.vocab_size)

    # -- weights

    def reload(self, path: str, weight_version: str | None, storage_config: Any = None) -> str:
        """Load new weights from `path` (dir or s3:// URI); the old ones stay on any failure.

        Everything is checked before anything is swapped: the path and `weight_version` (valid
        UTF-8, at most MAX_WEIGHT_VERSION_CHARS) before loading, the architecture after; then
        model, path and version change together."""
        from videop2r.model import load_model

        prompt_job.check_encodable("model_path", path)
        if weight_version is not None:
            prompt_job.check_weight_version(weight_version)

        new = load_model(path, dtype=self.dtype, device=str(self.device), attn_implementation=self.attn_implementation,
                         storage_config=storage_config, cache_dir=self.cache_dir)
        old_text, new_text = self.model.config.text_config, new.config.text_config
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads"):
            if getattr(old_text, name) != getattr(new_text, name):
                raise ValueError(f"{path}: {name} {getattr(new_text, name)} differs from the served model's "
                                 f"{getattr(old_text, name)}; start a new server for another architecture")
        shared_prefix.install(new)
        self.model = new
        self.model_path = str(path)
        if weight_version is not None:
            self.weight_version = weight_version
        return f"Succeeded to update model weights from {path}."

    # -- generation

    @torch.inference_mode()
    def generate(self, jobs: list[PromptJob], *, encode_once: bool = True) -> list[JobResult]:
        """Run `jobs` to completion; one ``JobResult`` per job, ``sampling.n`` samples each."""
        if not jobs:
            return []
        rows: list[_Row] = []
        caches: list[tuple[Any, int]] = []
        logits: list[torch.Tensor] = []
        results: list[JobResult] = []
        for index, job in enumerate(jobs):
            copies = job.sampling.n
            cache, last_logits, length, next_position, input_logprobs = self._prefill(job, copies, encode_once)
            results.append(JobResult([], length, self.weight_version, input_logprobs))
            rule = StopRule.build(self.tokenizer, job.sampling.max_new_tokens, self.eos_ids,
                                  set(job.sampling.stop_token_ids), job.sampling.stop, job.sampling.ignore_eos)
            for number in range(copies):
                rows.append(_Row(index, rule, job.sampling.min_new_tokens, next_position, number))
            caches.append((cache, length))
            logits.append(last_logits)
        self._decode(jobs, rows, caches, torch.cat(logits), shared=encode_once)
        for row in rows:
            sampling = jobs[row.job].sampling
            row.sample.text = final_text(self.tokenizer, row.sample, sampling.skip_special_tokens, sampling.no_stop_trim)
            results[row.job].samples.append(row.sample)
        return results

    def _rope(self, inputs: dict[str, Any]) -> tuple[torch.Tensor, int]:
        """M-RoPE positions (3, 1, L) of a prompt and the position of the first generated token."""
        input_ids = inputs["input_ids"]
        length = input_ids.shape[1]
        if inputs.get("video_grid_thw") is None and inputs.get("image_grid_thw") is None:
            positions = torch.arange(length, device=input_ids.device).view(1, 1, -1).expand(3, 1, -1)
            return positions, length
        positions, deltas = self.model.model.get_rope_index(
            input_ids,
            inputs["mm_token_type_ids"],
            image_grid_thw=inputs.get("image_grid_thw"),
            video_grid_thw=inputs.get("video_grid_thw"),
            second_per_grid_ts=inputs.get("second_per_grid_ts"),
            attention_mask=inputs.get("attention_mask"),
        )
        return positions, length + int(deltas[0, 0])

    def _prefill(self, job: PromptJob, copies: int, encode_once: bool):
        """Run the prompt; returns (cache of `copies` rows, last logits (copies, V), L, next position,
        input log-probs or None)."""
        device = self.device
        inputs = {key: (value.to(device) if torch.is_tensor(value) else value) for key, value in job.inputs.items()}
        positions, next_position = self._rope(inputs)
        batch = 1 if encode_once else copies
        feed = {
            "input_ids": inputs["input_ids"].repeat(batch, 1),
            "attention_mask": inputs["attention_mask"].repeat(batch, 1),
            "position_ids": positions.repeat(1, batch, 1),
        }
        for key in _VISUAL_KEYS:
            value = inputs.get(key)
            if value is not None:
                feed[key] = torch.cat([value] * batch) if batch > 1 else value
        want_prompt_logprobs = job.input_logprob_start >= 0
        out = self.model(**feed, use_cache=True, logits_to_keep=0 if want_prompt_logprobs else 1)
        self.heartbeat = time.monotonic()
        cache = out.past_key_values  # batch 1 when encoded once: its rows share it while decoding
        last = out.logits[:, -1, :].float()
        if encode_once and copies > 1:
            last = last.repeat(copies, 1)
        input_logprobs = None
        if want_prompt_logprobs:
            input_logprobs = self._prompt_logprobs(out.logits[0].float(), inputs["input_ids"][0], job.input_logprob_start)
        return cache, last, inputs["input_ids"].shape[1], next_position, input_logprobs

    @staticmethod
    def _prompt_logprobs(logits: torch.Tensor, ids: torch.Tensor, start: int) -> list[tuple[float | None, int]]:
        scores = torch.log_softmax(logits[:-1], dim=-1).gather(1, ids[1:, None])[:, 0].tolist()
        values: list[float | None] = [None, *scores]
        return [(values[position], int(ids[position])) for position in range(min(start, len(values)), len(values))]

    def _merge(self, caches: list[tuple[Any, int]], rows_per_cache: list[int], room: int) -> tuple[Any, torch.Tensor]:
        """One cache for all rows, left-padded to the longest prompt, with space for `room` more
        positions (appends in place, ``services.rollout.kv_cache``), and its mask (B, L_max)."""
        longest = max(length for _, length in caches)
        device = self.device
        masks = []
        for (_, length), count in zip(caches, rows_per_cache):
            mask = torch.zeros(count, longest, dtype=torch.long, device=device)
            mask[:, longest - length:] = 1
            masks.append(mask)
        layers = []
        for layer_index in range(len(caches[0][0].layers)):
            keys, values = [], []
            for cache, length in caches:
                layer = cache.layers[layer_index]
                keys.append(F.pad(layer.keys, (0, 0, longest - length, 0)))
                values.append(F.pad(layer.values, (0, 0, longest - length, 0)))
            layers.append((torch.cat(keys) if len(keys) > 1 else keys[0],
                           torch.cat(values) if len(values) > 1 else values[0]))
        return preallocated(layers, longest + room), torch.cat(masks)

    def _static_bias(self, jobs: list[PromptJob], rows: list[_Row]) -> torch.Tensor | None:
        """(B, V) additive bias: vision tokens masked, per-request logit_bias."""
        if not self.blocked_ids and not any(job.sampling.logit_bias for job in jobs):
            return None
        bias = torch.zeros(len(rows), self.vocab_size, device=self.device)
        if self.blocked_ids:
            bias[:, self.blocked_ids] = float("-inf")
        for index, row in enumerate(rows):
            for token, value in jobs[row.job].sampling.logit_bias.items():
                bias[index, token] += value
        return bias

    def _groups(self, jobs: list[PromptJob], rows: list[_Row], generators: dict[Any, torch.Generator | None]):
        by_key: dict[Any, list[int]] = {}
        for index, row in enumerate(rows):
            key = (row.job, row.number) if (row.job, row.number) in generators else row.job
            by_key.setdefault(key, []).append(index)
        return [
            (torch.tensor(indices, device=self.device), jobs[key[0] if isinstance(key, tuple) else key].sampling.row,
             generators[key])
            for key, indices in by_key.items()
        ]

    def _decode(self, jobs: list[PromptJob], rows: list[_Row], caches: list[tuple[Any, int]],
                logits: torch.Tensor, shared: bool) -> None:
        counts = [job.sampling.n for job in jobs]
        room = max(job.sampling.max_new_tokens for job in jobs) + 1
        if shared:  # one prefix per prompt, read once per step for all its rows; no padding, no mask
            cache, mask = shared_prefix.shared_prefix_cache([cache for cache, _ in caches], counts, room), None
        else:
            cache, mask = self._merge(caches, counts, room)
        generators = self._generators(jobs)
        live = [row for row in rows if row.rule.max_new_tokens > 0]
        for row in rows:
            if row.rule.max_new_tokens == 0:
                row.sample.finish_reason = {"type": "length", "length": 0}
        if len(live) < len(rows):
            keep = torch.tensor([i for i, row in enumerate(rows) if row.rule.max_new_tokens > 0], device=self.device)
            if not live:
                return
            cache.batch_select_indices(keep)
            mask = None if mask is None else mask[keep]
            logits = logits[keep]
        bias = self._static_bias(jobs, live)
        while live:
            step_logits = logits if bias is None else logits + bias
            step_logits = self._mask_early_stop(step_logits, live)
            tokens, logprobs = sample_next(step_logits, self._groups(jobs, live, generators))
            keep_indices = []
            for index, row in enumerate(live):
                row.sample.output_ids.append(int(tokens[index]))
                row.sample.logprobs.append(float(logprobs[index]))
                reason = row.rule.check(row.sample.output_ids, self.tokenizer)
                if reason is None:
                    keep_indices.append(index)
                else:
                    row.sample.finish_reason = reason
            if not keep_indices:
                break
            if len(keep_indices) < len(live):
                keep = torch.tensor(keep_indices, device=self.device)
                cache.batch_select_indices(keep)
                tokens = tokens[keep]
                mask = None if mask is None else mask[keep]
                bias = None if bias is None else bias[keep]
                live = [live[index] for index in keep_indices]
            positions = torch.tensor([row.position for row in live], device=self.device).view(1, -1, 1).expand(3, -1, -1)
            if mask is not None:
                mask = torch.cat([mask, torch.ones(len(live), 1, dtype=mask.dtype, device=self.device)], dim=1)
            with shared_prefix.decoding(cache) if shared else contextlib.nullcontext():
                out = self.model(input_ids=tokens[:, None], attention_mask=mask, position_ids=positions,
                                 past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[:, -1, :].float()
            self.heartbeat = time.monotonic()
            for row in live:
                row.position += 1

    def _generators(self, jobs: list[PromptJob]) -> dict[Any, torch.Generator | None]:
        """Sampling streams: job index -> its request seed's; (job, sample) -> a per-sample seed's."""
        generators: dict[Any, torch.Generator | None] = {}
        for index, job in enumerate(jobs):
            for number, seed in enumerate(job.sampling.row_seeds or []):
                # per-sample seeds: each sample its own stream, whatever shares its batch
                generators[(index, number)] = (None if seed is None else
                                               torch.Generator(device=self.device).manual_seed(seed))
            seed = job.sampling.sampling_seed
            generators[index] = None if seed is None else torch.Generator(device=self.device).manual_seed(seed)
        return generators

    def _mask_early_stop(self, logits: torch.Tensor, live: list[_Row]) -> torch.Tensor:
        """EOS/stop tokens masked for rows below their min_new_tokens."""
        early = [(index, row) for index, row in enumerate(live) if len(row.sample.output_ids) < row.min_new_tokens]
        if not early:
            return logits
        logits = logits.clone()
        for index, row in early:
            blocked = list(row.rule.blocked_until_min())
            if blocked:
                logits[index, blocked] = float("-inf")
        return logits
