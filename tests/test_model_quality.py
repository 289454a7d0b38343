"""Cross-validated quality of the served model on the real cohort."""

import pytest

pytestmark = pytest.mark.real_data

REFERENCE = "reference_take_home"
CHOSEN = "lgbm_tweedie_exposure"


def test_cv_mae_at_most_third_of_reference(real_trained):
    summaries = real_trained.trained.candidates
    chosen = summaries[CHOSEN]["cv_mae_mean"]
    reference = summaries[REFERENCE]["cv_mae_mean"]
    assert chosen <= reference / 3, f"MAE {chosen:.4g} vs reference {reference:.4g}"


def test_cv_spearman_at_least_0_97(real_trained):
    assert real_trained.trained.metrics["cv_spearman_mean"] >= 0.97


def test_cv_r2_at_least_0_90(real_trained):
    assert real_trained.trained.metrics["cv_r2_mean"] >= 0.90


def test_cv_uses_five_folds_twice(real_trained):
    run_metrics = real_trained.trained.metrics
    assert "cv_normalized_gini_mean" in run_metrics
    assert real_trained.settings.cv_folds * real_trained.settings.cv_repeats >= 10


def test_served_model_is_chosen_candidate(real_trained):
    from mlflow.tracking import MlflowClient

    uri = real_trained.settings.tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("revenue-7d", "champion")
    assert version.run_id == real_trained.trained.run_id
    run = client.get_run(version.run_id)
    assert run.data.tags["ltv.chosen_candidate"] == CHOSEN
