#!/usr/bin/env bash
# The GPU benchmark on a bare machine with Python >= 3.10 and this repository (sized for 8 minutes on one H200): every
# method's bf16 training step on ViT-B/16 (CLIP ViT-B/16 for the CLIP methods), step time, images/s, peak memory, MFU,
# and the data pipeline with 16 workers. Writes benchmarks/results/gpu.json and gpu.md. Options pass through to
# `python -m adapterzoo.benchmarks.gpu` (--help lists them; e.g. --methods lora vpt, --peak-tflops 989.5).
#
# It installs, into .venv, a CUDA build of the torch that pyproject.toml pins (PyPI's Linux wheels are CUDA builds;
# TORCH_INDEX_URL picks another index, e.g. https://download.pytorch.org/whl/cu128) and adapterzoo with its plugins.
# The install is skipped when .venv already has a CUDA torch and was installed from these pyproject files.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
VENV=.venv/bin/python
STAMP=.venv/adapterzoo-gpu-installed
WANT=$(cat pyproject.toml plugins/*/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ] || ! "$VENV" -c "import torch; assert torch.version.cuda" 2>/dev/null; then
    TORCH=$(grep -o '"torch[<>=][^"]*"' pyproject.toml | tr -d '"')
    "$VENV" -m pip install --quiet --upgrade pip
    "$VENV" -m pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH"
    "$VENV" -m pip install --quiet -e . $(for plugin in plugins/*/; do printf -- '-e %s ' "$plugin"; done)
    echo "$WANT" >"$STAMP"
fi
exec "$VENV" -m adapterzoo.benchmarks.gpu --device cuda "$@"
