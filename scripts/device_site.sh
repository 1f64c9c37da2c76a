#!/usr/bin/env bash
# Packs, for a lent GPU machine (the device tool's nvidia-h200: Python 3.12 with torch, numpy,
# opencv, scipy, matplotlib, aiohttp, grpcio... but none of this project's own stack, and no
# network), the packages scripts/gpu_check.sh needs that it lacks, at the versions .venv pins, as
# one archive that fits the tool's 64 MiB: .devsite/site.tar.xz (about 57 MiB; git ignores it).
# Ray's wheel alone is 79 MB: its Java jars, RLlib, Data, Serve and the dashboard's web build are
# left out and its binaries stripped. On the machine (carry [".devsite"]):
#   mkdir -p /tmp/site && tar xJf .devsite/site.tar.xz -C /tmp/site &&
#   PYTHONPATH=/tmp/site:$PWD YOLO_OFFLINE=1 PYTHON=python3 bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
out=.devsite
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pinned() { .venv/bin/python -c "import importlib.metadata as m; print('$1==' + m.version('$1'))"; }
packages=(ultralytics-thop importlib-metadata)
for name in ultralytics optuna alembic Mako colorlog SQLAlchemy ray fastapi starlette pydantic pydantic_core \
    pydantic-settings python-dotenv annotated-types typing-inspection jsonschema jsonschema-specifications \
    referencing rpds-py polars polars-runtime-32 cmaes opentelemetry-api; do
    packages+=("$(pinned "$name")")
done
.venv/bin/pip download --quiet --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" \
    --implementation cp --abi "cp${PYTHON_VERSION/./}" --platform manylinux_2_28_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any -d "$work/wheels" "${packages[@]}"
mkdir -p "$work/site"
for wheel in "$work"/wheels/*.whl; do .venv/bin/python -m zipfile -e "$wheel" "$work/site/"; done
cd "$work/site"
rm -rf ray/jars ray/rllib ray/data ray/serve ray/llm ray/dashboard/client/build \
    ray/_private/runtime_env/agent/thirdparty_files ./*.dist-info/RECORD
find . -name __pycache__ -prune -exec rm -rf {} +
# zipfile keeps no modes: the ELF programs (Ray's gcs_server and raylet) must be executable again.
find . -type f \( -name '*.so' -o -path './ray/core/*' \) -print0 | xargs -0 file | grep 'ELF' | cut -d: -f1 \
    | tee "$work/elves" | xargs strip --strip-unneeded
grep -v '\.so$' "$work/elves" | xargs -r chmod +x
cd - >/dev/null
mkdir -p "$out"
tar cf - -C "$work/site" . | xz -6 -T2 >"$out/site.tar.xz"
ls -l "$out/site.tar.xz"
