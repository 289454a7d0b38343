"""Prediction log stores: PostgreSQL (production) and an embedded SQLite file."""

import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg2
import psycopg2.extras

SCHEMA = (Path(__file__).parent / "sql" / "predictions.sql").read_text()
COLUMNS = (
    "id",
    "request_id",
    "created_at",
    "model_name",
    "model_version",
    "endpoint",
    "api_key_id",
    "user_id",
    "country",
    "country_region",
    "source",
    "platform",
    "device_family",
    "os_version",
    "event_1",
    "event_2",
    "event_3",
    "predicted_revenue",
    "inference_time_ms",
)
PERCENTILES = (0.50, 0.95, 0.99)
TOP_COUNTRIES = 10


class StoreUnavailable(ConnectionError):
    """The database cannot be reached or rejected the write."""


class Store(Protocol):
    def write(self, rows: list[tuple]) -> None: ...

    def stats(self, since: datetime | None) -> dict[str, Any]: ...

    def close(self) -> None: ...


def _summary(
    total: int,
    versions: list[tuple],
    revenue: tuple,
    percentiles: list[float | None],
    countries: list[tuple],
    platforms: list[tuple],
    since: datetime | None,
) -> dict[str, Any]:
    return {
        "since": since.isoformat() if since else None,
        "total_predictions": total,
        "predictions_by_model_version": [
            {"model_name": name, "model_version": version, "predictions": count}
            for name, version, count in versions
        ],
        "predicted_revenue": {"mean": revenue[0], "min": revenue[1], "max": revenue[2]},
        "inference_time_ms": {
            f"p{round(q * 100)}": value
            for q, value in zip(PERCENTILES, percentiles, strict=True)
        },
        "top_countries": [{"country": c, "predictions": n} for c, n in countries],
        "platforms": [{"platform": p, "predictions": n} for p, n in platforms],
    }


class PostgresStore:
    """Writes with ``execute_values``; a row already stored is skipped by id."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self._connection = None
        self._lock = threading.Lock()

    def _connect(self):
        if self._connection is None or self._connection.closed:
            try:
                self._connection = psycopg2.connect(self.dsn, connect_timeout=3)
                with self._connection, self._connection.cursor() as cursor:
                    cursor.execute(SCHEMA)
            except psycopg2.Error as error:
                self._connection = None
                raise StoreUnavailable(str(error).strip()) from error
        return self._connection

    def _run(self, action):
        with self._lock:
            connection = self._connect()
            try:
                with connection, connection.cursor() as cursor:
                    return action(cursor)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
                connection.close()
                raise StoreUnavailable(str(error).strip()) from error

    def write(self, rows: list[tuple]) -> None:
        statement = (
            f"INSERT INTO predictions ({', '.join(COLUMNS)}) VALUES %s "
            "ON CONFLICT (id) DO NOTHING"
        )
        self._run(
            lambda cursor: psycopg2.extras.execute_values(
                cursor, statement, rows, page_size=1000
            )
        )

    def stats(self, since: datetime | None) -> dict[str, Any]:
        window = "WHERE created_at >= %s" if since else ""
        parameters = (since,) if since else ()

        def query(cursor) -> dict[str, Any]:
            cursor.execute(
                "SELECT count(*), avg(predicted_revenue), min(predicted_revenue), "
                "max(predicted_revenue), percentile_cont(%s) WITHIN GROUP "
                f"(ORDER BY inference_time_ms) FROM predictions {window}",
                (list(PERCENTILES), *parameters),
            )
            total, mean, low, high, percentiles = cursor.fetchone()
            groups = []
            for sql in (
                "SELECT model_name, model_version, count(*) FROM predictions "
                f"{window} GROUP BY 1, 2 ORDER BY 3 DESC",
                f"SELECT country, count(*) FROM predictions {window} "
                f"GROUP BY 1 ORDER BY 2 DESC LIMIT {TOP_COUNTRIES}",
                f"SELECT platform, count(*) FROM predictions {window} "
                "GROUP BY 1 ORDER BY 2 DESC",
            ):
                cursor.execute(sql, parameters)
                groups.append(cursor.fetchall())
            return _summary(
                total,
                groups[0],
                (mean, low, high),
                percentiles or [None] * len(PERCENTILES),
                groups[1],
                groups[2],
                since,
            )

        return self._run(query)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()


class SQLiteStore:
    """An embedded file, so the service logs with no database server."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(path, check_same_thread=False, timeout=10)
        with self._lock, self._connection:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.executescript(SCHEMA)

    def write(self, rows: list[tuple]) -> None:
        marks = ", ".join("?" for _ in COLUMNS)
        statement = (
            f"INSERT OR IGNORE INTO predictions ({', '.join(COLUMNS)}) VALUES ({marks})"
        )
        rows = [(*row[:2], row[2].isoformat(), *row[3:]) for row in rows]
        try:
            with self._lock, self._connection:
                self._connection.executemany(statement, rows)
        except sqlite3.OperationalError as error:
            raise StoreUnavailable(str(error)) from error

    def stats(self, since: datetime | None) -> dict[str, Any]:
        window = "WHERE created_at >= ?" if since else ""
        parameters = (since.isoformat(),) if since else ()
        with self._lock:
            cursor = self._connection.cursor()
            total, mean, low, high = cursor.execute(
                "SELECT count(*), avg(predicted_revenue), min(predicted_revenue), "
                f"max(predicted_revenue) FROM predictions {window}",
                parameters,
            ).fetchone()
            percentiles = []
            for q in PERCENTILES:
                offset = max(0, int(round(q * (total - 1)))) if total else 0
                row = cursor.execute(
                    f"SELECT inference_time_ms FROM predictions {window} "
                    "ORDER BY inference_time_ms LIMIT 1 OFFSET ?",
                    (*parameters, offset),
                ).fetchone()
                percentiles.append(row[0] if row else None)
            versions = cursor.execute(
                "SELECT model_name, model_version, count(*) FROM predictions "
                f"{window} GROUP BY 1, 2 ORDER BY 3 DESC",
                parameters,
            ).fetchall()
            countries = cursor.execute(
                f"SELECT country, count(*) FROM predictions {window} "
                f"GROUP BY 1 ORDER BY 2 DESC LIMIT {TOP_COUNTRIES}",
                parameters,
            ).fetchall()
            platforms = cursor.execute(
                f"SELECT platform, count(*) FROM predictions {window} "
                "GROUP BY 1 ORDER BY 2 DESC",
                parameters,
            ).fetchall()
        return _summary(
            total, versions, (mean, low, high), percentiles, countries, platforms, since
        )

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def open_store(database_url: str | None, sqlite_path: Path) -> Store:
    if database_url:
        return PostgresStore(database_url)
    return SQLiteStore(sqlite_path)
