import os
from pathlib import Path

import pytest

from ltv.sample import ensure_sample
from ltv.settings import Settings

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
    return Settings(
        state_dir=state_dir,
        revenue_data=data,
        mlflow_tracking_uri=None,
        **overrides,
    )


@pytest.fixture
def sample_settings(tmp_path, sample_data) -> Settings:
    return make_settings(tmp_path / "state", sample_data)
