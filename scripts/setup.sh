#!/usr/bin/env bash
# Create .venv and install hypevolve with its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; v = sys.version_info; sys.exit(0 if v[:2] == (3, 11) else f"hypevolve needs Python 3.11, found {v.major}.{v.minor}")'

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: pip takes this release from the local wheel cache; an unpinned torch
# pulled in by ultralytics can download several GB.
.venv/bin/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
.venv/bin/python -m pip install --quiet -e '.[dev]'
echo "hypevolve installed in .venv ($(.venv/bin/python -c 'import ultralytics, optuna, ray; print(f"ultralytics {ultralytics.__version__}, optuna {optuna.__version__}, ray {ray.__version__}")'))"
