"""API keys, the token bucket and the body limit, on a bare ASGI app."""

import hashlib
import logging

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from ltv.settings import Settings
from serve.security import (
    KEY_ID_SCOPE,
    ApiKeys,
    GuardConfig,
    KeyFileError,
    RateLimiter,
    RequestGuard,
    read_key_file,
)

KEY = "k-7f3a9c"
OTHER_KEY = "k-b2e1d4"
KEY_ID = hashlib.sha256(KEY.encode()).hexdigest()[:12]


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse(
        {"key_id": request.scope.get(KEY_ID_SCOPE), "body_bytes": len(body)}
    )


class Ref:
    guard: GuardConfig | None = None


def guarded_client(**settings) -> TestClient:
    ref = Ref()
    ref.guard = GuardConfig.from_settings(Settings(**settings))
    routes = [
        Route(path, echo, methods=["GET", "POST"])
        for path in ("/predict", "/health", "/ready", "/v2/health/live", "/docs")
    ]
    app = RequestGuard(Starlette(routes=routes), ref)
    return TestClient(app, base_url="http://127.0.0.1")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_api_keys_identify_listed_key_by_digest_prefix():
    keys = ApiKeys.from_settings(Settings(api_keys=f"{KEY}, {OTHER_KEY}"))
    assert keys.identify(f"Bearer {KEY}") == KEY_ID


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", f"Basic {KEY}", f"Bearer {KEY}x", KEY],
)
def test_api_keys_reject_missing_or_wrong_value(authorization):
    keys = ApiKeys.from_settings(Settings(api_keys=KEY))
    assert keys.identify(authorization) is None


def test_api_keys_scheme_is_case_insensitive():
    keys = ApiKeys.from_settings(Settings(api_keys=KEY))
    assert keys.identify(f"bearer {KEY}") == KEY_ID


def test_api_keys_unset_means_open():
    assert ApiKeys.from_settings(Settings(api_keys="")) is None


def test_key_file_uses_label_as_key_id(tmp_path):
    path = tmp_path / "keys"
    other_digest = hashlib.sha256(OTHER_KEY.encode()).hexdigest()
    path.write_text(
        f"# comment\n\n{hashlib.sha256(KEY.encode()).hexdigest()} studio-a\n"
        f"{other_digest.upper()}\n"
    )
    keys = ApiKeys.from_settings(Settings(api_keys_file=path))
    assert keys.identify(f"Bearer {KEY}") == "studio-a"
    assert keys.identify(f"Bearer {OTHER_KEY}") == other_digest[:12]


@pytest.mark.parametrize("line", ["not-hex", "abcd", KEY])
def test_key_file_rejects_non_digest_line(tmp_path, line):
    path = tmp_path / "keys"
    path.write_text(line + "\n")
    with pytest.raises(KeyFileError, match="line 1"):
        read_key_file(path)


def test_key_file_missing_is_a_clear_error(tmp_path):
    with pytest.raises(KeyFileError, match="API_KEYS_FILE"):
        read_key_file(tmp_path / "absent")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_allows_burst_then_reports_wait():
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire("a") == pytest.approx(0.5)


def test_rate_limiter_refills_at_rate():
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=1, clock=clock)
    assert limiter.acquire("a") == 0
    clock.now += 0.5
    assert limiter.acquire("a") == 0


def test_rate_limiter_keeps_clients_apart():
    limiter = RateLimiter(rate=1, burst=1, clock=Clock())
    assert limiter.acquire("a") == 0
    assert limiter.acquire("b") == 0
    assert limiter.acquire("a") > 0


def test_rate_limiter_denied_requests_do_not_pile_up():
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=1, clock=clock)
    limiter.acquire("a")
    for _ in range(100):
        limiter.acquire("a")
    clock.now += 1
    assert limiter.acquire("a") == 0


def test_guard_without_key_is_401_with_json_error():
    response = guarded_client(api_keys=KEY).post("/predict", json={})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


