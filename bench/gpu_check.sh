#!/usr/bin/env bash
# The GPU measurements of issue "pruning at GPU speed" as one prepared call for a lent CUDA machine (15 minutes of
# device time per session: the steps are time-boxed to 520 s in all, plus the wheel install).
#
#   bash ../shared/gpu/prepare_wheels.sh        # here, once: the OpenMMLab wheels into .whl/ (git-ignored)
#   then the device tool: command "bash bench/gpu_check.sh", carry [".whl"], timeout_s 600
#
# Writes to $OUT (the device tool's result folder; ./bench_gpu_out elsewhere): nvidia-smi.txt, train_fp32.txt,
# train_fp16.txt, train_bf16.txt (bench_train.py: ms per train_step of stock / soft / frozen, syncs and operators per
# step; NTU ST-GCN and CTR-GCN, batch 32; soft masks with update_every 1 and 16)
# and export.txt / export_semi.txt (+ .json; bench_export.py: exported structured 0.9 / 0.95 and semi 0.9 after 20 training
# steps, batches 1 and 64, eager / torch.compile / onnxruntime).
# A step that fails or runs out of time leaves its log and the next one still runs.
set -uo pipefail
OUT=${OUT:-bench_gpu_out}
mkdir -p "$OUT"
if [ -d .whl ]; then  # the CUDA machine has torch but not the OpenMMLab stack, and no network
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl
  export PYTHONPATH=$PWD/.site:$PWD
fi
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
$PY -c "import torch, mmengine, mmaction; print(torch.__version__, torch.cuda.get_device_name())" >> "$OUT/nvidia-smi.txt" 2>&1
step() {  # step <seconds> <log> <command...>
  local t=$1 log=$2; shift 2
  echo "== $* (limit ${t}s)" | tee -a "$OUT/steps.txt"
  local t0=$SECONDS
  timeout "$t" "$@" > "$OUT/$log" 2>&1
  echo "   exit $? after $((SECONDS - t0)) s" | tee -a "$OUT/steps.txt"
}
step 100 train_fp32.txt $PY bench/bench_train.py --device cuda --batch 32 --reps 20 --warmup 3
step 50 train_fp32_n16.txt $PY bench/bench_train.py --device cuda --batch 32 --reps 16 --warmup 3 --models stgcn --update-every 16
step 80 train_fp16.txt $PY bench/bench_train.py --device cuda --amp fp16 --batch 32 --reps 20 --warmup 3
step 50 train_bf16.txt $PY bench/bench_train.py --device cuda --amp bf16 --batch 32 --reps 10 --warmup 3 --models stgcn
step 110 export.txt $PY bench/bench_export.py --device cuda --modes structured --rates 0.9 0.95 --reps 20 \
  --json "$OUT/export.json"
# semi after 20 SGD steps (its gates have moved; at init semi is the unstructured mask): the steps run on the CPU
step 130 export_semi.txt $PY bench/bench_export.py --device cuda --modes semi --rates 0.9 --reps 20 --train-iters 20 \
  --threads 8 --json "$OUT/export_semi.json"
cat "$OUT/steps.txt"
