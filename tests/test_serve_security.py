"""Keys, rate limits, body limits and bad input against the running service."""

import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ltv.schema import EXAMPLE_USER
from tests.conftest import SECURE_KEY, SECURE_KEY_ID

pytestmark = pytest.mark.serve

KEY = SECURE_KEY
LIMITED_ENV = {"RATE_LIMIT_PER_S": "1", "RATE_LIMIT_BURST": "3"}


@pytest.fixture(scope="module")
def limited_url(serve_url):
    from ray import serve as ray_serve

    from tests.serving import deploy_revenue, wait_until_healthy

    deploy_revenue("limited", "/limited", env_vars=LIMITED_ENV)
    wait_until_healthy(f"{serve_url}/limited/health")
    yield f"{serve_url}/limited"
    ray_serve.delete("limited")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_json_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] and body["message"]
    return body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/predict"),
        ("POST", "/batch_predict"),
        ("GET", "/stats"),
        ("GET", "/model/info"),
        ("GET", "/openapi.json"),
        ("GET", "/v2/models/revenue-7d"),
        ("POST", "/v2/models/revenue-7d/infer"),
    ],
)
def test_protected_endpoint_without_key_is_401(secure_url, method, path):
    response = httpx.request(method, f"{secure_url}{path}", json=EXAMPLE_USER)
    assert_json_error(response, 401)


@pytest.mark.parametrize("key", ["wrong", KEY + "x", KEY[:-1], f"{KEY} {KEY}"])
def test_wrong_key_is_401(secure_url, key):
    response = httpx.post(
        f"{secure_url}/predict", json=EXAMPLE_USER, headers=bearer(key)
    )
    assert_json_error(response, 401)


@pytest.mark.parametrize(
    "path", ["/health", "/ready", "/v2/health/live", "/v2/health/ready"]
)
def test_health_endpoints_need_no_key(secure_url, path):
    assert httpx.get(f"{secure_url}{path}").status_code == 200


def test_predict_with_key_logs_key_id_not_key(secure_url, serving_state):
    from tests.test_serve_log import logged_rows

    headers = {**bearer(KEY), "X-Request-ID": "secure-predict"}
    response = httpx.post(f"{secure_url}/predict", json=EXAMPLE_USER, headers=headers)
    assert response.status_code == 200, response.text
    batch = {"users": [EXAMPLE_USER] * 2}
    headers["X-Request-ID"] = "secure-batch"
    response = httpx.post(f"{secure_url}/batch_predict", json=batch, headers=headers)
    assert response.status_code == 200, response.text

    state = serving_state.settings.state_path
    assert logged_rows(state, "secure-predict", 1) == 1
    assert logged_rows(state, "secure-batch", 2) == 2
    connection = sqlite3.connect(state / "predictions.db")
    key_ids = connection.execute(
        "SELECT DISTINCT api_key_id FROM predictions "
        "WHERE request_id IN ('secure-predict', 'secure-batch')"
    ).fetchall()
    connection.close()
    assert key_ids == [(SECURE_KEY_ID,)]


def test_key_appears_in_no_log_or_file(secure_url, serving_state):
    import ray

    for _ in range(3):
        httpx.post(f"{secure_url}/predict", json=EXAMPLE_USER, headers=bearer(KEY))
        httpx.post(f"{secure_url}/predict", json={"event_1": -1}, headers=bearer(KEY))
    time.sleep(1)

    session_dir = Path(ray._private.worker._global_node.get_session_dir_path())
    places = [session_dir / "logs", serving_state.settings.state_path]
    for folder in places:
        for path in folder.rglob("*"):
            if path.is_file() and path.stat().st_size < 200_000_000:
                assert KEY.encode() not in path.read_bytes(), path


def test_body_over_limit_is_413(secure_url):
    users = [EXAMPLE_USER] * 6000
    response = httpx.post(
        f"{secure_url}/batch_predict", json={"users": users}, headers=bearer(KEY)
    )
    assert_json_error(response, 413)


def test_chunked_body_over_limit_is_413(secure_url):
    body = json.dumps({"users": [EXAMPLE_USER] * 6000}).encode()
    assert len(body) > 1_000_000
    chunks = (body[start : start + 65536] for start in range(0, len(body), 65536))
    response = httpx.post(
        f"{secure_url}/batch_predict",
        content=chunks,
        headers={**bearer(KEY), "content-type": "application/json"},
    )
    assert_json_error(response, 413)


