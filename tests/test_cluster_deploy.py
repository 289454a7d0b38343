"""`serve deploy` of serve_config.yaml to a Ray cluster started with `ray start`.

The test runs, as subprocesses, the commands that the README gives for a
cluster on loopback: start a head node, deploy the config, change its
``user_config`` and deploy again under traffic, shut Serve down and stop the
node. Every port is a free one, so the test can run next to other Ray
clusters on the same machine, and it never runs ``ray stop``, which would end
those clusters too.
"""

import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx
import pytest
import yaml
from mlflow.tracking import MlflowClient

from ltv.registry import configure_mlflow
from ltv.settings import Settings
from tests.serving import free_port, wait_until_healthy

pytestmark = [pytest.mark.serve, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
APP = "revenue"
DEPLOYMENT = "RevenueService"
USER = {"country": "es", "platform": "iOS", "event_1": 0, "event_2": 20, "event_3": 1}
# Replica HTTP and gRPC ports that Serve hands out in HAProxy mode. The range
# is larger than max_replicas because Serve quarantines a released port.
REPLICA_PORTS = 10


@dataclass
class HeadNode:
    """A `ray start --head --block` process and the addresses it serves."""

    process: subprocess.Popen
    temp_dir: Path
    log_path: Path
    dashboard_url: str
    api_url: str
    cli_env: dict[str, str]
    auth_headers: dict[str, str]

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(
            self.log_path.read_text(errors="replace").splitlines()[-lines:]
        )


def port_range_start(size: int) -> int:
    """Return the first of ``size`` consecutive loopback ports that are free now."""
    for _ in range(50):
        first = free_port()
        if first + size <= 65535 and all(
            _is_free(port) for port in range(first + 1, first + size)
        ):
            return first
    raise RuntimeError(f"no {size} consecutive free ports found on 127.0.0.1")


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def node_environment(temp_dir: Path, state_dir: Path, token_path: Path) -> dict:
    """Return the environment of `ray start`, which its workers and replicas inherit.

    Ray settings from the test session are dropped, so the node gets only
    those below. HAProxy's files go under the node's temp folder, which puts
    that folder on HAProxy's command line for the leftover check.
    """
    # Serve puts these files in a subfolder named by the 56-character node id,
    # and HAProxy accepts socket paths of at most 97 bytes.
    haproxy_dir = temp_dir / "h"
    http_ports = port_range_start(REPLICA_PORTS)
    grpc_ports = port_range_start(REPLICA_PORTS)
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("RAY_")
    }
    environment.update(
        {
            "LTV_STATE_DIR": str(state_dir),
            "MLFLOW_TRACKING_URI": "",
            "DATABASE_URL": "",
            "MODEL_POLL_INTERVAL_S": "1",
            # Ray 2.60 turns 127.0.0.1 given to --node-ip-address into the
            # host's network address unless this is 0, which also keeps
            # worker nodes from joining.
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token_path),
            "RAY_worker_niceness": "0",
            "RAY_SERVE_ENABLE_HA_PROXY": "1",
            "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
            "RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S": "30",
            "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
            "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(free_port()),
            "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(free_port()),
            "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(http_ports),
            "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(
                http_ports + REPLICA_PORTS - 1
            ),
            "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(grpc_ports),
            "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(
                grpc_ports + REPLICA_PORTS - 1
            ),
            "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(haproxy_dir / "haproxy.cfg"),
            "RAY_SERVE_HAPROXY_SOCKET_PATH": str(haproxy_dir / "admin.sock"),
            "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(haproxy_dir / "metrics.sock"),
            "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(haproxy_dir),
            "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(haproxy_dir / "server-state"),
            # In HAProxy mode a stopping replica stays reachable this long
            # before it closes. Ray 2.60's default of 30 s outlasts Serve's
            # 30 s shutdown limit, so the replica is killed before its
            # shutdown (and the prediction log's last flush) runs.
            "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "5",
        }
    )
    return environment


def leftover_processes(session_id: int, marker: str) -> dict[int, str]:
    """Return {pid: command line} of the live processes that the node started.

    Ray's workers rename themselves (``ray::ServeReplica...``), so they are
    found by session id, and their environment must name the marker (the
    node's temp folder) in case the id was reused. HAProxy names the marker
    on its command line.
    """
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        # The command name in brackets may contain spaces, so split after it.
        state, _ppid, _pgid, session = stat.rsplit(")", 1)[1].split()[:4]
        if state == "Z":
            continue
        in_session = int(session) == session_id and marker.encode() in environ
        if in_session or marker.encode() in cmdline:
            found[int(entry.name)] = cmdline.decode(errors="replace").strip()[:200]
    return found


def node_processes(node: HeadNode) -> dict[int, str]:
    return leftover_processes(node.process.pid, str(node.temp_dir))


def haproxy_processes(node: HeadNode) -> dict[int, str]:
    return {
        pid: command
        for pid, command in node_processes(node).items()
        if "haproxy" in command
    }


