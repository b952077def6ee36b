# syntax=docker/dockerfile:1.7
# The learner/driver image: Ray head and learner workers of the chart's RayCluster (the PA-GRPO
# driver, the FSDP2 learner, SFT, eval, CoT) and the RayJobs' submitter pods.
# Everything Python comes from requirements.lock (torch with its CUDA libraries, verl, ray, ...).
#
#   docker build -f infra/docker/videop2r.Dockerfile -t ghcr.io/videop2r/videop2r:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements.lock /tmp/requirements.lock
RUN pip install -r /tmp/requirements.lock
COPY pyproject.toml README.md /src/
COPY videop2r /src/videop2r
COPY services /src/services
RUN pip install --no-deps /src

FROM ${PYTHON_IMAGE}
# wget: KubeRay's readiness/liveness probes of Ray containers call it; libgomp1: torch CPU ops.
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget ca-certificates libgomp1 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 1000 videop2r \
 && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash videop2r
COPY --from=build /opt/venv /opt/venv
COPY configs /opt/videop2r/configs
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false
# The chart's uid: pods run as 1000 with a read-only root filesystem and a writable /tmp.
USER 1000:1000
WORKDIR /home/videop2r
# Ray: dashboard, GCS, client; the driver's /metrics (config metrics.port, chart driverMetricsPort).
EXPOSE 8265 6379 10001 9400
CMD ["videop2r", "--help"]
