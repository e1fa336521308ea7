#!/usr/bin/env bash
# The GPU figures of docs/benchmark.md, in one run of under 8 minutes on one H100/H200:
# benchmark_pretrain.py for ViT-B/16 at batch 256 in bf16 with WSCL, momentum towers and a
# 65,536-entry queue (with and without --compile, with gradient checkpointing, with FLIP
# mask_ratio=0.5), RN50, each against Chinese-CLIP's own model; JSON files and a log in OUT.
#
#   bash tools/analysis/gpu_benchmark.sh [OUT]        # OUT defaults to $OUT, else work_dirs/gpu_benchmark
#
# On a machine without the stack (mmengine, mmpretrain, mmcv, jieba, cn-clip, ...), put their
# wheels in .whl/ first: they are installed into /tmp/site (mmcv built with MMCV_WITH_OPS=0 is
# pure Python and enough for pre-training).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-${OUT:-work_dirs/gpu_benchmark}}
source tools/analysis/gpu_env.sh

run() {  # NAME TIMEOUT ARGS...: one benchmark, its JSON in OUT/NAME.json
    local name=$1 limit=$2
    shift 2
    echo "=== $name: $*" | tee -a "$OUT/log.txt"
    timeout "$limit" python3 tools/analysis/benchmark_pretrain.py "$@" --device cuda \
        --out "$OUT/$name.json" 2>&1 | grep -v 'is skipped since its requires_grad' \
        | tee -a "$OUT/log.txt"
}

VITB=configs/vilref/pretrain_vitb.py
COMMON=(--batch-size 256 --amp --steps 10 --warmup 3)
run vitb16_bf16 90 $VITB "${COMMON[@]}" --reference --sync-debug
run vitb16_bf16_compile 180 $VITB "${COMMON[@]}" --reference --compile --no-breakdown
run vitb16_bf16_with_cp 75 $VITB "${COMMON[@]}" --no-breakdown \
    --cfg-options model.image_encoder.with_cp=True model.text_encoder.with_cp=True
run vitb16_bf16_flip50 75 $VITB "${COMMON[@]}" --no-breakdown \
    --cfg-options model.image_encoder.mask_ratio=0.5
run rn50_bf16 90 configs/vilref/pretrain_rn50.py "${COMMON[@]}" --reference --no-breakdown
echo "figures in $OUT"
