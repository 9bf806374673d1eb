#!/usr/bin/env bash
# README command 1: install, generate the embedded demo data, train the semi-structured pruned ST-GCN,
# evaluate it with MMAction2's AccMetric and print top-1 and the achieved pruning rate.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
PY=.venv/bin/python
CFG=configs/demo/stgcn_semiprune_demo.py
WORK=work_dirs/stgcn_semiprune_demo
$PY tools/make_demo_data.py data/demo/demo_ntu25.pkl
rm -rf "$WORK"
$PY tools/train.py "$CFG" --work-dir "$WORK"
$PY tools/test.py "$CFG" "$WORK/stgcn_semiprune_demo_pruned.pth" --work-dir "$WORK" 2>&1 | tee "$WORK/test_output.txt" \
    | grep -E "prune_rate|acc/top1|metrics:|^tensor|^backbone" || true
echo
echo "== demo result (chance = 12.5 %) =="
grep -E "^metrics:|^prune_rate" "$WORK/test_output.txt"
