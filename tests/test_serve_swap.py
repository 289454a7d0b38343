"""Moving the champion alias swaps the served model with no failed request."""

import threading
import time

import httpx
import pytest

from export.register import export
from tests.conftest import make_settings
from training.train import train

pytestmark = pytest.mark.serve

SWAP_MODEL = "revenue-7d-swap"
USER = {"country": "es", "platform": "iOS", "event_1": 0, "event_2": 20, "event_3": 1}


class Traffic(threading.Thread):
    """Send /predict requests back to back until stopped, recording each result."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.results: list[tuple[int, str | None]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                response = client.post(self.url, json=USER)
                version = None
                if response.status_code == 200:
                    version = response.json()["model_version"]
                self.results.append((response.status_code, version))


def test_alias_move_swaps_model_under_load(serve_url, serving_state, sample_data):
    from ray import serve as ray_serve

    from tests.serving import deploy_revenue, wait_until_healthy

    settings = make_settings(
        serving_state.settings.state_path, sample_data, model_name=SWAP_MODEL
    )
    train(settings)
    export(settings)
    deploy_revenue("swap", "/swap", {"model_uri": f"models:/{SWAP_MODEL}@champion"})
    wait_until_healthy(f"{serve_url}/swap/health")

    traffic = Traffic(f"{serve_url}/swap/predict")
    traffic.start()
    try:
        time.sleep(1)
        train(settings.model_copy(update={"seed": 7}), force=True)
        new_version = export(settings).version
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if traffic.results and traffic.results[-1][1] == new_version:
                break
            time.sleep(0.2)
        time.sleep(1)
    finally:
        traffic.stop.set()
        traffic.join(timeout=15)
        ray_serve.delete("swap")

    statuses = {status for status, _ in traffic.results}
    versions = [version for _, version in traffic.results]
    assert statuses == {200}
    assert versions[0] == "1"
    assert versions[-1] == new_version
    switch = versions.index(new_version)
    assert set(versions[switch:]) == {new_version}
