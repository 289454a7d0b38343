"""Behaviour of the fitted model: invariance, direction, minimum functionality.

Each check runs on the native model and on its compiled ONNX graph.
"""

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from export.onnx_graph import compile_model
from export.parity import onnx_inputs
from ltv.schema import (
    CATEGORICAL_FIELDS,
    EXAMPLE_USER,
    clean_frame,
    feature_frame_from_users,
)
from training.data import load_users
from training.model import RevenueModel

BASE_USER = {**EXAMPLE_USER, "event_1": 0, "event_2": 40, "event_3": 2.0}


class Predictors:
    def __init__(self, model: RevenueModel):
        self.model = model
        self.session = ort.InferenceSession(compile_model(model).SerializeToString())

    def native(self, users: list[dict]) -> np.ndarray:
        return self.model.predict(feature_frame_from_users(users))

    def onnx(self, users: list[dict]) -> np.ndarray:
        features = feature_frame_from_users(users)
        (output,) = self.session.run(None, onnx_inputs(features))
        return output.ravel().astype(np.float64)

    def both(self, users: list[dict]) -> dict[str, np.ndarray]:
        return {"native": self.native(users), "onnx": self.onnx(users)}


@pytest.fixture(scope="module")
def predictors(sample_data) -> Predictors:
    raw = load_users(sample_data)
    model = RevenueModel(params={"n_estimators": 150}).fit(
        clean_frame(raw), raw["revenue"].to_numpy()
    )
    return Predictors(model)


def spellings(value: str) -> list[str]:
    return [value, value.upper(), value.lower(), f"  {value} ", f"\t{value.title()}"]


@pytest.mark.parametrize("field", CATEGORICAL_FIELDS)
def test_letter_case_and_spaces_do_not_change_prediction(predictors, field):
    users = [{**BASE_USER, field: text} for text in spellings(BASE_USER[field])]
    for engine, predicted in predictors.both(users).items():
        assert np.ptp(predicted) == 0, f"{engine}: {predicted}"


def test_null_event_3_gives_finite_prediction(predictors):
    users = [{**BASE_USER, "event_3": None}]
    for engine, predicted in predictors.both(users).items():
        assert np.isfinite(predicted).all(), engine
        assert (predicted >= 0).all(), engine


@pytest.mark.parametrize("field", ["event_1", "event_2"])
def test_null_event_native_and_onnx_agree(predictors, field):
    # The API rejects these with 422; the compiled graph must still agree.
    users = [{**BASE_USER, field: None}]
    predicted = predictors.both(users)
    np.testing.assert_allclose(predicted["onnx"], predicted["native"], rtol=1e-4)


@pytest.mark.parametrize(
    "user",
    [
        BASE_USER,
        {**BASE_USER, "country": "fr", "platform": "Android"},
        {**BASE_USER, "country": "pe", "event_3": 0.0},
        {**BASE_USER, "country": "never-seen", "event_3": None},
    ],
)
def test_more_event_2_never_predicts_less(predictors, user):
    grid = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
    users = [{**user, "event_2": count} for count in grid]
    for engine, predicted in predictors.both(users).items():
        steps = np.diff(predicted)
        assert (steps >= -1e-9 * predicted[1:]).all(), f"{engine}: {predicted}"


@pytest.mark.parametrize("country", ["es", "fr", "mx", "us"])
def test_zero_events_predict_near_zero(predictors, country):
    user = {**BASE_USER, "country": country, "event_1": 0, "event_2": 0, "event_3": 0}
    for engine, predicted in predictors.both([user]).items():
        assert predicted[0] < 0.01, engine


@pytest.mark.parametrize(
    "change",
    [
        {"country": "zz"},
        {"country_region": "Atlantis"},
        {"device_family": "Acme Phone X1"},
        {"country": "zz", "country_region": "Atlantis", "device_family": "Acme X1"},
        {"os_version": "99.1"},
    ],
)
def test_unseen_values_predict_finite_non_negative(predictors, change):
    for engine, predicted in predictors.both([{**BASE_USER, **change}]).items():
        assert np.isfinite(predicted).all(), engine
        assert (predicted >= 0).all(), engine


def test_unseen_device_scored_like_its_brand(predictors):
    known = predictors.native([{**BASE_USER, "device_family": "Apple iPhone"}])
    unseen = predictors.native([{**BASE_USER, "device_family": "Apple iPhone17,1"}])
    assert unseen[0] == pytest.approx(known[0], rel=0.5)


def test_sample_rows_predict_no_nan(predictors, sample_data):
    raw = load_users(sample_data).head(500)
    predicted = predictors.model.predict(clean_frame(raw))
    assert not pd.isna(predicted).any()
