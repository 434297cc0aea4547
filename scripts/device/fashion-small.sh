#!/usr/bin/env bash
# Fashion-MNIST on the GPU machine with the `small` configuration: tokenizer -> token caches -> teacher
# -> samples. Run from the project root after `source .device/setup.sh`; writes runs/fashion-small/ and a
# summary under $OUT (or ./out). Usage: scripts/device/fashion-small.sh [tokenizer-steps] [teacher-steps]
set -euo pipefail
out=${OUT:-out}; mkdir -p "$out"
R=runs/fashion-small
TOK_STEPS=${1:-3000}; AR_STEPS=${2:-6000}
dd2() { node bin/dd2.js "$@"; }
t0=$(date +%s)
dd2 train tokenizer --dataset fashion-mnist --device cuda --channels 32 --steps "$TOK_STEPS" --batch-size 128 \
  --warmup 100 --ckpt-every 1000 --out $R/tokenizer --json > "$out/tokenizer.json"
t1=$(date +%s)
for s in train test; do
  dd2 encode --tokenizer $R/tokenizer/vq.safetensors --dataset fashion-mnist --split $s --device cuda \
    --out $R/tokens/fashion-mnist-$s.safetensors --json > "$out/encode-$s.json"
done
t2=$(date +%s)
dd2 train ar --tokens $R/tokens/fashion-mnist-train.safetensors --size small --device cuda --steps "$AR_STEPS" \
  --batch-size 256 --lr 0.002 --warmup 300 --ckpt-every 2000 --out $R/ar --json > "$out/ar.json"
t3=$(date +%s)
for c in 0 3 7; do
  dd2 sample --model $R/ar/gpt.safetensors --class $c --cfg 2.0 --n 16 --seed 0 --device cuda \
    --out "$out/samples-class$c" --json > "$out/sample-class$c.json"
done
dd2 sample --model $R/ar/gpt.safetensors --cfg 2.0 --n 100 --nrow 10 --seed 1 --device cuda --out "$out/samples-all" --json \
  > "$out/sample-all.json"
t4=$(date +%s)
echo "{\"tokenizer_s\": $((t1-t0)), \"encode_s\": $((t2-t1)), \"ar_s\": $((t3-t2)), \"sample_s\": $((t4-t3))}" > "$out/times.json"
cat "$out/times.json"
