#!/usr/bin/env bash
# README command 2: install (or reuse) the environment and run the test suite.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
# pytest exits 5 when no test was collected: that is a failure here too (set -e propagates it)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # tests are many small ops; 1 thread avoids oversubscription with subprocess runs
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"
