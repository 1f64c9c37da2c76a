# One image for the API, Ray nodes and the dashboard: the same code everywhere a trial may run.
#
# Build arguments (the defaults are what a GPU host with registry access uses):
#   BASE_IMAGE   a Debian-based image with Python 3.11 and its venv module. Default python:3.11-slim;
#                hosts without a registry make one (scripts/local_images.sh).
#   TORCH        the torch build. Default: PyPI's, which carries CUDA (and runs on CPU too).
#   PIP_OPTIONS  more pip options, e.g. "--no-index --find-links http://127.0.0.1:8765/" to install from
#                a local wheelhouse, or PyTorch's CPU index for a lean CPU-only image.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG TORCH="torch==2.14.1 torchvision==0.29.1"
ARG PIP_OPTIONS=""

# OpenCV's libraries; a base image that has them already needs no package index.
RUN if ! dpkg -s libgl1 libglib2.0-0 >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# torch first, in a layer of its own: the largest, and unchanged by a change of our code.
RUN python3 -m venv /opt/hypevolve \
    && /opt/hypevolve/bin/pip install --no-cache-dir ${PIP_OPTIONS} ${TORCH}

WORKDIR /app
# The dependencies next, from pyproject.toml alone (empty packages, a stand-in README): a change of
# our code or README rebuilds only the small layer after this one.
COPY pyproject.toml ./
RUN mkdir hyps workers service hypevolve_client && touch README.md \
    && /opt/hypevolve/bin/pip install --no-cache-dir ${PIP_OPTIONS} . \
    && /opt/hypevolve/bin/pip uninstall -y -q hypevolve \
    && rm -rf hyps workers service hypevolve_client README.md build ./*.egg-info
COPY README.md ./
COPY hyps ./hyps
COPY workers ./workers
COPY service ./service
COPY hypevolve_client ./hypevolve_client
RUN /opt/hypevolve/bin/pip install --no-cache-dir --no-deps ${PIP_OPTIONS} .

ENV PATH=/opt/hypevolve/bin:$PATH \
    YOLO_OFFLINE=1 \
    YOLO_CONFIG_DIR=/tmp/ultralytics \
    HYPEVOLVE_HOME=/var/lib/hypevolve \
    HYPEVOLVE_DATA_ROOT=/data \
    HYPEVOLVE_ARTIFACTS_DIR=/artifacts \
    HYPEVOLVE_WEIGHTS_DIR=/weights

RUN useradd --create-home --uid 1000 hypevolve \
    && mkdir -p /var/lib/hypevolve /data /weights /artifacts \
    && chown hypevolve /var/lib/hypevolve /data /weights /artifacts
USER hypevolve
EXPOSE 8000
CMD ["hypevolve", "serve", "--host", "0.0.0.0", "--port", "8000"]
