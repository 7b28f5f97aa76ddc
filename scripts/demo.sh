#!/usr/bin/env bash
# Set up (if needed) and run the main job offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
S=.venv/bin/surge
echo "== The surge law (Eq 2) next to McCandlish's SGD law (Eq 1) =="
$S law adam --eps-max 1e-3 --b-noise 256 --batch-size 16,64,256,1024,4096
$S law sgd --eps-max 1e-3 --b-noise 256 --batch-size 16,64,256,1024,4096
echo "== I tuned lr 3e-4 at batch 256; what at 2048, if B_noise is 512? =="
$S recommend --from-batch-size 256 --from-lr 3e-4 --to-batch-size 2048 --b-noise 512
