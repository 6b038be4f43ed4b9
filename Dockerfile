# An image for retrain's flow runs on a docker or kubernetes work pool (README, "Scaling out").
# The code and the workspace are baked in; secrets come from the job's environment.
FROM python:3.11-slim

RUN apt-get update && apt-get install -y --no-install-recommends git libgomp1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/retrain
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY retrain ./retrain
COPY retrain_prefect ./retrain_prefect
COPY flows ./flows
COPY deployments ./deployments
COPY prefect.yaml prefect-git.yaml ./
RUN pip install --no-cache-dir --no-deps -e .
# The workspace the flow runs use, by its path in the image (or set RETRAIN_CONFIG in the
# work pool's job variables to one mounted from a volume or a ConfigMap).
COPY workspace ./workspace
ENV RETRAIN_CONFIG=/opt/retrain/workspace/retrain.toml \
    PREFECT_SERVER_ANALYTICS_ENABLED=false
