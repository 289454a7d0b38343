import os
from dataclasses import dataclass
from pathlib import Path

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
