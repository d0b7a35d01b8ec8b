#!/usr/bin/env bash
# Create .venv and install satvsr with its test tools. Offline-friendly: torch 2.13.0 (CPU build)
# is pinned first so that pip does not pull a multi-GB CUDA build; use an existing CUDA torch by
# installing it into .venv before running this script.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
.venv/bin/python -m pip install -q -e ".[dev]"
echo "satvsr installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
