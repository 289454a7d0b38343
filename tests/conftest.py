import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

# Serve's mode is read from the environment when Ray is imported, so it is
# set before any test module imports Ray: HAProxy in front of the replicas'
# direct ingress, as `make serve` runs it, with its own ports on loopback.
from tests.serving import free_port

os.environ.setdefault("RAY_worker_niceness", "0")
os.environ.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "1")
os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
os.environ.setdefault("RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S", "30")
os.environ.setdefault("RAY_SERVE_HAPROXY_STATS_PORT", str(free_port()))
os.environ.setdefault("RAY_SERVE_HAPROXY_METRICS_PORT", str(free_port()))

import pytest

from export.register import ExportResult, export
from ltv.sample import ensure_sample
from ltv.settings import Settings
from training.train import TrainResult, train

SAMPLE_ROWS = 4000


def real_data_path() -> Path:
    """Return REVENUE_DATA; skip without it, fail if it names a missing file.

    CI sets REVENUE_DATA, so a wrong path fails the run instead of skipping
    the real-data tests without notice.
    """
    value = os.environ.get("REVENUE_DATA")
    if not value:
        pytest.skip("REVENUE_DATA is not set")
    path = Path(value).expanduser().resolve()
    if not path.is_file():
        pytest.fail(f"REVENUE_DATA={value} is not a file")
    return path


@pytest.fixture(scope="session")
def real_data() -> Path:
    return real_data_path()


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sample")
    return ensure_sample(folder / "users.csv", rows=SAMPLE_ROWS, seed=7)


def make_settings(state_dir: Path, data: Path | None, **overrides) -> Settings:
    """Settings for a private MLflow store; CV is cut to 2 folds unless overridden."""
    values = {"cv_folds": 2, "cv_repeats": 1, **overrides}
    return Settings(
        state_dir=state_dir, revenue_data=data, mlflow_tracking_uri=None, **values
    )


@pytest.fixture
def sample_settings(tmp_path, sample_data) -> Settings:
    return make_settings(tmp_path / "state", sample_data)


@dataclass
class TrainedOnRealData:
    settings: Settings
    trained: TrainResult
    exported: ExportResult


@pytest.fixture(scope="session")
def real_trained(tmp_path_factory, real_data) -> TrainedOnRealData:
    """Train with the full 5 x 2 cross-validation on the real cohort, once."""
    state_dir = tmp_path_factory.mktemp("real-state")
    settings = make_settings(state_dir, real_data, cv_folds=5, cv_repeats=2)
    trained = train(settings)
    return TrainedOnRealData(settings, trained, export(settings))


@pytest.fixture(scope="session")
def serving_state(tmp_path_factory, sample_data, request) -> TrainedOnRealData:
    """The registry to serve from: the real cohort's when REVENUE_DATA is set."""
    if os.environ.get("REVENUE_DATA"):
        return request.getfixturevalue("real_trained")
    state_dir = tmp_path_factory.mktemp("sample-state")
    settings = make_settings(state_dir, sample_data)
    trained = train(settings)
    return TrainedOnRealData(settings, trained, export(settings))


@pytest.fixture(scope="session")
def serve_url(serving_state):
    """Base URL of Serve on loopback, with the revenue application at /."""
    from tests.serving import deploy_revenue, running_serve, wait_until_healthy

    with running_serve(serving_state.settings.state_path) as base_url:
        deploy_revenue("revenue", "/")
        wait_until_healthy(f"{base_url}/health")
        yield base_url


SECURE_KEY = "test-key-3c9f1e7a52"
SECURE_KEY_ID = "test-client"


@pytest.fixture(scope="session")
def secure_url(serve_url, tmp_path_factory):
    """The revenue application at /secure, with API keys and a 1 MB body limit.

    The keys file contains digests only: a key in ``runtime_env`` would be
    written to Ray's runtime environment agent log.
    """
    from tests.serving import deploy_revenue, wait_until_healthy

    keys = tmp_path_factory.mktemp("keys") / "api-keys"
    digests = [hashlib.sha256(k.encode()).hexdigest() for k in (SECURE_KEY, "k2")]
    keys.write_text(f"{digests[0]} {SECURE_KEY_ID}\n{digests[1]}\n")
    env = {"API_KEYS_FILE": str(keys), "MAX_BODY_BYTES": "1000000"}
    deploy_revenue("secure", "/secure", env_vars=env)
    wait_until_healthy(f"{serve_url}/secure/health")
    return f"{serve_url}/secure"
