#!/usr/bin/env bash
# Quick start: install, write the sample data set, run a small study end to end through the REST API.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/hypevolve sample-data
.venv/bin/python scripts/demo.py "$@"
