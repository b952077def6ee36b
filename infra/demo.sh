#!/usr/bin/env bash
# `make demo`: the whole method on one CPU laptop, no network, no cluster.
#
#   synthesize the video QA set → pack it into shards → init the tiny model → SFT → PA-GRPO
#   (embedded rollout server + reward-accuracy + reward-judge (evidence judge) as real local
#   processes) → held-out evaluation before/after each stage → runs/demo/report.md
#
# Environment: VIDEOP2R_DEMO_CONFIG (default configs/demo.yaml), VIDEOP2R_DEMO_DIR (default
# runs/demo; every path of the run is placed under it), DEMO_TRAIN_CLIPS / DEMO_EVAL_CLIPS,
# DEMO_QUESTIONS, DEMO_OVERRIDES (extra KEY=VALUE config overrides for both stages, e.g.
# "trainer.total_steps=60"), DEMO_KEEP_DATA=1 to reuse data and model from an earlier run.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${VIDEOP2R_BIN:-.venv/bin}
CONFIG=${VIDEOP2R_DEMO_CONFIG:-configs/demo.yaml}
RUN=${VIDEOP2R_DEMO_DIR:-runs/demo}
TRAIN_CLIPS=${DEMO_TRAIN_CLIPS:-400}
EVAL_CLIPS=${DEMO_EVAL_CLIPS:-150}
QUESTIONS=${DEMO_QUESTIONS:-colour}
read -r -a EXTRA <<< "${DEMO_OVERRIDES:-}"
# the run's paths, so that VIDEOP2R_DEMO_DIR moves all of them (the config names runs/demo)
PATHS=(data.train_uri="$RUN/shards/train" data.eval_uri="$RUN/shards/eval" reward.tokenizer="$RUN/model/init"
       trainer.output_dir="$RUN" storage.uri="$RUN/store" trainer.sft.output_path="$RUN/model/sft")
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false RAY_USAGE_STATS_ENABLED=0

started=$(date +%s)
stage() { printf '\n\033[1m== [%4ss] %s\033[0m\n' "$(( $(date +%s) - started ))" "$*"; }

if [[ "${DEMO_KEEP_DATA:-0}" != 1 || ! -f "$RUN/model/init/config.json" ]]; then
  rm -rf "$RUN"
  stage "synthesize ${TRAIN_CLIPS}+${EVAL_CLIPS} clips ($QUESTIONS)"
  "$BIN/videop2r" data synth --out "$RUN/data" --split "train=$TRAIN_CLIPS" --split "eval=$EVAL_CLIPS" \
    --questions "$QUESTIONS" --seed 0 --config "$CONFIG"
  for split in train eval; do
    stage "pack $split shards"
    "$BIN/videop2r" data pack --records "$RUN/data/$split.jsonl" --media-root "$RUN/data" \
      --out "$RUN/shards/$split" --config "$CONFIG"
  done
  stage "init the tiny model (offline tokenizer trained on the training records)"
  "$BIN/videop2r" model init --preset tiny --out "$RUN/model/init" --corpus "$RUN/data/train.jsonl" --config "$CONFIG"
else
  rm -rf "$RUN/store" "$RUN/model/sft" "$RUN"/*.jsonl "$RUN"/*.png "$RUN/report.md"
fi

stage "stage 1: SFT (evaluates the initial model first)"
"$BIN/videop2r" sft --config "$CONFIG" "${PATHS[@]}" model.path="$RUN/model/init" ${EXTRA[@]+"${EXTRA[@]}"}

stage "stage 2: PA-GRPO from the SFT model (π_ref = the SFT model)"
"$BIN/videop2r" train --config "$CONFIG" "${PATHS[@]}" model.path="$RUN/model/sft" ${EXTRA[@]+"${EXTRA[@]}"}

elapsed=$(( $(date +%s) - started ))
load=$(cut -d' ' -f3 /proc/loadavg 2>/dev/null || echo "?")
"$BIN/videop2r" report "$RUN" \
  --note "make demo wall time: ${elapsed}s on $(nproc) CPU cores, 15-min load average at the end ${load} ($(date -u +%Y-%m-%dT%H:%MZ))" \
  --note "task: ${QUESTIONS} questions about ${TRAIN_CLIPS} training / ${EVAL_CLIPS} held-out synthetic clips; config ${CONFIG}" \
  --note "the answer follows the observation (observation names the colour, think maps it to its letter), so a better observation gives a better answer; SFT stops early on purpose so that RL starts where sampled answers still differ" \
  >/dev/null
stage "done in ${elapsed}s — $RUN/report.md"
cat "$RUN/report.md"
