#!/usr/bin/env bash
# Set up (if needed) and run the main job offline: `surge demo` (pass --quick for the short version).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/surge demo "$@"
