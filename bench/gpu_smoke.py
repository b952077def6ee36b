"""One-GPU smoke test of the learner's actor code: torch + transformers only (no Ray, no verl, no network).

Builds a Qwen2.5-VL of ~1.5 B parameters (Qwen2.5-VL-3B's vision tower, a 1536 × 28 language
model; `--tiny` for a few-M model) with random weights, fp32 masters and bf16 compute (autocast, as
FSDP's mixed precision), activation checkpointing and the token budget, and runs through the
learner's own modules (`PolicyActor`, `ReferencePolicy`, the one-vision-call forward, token-budget
micro-batches): one SFT step (token NLL) and one PA-GRPO update (clipped surrogate per process +
k3 KL to a bf16 reference, seq-mean-process-mean). Prints step time, tokens/s, peak GPU memory
and the memory plan's estimate for the same shapes (`videop2r.learner.memory`, 1 worker).

    python bench/gpu_smoke.py                      # a CUDA machine, ~10 minutes at most
    python bench/gpu_smoke.py --device cpu --tiny  # the same code path on a laptop, in seconds

The repository root must be importable (run from it, or PYTHONPATH=.).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from videop2r.learner.actor import PolicyActor
from videop2r.learner.logprob import install_forward
from videop2r.learner.memory import GB, PlanInputs, model_shape, plan_memory
from videop2r.learner.reference import ReferencePolicy
from videop2r.learner.rows import Rows


def _policy_loss_module():
    # the PA-GRPO loss, loaded by path: the package's __init__ also registers estimators with verl
    spec = importlib.util.spec_from_file_location("videop2r_policy_loss", ROOT / "videop2r/algorithms/policy_loss.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_config(tiny: bool):
    from transformers import Qwen2_5_VLConfig

    if tiny:
        text = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                    num_key_value_heads=2, vocab_size=2048)
        vision = dict(depth=2, hidden_size=128, intermediate_size=256, num_heads=4, out_hidden_size=256)
        mrope = [8, 12, 12]
    else:
        text = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                    num_key_value_heads=2, vocab_size=151936)
        vision = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=1536)
        mrope = [16, 24, 24]
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope}
    return Qwen2_5_VLConfig(text_config={**text, "tie_word_embeddings": True}, vision_config=vision,
                            image_token_id=text["vocab_size"] - 3, video_token_id=text["vocab_size"] - 2,
                            vision_start_token_id=text["vocab_size"] - 4, vision_end_token_id=text["vocab_size"] - 5,
                            tie_word_embeddings=True)


def make_rows(config, rows: int, frames: int, side: int, prompt_text: int, response: int) -> Rows:
    """Video rows as the learner gets them: left-padded prompts with the video placeholders the grid
    needs, right-padded responses, random patches."""
    vision = config.vision_config
    grid = torch.tensor([[frames // vision.temporal_patch_size, side // vision.patch_size, side // vision.patch_size]])
    placeholders = int(grid.prod()) // vision.spatial_merge_size ** 2
    width = vision.in_channels * vision.temporal_patch_size * vision.patch_size ** 2
    generator = torch.Generator().manual_seed(0)
    vocab = config.text_config.vocab_size - 8  # never a vision special token
    prompts, responses, mm = [], [], []
    for _ in range(rows):
        prompts.append(torch.cat([torch.randint(0, vocab, (prompt_text,), generator=generator),
                                  torch.tensor([config.vision_start_token_id] + [config.video_token_id] * placeholders
                                               + [config.vision_end_token_id])]))
        responses.append(torch.randint(0, vocab, (response,), generator=generator))
        mm.append({"pixel_values_videos": torch.randn(int(grid.prod()), width, generator=generator),
                   "video_grid_thw": grid, "second_per_grid_ts": torch.tensor([1.0])})
    prompt = torch.stack(prompts)
    answer = torch.stack(responses)
    mask = torch.ones_like(answer)
    half = (torch.arange(response)[None] < response // 3).long().expand(rows, -1)
    return Rows({"input_ids": torch.cat([prompt, answer], 1), "attention_mask": torch.ones(rows, prompt.shape[1] +
                 response, dtype=torch.long), "responses": answer, "response_mask": mask,
                 "advantages": torch.linspace(-1, 1, rows)[:, None] * mask.float(),
                 "perception_mask": half.float(), "reasoning_mask": (mask - half).float()}, mm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a few-M-parameter model (a check of the code path)")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--side", type=int, default=0, help="frame side in pixels (default 308, tiny 56)")
    parser.add_argument("--response", type=int, default=0, help="response tokens per row (default 512, tiny 16)")
    parser.add_argument("--max-tokens", type=int, default=0, help="token budget per micro-batch (default 4 rows)")
    args = parser.parse_args()
    from transformers import Qwen2_5_VLForConditionalGeneration

    device = torch.device(args.device)
    side = args.side or (56 if args.tiny else 308)
    response = args.response or (16 if args.tiny else 512)
    frames = 4 if args.tiny else args.frames
    config = model_config(args.tiny)
    rows = make_rows(config, args.rows, frames, side, 32, response)
    row_tokens = rows.tensors["input_ids"].shape[1]
    budget = args.max_tokens or 4 * row_tokens
    torch.manual_seed(0)
    policy = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.float32,
                                                             attn_implementation="sdpa").to(device)
    policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    reference = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16,
                                                                attn_implementation="sdpa").to(device)
    reference.load_state_dict({k: v.to(torch.bfloat16) for k, v in policy.state_dict().items()})
    install_forward(policy)
    install_forward(reference)
    losses = _policy_loss_module()
    algorithm = SimpleNamespace(clip_ratio=0.2, kl_coef=0.04, kl_estimator="low_var_kl",
                                loss_agg_mode="seq-mean-process-mean")
    settings = SimpleNamespace(lr=1e-6, adam_betas=(0.9, 0.999), weight_decay=0.0, lr_schedule="constant",
                               warmup_steps=0, total_steps=10, min_lr_ratio=0.0, temperature=1.0,
                               micro_batch_size=args.rows, mini_batch_size=args.rows, ppo_epochs=1, grad_clip=1.0,
                               algorithm=algorithm, learner=SimpleNamespace(max_tokens_per_micro_batch=budget))

    def sft_loss(log_prob, response_mask, **_):
        nll = losses.aggregate(-log_prob, response_mask.to(log_prob.dtype), "seq-mean-token-mean")
        return nll, {"sft/nll": float(nll.detach())}

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    results = {}
    for name, loss_fn in (("sft", sft_loss), ("pa_grpo", losses.pa_grpo_policy_loss)):
        actor = PolicyActor(policy, settings, device, loss_fn=loss_fn)
        batch = Rows(dict(rows.tensors), rows.multi_modal)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        with autocast:
            if name == "pa_grpo":
                batch.tensors["ref_log_prob"] = ReferencePolicy(reference, settings, device).compute_ref_log_prob(
                    batch)["ref_log_prob"]
            metrics = actor.update_policy(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        peak = torch.cuda.max_memory_allocated() / GB if device.type == "cuda" else float("nan")
        if not math.isfinite(metrics.get("actor/loss", float("nan"))):
            raise SystemExit(f"{name}: the loss is not finite: {metrics}")
        results[name] = (seconds, peak, metrics)
        del actor
    shape = model_shape(config)
    tokens = min(budget // row_tokens, args.rows) * row_tokens
    plan = plan_memory(shape, PlanInputs(workers=1, gpus_per_node=1, device=device.type, compute_bytes=2,
                                         reference_bytes=2, checkpointing=True, tokens=tokens,
                                         response_tokens=tokens // row_tokens * response,
                                         vision_patches=tokens // row_tokens * int(rows.multi_modal[0]
                                                                                   ["video_grid_thw"].prod())))
    total_tokens = int(rows.tensors["attention_mask"].sum())
    print(f"model: {shape.params / 1e9:.2f} B parameters on {device}; {args.rows} rows × {row_tokens} tokens, "
          f"micro-batches of ≤ {budget} tokens, activation checkpointing on")
    for name, (seconds, peak, metrics) in results.items():
        print(f"{name}: step {seconds:.2f}s, {total_tokens / seconds:.0f} tokens/s, peak GPU {peak:.2f} GB, "
              f"loss {metrics['actor/loss']:.4f}, grad norm {metrics['actor/grad_norm']:.3f}")
    print("plan: " + ", ".join(f"{k} {v / GB:.2f}" for k, v in plan.per_gpu.items()))
    sft, grpo = results["sft"], results["pa_grpo"]
    print(f"sft_step_s={sft[0]:.2f} pa_grpo_step_s={grpo[0]:.2f} tokens_per_s={total_tokens / grpo[0]:.0f} "
          f"peak_gpu_gb={max(sft[1], grpo[1]):.2f} plan_estimate_gb={plan.peak_gpu / GB:.2f}")


if __name__ == "__main__":
    main()
