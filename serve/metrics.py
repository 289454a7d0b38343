"""Prometheus metrics, exported through Ray's metrics agent.

Ray adds the ``ray_`` prefix and the deployment, replica and application
tags. Scrape each node's metrics export port (see the README).
"""

import time

import numpy as np
from ray.serve import metrics

ENDPOINTS = {
    "/predict",
    "/batch_predict",
    "/model/info",
    "/stats",
    "/health",
    "/ready",
    "/v2/health/ready",
    "/v2/health/live",
    "/v2/models/revenue-7d",
    "/v2/models/revenue-7d/ready",
    "/v2/models/revenue-7d/infer",
}
LATENCY_BOUNDARIES_MS = [0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 100, 250, 1000]
BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 10000]
REVENUE_BOUNDARIES = [0.001, 0.01, 0.1, 1, 10, 100, 1000, 10000]
MAX_REVENUE_SAMPLES = 64


class ServiceMetrics:
    """Counters and histograms of one replica. Create inside the replica."""

    def __init__(self) -> None:
        self.requests = metrics.Counter(
            "ltv_requests",
            description="HTTP requests by endpoint and status code.",
            tag_keys=("endpoint", "status"),
        )
        self.latency = metrics.Histogram(
            "ltv_request_latency_ms",
            description="Time in the replica per HTTP request, in milliseconds.",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=("endpoint",),
        )
        self.batch_size = metrics.Histogram(
            "ltv_batch_size",
            description="Users per ONNX Runtime call.",
            boundaries=BATCH_BOUNDARIES,
        )
        self.predicted_revenue = metrics.Histogram(
            "ltv_predicted_revenue",
            description="Predicted 7-day revenue per user.",
            boundaries=REVENUE_BOUNDARIES,
        )
        self.model_version = metrics.Gauge(
            "ltv_model_version",
            description="Registered version of the loaded model.",
            tag_keys=("model_name",),
        )

    def observe_batch(self, size: int, predicted: np.ndarray) -> None:
        self.batch_size.observe(size)
        # Each observe() is a Python call, so large batches contribute an
        # evenly spaced sample of at most MAX_REVENUE_SAMPLES users.
        step = max(1, -(-size // MAX_REVENUE_SAMPLES))
        for value in predicted[::step]:
            self.predicted_revenue.observe(float(value))


class MetricsMiddleware:
    """ASGI middleware that counts requests and times them by endpoint."""

    def __init__(self, app, service_metrics) -> None:
        self.app = app
        self.ref = service_metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.ref.metrics is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            path = scope.get("path", "")
            endpoint = path if path in ENDPOINTS else "other"
            recorded = self.ref.metrics
            recorded.requests.inc(tags={"endpoint": endpoint, "status": str(status)})
            elapsed_ms = (time.perf_counter() - started) * 1000
            recorded.latency.observe(elapsed_ms, tags={"endpoint": endpoint})
