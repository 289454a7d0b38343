"""Start the Serve application on loopback for tests."""

import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import ray
from ray import serve as ray_serve


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_app(state_dir: Path, user_config: dict | None = None):
    """Run the application on 127.0.0.1 and yield its base URL.

    Replicas read settings from the environment, so LTV_STATE_DIR is set
    before Ray starts its workers.
    """
    from serve.app import RevenueService

    os.environ["LTV_STATE_DIR"] = str(state_dir)
    port = free_port()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    try:
        ray_serve.start(http_options={"host": "127.0.0.1", "port": port})
        deployment = RevenueService
        if user_config is not None:
            deployment = deployment.options(user_config=user_config)
        ray_serve.run(deployment.bind(), name="revenue", route_prefix="/")
        base_url = f"http://127.0.0.1:{port}"
        wait_until_healthy(base_url)
        yield base_url
    finally:
        ray_serve.shutdown()
        ray.shutdown()
        os.environ.pop("LTV_STATE_DIR", None)


def wait_until_healthy(base_url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base_url}/health did not return 200 in {timeout_s} s")
