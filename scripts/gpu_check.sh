#!/usr/bin/env bash
# One prepared command for a GPU machine: a 2-trial study on CUDA (two trainings sharing one GPU
# by default), printing the device, trial times and fitness. Uses the .venv from scripts/setup.sh;
# installs and downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
exec "$PYTHON" scripts/gpu_check.py "$@"
