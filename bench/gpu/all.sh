#!/usr/bin/env bash
# One device call, every GPU table of issue 19 (parts 2 and 3): source bench/gpu/device_env.sh first.
# Each step has its own time limit so that a failing one leaves the others' results under $OUT.
set -u
mkdir -p "$OUT/serving" "$OUT/e2e" "$OUT/direct"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
OUT=$OUT/serving SERVING_SECONDS=${SERVING_SECONDS:-5} BENCH_PARTS=triton timeout "${SERVING_LIMIT:-270}" \
  python3 bench/gpu/serving.py 2>&1 | grep -v -i warning | tee "$OUT/serving.log" | grep -E "triton|part|Error"
OUT=$OUT/e2e BENCH_SECONDS=8 E2E_SECONDS=${E2E_SECONDS:-10} CPU_DECODER=opencv BENCH_PARTS=info,decode,e2e \
  DECODE_PLAN='raw_full_8x4=nvdec:8x4' \
  E2E_PLAN='nvdec_6x4=nvdec:6x4,shm_nvdec_6x4=nvdec:6x4,dev_nvdec_6x4=nvdec:6x4' \
  timeout "${E2E_LIMIT:-190}" python3 bench/gpu/nvdec.py .carry/inputs 2>&1 | grep -v -i warning \
  | tee "$OUT/e2e.log" | grep -E "frames/s|check|part|Error"
OUT=$OUT/direct BENCH_PARTS=direct timeout "${DIRECT_LIMIT:-100}" python3 bench/gpu/serving.py 2>&1 \
  | grep -v -i warning | tee "$OUT/direct.log" | grep -E "direct|part|Error"
