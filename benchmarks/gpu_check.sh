#!/usr/bin/env bash
# The prepared GPU check (see benchmarks/gpu_check.py): one JSON object on stdout, progress on stderr,
# at most 8 minutes on one GPU. `bash benchmarks/gpu_check.sh --cpu` is a dry run on the CPU.
# Python: $PYTHON, else this checkout's .venv, else python3 (it needs torch, built with CUDA for the GPU run).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=1073741824
exec timeout -s TERM 480 "$PY" benchmarks/gpu_check.py "$@"
