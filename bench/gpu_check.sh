#!/usr/bin/env bash
# The GPU measurements of docs/speed.md as prepared, time-boxed calls for a CUDA machine (each phase has its own
# time limit; a few phases fit in a 10-minute call).
#
#   bash ../shared/gpu/prepare_wheels.sh        # here, once: the OpenMMLab wheels into .whl/ (git-ignored)
#   then the device tool: command "bash bench/gpu_check.sh PHASE", carry [".whl"], timeout_s <= 600
#
# PHASE train  (~4 min): bench_train.py, batch 32 clips of 2x100x25x3, NTU ST-GCN and CTR-GCN: fp32 with the
#                        rate budget; ST-GCN with the compute target (target_macs 0.4, update_every 1 and 16);
#                        fp16 and bf16 AMP.
#       export (~4 min): bench_export.py: exported structured 0.9 / 0.95, batches 1 and 64, eager / torch.compile
#                        (CUDA graphs) / onnxruntime's CUDA provider where present.
#       round8 (~1.5 min): as export, structured 0.9 only, channel widths in multiples of 8 (--round-to 8).
#       semi   (~2 min): bench_export.py: semi 0.9 after 20 SGD steps (run on the CPU), exported, on the GPU.
#       prof   (~1 min): bench_train.py --kernel-table 25: where the soft / frozen step's time goes (device-busy ms,
#                        costliest kernels, host time per operator), ST-GCN and CTR-GCN, fp32.
#       macs   (~1.5 min): the compute-target soft step only (target_macs 0.4, update_every 1 and 16), fp32.
#       ramp   (~2 min): the soft step in the warm-up ramp (--ramp: the rate moves at every step): with target_macs
#                        0.4 by the default search (secant: 1.37x stock on the CPU) and by the
#                        published one (--projection-search bisect: 2.33x on the CPU), and without target_macs; fp32.
#       profamp (~1 min): bench_train.py --amp fp16 --kernel-table 25: where the fp16 soft step's time goes.
#       amp    (~2 min): tools/train.py --amp on the demo (fp16, 10 epochs; bf16, 3 epochs), tools/test.py on each.
#       speed  (~3 min): train without update_every 16: fp32 ST-GCN and CTR-GCN, fp16 and bf16 ST-GCN, the compute
#                        target at update_every 1 (the training-step table of docs/speed.md, in one call).
#       cl8    (~2 min): as round8, channels-last memory format.
#       eager  (~1 min): the soft step with prune_cfg.cuda_graphs=False (--eager-search: the threshold search
#                        dispatched operator by operator, not one CUDA graph replay), fp32 and fp16, ST-GCN (each
#                        call times its own stock: compare with the speed phase's rows of the same call).
#       fp16x  (~2 min): as cl8 with --half: dense and exported structured 0.9 in float16, eager and compiled.
#       freeze (~1.5 min): as cl8, compile runtime only, with --inductor-freezing (weights as constants: conv +
#                        BatchNorm folded, constants folded), fp32.
#       autotune (~3 min): as cl8 at batch 64, compiled with torch.compile mode max-autotune (per-shape kernel
#                        benchmarks).
#       counts (~2 min): the soft / frozen steps' times, operators and launches: ST-GCN fp32 and fp16, CTR-GCN fp32.
#       roundk (~1.5 min): exported structured 0.9 in float16, channels-last, eager, batch 64, channel widths
#                        rounded to 8, 16 and 32 (Tensor Core tile multiples), each against dense in its process.
#       mem    (~1.5 min): ST-GCN and CTR-GCN fp32, 20 steps, eager search then graph replay: CUDA memory (the
#                        graph's pool) and the frozen / soft ratios again.
#       gcn    (~2.5 min): exported structured 0.9 (round 8) with --graph-conv matmul (unit_gcn as two matrix
#                        products without layout copies; every model also in the stock formulation, eager, same rounds,
#                        scores checked against each other): fp32 eager; float16 channels-last eager and compiled,
#                        with the kernel table.
#       gcnall (~3.5 min): the exported rows of docs/speed.md with --graph-conv matmul (what exported configs run),
#                        each also in the stock formulation (eager), with the traffic ratio (bytes written
#                        by all operators, dense / exported): structured 0.9 / 0.95 (round 8), eager and compiled,
#                        fp32; semi 0.9 after 20 SGD steps, eager.
#       all:             train, export, semi, amp (more than 8 files: call at most three phases at a time).
# Writes to $OUT (the device tool's result folder, at most 8 files come back; ./bench_gpu_out elsewhere):
# env.txt, steps.txt and one .txt (+ .json for exports) per measurement. A step that fails or runs out of time
# leaves its log and the next one still runs.
set -uo pipefail
PHASES=" ${*:-all} "
want() { [[ "$PHASES" == *" $1 "* || "$PHASES" == *" all "* ]]; }
OUT=${OUT:-bench_gpu_out}
mkdir -p "$OUT"
if [ -d .whl ]; then  # the CUDA machine has torch but not the OpenMMLab stack, and no network
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .site .whl/*.whl
  export PYTHONPATH=$PWD/.site:$PWD
fi
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
{ nvidia-smi; git log -1 --oneline 2>/dev/null; nproc
  $PY -c "import torch, mmengine, mmaction; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
  $PY -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"; } \
  > "$OUT/env.txt" 2>&1
step() {  # step <seconds> <log> <command...>   (appends to the log)
  local t=$1 log=$2; shift 2
  echo "== $* (limit ${t}s)" | tee -a "$OUT/steps.txt" >> "$OUT/$log"
  local t0=$SECONDS
  timeout "$t" "$@" >> "$OUT/$log" 2>&1
  echo "   exit $? after $((SECONDS - t0)) s" | tee -a "$OUT/steps.txt"
}
T="$PY bench/bench_train.py --device cuda --batch 32 --warmup 3"
if want train; then
  step 90 train_fp32.txt $T --reps 10
  step 45 train_macs.txt $T --reps 10 --models stgcn --target-macs 0.4
  step 45 train_macs.txt $T --reps 16 --models stgcn --target-macs 0.4 --update-every 16
  step 50 train_amp.txt $T --reps 10 --models stgcn --amp fp16
  step 40 train_amp.txt $T --reps 5 --models stgcn --amp bf16
fi
if want speed; then
  step 90 train_fp32.txt $T --reps 10
  step 50 train_amp.txt $T --reps 10 --models stgcn --amp fp16
  step 50 train_amp.txt $T --reps 10 --models stgcn --amp bf16
  step 45 train_macs.txt $T --reps 10 --models stgcn --target-macs 0.4
fi
if want eager; then
  step 60 train_eager.txt $T --reps 10 --models stgcn --eager-search
  step 50 train_eager.txt $T --reps 10 --models stgcn --amp fp16 --eager-search
fi
if want counts; then
  step 50 train_counts.txt $T --reps 10 --models stgcn
  step 45 train_counts.txt $T --reps 10 --models stgcn --amp fp16
  step 60 train_counts.txt $T --reps 10 --models ctrgcn
fi
if want roundk; then
  for k in 8 16 32; do
    step 40 export_round$k.txt $PY bench/bench_export.py --device cuda --modes structured --rates 0.9 --reps 30 \
      --threads 8 --round-to $k --channels-last --half --runtimes torch --batches 64
  done
fi
if want mem; then  # the search's graph pool: CUDA memory with and without it; 20 steps against CTR-GCN's noise
  step 60 train_mem.txt $T --reps 20 --models stgcn ctrgcn --eager-search
  step 60 train_mem.txt $T --reps 20 --models stgcn ctrgcn
fi
if want macs; then
  step 45 train_macs.txt $T --reps 10 --models stgcn --target-macs 0.4
  step 60 train_macs.txt $T --reps 32 --models stgcn --target-macs 0.4 --update-every 16 --no-profile
fi
if want ramp; then
  step 60 train_ramp.txt $T --reps 10 --models stgcn --target-macs 0.4 --ramp
  step 60 train_ramp.txt $T --reps 10 --models stgcn --target-macs 0.4 --ramp --projection-search bisect
  step 45 train_ramp.txt $T --reps 10 --models stgcn --ramp
fi
if want profamp; then
  step 60 train_profamp.txt $T --reps 3 --models stgcn --amp fp16 --no-profile --kernel-table 25
fi
if want prof; then
  step 90 train_prof.txt $T --reps 3 --no-profile --kernel-table 25
fi
if want export; then
  step 170 export.txt $PY bench/bench_export.py --device cuda --modes structured --rates 0.9 0.95 --reps 20 \
    --threads 8 --json "$OUT/export.json"
fi
if want round8; then
  step 110 export_round8.txt $PY bench/bench_export.py --device cuda --modes structured --rates 0.9 --reps 20 \
    --threads 8 --round-to 8 --runtimes torch compile --json "$OUT/export_round8.json"
fi
if want cl8; then
  step 110 export_cl8.txt $PY bench/bench_export.py --device cuda --modes structured --rates 0.9 --reps 20 \
    --threads 8 --round-to 8 --channels-last --runtimes torch compile --json "$OUT/export_cl8.json"
fi
if want fp16x; then  # exported structured 0.9 in float16 (dense too), round8 + channels-last
  step 150 export_fp16.txt $PY bench/bench_export.py --device cuda --modes structured --rates 0.9 --reps 20 \
    --threads 8 --round-to 8 --channels-last --half --runtimes torch compile --json "$OUT/export_fp16.json"
fi
if want freeze; then  # inductor freezing: BatchNorm folded into the convolutions, weights as constants
  step 120 export_freeze.txt $PY bench/bench_export.py --device cuda --modes structured --rates 0.9 --reps 20 \
    --threads 8 --round-to 8 --channels-last --runtimes compile --inductor-freezing --json "$OUT/export_freeze.json"
fi
if want autotune; then  # torch.compile mode max-autotune (kernel benchmarks per shape): slow to compile
  step 240 export_autotune.txt $PY bench/bench_export.py --device cuda --modes structured --rates 0.9 --reps 20 \
    --threads 8 --round-to 8 --channels-last --runtimes compile --compile-mode max-autotune --batches 64 \
    --json "$OUT/export_autotune.json"
fi
if want semi; then
  # semi after 20 SGD steps (its gates have moved; at init semi is the unstructured mask): the steps run on the CPU
  step 130 export_semi.txt $PY bench/bench_export.py --device cuda --modes semi --rates 0.9 --reps 20 \
    --train-iters 20 --threads 8 --json "$OUT/export_semi.json"
fi
if want gcn; then  # the matmul graph convolution (export/graph_conv.py)
  # eager fp32 first (fast); then float16 channels-last eager and compiled: 4 models (dense, exported, each also in
  # the stock formulation) x 2 batches compile (reduce-overhead) in the limit
  step 90 export_gcn.txt $PY bench/bench_export.py --device cuda --modes structured --rates 0.9 --reps 20 \
    --threads 8 --round-to 8 --graph-conv matmul --runtimes torch --json "$OUT/export_gcn.json"
  step 300 export_gcn16.txt $PY bench/bench_export.py --device cuda --modes structured --rates 0.9 --reps 20 \
    --threads 8 --round-to 8 --graph-conv matmul --channels-last --half --runtimes torch compile --kernel-table 12 \
    --json "$OUT/export_gcn16.json"
fi
if want gcnall; then  # structured 0.9 / 0.95, semi 0.9 in the formulation exported configs run
  step 240 export_gcnall.txt $PY bench/bench_export.py --device cuda --modes structured --rates 0.9 0.95 --reps 20 \
    --threads 8 --round-to 8 --graph-conv matmul --runtimes torch compile --json "$OUT/export_gcnall.json"
  step 120 export_gcnsemi.txt $PY bench/bench_export.py --device cuda --modes semi --rates 0.9 --train-iters 20 \
    --reps 20 --threads 8 --graph-conv matmul --runtimes torch --json "$OUT/export_gcnsemi.json"
fi
if want amp; then  # tools/train.py --amp end to end on the GPU (demo data made here), then tools/test.py
  step 15 amp.txt $PY tools/make_demo_data.py data/demo/demo_ntu25.pkl
  C=configs/demo/stgcn_semiprune_demo.py
  step 100 amp.txt $PY tools/train.py $C --amp --work-dir /tmp/w16
  step 30 amp.txt $PY tools/test.py $C /tmp/w16/stgcn_semiprune_demo_pruned.pth --work-dir /tmp/w16
  step 60 amp.txt $PY tools/train.py $C --amp --work-dir /tmp/wbf --cfg-options optim_wrapper.dtype=bfloat16 \
    train_cfg.max_epochs=3
  step 30 amp.txt $PY tools/test.py $C /tmp/wbf/stgcn_semiprune_demo_pruned.pth --work-dir /tmp/wbf
  grep -E "acc/top1|prune_rate|Error|error" "$OUT/amp.txt" | tail -20
fi
cat "$OUT/steps.txt"
