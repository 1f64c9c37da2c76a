#!/usr/bin/env bash
# Base images for a host that reaches Debian's package mirror but no image registry (docker pull
# fails), made from packages alone:
#   hypevolve-local/python:3.11   Debian bookworm's Python 3.11 with OpenCV's libraries: a BASE_IMAGE
#                                 for the Dockerfile in place of python:3.11-slim
#   hypevolve-local/postgres:15   docker/postgres: a stand-in for postgres:16 (POSTGRES_IMAGE)
# Each is made once (kept while the Docker daemon keeps it). Uses $DOCKER_HOST when set; needs root
# and debootstrap. The mirror is the one apt uses here.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-docker}
mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)}

if ! "$DOCKER" image inspect hypevolve-local/python:3.11 >/dev/null 2>&1; then
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase --include=python3,python3-venv,libgl1,libglib2.0-0,ca-certificates \
        bookworm "$rootfs" "$mirror" >/dev/null
    tar -C "$rootfs" -c . | "$DOCKER" import - hypevolve-local/python:3.11 >/dev/null
fi
if ! "$DOCKER" image inspect hypevolve-local/postgres:15 >/dev/null 2>&1; then
    "$DOCKER" build -q --network host -t hypevolve-local/postgres:15 \
        --build-arg BASE_IMAGE=hypevolve-local/python:3.11 docker/postgres >/dev/null
fi
echo "hypevolve-local/python:3.11 hypevolve-local/postgres:15"
