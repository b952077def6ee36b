"""Rollout throughput: G samples per prompt with the prompt encoded once vs the naive repeat.

The embedded rollout engine (``services.rollout.engine``) generates G = 8 samples of each video
prompt two ways, with the same model, prompts, sampling and lengths (``ignore_eos``, so every
sample has exactly ``--new-tokens`` tokens):

- **encode once**: vision tower + prompt prefill run once per prompt, the KV cache is repeated G
  times, then one decode batch (``encode_once=True``, what the server does);
- **naive**: the prompt (and its video) repeated G times before prefill, as TRL's GRPO does
  (``encode_once=False``);
- for reference, transformers' ``generate(num_return_sequences=G)``, which also expands the
  inputs before prefill.

Prefill time is measured as a run with ``max_new_tokens=0``. Times are medians of interleaved runs,
as wall time and as this process's CPU time (the robust figure on a shared machine).
Video: the paper's training setting, 16 frames at 128·28·28 pixels (308×308) → 968 video tokens.

    python bench/rollout_throughput.py [--model DIR] [--new-tokens 64 128] [--prompts 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch


def synthetic_clip(frames: int, side: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clip = np.full((frames, side, side, 3), 128, dtype=np.uint8)
    colour = rng.integers(0, 256, 3)
    for index in range(frames):
        left = 10 + index * (side - 80) // frames
        clip[index, side // 3: side // 3 + 60, left:left + 60] = colour
    return clip


def interleaved(calls: dict[str, object], repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall seconds, CPU seconds of this process) of each call. The calls alternate so
    that they share the machine's load; CPU time is the robust figure on a shared, busy CPU
    (with one torch thread it is the time the work itself took, whatever else was running)."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
            for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="checkpoint dir (default: a fresh tiny model)")
    parser.add_argument("--group", type=int, default=8, help="G, samples per prompt")
    parser.add_argument("--prompts", type=int, default=2, help="prompts per batch")
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--side", type=int, default=308, help="frame side in pixels (multiple of 28)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-hf", action="store_true", help="skip the transformers generate() reference row")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from services.rollout.engine import GenerationEngine
    from services.rollout.prompt_job import PromptJob, SamplingOptions
    from videop2r import prompting
    from videop2r.model import init_model

    model_dir = args.model or str(init_model("tiny", tempfile.mkdtemp(prefix="bench-rollout-") + "/tiny"))
    engine = GenerationEngine.load(model_dir, device="cpu")
    question = {"problem": "Which direction does the square move?", "options": ["left", "right", "up", "down"],
                "problem_type": "multiple choice", "data_type": "video"}
    inputs = [prompting.build_inputs(engine.processor, question, synthetic_clip(args.frames, args.side, seed), fps=2.0)
              for seed in range(args.prompts)]
    prompt_tokens = inputs[0]["input_ids"].shape[1]
    video_tokens = int((inputs[0]["input_ids"] == engine.processor.video_token_id).sum())
    print(f"model {model_dir} ({sum(p.numel() for p in engine.model.parameters()) / 1e6:.2f} M params), "
          f"torch threads {args.threads}")
    print(f"{args.prompts} prompts x G={args.group}; prompt {prompt_tokens} tokens ({video_tokens} video tokens, "
          f"{args.frames} frames {args.side}x{args.side}); median of {args.repeats}")
    print()
    header = (f"{'new tokens':>10}  {'path':<28} {'prefill cpu s':>13} {'total cpu s':>11} {'tokens/cpu-s':>12}"
              f" {'total wall s':>12} {'tokens/s':>9}")
    print(header)
    print("-" * len(header))

    def jobs(new_tokens: int) -> list:
        return [PromptJob(item, SamplingOptions(max_new_tokens=new_tokens, n=args.group, temperature=1.0,
                                                ignore_eos=True, sampling_seed=index))
                for index, item in enumerate(inputs)]

    ratios = []
    for new_tokens in args.new_tokens:
        generated = args.prompts * args.group * new_tokens
        paths = {"encode once (server)": True, "naive: prompt repeated G": False}
        for once in paths.values():
            engine.generate(jobs(2), encode_once=once)  # warm-up
        calls = {}
        for label, once in paths.items():
            calls[f"{label} prefill"] = lambda once=once: engine.generate(jobs(0), encode_once=once)
            calls[label] = lambda once=once: engine.generate(jobs(new_tokens), encode_once=once)
        if not args.skip_hf:
            def hf() -> None:
                with torch.inference_mode():
                    for item in inputs:
                        engine.model.generate(**item, do_sample=True, num_return_sequences=args.group,
                                              max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                              pad_token_id=engine.tokenizer.pad_token_id)
            calls["HF generate(num_return_seq)"] = hf
        medians = interleaved(calls, args.repeats)

        def row(label: str, prefill: str, wall: float, cpu: float) -> None:
            print(f"{new_tokens:>10}  {label:<28} {prefill:>13} {cpu:>11.2f} {generated / cpu:>12.1f}"
                  f" {wall:>12.2f} {generated / wall:>9.1f}")

        for label in paths:
            row(label, f"{medians[f'{label} prefill'][1]:.2f}", *medians[label])
        if not args.skip_hf:
            row("HF generate(num_return_seq)", "", *medians["HF generate(num_return_seq)"])
        naive, once = medians["naive: prompt repeated G"], medians["encode once (server)"]
        ratio_cpu, ratio_wall = naive[1] / once[1], naive[0] / once[0]
        ratios.append(ratio_cpu)
        print(f"{'':>10}  ratio encode-once / naive: {ratio_cpu:.2f}x by CPU time, {ratio_wall:.2f}x by wall time")
    print()
    print("ratios (CPU time):", ", ".join(f"{n} tokens: {r:.2f}x" for n, r in zip(args.new_tokens, ratios)))


if __name__ == "__main__":
    main()