def wait_until_none(
    find: Callable[[], dict[int, str]], timeout_s: float
) -> dict[int, str]:
    """Poll ``find`` until it returns no process and return what it found last."""
    deadline = time.monotonic() + timeout_s
    found = find()
    while found and time.monotonic() < deadline:
        time.sleep(0.5)
        found = find()
    return found


def stop_node(node: HeadNode, timeout_s: float = 60) -> None:
    """End `ray start --block` with SIGTERM, which stops every process it started.

    With replicas still running, Ray first drains the node for up to 30 s.
    """
    if node.process.poll() is None:
        node.process.send_signal(signal.SIGTERM)
    node.process.wait(timeout_s)


def press_ctrl_c(node: HeadNode, timeout_s: float = 60) -> None:
    """Send SIGINT to the node's process group, as a terminal does on Ctrl-C."""
    os.killpg(node.process.pid, signal.SIGINT)
    node.process.wait(timeout_s)


@contextmanager
def head_node(state_dir: Path, log_dir: Path) -> Iterator[HeadNode]:
    """Start a head node with the dashboard on loopback and stop it on exit.

    The temp folder is short because Unix socket paths inside it are limited
    to 108 bytes by the kernel and to 97 by HAProxy.
    """
    temp_dir = Path(tempfile.mkdtemp(prefix="ltv-ray-", dir="/tmp"))
    token_path = temp_dir / "auth_token"
    token = secrets.token_hex(32)
    token_path.write_text(token)
    environment = node_environment(temp_dir, state_dir, token_path)
    dashboard_port = free_port()
    command = [
        str(BIN / "ray"), "start", "--head",
        "--node-ip-address", "127.0.0.1",
        "--port", str(free_port()),
        "--dashboard-host", "127.0.0.1",
        "--dashboard-port", str(dashboard_port),
        "--include-dashboard=true",
        "--ray-client-server-port", str(free_port()),
        "--dashboard-agent-listen-port", str(free_port()),
        "--temp-dir", str(temp_dir),
        "--disable-usage-stats",
        "--num-cpus", "2",
        "--block",
    ]  # fmt: skip
    log_path = log_dir / "ray-start.log"
    with log_path.open("wb") as log:
        # A new session lets the leftover check find every process Ray starts.
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    cli_env = {
        name: value for name, value in os.environ.items() if not name.startswith("RAY_")
    }
    cli_env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_path))
    node = HeadNode(
        process=process,
        temp_dir=temp_dir,
        log_path=log_path,
        dashboard_url=f"http://127.0.0.1:{dashboard_port}",
        api_url=f"http://127.0.0.1:{free_port()}",
        cli_env=cli_env,
        auth_headers={"Authorization": f"Bearer {token}"},
    )
    try:
        wait_for_dashboard(node)
        yield node
    finally:
        # Normally the test has stopped the node already. This covers a
        # failure half-way and ends by pid whatever a failed stop left.
        try:
            stop_node(node)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()
        for pid in wait_until_none(lambda: node_processes(node), timeout_s=5):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for_dashboard(node: HeadNode, timeout_s: float = 90) -> None:
    url = f"{node.dashboard_url}/api/serve/applications/"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise RuntimeError(f"ray start exited:\n{node.log_tail()}")
        try:
            if httpx.get(url, headers=node.auth_headers, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not return 200 in {timeout_s} s:\n{node.log_tail()}")


def serve_cli(node: HeadNode, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "serve"), *arguments, "--address", node.dashboard_url],
        check=False,
        cwd=ROOT,
        env=node.cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def app_status(node: HeadNode) -> str:
    """Return the application's status as `serve status` prints it."""
    result = serve_cli(node, "status")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["applications"][APP]["status"]


def deployment_details(node: HeadNode) -> dict:
    """Return the deployment's state from the dashboard's Serve REST API."""
    response = httpx.get(
        f"{node.dashboard_url}/api/serve/applications/",
        headers=node.auth_headers,
        timeout=10,
    )
    response.raise_for_status()
    application = response.json()["applications"][APP]
    return {
        "app_status": application["status"],
        **application["deployments"][DEPLOYMENT],
    }


def wait_for_user_config(node: HeadNode, user_config: dict, timeout_s: float = 60):
    """Poll until the deployment runs healthy with ``user_config``, then return it."""
    deadline = time.monotonic() + timeout_s
    details = deployment_details(node)
    while time.monotonic() < deadline:
        if (
            details["app_status"] == "RUNNING"
            and details["status"] == "HEALTHY"
            and details["deployment_config"]["user_config"] == user_config
        ):
            return details
        time.sleep(0.5)
        details = deployment_details(node)
    raise TimeoutError(f"{APP} did not apply {user_config} in {timeout_s} s: {details}")