def test_openapi_declares_bearer_key(secure_url):
    document = httpx.get(f"{secure_url}/openapi.json", headers=bearer(KEY)).json()
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert document["paths"]["/health"]["get"]["security"] == []


def test_rate_limit_answers_429_with_retry_after(limited_url):
    statuses = []
    retry_after = None
    with httpx.Client(timeout=10) as client:
        for _ in range(6):
            response = client.post(f"{limited_url}/predict", json=EXAMPLE_USER)
            statuses.append(response.status_code)
            if response.status_code == 429:
                retry_after = response.headers.get("retry-after")
                assert_json_error(response, 429)
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses
    assert retry_after is not None and int(retry_after) >= 1


def test_rate_limit_spares_health_checks(limited_url):
    assert {httpx.get(f"{limited_url}/health").status_code for _ in range(8)} == {200}


def test_rate_limit_refills(limited_url):
    time.sleep(3.5)
    response = httpx.post(f"{limited_url}/predict", json=EXAMPLE_USER)
    assert response.status_code == 200


def nested(depth: int) -> bytes:
    return b'{"event_1": 1, "event_2": 1, "x": ' + b"[" * depth + b"]" * depth + b"}"


BAD_BODIES = {
    "invalid JSON": (b'{"event_1": 1,', 422),
    "string count": (b'{"event_1": 1, "event_2": "12"}', 422),
    "boolean count": (b'{"event_1": 1, "event_2": true}', 422),
    "list for object": (b"[1, 2]", 422),
    "object for count": (b'{"event_1": 1, "event_2": {"n": 1}}', 422),
    "missing count": (b'{"event_1": 1}', 422),
    "null count": (b'{"event_1": 1, "event_2": null}', 422),
    "NaN literal": (b'{"event_1": 1, "event_2": NaN}', 422),
    "Infinity literal": (b'{"event_1": 1, "event_2": Infinity}', 422),
    "negative count": (b'{"event_1": 1, "event_2": -3}', 422),
    "count beyond float32": (b'{"event_1": 1, "event_2": 1e39}', 422),
    "huge integer": (b'{"event_1": 1, "event_2": 1' + b"0" * 5000 + b"}", 422),
    "text too long": (
        b'{"event_1": 1, "event_2": 1, "country": "' + b"x" * 257 + b'"}',
        422,
    ),
    "number for text": (b'{"event_1": 1, "event_2": 1, "country": 5}', 422),
    "empty body": (b"", 422),
    "null body": (b"null", 422),
    "invalid UTF-8": (b'{"event_1": 1, "event_2": 1, "country": "\xff\xfe"}', 422),
    "lone surrogate": (b'{"event_1": 1, "event_2": 1, "country": "\\ud800"}', 422),
    "deep nesting": (nested(100_000), 422),
    "empty strings": (
        b'{"event_1": 1, "event_2": 1, "country": "", "platform": ""}',
        200,
    ),
    "control characters": (
        b'{"event_1": 1, "event_2": 1, "country": "e\\u0000s\\n"}',
        200,
    ),
    "unicode": (
        b'{"event_1": 1, "event_2": 1, "country_region": "\xc3\x85land \xf0\x9f\x8e\xae"}',
        200,
    ),
    "extra fields": (b'{"event_1": 1, "event_2": 1, "extra": {"a": [1, 2]}}', 200),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
@pytest.mark.parametrize("path", ["/predict", "/batch_predict"])
def test_bad_input_gets_json_answer(serve_url, path, case):
    body, status = BAD_BODIES[case]
    if path == "/batch_predict" and body.startswith(b"{"):
        body = b'{"users": [' + body + b"]}"
    response = httpx.post(
        f"{serve_url}{path}",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    if status == 200:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
    else:
        assert_json_error(response, status)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "image/png"]
)
def test_wrong_content_type_is_415(serve_url, content_type):
    response = httpx.post(
        f"{serve_url}/predict",
        content=json.dumps(EXAMPLE_USER),
        headers={"content-type": content_type},
    )
    assert_json_error(response, 415)


