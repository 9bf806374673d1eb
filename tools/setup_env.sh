#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install the pinned stack + the
# plugin (editable). Re-running is cheap: it reinstalls only when requirements/pinned.txt or setup.py change.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
STAMP=.venv/.mmsemiprune-installed
WANT="$(cat requirements/pinned.txt setup.py | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "[setup] installing requirements/pinned.txt and mmsemiprune (editable)"
    .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements/pinned.txt
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
    echo "$WANT" > "$STAMP"
else
    echo "[setup] .venv is up to date"
fi
