import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from export.register import export
from ltv.schema import clean_frame
from training.data import load_users
from training.model import RevenueModel
from training.train import FINGERPRINT_TAG, train


@pytest.fixture
def sample_frame(sample_data):
    raw = load_users(sample_data)
    return clean_frame(raw), raw["revenue"].to_numpy()


def test_revenue_model_fits_sample(sample_frame):
    features, revenue = sample_frame
    model = RevenueModel(params={"n_estimators": 50}).fit(features, revenue)
    predicted = model.predict(features)
    assert predicted.shape == revenue.shape
    assert np.isfinite(predicted).all()
    assert (predicted >= 0).all()


def test_train_logs_run_with_metrics(sample_settings):
    result = train(sample_settings)
    run = MlflowClient(sample_settings.tracking_uri).get_run(result.run_id)
    for name in ("valid_mae", "valid_rmse", "valid_r2", "valid_spearman"):
        assert name in run.data.metrics
    assert run.data.params["data_rows"] == "4000"
    assert len(run.data.params["data_sha256"]) == 64
    assert run.data.tags[FINGERPRINT_TAG] == result.fingerprint


def test_train_skips_when_champion_is_current(sample_settings):
    first = train(sample_settings)
    export(sample_settings)
    again = train(sample_settings)
    assert again.skipped
    assert again.fingerprint == first.fingerprint


def test_train_force_retrains(sample_settings):
    train(sample_settings)
    export(sample_settings)
    assert not train(sample_settings, force=True).skipped


def test_train_without_data_uses_generated_sample(tmp_path):
    from tests.conftest import make_settings

    settings = make_settings(tmp_path / "state", None, sample_rows=2000)
    result = train(settings)
    assert not result.skipped
    assert list((tmp_path / "state").glob("sample-2000-*.csv"))
