#!/usr/bin/env bash
# DD2 on Fashion-MNIST on the GPU machine, one call: tokenizer -> token caches -> `small` teacher -> dd2 distill
# (adapt, GTS, CSD) -> sample grids -> dd2 eval table (teacher, DD2 one-step, few-step, teacher-parallel and
# independent-marginals baselines; FID/IS/precision/recall/class accuracy/dPPL/latency/throughput).
# Project root, after `source .device/setup.sh`; DD2_FASHION_MNIST_DIR must point at the IDX files.
# Usage: scripts/device/fashion-distill.sh [csd-steps]   (outputs under runs/fashion-dd2 and $OUT)
# The BENCHMARKS row was measured with the paper's initialisation (no regression warm start), which the default
# DD2_DISTILL_EXTRA keeps; set it (e.g. to '--reg-steps 3000') for the warm-started recipe.
set -euo pipefail
final=${OUT:-out}; out=$(mktemp -d); mkdir -p "$final"
R=runs/fashion-dd2; CSD=${1:-1000}
# everything comes back as one archive (the device returns few files), logs included even on failure
trap 'mkdir -p "$out/logs"; for d in adapt gts csd; do cp $R/distill/$d/log.jsonl "$out/logs/$d.jsonl" 2>/dev/null; done;
      tar -czf "$final/result.tgz" -C "$out" .' EXIT
dd2() { node bin/dd2.js "$@"; }
stamp() { echo "$1 $(date +%s)" >> "$out/times.txt"; }
stamp start
[ -f $R/tokenizer/vq.safetensors ] || dd2 train tokenizer --dataset fashion-mnist --device cuda --channels 32 --steps 1500 \
  --batch-size 128 --warmup 100 --ckpt-every 1000 --out $R/tokenizer --json > "$out/tokenizer.json"
stamp tokenizer
for s in train test; do
  [ -f $R/tokens/fashion-mnist-$s.safetensors ] || dd2 encode --tokenizer $R/tokenizer/vq.safetensors --dataset fashion-mnist \
    --split $s --device cuda --out $R/tokens/fashion-mnist-$s.safetensors --json > "$out/encode-$s.json"
done
stamp encode
[ -f $R/teacher/gpt.safetensors ] || dd2 train ar --tokens $R/tokens/fashion-mnist-train.safetensors --size small --device cuda \
  --steps 3000 --batch-size 256 --lr 0.002 --warmup 300 --ckpt-every 2000 --out $R/teacher --json > "$out/teacher.json"
stamp teacher
dd2 distill $( [ -f $R/distill/run.json ] && echo --resume ) --teacher $R/teacher/gpt.safetensors --device cuda --head-width 256 --head-depth 3 --fit-steps 1500 \
  --adapt-steps 1000 --adapt-batch 256 --pool-size 20000 --pool-batch 1000 --gts-head-steps 500 --gts-steps 1500 --gts-batch 128 \
  --csd-steps "$CSD" --csd-batch 128 --csd-warmup 200 --lr-gen 1e-4 --lr-gui 2e-4 --csd-draws 1 ${DD2_DISTILL_EXTRA:---pool-flow-steps 0 --reg-steps 0 --csd-reg 0} \
  --out $R/distill --json > "$out/distill.json"
stamp distill
G=$R/distill/generator.safetensors
dd2 sample --model $R/teacher/gpt.safetensors --cfg 2.0 --n 100 --nrow 10 --seed 1 --device cuda --out "$out/grid-teacher" --json > /dev/null
dd2 sample --generator $G --n 100 --nrow 10 --seed 1 --device cuda --out "$out/grid-one-step" --json > /dev/null
dd2 sample --generator $G --few-step 4 --n 100 --nrow 10 --seed 1 --device cuda --out "$out/grid-few-step" --json > /dev/null
dd2 sample --baseline marginals --model $R/teacher/gpt.safetensors --marginals $R/distill/marginals.safetensors --n 100 --nrow 10 \
  --seed 1 --device cuda --out "$out/grid-marginals" --json > /dev/null
stamp samples
dd2 eval --model $R/teacher/gpt.safetensors --model $G --dataset fashion-mnist --n 5000 --ppl 1000 --batch-size 500 \
  --device cuda --out "$out/eval" | tee "$out/eval-table.txt"
stamp eval
rm -f "$out"/grid-*/samples.npz
cat "$out/times.txt"
