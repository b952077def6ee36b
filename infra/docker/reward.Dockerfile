# syntax=docker/dockerfile:1.7
# The reward-service image: `videop2r serve reward-accuracy` and `videop2r serve reward-judge`
# (the chart's reward Deployments). Same pinned dependencies as the learner image, from
# requirements.lock (the embedding judge needs torch and sentence-transformers).
#
#   docker build -f infra/docker/reward.Dockerfile -t ghcr.io/videop2r/videop2r-reward:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.lock /tmp/requirements.lock
RUN pip install -r /tmp/requirements.lock
COPY pyproject.toml README.md /src/
COPY videop2r /src/videop2r
COPY services /src/services
RUN pip install --no-deps /src

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 1000 videop2r \
 && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash videop2r
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false
USER 1000:1000
WORKDIR /home/videop2r
# The services' HTTP port (chart rewardAccuracy.port / rewardJudge.port): scoring, /healthz, /metrics.
EXPOSE 8000
ENTRYPOINT ["videop2r", "serve"]
CMD ["reward-accuracy", "--host", "0.0.0.0", "--port", "8000"]