def replica_ids(details: dict) -> dict[str, int]:
    return {replica["replica_id"]: replica["pid"] for replica in details["replicas"]}


def deployment_user_config(config_path: Path) -> dict:
    config = yaml.safe_load(config_path.read_text())
    (deployment,) = config["applications"][0]["deployments"]
    return deployment["user_config"]


def write_config(path: Path, http_port: int, user_config: dict | None = None) -> Path:
    """Copy serve_config.yaml with another HTTP port and, if given, user_config."""
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    config["http_options"]["port"] = http_port
    if user_config is not None:
        (deployment,) = config["applications"][0]["deployments"]
        deployment["user_config"] = user_config
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def registry_with_new_version(source: Settings, state_dir: Path) -> tuple[str, str]:
    """Copy the MLflow registry and register the champion's graph once more.

    Returns the champion's version and the new one. The alias stays where it
    was. The copy keeps the shared registry unchanged for other tests, and
    its model versions still point at the source's artifacts.
    """
    state_dir.mkdir(parents=True)
    with (
        sqlite3.connect(source.state_path / "mlflow.db") as original,
        sqlite3.connect(state_dir / "mlflow.db") as copy,
    ):
        original.backup(copy)
    settings = source.model_copy(update={"state_dir": state_dir})
    # Points this process's MLflow client at the copy, as train() and
    # export() point it at their own stores.
    configure_mlflow(settings)
    client = MlflowClient()
    champion = client.get_model_version_by_alias(
        settings.model_name, settings.model_alias
    )
    new = client.create_model_version(
        settings.model_name, champion.source, run_id=champion.run_id, tags=champion.tags
    )
    return str(champion.version), str(new.version)


class PredictLoop:
    """Send POST /predict back to back from a thread and record each result."""

    def __init__(self, url: str):
        self.url = url
        self.statuses: list[int | str] = []
        self.versions: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(self.url, json=USER)
                except httpx.TransportError as error:
                    self.statuses.append(type(error).__name__)
                    continue
                self.statuses.append(response.status_code)
                if response.status_code == 200:
                    self.versions.append(response.json()["model_version"])


def test_serve_deploy_update_and_teardown(serving_state, tmp_path):
    state_dir = tmp_path / "state"
    champion, pinned = registry_with_new_version(serving_state.settings, state_dir)

    with head_node(state_dir, tmp_path) as node:
        http_port = int(node.api_url.rsplit(":", 1)[1])

        # Deploy the checked-in config, on a free port.
        config = write_config(tmp_path / "serve_config.yaml", http_port)
        deployed = serve_cli(node, "deploy", str(config))
        assert deployed.returncode == 0, deployed.stderr
        wait_until_healthy(f"{node.api_url}/health", timeout_s=90)
        first = wait_for_user_config(node, deployment_user_config(config))
        assert app_status(node) == "RUNNING"
        response = httpx.post(f"{node.api_url}/predict", json=USER, timeout=10)
        assert response.status_code == 200
        assert response.json()["model_version"] == champion
        before = replica_ids(first)

        # Pin another model version and batch size, deploy again under traffic.
        user_config = {
            "model_uri": f"models:/{serving_state.settings.model_name}/{pinned}",
            "max_batch_size": 32,
            "batch_wait_timeout_s": 0.0005,
        }
        updated = write_config(tmp_path / "serve_config.yaml", http_port, user_config)
        with PredictLoop(f"{node.api_url}/predict") as traffic:
            time.sleep(1)
            redeployed = serve_cli(node, "deploy", str(updated))
            details = wait_for_user_config(node, user_config)
            time.sleep(1)
        assert redeployed.returncode == 0, redeployed.stderr
        assert traffic.statuses, "no request was sent during the update"
        failed = [status for status in traffic.statuses if status != 200]
        assert not failed, (
            f"{len(failed)} of {len(traffic.statuses)} failed: {failed[:5]}"
        )
        assert traffic.versions[0] == champion
        assert traffic.versions[-1] == pinned
        assert app_status(node) == "RUNNING"
        # The same replica processes serve the new config, so Serve applied it
        # through reconfigure() instead of replacing them.
        assert replica_ids(details) == before

        # The leftover check below must find the processes while they run.
        running = " ".join(node_processes(node).values())
        for name in ("gcs_server", "raylet", "ray::ServeReplica", "haproxy"):
            assert name in running, f"{name} not found among the node's processes"

        # Tear down: delete the application, then stop the node.
        shutdown = serve_cli(node, "shutdown", "-y")
        assert shutdown.returncode == 0, shutdown.stderr
        haproxy = wait_until_none(lambda: haproxy_processes(node), timeout_s=15)
        assert not haproxy, f"HAProxy still runs after serve shutdown: {haproxy}"
        press_ctrl_c(node)
        leftovers = wait_until_none(lambda: node_processes(node), timeout_s=10)
        assert not leftovers, f"processes left after the node stopped: {leftovers}"