def test_service_keeps_serving_after_bad_input(serve_url):
    """A burst of valid requests after all the bad ones: no stuck batch queue."""
    assert httpx.get(f"{serve_url}/ready").status_code == 200

    def predict(_: int) -> int:
        return httpx.post(
            f"{serve_url}/predict", json=EXAMPLE_USER, timeout=10
        ).status_code

    with ThreadPoolExecutor(32) as pool:
        assert set(pool.map(predict, range(200))) == {200}


E1 = {"name": "event_1", "datatype": "FP32", "shape": [1], "data": [1]}
E2 = {"name": "event_2", "datatype": "FP32", "shape": [1], "data": [1]}
V2_BAD_REQUESTS = {
    "datatype a list": {"inputs": [{**E1, "datatype": []}, E2]},
    "datatype an object": {"inputs": [{**E1, "datatype": {}}, E2]},
    "parameters a list": {"inputs": [{**E1, "parameters": [1]}, E2]},
    "parameters a string": {"inputs": [{**E1, "parameters": "x"}, E2]},
    "id a number": {"id": 5, "inputs": [E1, E2]},
    "id too long": {"id": "i" * 129, "inputs": [E1, E2]},
    "too many rows": {
        "inputs": [
            {**E1, "shape": [51], "data": [1] * 51},
            {**E2, "shape": [51], "data": [1] * 51},
        ]
    },
}


@pytest.mark.parametrize("case", sorted(V2_BAD_REQUESTS))
def test_v2_malformed_request_is_4xx(serve_url, case):
    response = httpx.post(
        f"{serve_url}/v2/models/revenue-7d/infer", json=V2_BAD_REQUESTS[case]
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["message"]


def test_v2_deeply_nested_id_is_4xx(serve_url):
    body = '{"id": ' + "[" * 1020 + "1" + "]" * 1020 + ', "inputs": []}'
    response = httpx.post(
        f"{serve_url}/v2/models/revenue-7d/infer",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text


def test_long_request_id_is_422(serve_url):
    headers = {"X-Request-ID": "r" * 129}
    response = httpx.post(f"{serve_url}/predict", json=EXAMPLE_USER, headers=headers)
    assert_json_error(response, 422)


def test_error_messages_cut_echoed_names(serve_url):
    response = httpx.get(f"{serve_url}/v2/models/{'m' * 4000}")
    body = assert_json_error(response, 404)
    assert len(body["message"]) < 200


def test_stats_since_with_offset_is_converted_to_utc(serve_url):
    everything = httpx.get(f"{serve_url}/stats").json()["total_predictions"]
    # 2000-01-01T05:00+05:00 is midnight UTC: every row is later.
    since = "2000-01-01T05:00:00+05:00"
    response = httpx.get(f"{serve_url}/stats", params={"since": since})
    assert response.json()["total_predictions"] >= everything
    # 20:00-05:00 on 9999-12-30 is 9999-12-31T01:00 UTC: no row is later.
    future = httpx.get(
        f"{serve_url}/stats", params={"since": "9999-12-30T20:00:00-05:00"}
    )
    assert future.json()["total_predictions"] == 0


@pytest.mark.parametrize(
    "since", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "yesterday"]
)
def test_stats_since_out_of_range_is_422(serve_url, since):
    response = httpx.get(f"{serve_url}/stats", params={"since": since})
    assert_json_error(response, 422)


def test_head_on_health_is_200(serve_url):
    assert httpx.head(f"{serve_url}/health").status_code == 200


def test_http2_early_answer_does_not_desync_next_request(secure_url):
    """A response sent before the body is read must not leave body bytes on a
    proxy's reused backend connection, where they would become a request."""
    import shutil
    import subprocess

    curl = shutil.which("curl")
    if (
        curl is None
        or "HTTP2"
        not in subprocess.run(
            [curl, "--version"], capture_output=True, text=True, check=True
        ).stdout
    ):
        pytest.skip("curl with HTTP/2 is not installed")

    statuses = []
    for _ in range(15):
        subprocess.run(
            [
                curl,
                "-s",
                "-o",
                "/dev/null",
                "--http2-prior-knowledge",
                f"{secure_url}/predict",
                "-H",
                "content-type: application/json",
                "-d",
                json.dumps(EXAMPLE_USER),
            ],
            check=False,
            timeout=10,
        )
        statuses.append(httpx.get(f"{secure_url}/health").status_code)
    assert set(statuses) == {200}
