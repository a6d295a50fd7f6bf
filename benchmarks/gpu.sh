#!/usr/bin/env bash
# The benchmark on a GPU, end to end in a few minutes: ViT-B/16 and CLIP ViT-B/16 timings in bf16, batch 32.
# Run from the repository root after scripts/setup.sh (with a CUDA build of torch installed in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python benchmarks/run.py --device cuda --dtype bf16 --size base --batch 32 --steps 5 --seeds 3 \
    --output benchmarks/results/gpu "$@"
