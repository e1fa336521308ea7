#!/usr/bin/env bash
# The GPU checks of the larger towers and of FSDP (docs/pretrain.md) on one H100/H200,
# bounded by its timeouts at under 9 minutes (not yet run on a GPU; its FSDP part ran on
# CPU); JSON files and a log in OUT.
#
#   bash tools/analysis/gpu_strategies.sh [OUT]     # OUT defaults to $OUT, else work_dirs/gpu_strategies
#
# 1. Allocator peaks of one training process (benchmark_pretrain.py: WSCL, momentum towers,
#    65,536-entry queue, bf16 autocast) for ViT-B/16, ViT-L/14 and ViT-H/14 at batch 32, with
#    the recipes' gradient checkpointing: the memory table's N = 1 figures, measured.
# 2. ViLReFFSDPStrategy (FSDP2) on CUDA with NCCL and bf16 autocast (--amp), FULL_SHARD and
#    SHARD_GRAD_OP, one rank (one GPU): the demo config trains 6 iterations, checkpoints at 3
#    and resumes from it; the logged losses of the resumed iterations must equal the
#    uninterrupted run's (printed as a table, compared by the caller).
#
# Wheels of the missing stack in .whl/ are installed into /tmp/site first (gpu_env.sh).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-${OUT:-work_dirs/gpu_strategies}}
source tools/analysis/gpu_env.sh

peak() {  # NAME TIMEOUT CONFIG ARGS...
    local name=$1 limit=$2 config=$3
    shift 3
    echo "=== $name: $config $*" | tee -a "$OUT/log.txt"
    timeout "$limit" python3 tools/analysis/benchmark_pretrain.py "$config" --device cuda \
        --batch-size 32 --amp --steps 4 --warmup 2 --no-breakdown --out "$OUT/$name.json" \
        "$@" 2>&1 | grep -v 'is skipped since its requires_grad' | tee -a "$OUT/log.txt"
}
peak vitb16_b32 60 configs/vilref/vilref_vit-b16_8xb32-20e_fundus-reports-224px.py
peak vitl14_b32 90 configs/vilref/vilref_vit-l14_8xb32-20e_fundus-reports-224px.py
peak vith14_b32 120 configs/vilref/vilref_vit-h14_8xb32-20e_fundus-reports-224px.py

DATA="$OUT/synthetic"
python3 tools/data/make_synthetic_fundus.py "$DATA" --num-train 256 --num-val 0 --num-test 0 \
    --size 112 --no-progress >/dev/null || exit 1
for sharding in FULL_SHARD SHARD_GRAD_OP; do
    config="$OUT/demo_fsdp_$sharding.py"
    cat > "$config" <<PY
_base_ = ['$PWD/configs/vilref/vilref_vit-tiny-p16_1xb32-450it_synthetic-112px.py',
          '$PWD/configs/_base_/strategies/fsdp.py']
runner_type = 'ViLReFFlexibleRunner'
strategy = dict(sharding_strategy='$sharding')
PY
    options=(train_dataloader.dataset.data_root="$DATA/" train_cfg.max_iters=6
             default_hooks.logger.interval=1 log_processor.window_size=1
             default_hooks.checkpoint.interval=3 default_hooks.checkpoint.max_keep_ckpts=-1)
    for run in full resumed; do
        work="$OUT/fsdp_${sharding}_$run"
        extra=()
        if [ "$run" = resumed ]; then
            mkdir -p "$work" && cp "$OUT/fsdp_${sharding}_full/iter_3.pth" "$work/"
            extra=(--resume "$work/iter_3.pth")
        fi
        echo "=== FSDP $sharding $run" | tee -a "$OUT/log.txt"
        timeout 60 torchrun --nproc-per-node 1 --master-port 29611 tools/train.py "$config" \
            --launcher pytorch --amp --work-dir "$work" --no-validate "${extra[@]}" \
            --cfg-options "${options[@]}" 2>&1 | tail -n 5 | tee -a "$OUT/log.txt"
    done
    python3 - "$OUT" "$sharding" <<'PY' | tee -a "$OUT/log.txt"
import json, pathlib, sys
out, sharding = pathlib.Path(sys.argv[1]), sys.argv[2]
def losses(run):
    files = sorted((out / f'fsdp_{sharding}_{run}').glob('*/vis_data/scalars.json'))
    return {r['iter']: r['loss'] for r in map(json.loads, files[-1].read_text().splitlines())
            if 'loss' in r} if files else {}
full, resumed = losses('full'), losses('resumed')
print(f'FSDP {sharding}: iter, uninterrupted loss, resumed loss')
for it in sorted(full):
    print(it, full[it], resumed.get(it))
PY
done
echo "figures in $OUT"
