#!/usr/bin/env bash
# The GPU checks of a session, in one device call (project root, after `source .device/setup.sh` and with the
# dev node_modules unpacked): the GPU test suite (the CPU suite's kernel, model, sampling and metric tests on
# DD2_DEFAULT_DEVICE=cuda), InceptionV3 against PyTorch, and the numpy interop checks. Logs go to $OUT.
set -uo pipefail
out=${OUT:-out}; mkdir -p "$out"
tap() { node node_modules/tap/dist/esm/run.mjs --disable-coverage "$@"; }
summ() { grep -E "^# (pass|fail|skip|todo)|^# \{ total|# Subtest|not ok" "$1" | grep -vE "^\s+ok" | tail -40; }

DD2_DEFAULT_DEVICE=cuda tap --reporter=tap --timeout 900 test/gpu test/kernels test/nn test/memory test/models test/sample \
  test/metrics/inception.test.ts > "$out/gpu-tests.tap" 2>&1
echo "gpu suite exit $?"; grep -cE "^\s*ok " "$out/gpu-tests.tap" | sed 's/^/ok lines: /'
grep -E "^\s*not ok" "$out/gpu-tests.tap" | head -20
tail -5 "$out/gpu-tests.tap"

python3 bench/torch/inception_ref.py --out /tmp/incv3 > "$out/inception-ref.log" 2>&1 && \
  node dist/bench/inception-check.js --ref /tmp/incv3 --device cuda 2>&1 | tee "$out/inception-check.log" | tail -8
DD2_PYTHON=python3 tap --reporter=tap test/metrics/stats-io.test.ts test/io/npz.test.ts > "$out/numpy-interop.tap" 2>&1
echo "numpy interop exit $?"; grep -E "python|numpy" "$out/numpy-interop.tap" | head -8; tail -4 "$out/numpy-interop.tap"
