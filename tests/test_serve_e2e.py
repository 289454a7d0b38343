"""Train, export and serve on the real cohort, then compare over HTTP."""

import math

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from export.parity import ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE
from ltv.registry import configure_mlflow
from ltv.schema import EXAMPLE_USER, RAW_FIELDS, clean_frame
from training.data import load_users

pytestmark = [pytest.mark.real_data, pytest.mark.serve]

ROWS_TO_SEND = 300
EXAMPLE = EXAMPLE_USER


@pytest.fixture(scope="module")
def served(real_trained, serve_url):
    configure_mlflow(real_trained.settings)
    run_id = real_trained.trained.run_id
    native = mlflow.sklearn.load_model(f"runs:/{run_id}/model")
    return serve_url, native


def as_payload(row: pd.Series) -> dict:
    payload = {"user_id": row["user_id"]}
    for name in RAW_FIELDS:
        value = row[name]
        if isinstance(value, float) and math.isnan(value):
            value = None
        payload[name] = value.item() if hasattr(value, "item") else value
    return payload


def test_served_predictions_match_native(served, real_data):
    base_url, native = served
    users = load_users(real_data).sample(ROWS_TO_SEND, random_state=3)
    expected = native.predict(clean_frame(users))

    with httpx.Client(base_url=base_url, timeout=10) as client:
        served_values = []
        for _, row in users.iterrows():
            response = client.post("/predict", json=as_payload(row))
            assert response.status_code == 200, response.text
            served_values.append(response.json()["predicted_revenue"])

    served_values = np.array(served_values)
    abs_error = np.abs(served_values - expected)
    rel_error = abs_error / np.maximum(np.abs(expected), 1e-300)
    outside = (abs_error > ABSOLUTE_TOLERANCE) & (rel_error > RELATIVE_TOLERANCE)
    assert not outside.any(), f"rows {np.flatnonzero(outside)[:10]} differ"


def test_predict_example_payload(served):
    base_url, _ = served
    response = httpx.post(f"{base_url}/predict", json=EXAMPLE)
    assert response.status_code == 200
    body = response.json()
    assert math.isfinite(body["predicted_revenue"])
    assert body["predicted_revenue"] >= 0
    assert body["model_version"] == "1"
    assert body["inference_time_ms"] >= 0


def test_health_names_loaded_model(served):
    base_url, _ = served
    body = httpx.get(f"{base_url}/health").json()
    assert body == {"status": "ok", "model_name": "revenue-7d", "model_version": "1"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_2": -3}, "event_2"),
        ({"event_1": "lots"}, "event_1"),
        ({"event_2": None}, "event_2"),
        ({"country": "x" * 300}, "country"),
    ],
)
def test_predict_invalid_field_is_422(served, change, field):
    base_url, _ = served
    response = httpx.post(f"{base_url}/predict", json={**EXAMPLE, **change})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["details"][0]["field"] == field


def test_predict_malformed_json_is_4xx(served):
    base_url, _ = served
    response = httpx.post(
        f"{base_url}/predict",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500
    assert "error" in response.json()