def test_guard_with_key_passes_key_id_to_app():
    client = guarded_client(api_keys=KEY)
    response = client.post("/predict", json={}, headers=bearer(KEY))
    assert response.json()["key_id"] == KEY_ID


@pytest.mark.parametrize("path", ["/health", "/ready", "/v2/health/live"])
def test_guard_leaves_health_paths_open(path):
    assert guarded_client(api_keys=KEY).get(path).status_code == 200


def test_guard_protects_docs():
    assert guarded_client(api_keys=KEY).get("/docs").status_code == 401


def test_guard_answers_429_with_retry_after():
    client = guarded_client(api_keys=KEY, rate_limit_per_s=0.5, rate_limit_burst=2)
    statuses = [
        client.post("/predict", json={}, headers=bearer(KEY)).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    response = client.post("/predict", json={}, headers=bearer(KEY))
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"] == "too_many_requests"


def test_guard_limits_each_key_separately():
    client = guarded_client(
        api_keys=f"{KEY},{OTHER_KEY}", rate_limit_per_s=0.1, rate_limit_burst=1
    )
    assert client.post("/predict", headers=bearer(KEY)).status_code == 200
    assert client.post("/predict", headers=bearer(OTHER_KEY)).status_code == 200
    assert client.post("/predict", headers=bearer(KEY)).status_code == 429


def test_guard_limits_by_trusted_header_without_keys():
    client = guarded_client(
        rate_limit_per_s=0.1,
        rate_limit_burst=1,
        rate_limit_client_header="X-Forwarded-For",
    )
    first = {"X-Forwarded-For": "10.0.0.9, 192.0.2.1"}
    second = {"X-Forwarded-For": "10.0.0.9, 192.0.2.2"}
    assert client.post("/predict", headers=first).status_code == 200
    assert client.post("/predict", headers=second).status_code == 200
    assert client.post("/predict", headers=first).status_code == 429


def test_guard_does_not_limit_health_checks():
    client = guarded_client(rate_limit_per_s=0.1, rate_limit_burst=1)
    assert {client.get("/health").status_code for _ in range(5)} == {200}


def test_guard_rejects_declared_oversized_body_with_413():
    client = guarded_client(max_body_bytes=100)
    response = client.post("/predict", content=b"x" * 101)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_guard_counts_chunked_body():
    client = guarded_client(max_body_bytes=100)
    chunks = iter([b"x" * 60, b"x" * 60])
    response = client.post("/predict", content=chunks)
    assert response.status_code == 413


def test_guard_passes_chunked_body_within_limit():
    client = guarded_client(max_body_bytes=100)
    response = client.post("/predict", content=iter([b"x" * 50, b"x" * 50]))
    assert response.json()["body_bytes"] == 100


def test_guard_without_config_is_503():
    app = RequestGuard(Starlette(routes=[Route("/predict", echo)]), Ref())
    assert TestClient(app).get("/predict").status_code == 503


def test_open_service_logs_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="ray.serve"):
        GuardConfig.from_settings(Settings()).log_summary()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_key_never_appears_in_logs_or_settings(caplog):
    settings = Settings(api_keys=KEY, rate_limit_per_s=5)
    with caplog.at_level(logging.DEBUG):
        GuardConfig.from_settings(settings).log_summary()
    assert KEY not in caplog.text
    assert KEY not in repr(settings)


def test_guard_early_answers_close_connection():
    response = guarded_client(api_keys=KEY).post("/predict", json={})
    assert response.headers["connection"] == "close"


def test_guard_rejects_long_request_id():
    client = guarded_client()
    response = client.post("/predict", headers={"X-Request-ID": "r" * 129})
    assert response.status_code == 422


def test_guard_hands_whole_body_to_app():
    client = guarded_client(max_body_bytes=1000)
    response = client.post("/predict", content=b"x" * 999)
    assert response.json()["body_bytes"] == 999
