# syntax=docker/dockerfile:1
# Build stage: install the project and its pinned dependencies into a venv.
FROM python:3.11-slim AS build
WORKDIR /app
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml constraints.txt README.md ./
COPY ltv ./ltv
COPY training ./training
COPY export ./export
COPY serve ./serve
COPY loadtest ./loadtest
RUN pip install --no-cache-dir --upgrade pip \
 && pip install --no-cache-dir -c constraints.txt .

# Run stage: the venv, the Serve config, a non-root user.
FROM python:3.11-slim AS run
RUN useradd --create-home --uid 10001 ltv
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY serve_config.yaml ./
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LTV_STATE_DIR=/home/ltv/state \
    SERVE_HOST=0.0.0.0 \
    SERVE_PORT=8000 \
    RAY_SERVE_ENABLE_HA_PROXY=1 \
    RAY_SERVE_THROUGHPUT_OPTIMIZED=1 \
    RAY_worker_niceness=0
USER ltv
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"
CMD ["python", "-m", "serve", "serve_config.yaml"]
