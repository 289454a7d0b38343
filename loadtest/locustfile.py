"""Locust scenarios for the revenue API.

Headless, bounded run against a local server:
    locust -f loadtest/locustfile.py --headless --host http://127.0.0.1:8000 \
        --users 20 --spawn-rate 20 --run-time 30s
"""

import random

from locust import FastHttpUser, between, task

from loadtest.payloads import load_payloads

PAYLOADS = load_payloads()


class PredictUser(FastHttpUser):
    """One client sending single-user predictions."""

    wait_time = between(0.05, 0.15)

    @task
    def predict(self) -> None:
        self.client.post("/predict", json=random.choice(PAYLOADS), name="/predict")
