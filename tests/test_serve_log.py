"""Every served prediction lands in the prediction log; /stats reads it."""

import sqlite3
import threading
import time

import httpx
import psycopg2
import pytest

pytestmark = pytest.mark.serve

USER = {"country": "es", "platform": "iOS", "event_1": 0, "event_2": 20, "event_3": 1}


def logged_rows(state_path, request_id: str, expected: int, timeout_s: float = 10):
    """Poll the replica's SQLite log until ``expected`` rows have the request id."""
    deadline = time.monotonic() + timeout_s
    count = -1
    while time.monotonic() < deadline:
        connection = sqlite3.connect(state_path / "predictions.db")
        count = connection.execute(
            "SELECT count(*) FROM predictions WHERE request_id = ?", (request_id,)
        ).fetchone()[0]
        connection.close()
        if count >= expected:
            break
        time.sleep(0.1)
    return count


def test_predict_logs_one_row(serve_url, serving_state):
    headers = {"X-Request-ID": "log-single"}
    assert httpx.post(f"{serve_url}/predict", json=USER, headers=headers).is_success
    assert logged_rows(serving_state.settings.state_path, "log-single", 1) == 1


def test_batch_rows_share_request_id(serve_url, serving_state):
    headers = {"X-Request-ID": "log-batch"}
    body = {"users": [USER] * 4}
    assert httpx.post(f"{serve_url}/batch_predict", json=body, headers=headers)
    assert logged_rows(serving_state.settings.state_path, "log-batch", 4) == 4


def test_stats_counts_new_predictions(serve_url, serving_state):
    before = httpx.get(f"{serve_url}/stats").json()["total_predictions"]
    headers = {"X-Request-ID": "log-stats"}
    for _ in range(3):
        httpx.post(f"{serve_url}/predict", json=USER, headers=headers)
    logged_rows(serving_state.settings.state_path, "log-stats", 3)
    stats = httpx.get(f"{serve_url}/stats").json()
    assert stats["total_predictions"] >= before + 3
    assert stats["inference_time_ms"]["p99"] > 0
    assert stats["top_countries"][0]["country"] == "es"


def test_stats_since_future_is_empty(serve_url):
    response = httpx.get(f"{serve_url}/stats", params={"since": "2999-01-01T00:00:00Z"})
    assert response.json()["total_predictions"] == 0


def test_stats_rejects_invalid_since(serve_url):
    response = httpx.get(f"{serve_url}/stats", params={"since": "yesterday"})
    assert response.status_code == 422


def test_database_down_keeps_predictions_and_503s_stats(serve_url):
    from ray import serve as ray_serve

    from tests.serving import deploy_revenue, free_port, wait_until_healthy

    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    deploy_revenue("deadlog", "/deadlog", env_vars={"DATABASE_URL": dead})
    try:
        wait_until_healthy(f"{serve_url}/deadlog/health")
        for _ in range(5):
            response = httpx.post(f"{serve_url}/deadlog/predict", json=USER)
            assert response.status_code == 200
        stats = httpx.get(f"{serve_url}/deadlog/stats", timeout=10)
        assert stats.status_code == 503
        assert stats.json()["error"] == "log_unavailable"
    finally:
        ray_serve.delete("deadlog")


def test_graceful_delete_flushes_queued_rows(serve_url, serving_state):
    from ray import serve as ray_serve

    from tests.serving import deploy_revenue, wait_until_healthy

    deploy_revenue("restartlog", "/restartlog")
    wait_until_healthy(f"{serve_url}/restartlog/health")
    headers = {"X-Request-ID": "log-restart"}
    body = {"users": [USER] * 50}
    response = httpx.post(
        f"{serve_url}/restartlog/batch_predict", json=body, headers=headers
    )
    assert response.status_code == 200
    # The delete starts within the writer's 200 ms flush interval, so rows
    # may still be queued; either way all 50 are stored once it returns.
    ray_serve.delete("restartlog")
    assert logged_rows(serving_state.settings.state_path, "log-restart", 50, 2) == 50


def test_postgres_outage_loses_nothing(serve_url):
    from ray import serve as ray_serve

    from tests.serving import deploy_revenue, wait_until_healthy
    from tests.throwaway_postgres import ThrowawayPostgres

    database = ThrowawayPostgres()
    database.start()
    deploy_revenue("pglog", "/pglog", env_vars={"DATABASE_URL": database.dsn})
    statuses: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                response = client.post(f"{serve_url}/pglog/predict", json=USER)
                statuses.append(response.status_code)

    try:
        wait_until_healthy(f"{serve_url}/pglog/health")
        sender = threading.Thread(target=traffic)
        sender.start()
        time.sleep(2)
        database.stop()
        time.sleep(3)
        database.start()
        time.sleep(3)
        stop.set()
        sender.join()
        ray_serve.delete("pglog")

        with psycopg2.connect(database.dsn) as connection:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*), count(DISTINCT id) FROM predictions")
                stored, distinct = cursor.fetchone()
    finally:
        stop.set()
        database.remove()

    print(f"service outage test: {len(statuses)} predictions, {stored} rows")
    assert set(statuses) == {200}
    assert stored == len(statuses)
    assert distinct == stored
