"""Record every prediction off the request path, losing none in an outage.

The request path only appends to an in-memory deque. A writer thread takes
the rows every ``flush_interval_s`` and writes them in batches. While the
store is down, rows wait in memory up to ``max_pending_rows`` and then move
to an append-only spill file. When the store is back, the spill file is
written first and memory after it, so rows arrive in order. Rows carry a
unique id and the stores skip ids they already have, so a retried batch is
stored once.
"""

import collections
import fcntl
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from ltv.schema import UserFeatures, clean_category
from serve.log_store import Store, StoreUnavailable

logger = logging.getLogger("ray.serve")

WRITE_BATCH_ROWS = 5000


@dataclass(frozen=True)
class PredictionRecord:
    """Prediction data from the request path; the writer thread builds the row."""

    request_id: str
    created_at: datetime
    model_name: str
    model_version: str
    endpoint: str
    api_key_id: str | None
    user: UserFeatures
    predicted_revenue: float
    inference_time_ms: float


def to_row(record: PredictionRecord) -> tuple:
    user = record.user
    return (
        uuid.uuid4().hex,
        record.request_id,
        record.created_at,
        record.model_name,
        record.model_version,
        record.endpoint,
        record.api_key_id,
        user.user_id,
        clean_category(user.country),
        clean_category(user.country_region),
        clean_category(user.source),
        clean_category(user.platform),
        clean_category(user.device_family),
        user.os_version.strip() if user.os_version is not None else None,
        user.event_1,
        user.event_2,
        user.event_3,
        record.predicted_revenue,
        record.inference_time_ms,
    )


def _encode(row: tuple) -> bytes:
    return orjson.dumps([*row[:2], row[2].isoformat(), *row[3:]]) + b"\n"


def _decode(line: bytes) -> tuple:
    values = orjson.loads(line)
    values[2] = datetime.fromisoformat(values[2])
    return tuple(values)


class PredictionLog:
    def __init__(
        self,
        store: Store,
        spill_path: Path,
        flush_interval_s: float = 0.2,
        max_pending_rows: int = 100_000,
    ):
        self.store = store
        self.spill_path = spill_path
        self.flush_interval_s = flush_interval_s
        self.max_pending_rows = max_pending_rows
        # NOTE: this deque has no bound of its own; the writer empties it every
        # flush interval, and only rows moved to _pending count towards
        # max_pending_rows. A stalled writer thread would let it grow.
        self._incoming: collections.deque[PredictionRecord] = collections.deque()
        self._pending: list[tuple] = []
        self._outage_started: float | None = None
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="prediction-log-writer", daemon=True
        )
        self._thread.start()

    def record(self, records: list[PredictionRecord]) -> None:
        """Queue records without blocking or touching the database."""
        self._incoming.extend(records)

    @property
    def available(self) -> bool:
        return self._outage_started is None

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the writer after a last flush; spill what the store cannot take."""
        self._stop.set()
        self._thread.join(timeout_s)
        self.flush()
        if self._pending:
            self._spill(self._pending)
            logger.warning(
                "prediction log closed with the store down; %d rows kept in %s",
                len(self._pending),
                self.spill_path,
            )
            self._pending = []
        self.store.close()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            try:
                self.flush()
            except Exception:
                logger.exception("prediction log writer failed; retrying")

    def _take_incoming(self) -> list[tuple]:
        rows = []
        while self._incoming:
            rows.append(to_row(self._incoming.popleft()))
        return rows

    def flush(self) -> None:
        """Write what is queued now, as the writer thread would."""
        with self._flush_lock:
            self._flush()

    def _flush(self) -> None:
        self._pending.extend(self._take_incoming())
        if not self._pending and not self._has_spill():
            return
        written = 0
        try:
            written += self._write_spill()
            while self._pending:
                batch = self._pending[:WRITE_BATCH_ROWS]
                self.store.write(batch)
                del self._pending[: len(batch)]
                written += len(batch)
        except StoreUnavailable as error:
            self._on_outage(error)
            if len(self._pending) > self.max_pending_rows:
                self._spill(self._pending)
                self._pending = []
            return
        self._on_recovery(written)

    def _on_outage(self, error: StoreUnavailable) -> None:
        if self._outage_started is None:
            self._outage_started = time.monotonic()
            logger.error(
                "prediction log store unavailable; keeping rows in memory, then "
                "in %s: %s",
                self.spill_path,
                error,
            )

    def _on_recovery(self, written: int) -> None:
        if self._outage_started is None:
            return
        logger.warning(
            "prediction log store back after a %.1f s outage; wrote %d delayed rows",
            time.monotonic() - self._outage_started,
            written,
        )
        self._outage_started = None

    def _has_spill(self) -> bool:
        return self.spill_path.exists() and self.spill_path.stat().st_size > 0

    # Replicas share one spill file, so appends and the replay-then-truncate
    # step each hold an exclusive lock on it.
    def _spill(self, rows: list[tuple]) -> None:
        self.spill_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spill_path.open("ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.writelines(_encode(row) for row in rows)

    def _write_spill(self) -> int:
        if not self._has_spill():
            return 0
        with self.spill_path.open("r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            rows = [_decode(line) for line in handle if line.strip()]
            for start in range(0, len(rows), WRITE_BATCH_ROWS):
                self.store.write(rows[start : start + WRITE_BATCH_ROWS])
            # Every spilled row is stored now. Ids make a repeat harmless if
            # the process dies between the write and this truncation.
            handle.truncate(0)
        if rows:
            logger.info("wrote %d spilled prediction rows", len(rows))
        return len(rows)


def now() -> datetime:
    return datetime.now(UTC)
