# Sourced by the GPU scripts of tools/analysis after `cd` to the repository root, with OUT set:
# the repository on PYTHONPATH, the wheels of .whl/ (the stack a bare GPU machine lacks:
# mmengine, mmpretrain, mmcv built with MMCV_WITH_OPS=0, jieba, cn-clip, ...) installed into
# /tmp/site, and the GPU's name and memory in OUT/gpu.txt.
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
