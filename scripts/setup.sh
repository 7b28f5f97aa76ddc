#!/usr/bin/env bash
# Create .venv and install surge with everything it needs (idempotent: skipped when nothing changed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv
stamp="$VENV/.surge-installed"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c "import surge" 2>/dev/null; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
# torch + torchvision as a matching pair (torchvision refuses to import beside a mismatched torch).
pip install -q "torch==2.14.1" "torchvision==0.29.1" 2>&1 | grep -v "is ignored" || true
pip install -q -e ".[torch,data,parquet,lm,ray,lightning,hf,test,docs]" 2>&1 | grep -v "is ignored" || true
"$VENV/bin/python" -c "import surge, torch, torchvision" >/dev/null
echo "$want" > "$stamp"
