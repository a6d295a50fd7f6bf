#!/usr/bin/env bash
# Create .venv (if needed) and install adapterzoo, its plugins and the test tools into it.
# torch comes first, pinned to the CPU build this project is tested with; a bare `torch` would pull a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e ".[test]" $(for plugin in plugins/*/; do printf -- '-e %s ' "$plugin"; done)
