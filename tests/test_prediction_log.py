"""The prediction log against real PostgreSQL and SQLite stores."""

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from ltv.schema import MAX_TEXT_LENGTH, UserFeatures
from serve.log_store import PostgresStore, SQLiteStore, StoreUnavailable
from serve.prediction_log import PredictionLog, PredictionRecord, now
from tests.throwaway_postgres import ThrowawayPostgres

SHARED_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def record(index: int, request_id: str = "req", **fields) -> PredictionRecord:
    user = UserFeatures(
        user_id=f"u{index}",
        country=fields.pop("country", "es"),
        platform=fields.pop("platform", "iOS"),
        event_1=0,
        event_2=index,
        **fields,
    )
    return PredictionRecord(
        request_id, now(), "revenue-7d", "1", "predict", None, user, index * 0.5, 1.0
    )


@pytest.fixture
def postgres_dsn():
    """A schema of its own in the shared test database, dropped afterwards."""
    schema = f"ltv_test_{uuid.uuid4().hex[:10]}"
    with psycopg2.connect(SHARED_POSTGRES) as connection, connection.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    yield f"{SHARED_POSTGRES}?options=-csearch_path%3D{schema}"
    with psycopg2.connect(SHARED_POSTGRES) as connection, connection.cursor() as cur:
        cur.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["postgres", "sqlite"])
def store(request, tmp_path):
    if request.param == "postgres":
        opened = PostgresStore(request.getfixturevalue("postgres_dsn"))
    else:
        opened = SQLiteStore(tmp_path / "predictions.db")
    yield opened
    opened.close()


def rows_of(store) -> list[dict]:
    if isinstance(store, SQLiteStore):
        import sqlite3

        connection = sqlite3.connect(store.path)
        connection.row_factory = sqlite3.Row
        rows = [dict(r) for r in connection.execute("SELECT * FROM predictions")]
        connection.close()
        return rows
    with psycopg2.connect(store.dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT * FROM predictions")
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_log_writes_one_row_per_record(store, tmp_path):
    log = PredictionLog(store, tmp_path / "spill.jsonl", flush_interval_s=0.05)
    log.record([record(0, "single")])
    log.record([record(i, "batch") for i in range(1, 250)])
    log.close()
    rows = rows_of(store)
    assert len(rows) == 250
    assert sum(row["request_id"] == "batch" for row in rows) == 249
    first = next(row for row in rows if row["request_id"] == "single")
    assert first["country"] == "es"
    assert first["platform"] == "ios"
    assert first["event_3"] is None
    assert first["predicted_revenue"] == 0.0


def test_log_stores_strings_verbatim(store, tmp_path):
    texts = [
        'o\'brien "quoted"',
        "x'); drop table predictions; --",
        "münchen 東京 🎮",
        "a" * MAX_TEXT_LENGTH,
    ]
    log = PredictionLog(store, tmp_path / "spill.jsonl", flush_interval_s=0.05)
    log.record([record(i, country=text) for i, text in enumerate(texts)])
    log.close()
    stored = {row["user_id"]: row["country"] for row in rows_of(store)}
    assert [stored[f"u{i}"] for i in range(len(texts))] == texts


def test_stats_report_figures_and_window(store, tmp_path):
    log = PredictionLog(store, tmp_path / "spill.jsonl", flush_interval_s=0.05)
    log.record([record(i, platform="Android" if i % 4 else "iOS") for i in range(8)])
    log.flush()
    stats = store.stats(None)
    assert stats["total_predictions"] == 8
    assert stats["predictions_by_model_version"] == [
        {"model_name": "revenue-7d", "model_version": "1", "predictions": 8}
    ]
    assert stats["predicted_revenue"] == {"mean": 1.75, "min": 0.0, "max": 3.5}
    assert stats["inference_time_ms"]["p99"] == 1.0
    assert stats["top_countries"] == [{"country": "es", "predictions": 8}]
    assert {"platform": "android", "predictions": 6} in stats["platforms"]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert store.stats(future)["total_predictions"] == 0


def test_postgres_store_down_raises_unavailable():
    from tests.serving import free_port

    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    with pytest.raises(StoreUnavailable):
        store.write([])
    with pytest.raises(StoreUnavailable):
        store.stats(None)


@pytest.fixture
def throwaway_postgres():
    server = ThrowawayPostgres()
    server.start()
    yield server
    server.remove()


def test_outage_loses_and_repeats_nothing(throwaway_postgres, tmp_path):
    spill = tmp_path / "spill.jsonl"
    store = PostgresStore(throwaway_postgres.dsn)
    # A small memory bound forces rows through the spill file during the outage.
    log = PredictionLog(store, spill, flush_interval_s=0.05, max_pending_rows=100)
    sent = 0
    stop = threading.Event()

    def traffic() -> None:
        nonlocal sent
        while not stop.is_set():
            started = time.perf_counter()
            log.record([record(sent + i, f"r{sent}") for i in range(5)])
            sent += 5
            assert time.perf_counter() - started < 0.01
            time.sleep(0.005)

    sender = threading.Thread(target=traffic)
    sender.start()
    time.sleep(1)
    throwaway_postgres.stop()
    time.sleep(2)
    assert not log.available
    throwaway_postgres.start()
    time.sleep(2)
    stop.set()
    sender.join()
    log.close()

    with psycopg2.connect(throwaway_postgres.dsn) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), count(DISTINCT user_id) FROM predictions")
            total, distinct = cursor.fetchone()
    print(f"outage test: sent {sent} rows, stored {total}, distinct {distinct}")
    assert total == sent
    assert distinct == sent
    assert spill.stat().st_size == 0


def test_close_with_store_down_keeps_rows_in_spill(tmp_path):
    from tests.serving import free_port

    spill = tmp_path / "spill.jsonl"
    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    log = PredictionLog(store, spill, flush_interval_s=0.05)
    log.record([record(i) for i in range(7)])
    log.close()
    assert len(spill.read_text().splitlines()) == 7

    sqlite = SQLiteStore(tmp_path / "later.db")
    PredictionLog(sqlite, spill, flush_interval_s=0.05).close()
    assert len(rows_of(sqlite)) == 7
