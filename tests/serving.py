"""Start Ray Serve on loopback for tests, in the mode that production uses.

Ray is imported inside the functions because Serve reads its mode from the
environment at import time, and conftest sets that environment first.
"""

import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_serve(state_dir: Path):
    """Start Ray and Serve on 127.0.0.1 and yield the HTTP base URL.

    Replicas read settings from the environment, so LTV_STATE_DIR and the
    test poll interval are set before Ray starts its workers.
    """
    os.environ["LTV_STATE_DIR"] = str(state_dir)
    # mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI, so an earlier
    # test's store would otherwise reach the replicas through Ray's workers.
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    os.environ["MODEL_POLL_INTERVAL_S"] = "1"
    os.environ["MAX_BATCH_USERS"] = "50"
    import ray
    from ray import serve as ray_serve

    port = free_port()
    project_root = str(Path(__file__).resolve().parent.parent)
    ray.init(
        address="local",
        runtime_env={"env_vars": {"PYTHONPATH": project_root}},
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    try:
        ray_serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield f"http://127.0.0.1:{port}"
    finally:
        ray_serve.shutdown()
        ray.shutdown()
        for name in ("LTV_STATE_DIR", "MODEL_POLL_INTERVAL_S", "MAX_BATCH_USERS"):
            os.environ.pop(name, None)


def deploy_revenue(
    name: str,
    route_prefix: str,
    user_config: dict | None = None,
    env_vars: dict[str, str] | None = None,
):
    """Deploy the revenue application; half a CPU each lets several apps share 2."""
    from ray import serve as ray_serve

    from serve.app import RevenueService

    actor_options = {"num_cpus": 0.5}
    if env_vars:
        actor_options["runtime_env"] = {"env_vars": env_vars}
    deployment = RevenueService.options(ray_actor_options=actor_options)
    if user_config is not None:
        deployment = deployment.options(user_config=user_config)
    ray_serve.run(deployment.bind(), name=name, route_prefix=route_prefix)


def wait_until_healthy(url: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not return 200 in {timeout_s} s")
