#!/usr/bin/env bash
# The stage-2 sweep behind the CSD defaults (2026-11-26, one H200, processes in parallel on one GPU): CSD
# trajectories from one stage-1 folder of the MNIST CPU teacher, 1200 updates of batch 16 each, the EMA
# generator evaluated every 200 updates (one-step domain FID, n = 1000). The figures in NOTES.md came from a
# stage-1 folder made with the earlier defaults (100 head + 300 full GTS steps of batch 16, 128-wide head).
# Project root, after `source .device/setup.sh`. Usage:
#   VQ=<tokenizer vq.safetensors> DD2_MNIST_DIR=<MNIST IDX folder> scripts/device/mnist-csd-sweep.sh <stage-1 folder>
set -u
P=${1:?stage-1 run folder (teacher-continuous + ar-diffusion)}; : "${VQ:?set VQ to the tokenizer}"
final=${OUT:-out}; out=$(mktemp -d); mkdir -p "$final"
trap 'tar -czf "$final/result.tgz" -C "$out" .' EXIT
export DD2_NUM_THREADS=2
sweep() { # name options-json
  timeout 480 node scripts/csd-trajectory.mjs "$P" runs/csd-sweep/$1 200 "$2" cuda > $out/$1.log 2> $out/$1.err
  node bin/dd2.js eval --model runs/csd-sweep/$1/gens/*.safetensors --tokenizer "$VQ" --n 1000 --no-speed --batch-size 500 \
    --device cuda > $out/$1.eval 2> $out/$1.eval.err
}
B='"steps":1200,"batchSize":16,"regWeight":0'
sweep k1     "{$B,\"guidanceSteps\":1,\"guidanceStepsAfter\":1,\"lrGen\":3e-4,\"lrGui\":6e-4,\"csdDraws\":1}" &
sweep k2     "{$B,\"guidanceSteps\":2,\"guidanceStepsAfter\":2,\"lrGen\":3e-4,\"lrGui\":6e-4,\"csdDraws\":1}" &
sweep k2m8   "{$B,\"guidanceSteps\":2,\"guidanceStepsAfter\":2,\"lrGen\":3e-4,\"lrGui\":6e-4,\"csdDraws\":8}" &
sweep k2m8g4 "{$B,\"guidanceSteps\":2,\"guidanceStepsAfter\":2,\"lrGen\":3e-4,\"lrGui\":1.2e-3,\"csdDraws\":8}" &
sweep k2m8dmd "{$B,\"guidanceSteps\":2,\"guidanceStepsAfter\":2,\"lrGen\":3e-4,\"lrGui\":1.2e-3,\"csdDraws\":8,\"detached\":true}" &
sweep lr1e3  "{$B,\"guidanceSteps\":2,\"guidanceStepsAfter\":2,\"lrGen\":1e-3,\"lrGui\":2e-3,\"csdDraws\":8}" &
wait
cd $out && for f in *.eval; do echo "== $f"; grep -E 'dd2-1step' $f; done
