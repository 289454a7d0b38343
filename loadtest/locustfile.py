"""Locust scenarios for the revenue API.

Pick a scenario by class name; each is bounded by --run-time.

    # headless, single predictions at 10 requests/s per user
    locust -f loadtest/locustfile.py --headless --host http://127.0.0.1:8000 \\
        --users 20 --spawn-rate 20 --run-time 30s SteadyPredictUser
    # web UI on http://127.0.0.1:8089
    locust -f loadtest/locustfile.py --web-host 127.0.0.1 --host http://127.0.0.1:8000

Payloads are real rows from REVENUE_DATA when it is set, else generated ones.
"""

import random

import gevent
import orjson
from locust import FastHttpUser, between, constant_throughput, task

from loadtest.payloads import load_payloads

PAYLOADS = load_payloads()
# Bodies are encoded once, so the load generator spends its CPU on sending
# requests; it shares the machine with the server in these benchmarks.
BODIES = [orjson.dumps(payload) for payload in PAYLOADS]
JSON = {"Content-Type": "application/json"}
BATCH_USERS = 1000


def batch_body() -> dict:
    start = random.randrange(0, max(1, len(PAYLOADS) - BATCH_USERS))
    return {"users": PAYLOADS[start : start + BATCH_USERS]}


class PredictUser(FastHttpUser):
    """A game backend scoring one user per request, with short pauses."""

    wait_time = between(0.05, 0.15)

    @task
    def predict(self) -> None:
        self.client.post("/predict", data=random.choice(BODIES), headers=JSON)


class SteadyPredictUser(FastHttpUser):
    """Exactly 10 single predictions per second per user: the CI scenario."""

    wait_time = constant_throughput(10)

    def on_start(self) -> None:
        # Users spawned together would otherwise fire in step, as bursts of
        # one request per user every 100 ms; a random phase spreads them.
        gevent.sleep(random.random() / 10)

    @task
    def predict(self) -> None:
        self.client.post("/predict", data=random.choice(BODIES), headers=JSON)


class BatchPredictUser(FastHttpUser):
    """A pipeline scoring 1,000 users per request."""

    wait_time = between(0.5, 1.0)

    @task
    def batch_predict(self) -> None:
        self.client.post("/batch_predict", json=batch_body(), name="/batch_predict")


class MixedUser(FastHttpUser):
    """Mostly single predictions, some batches and model-info reads."""

    wait_time = between(0.05, 0.2)

    @task(20)
    def predict(self) -> None:
        self.client.post("/predict", data=random.choice(BODIES), headers=JSON)

    @task(1)
    def batch_predict(self) -> None:
        body = {"users": random.sample(PAYLOADS, 100)}
        self.client.post("/batch_predict", json=body, name="/batch_predict")

    @task(1)
    def model_info(self) -> None:
        self.client.get("/model/info", name="/model/info")
