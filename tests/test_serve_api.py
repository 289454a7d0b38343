"""The HTTP API of the running Serve application, on loopback."""

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from ltv.schema import EXAMPLE_USER

pytestmark = pytest.mark.serve

USER = EXAMPLE_USER


@pytest.fixture(scope="module")
def client(serve_url):
    with httpx.Client(base_url=serve_url, timeout=10) as http:
        yield http


def assert_json_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str)
    assert isinstance(body["message"], str)
    return body


def test_predict_returns_request_id_from_header(client):
    response = client.post("/predict", json=USER, headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    assert response.json()["request_id"] == "abc-123"


def test_predict_generates_request_id(client):
    assert client.post("/predict", json=USER).json()["request_id"]


def test_predict_accepts_user_id_and_extra_fields(client):
    response = client.post("/predict", json={**USER, "user_id": "1d5189a4", "x": [1]})
    assert response.status_code == 200


def test_predict_rejects_non_json_content_type(client):
    response = client.post(
        "/predict", content=b"{}", headers={"content-type": "text/plain"}
    )
    assert_json_error(response, 415)


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b"null", b'"text"', b'{"event_1": NaN, "event_2": 1}', b""],
)
def test_predict_rejects_malformed_body(client, body):
    response = client.post(
        "/predict", content=body, headers={"content-type": "application/json"}
    )
    assert_json_error(response, 422)


def test_batch_predict_keeps_input_order(client):
    users = [{**USER, "event_2": count} for count in (0, 5, 50, 500)]
    single = [
        client.post("/predict", json=u).json()["predicted_revenue"] for u in users
    ]
    response = client.post("/batch_predict", json={"users": users})
    assert response.status_code == 200
    body = response.json()
    assert body["total_users"] == 4
    batched = [p["predicted_revenue"] for p in body["predictions"]]
    np.testing.assert_allclose(batched, single, rtol=1e-6)
    assert body["model_version"]
    assert body["inference_time_ms"] >= 0


def test_batch_predict_names_index_and_field(client):
    users = [USER, USER, {**USER, "event_2": -1}]
    body = assert_json_error(client.post("/batch_predict", json={"users": users}), 422)
    assert body["details"][0]["field"] == "users.2.event_2"


def test_batch_predict_rejects_empty_list(client):
    assert_json_error(client.post("/batch_predict", json={"users": []}), 422)


def test_batch_predict_rejects_more_than_maximum(client):
    # The test server sets MAX_BATCH_USERS=50.
    users = [USER] * 51
    body = assert_json_error(client.post("/batch_predict", json={"users": users}), 422)
    assert "50" in body["message"]


def test_health_and_ready(client):
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready").json()
    assert ready["status"] == "ready"
    assert ready["model_name"] == "revenue-7d"


def test_model_info_reports_training_and_parity(client):
    info = client.get("/model/info").json()
    assert info["model_name"] == "revenue-7d"
    assert len(info["training_data"]["sha256"]) == 64
    assert info["training_data"]["rows"] > 0
    assert "device_brand" in info["features"]
    assert info["objective"] == "tweedie"
    assert info["model_form"].startswith("tweedie rate x exposure")
    assert {"mean", "std"} <= set(info["cv_metrics"]["mae"])
    assert info["parity"]["passed"] is True
    assert info["parity"]["failed_rows"] == 0


def test_openapi_documents_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/predict", "/batch_predict", "/model/info", "/health", "/ready"):
        assert path in paths
    assert client.get("/docs").status_code == 200


def test_unknown_path_is_json_404(client):
    assert_json_error(client.get("/nope"), 404)


def test_wrong_method_is_json_405(client):
    assert_json_error(client.get("/predict"), 405)


def test_v2_health_and_metadata(client):
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/health/live").json() == {"live": True}
    metadata = client.get("/v2/models/revenue-7d").json()
    assert [i["name"] for i in metadata["inputs"]][:2] == ["country", "country_region"]
    assert metadata["outputs"][0]["datatype"] == "FP32"
    assert_json_error(client.get("/v2/models/other-model"), 404)


def triton_inputs(users: list[dict], binary: bool) -> list:
    inputs = []
    for name in (
        "country",
        "country_region",
        "source",
        "platform",
        "device_family",
        "os_version",
    ):
        values = np.array([[u[name].encode()] for u in users], dtype=np.object_)
        tensor = triton.InferInput(name, list(values.shape), "BYTES")
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    for name in ("event_1", "event_2", "event_3"):
        values = np.array([[u[name]] for u in users], dtype=np.float32)
        tensor = triton.InferInput(name, list(values.shape), "FP32")
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("binary", [False, True])
def test_v2_infer_with_triton_client_matches_predict(client, serve_url, binary):
    users = [USER, {**USER, "country": "fr", "event_2": 7}]
    expected = [
        client.post("/predict", json=u).json()["predicted_revenue"] for u in users
    ]
    triton_client = triton.InferenceServerClient(serve_url.removeprefix("http://"))
    assert triton_client.is_server_ready()
    result = triton_client.infer(
        "revenue-7d",
        triton_inputs(users, binary),
        outputs=[triton.InferRequestedOutput("predicted_revenue", binary_data=False)],
    )
    predicted = result.as_numpy("predicted_revenue").ravel()
    np.testing.assert_allclose(predicted, expected, rtol=1e-6)


@pytest.mark.parametrize(
    "inputs",
    [
        [{"name": "event_2", "datatype": "FP32", "shape": [1], "data": [1]}],
        [{"name": "nope", "datatype": "FP32", "shape": [1], "data": [1]}],
        [
            {"name": "event_1", "datatype": "FP32", "shape": [1], "data": [-1]},
            {"name": "event_2", "datatype": "FP32", "shape": [1], "data": [1]},
        ],
        [
            {"name": "event_1", "datatype": "FP32", "shape": [2], "data": [1, 2]},
            {"name": "event_2", "datatype": "FP32", "shape": [1], "data": [1]},
        ],
        [
            {"name": "country", "datatype": "FP32", "shape": [1], "data": [1]},
            {"name": "event_1", "datatype": "FP32", "shape": [1], "data": [1]},
            {"name": "event_2", "datatype": "FP32", "shape": [1], "data": [1]},
        ],
    ],
)
def test_v2_infer_rejects_invalid_inputs(client, inputs):
    response = client.post("/v2/models/revenue-7d/infer", json={"inputs": inputs})
    assert 400 <= response.status_code < 500
    assert "message" in response.json()


def test_v2_infer_deeply_nested_data_is_4xx(client):
    # 990 levels: deep enough for RecursionError in a recursive flatten,
    # within orjson's nesting limit of 1,024.
    nested = "[" * 990 + "1.0" + "]" * 990
    body = '{"inputs": [{"name": "event_1", "datatype": "FP32", "shape": [1], "data": '
    body += nested + "}]}"
    response = client.post(
        "/v2/models/revenue-7d/infer",
        content=body.encode(),
        headers={"content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500
