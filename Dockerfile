# One image for the API, Ray nodes and the dashboard: the same code everywhere a trial may run.
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY hyps ./hyps
COPY workers ./workers
COPY service ./service
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 && pip install --no-cache-dir .

ENV YOLO_OFFLINE=1 \
    YOLO_CONFIG_DIR=/tmp/ultralytics \
    HYPEVOLVE_HOME=/var/lib/hypevolve \
    HYPEVOLVE_DATA_ROOT=/data \
    HYPEVOLVE_ARTIFACTS_DIR=/artifacts

RUN useradd --create-home --uid 1000 hypevolve \
    && mkdir -p /var/lib/hypevolve /data /artifacts \
    && chown hypevolve /var/lib/hypevolve /data /artifacts
USER hypevolve
EXPOSE 8000
CMD ["hypevolve", "serve", "--host", "0.0.0.0", "--port", "8000"]
