"""Host memory of the learner on N gloo workers: loading the policy and π_ref, and one PA-GRPO update.

Builds a Qwen2.5-VL of `--hidden` × `--layers` with random weights (a local tokenizer, the small
preset's vision tower), then starts N worker processes (torch.distributed, gloo) that run the
learner's own code — `load_sharded_model` (the worker's loader), `PolicyActor`, `ReferencePolicy`
— with the same settings a LearnerWorker gets. Each worker measures its RSS above its pre-load
baseline; the kernel's peak (VmHWM) is reset between phases (/proc/self/clear_refs) and freed
memory is handed back to the OS (malloc_trim) before each phase starts:

  load     the policy load alone (fp32 masters), summed over workers → load_peak_rss_gb_sum
  ref      the reference load afterwards (reference_dtype), summed, over its full size → ref_load_ratio
  step     reference log-probs + one update (no old-log-prob pass: one update per batch), the
           largest worker's peak above its pre-load baseline → step_peak_rss_gb_max

and the memory plan (`videop2r.learner.memory`, device cpu) of the same shapes → plan_estimate_gb.
The last line:

  load_peak_rss_gb_sum=<a> full_model_fp32_gb=<b> load_ratio=<a/b> ref_load_ratio=<r>
  step_peak_rss_gb_max=<c> plan_estimate_gb=<d>

With `--load rank0` (the default) load_ratio stays near 2 whatever N (one full copy on rank 0 plus
the shards); `--load every_rank` gives ≈ N. `--no-checkpointing` measures the update without
activation checkpointing. `--heap bounded` fixes glibc's mmap threshold at 1 MiB in the workers,
so freed buffers leave the RSS at once: the step peak is then the memory in use, the figure the
plan estimates. With glibc's default (as the learner runs; its dynamic threshold keeps the freed
activation and all-gather buffers in the heap) the RSS peak is ~1.8× that. The learner does not
fix the threshold: a CPU SFT step took 1.6× as long with it (every large tensor faulted in anew).

    .venv/bin/python bench/learner_memory.py --hidden 1024 --layers 12 --workers 4
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GB = 1024**3


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


class Peak:
    """Peak RSS of this process over a phase: the kernel's high-water mark, reset at the start
    (falls back to sampling every 5 ms where clear_refs is not allowed)."""

    def __enter__(self) -> Peak:
        from videop2r.learner.loading import release_memory

        release_memory()
        self.start = _rss()
        try:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")
            self.sampled = None
        except OSError:
            self.sampled, self._stop = self.start, threading.Event()
            threading.Thread(target=self._sample, daemon=True).start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.sampled = max(self.sampled, _rss())

    def __exit__(self, *exc: object) -> None:
        if self.sampled is None:
            self.peak = _hwm()
        else:
            self._stop.set()
            self.peak = max(self.sampled, _rss())


def build_checkpoint(out: Path, hidden: int, layers: int, vocab: int) -> Path:
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from videop2r.model.builder import build_processor
    from videop2r.model.corpus import tokenizer_corpus
    from videop2r.model.presets import build_config, get_preset
    from videop2r.model.tokenizer import train_tokenizer

    heads = hidden // 64
    spec = replace(get_preset("small"), name="bench", vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                   num_attention_heads=heads, num_key_value_heads=max(1, heads // 4),
                   intermediate_size=int(hidden * 2.75) // 64 * 64)
    tokenizer = train_tokenizer(tokenizer_corpus(None), vocab_size=spec.vocab_size)
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(build_config(spec, tokenizer)).float()
    model.save_pretrained(out)
    build_processor(tokenizer).save_pretrained(out)
    return out


def build_rows(model_dir: Path, rows: int, response: int, frames: int, side: int):
    import torch

    from videop2r.learner.batch import RolloutSample, build_batch
    from videop2r.learner.rows import Rows
    from videop2r.model import load_processor, vision_token_ids
    from videop2r.prompting import build_inputs

    processor = load_processor(model_dir)
    rng = np.random.default_rng(0)
    blocked = set(vision_token_ids(processor.tokenizer))
    vocab = np.array([t for t in range(len(processor.tokenizer)) if t not in blocked])
    question = {"problem": "What happens?", "options": ["a", "b"], "problem_type": "multiple choice",
                "data_type": "video"}
    samples = []
    for index in range(rows):
        video = build_inputs(processor, question, media=rng.integers(0, 256, (frames, side, side, 3), np.uint8),
                             fps=2.0)
        mm = {k: video[k] for k in ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")}
        samples.append(RolloutSample(video["input_ids"][0], rng.choice(vocab, response).tolist(), mm,
                                     uid=f"g{index // 2}"))
    batch = build_batch(samples, pad_token_id=int(processor.tokenizer.pad_token_id))
    rows_ = Rows.of(batch)
    mask = rows_.tensors["response_mask"]
    half = (torch.arange(mask.shape[1])[None] < mask.sum(-1, keepdim=True) // 2).long() * mask
    rows_.tensors.update(advantages=torch.linspace(-1, 1, len(rows_))[:, None] * mask,
                         perception_mask=half.float(), reasoning_mask=(mask - half).float())
    return rows_


def worker(rank: int, world: int, port: int, model_dir: str, rows, settings_json: str, out_dir: str) -> None:
    import torch
    import torch.distributed as dist

    from videop2r.learner.actor import PolicyActor
    from videop2r.learner.loading import load_sharded_model
    from videop2r.learner.reference import ReferencePolicy
    from videop2r.learner.settings import LearnerSettings
    from videop2r.learner.sharding import init_distributed

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    settings = LearnerSettings.model_validate_json(settings_json)
    if os.environ.get("BENCH_HEAP") == "bounded":  # freed memory leaves RSS at once: live memory
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD fixed at 1 MiB
    torch.set_num_threads(max(1, settings.learner.threads))
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    device = torch.device("cpu")
    mesh = init_distributed(device, 1800)
    reads = settings.learner.load == "every_rank" or rank == 0
    local = Path(model_dir) if reads else None
    baseline = _rss()
    learner = settings.learner
    with Peak() as load:
        policy = load_sharded_model(local, config, mesh, device, dtype=torch.float32, param_dtype=torch.float32,
                                    attn_implementation="sdpa", load=learner.load,
                                    gradient_checkpointing=learner.gradient_checkpointing)
    with Peak() as ref:
        reference = load_sharded_model(local, config, mesh, device, dtype=torch.bfloat16,
                                       param_dtype=torch.bfloat16, attn_implementation="sdpa", load=learner.load)
    actor = PolicyActor(policy, settings, device)
    ref_policy = ReferencePolicy(reference, settings, device)
    share = rows.select(list(range(rank, len(rows), world)))
    with Peak() as step:
        started = time.perf_counter()
        share.tensors["ref_log_prob"] = ref_policy.compute_ref_log_prob(share)["ref_log_prob"]
        metrics = actor.update_policy(share)
        seconds = time.perf_counter() - started
    result = {"rank": rank, "load": load.peak - load.start, "ref": ref.peak - ref.start,
              "step": step.peak - baseline, "seconds": seconds, "loss": metrics.get("actor/loss")}
    Path(out_dir, f"rank-{rank}.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--rows", type=int, default=0, help="rows of the batch (default 2 per worker)")
    parser.add_argument("--response", type=int, default=128, help="response tokens per row")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--side", type=int, default=112, help="frame side in pixels")
    parser.add_argument("--load", choices=("rank0", "every_rank"), default="rank0")
    parser.add_argument("--no-checkpointing", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--heap", choices=("default", "bounded"), default="default",
                        help="default: glibc as the learner runs it; bounded: mmap threshold fixed at 1 MiB, "
                             "so freed buffers leave RSS at once and the peak is the memory in use")
    args = parser.parse_args()
    os.environ["BENCH_HEAP"] = args.heap  # the spawned workers read it

    import torch.multiprocessing as mp

    from videop2r.config import AlgorithmConfig, LearnerConfig
    from videop2r.learner.memory import PlanInputs, model_shape, plan_memory
    from videop2r.learner.micro import micro_cost, row_shapes
    from videop2r.learner.settings import LearnerSettings

    rows_total = args.rows or 2 * args.workers
    with tempfile.TemporaryDirectory(prefix="videop2r-bench-mem-") as tmp:
        model_dir = build_checkpoint(Path(tmp) / "model", args.hidden, args.layers, args.vocab)
        rows = build_rows(model_dir, rows_total, args.response, args.frames, args.side)
        per_worker = -(-rows_total // args.workers)
        settings = LearnerSettings(
            model_path=str(model_dir), mini_batch_size=per_worker * args.workers, micro_batch_size=per_worker,
            lr=1e-5, algorithm=AlgorithmConfig(kl_coef=0.04),
            learner=LearnerConfig(device="cpu", threads=args.threads, load=args.load,
                                  gradient_checkpointing=not args.no_checkpointing))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        out_dir = Path(tmp) / "out"
        out_dir.mkdir()
        mp.spawn(worker, args=(args.workers, port, str(model_dir), rows, settings.model_dump_json(), str(out_dir)),
                 nprocs=args.workers, join=True)
        results = [json.loads((out_dir / f"rank-{r}.json").read_text()) for r in range(args.workers)]

        from transformers import AutoConfig

        shape = model_shape(AutoConfig.from_pretrained(model_dir, local_files_only=True))
    micro = [row_shapes(rows)[i] for i in range(0, rows_total, args.workers)][:per_worker]
    tokens = micro_cost(micro)
    response = per_worker * args.response
    patches = per_worker * int(rows.multi_modal[0]["video_grid_thw"].prod())
    plan = plan_memory(shape, PlanInputs(workers=args.workers, device="cpu", compute_bytes=4, reference_bytes=2,
                                         checkpointing=not args.no_checkpointing, tokens=tokens,
                                         response_tokens=response, vision_patches=patches))
    full = shape.params * 4
    load_sum = sum(r["load"] for r in results)
    ref_ratio = sum(r["ref"] for r in results) / (shape.params * 2)
    step_max = max(r["step"] for r in results)
    print(f"model: {shape.params / 1e6:.1f} M parameters (hidden {args.hidden}, {args.layers} layers), "
          f"{args.workers} gloo workers, load {args.load}, checkpointing {'off' if args.no_checkpointing else 'on'}, "
          f"heap {args.heap}")
    print(f"micro-batch per worker: {per_worker} rows, {tokens} tokens, {response} response tokens, "
          f"{patches} vision patches; update {max(r['seconds'] for r in results):.1f}s")
    for r in results:
        print(f"  rank {r['rank']}: load {r['load'] / GB:.3f} GB, ref {r['ref'] / GB:.3f} GB, "
              f"step peak {r['step'] / GB:.3f} GB")
    print("  plan (cpu): " + ", ".join(f"{k} {v / GB:.3f}" for k, v in plan.per_gpu.items()))
    print(f"load_peak_rss_gb_sum={load_sum / GB:.3f} full_model_fp32_gb={full / GB:.3f} "
          f"load_ratio={load_sum / full:.2f} ref_load_ratio={ref_ratio:.2f} "
          f"step_peak_rss_gb_max={step_max / GB:.3f} plan_estimate_gb={plan.peak_gpu / GB:.3f}")


if __name__ == "__main__":
    main()
