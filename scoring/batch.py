"""Validate and score one batch of cohort rows inside a Ray Data actor."""

import json
import logging
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
from pydantic import ValidationError

from ltv.schema import COUNT_FIELDS, RAW_FIELDS, UserFeatures
from serve.batching import columns_of
from serve.errors import validation_body
from serve.scorer import Scorer, open_session

logger = logging.getLogger(__name__)

PREDICTED = "predicted_revenue"
MODEL_VERSION = "model_version"
REASON = "reason"
ROW = "row"


def scored_schema(id_column: str, id_type: pa.DataType) -> pa.Schema:
    """Schema of a scored batch: a prediction, or a reason and the raw row."""
    return pa.schema(
        [
            (id_column, id_type),
            (PREDICTED, pa.float64()),
            (MODEL_VERSION, pa.string()),
            (REASON, pa.string()),
            (ROW, pa.string()),
        ]
    )


class CohortBatchScorer:
    """Score batches with one ONNX Runtime session, validating rows like the API.

    A row that fails ``UserFeatures`` validation, or has no id, gets the
    API's 422 message as its ``reason`` and its fields as JSON in ``row``,
    and the other rows of its batch are scored as usual.

    The API takes counts only as JSON numbers, but CSV has no number type.
    So in a count column of text, as every CSV column is read, a value that
    Python's ``float()`` reads becomes that number before validation, and
    any other text stays text for validation to reject.
    """

    def __init__(
        self,
        graph: bytes | ray.ObjectRef,
        model_name: str,
        model_version: str,
        id_column: str,
        id_type: pa.DataType,
    ):
        # An ObjectRef lets every actor fetch the graph from the object store,
        # so no worker needs MLflow or the driver's disk.
        if isinstance(graph, ray.ObjectRef):
            graph = ray.get(graph)
        uri = f"models:/{model_name}/{model_version}"
        self.scorer = Scorer(
            model_name, model_version, uri, open_session(graph, threads=1)
        )
        self.id_column = id_column
        self.schema = scored_schema(id_column, id_type)
        logger.info("scoring actor loaded %s", uri)

    def __call__(self, batch: pa.Table) -> pa.Table:
        ids = batch.column(self.id_column)
        fields = [name for name in batch.column_names if name in RAW_FIELDS]
        text_counts = [
            name
            for name in COUNT_FIELDS
            if name in fields and _is_text(batch.schema.field(name).type)
        ]
        rows = batch.select(fields).to_pylist()
        missing_id = _missing_ids(ids)

        users: list[UserFeatures] = []
        user_rows: list[int] = []
        reasons: list[str | None] = [None] * len(rows)
        for index, row in enumerate(rows):
            problems = [f"{self.id_column}: missing"] if missing_id[index] else []
            try:
                user = UserFeatures.model_validate(_with_numbers(row, text_counts))
            except ValidationError as error:
                problems.append(validation_body(error.errors())["message"])
            if problems:
                reasons[index] = "; ".join(problems)
            else:
                users.append(user)
                user_rows.append(index)

        predicted = np.full(len(rows), np.nan)
        if users:
            predicted[user_rows] = self._predict(users, user_rows, reasons)
        return self._table(ids, rows, predicted, reasons)

    def _predict(
        self, users: list[UserFeatures], user_rows: list[int], reasons: list
    ) -> np.ndarray:
        try:
            return self.scorer.predict(columns_of(users))
        except Exception:
            logger.exception(
                "batch of %d rows failed, scoring them one by one", len(users)
            )
        predicted = np.full(len(users), np.nan)
        for position, (user, index) in enumerate(zip(users, user_rows)):
            try:
                predicted[position] = self.scorer.predict(columns_of([user]))[0]
            # Any error in scoring one row becomes that row's reject reason.
            except Exception as error:  # noqa: BLE001
                reasons[index] = f"scoring failed: {type(error).__name__}: {error}"
        return predicted

    def _table(
        self,
        ids: pa.ChunkedArray,
        rows: list[dict[str, Any]],
        predicted: np.ndarray,
        reasons: list[str | None],
    ) -> pa.Table:
        rejected = [reason is not None for reason in reasons]
        raw_rows = [
            _row_json(self.id_column, ids[index].as_py(), rows[index]) if bad else None
            for index, bad in enumerate(rejected)
        ]
        version = self.scorer.version
        columns = [
            ids,
            pa.array(predicted, mask=np.array(rejected, dtype=bool)),
            pa.array([version] * len(rows), pa.string()),
            pa.array(reasons, pa.string()),
            pa.array(raw_rows, pa.string()),
        ]
        return pa.Table.from_arrays(columns, schema=self.schema)


def _missing_ids(ids: pa.ChunkedArray) -> np.ndarray:
    missing = ids.is_null()
    if _is_text(ids.type):
        missing = pc.or_kleene(missing, pc.equal(ids, ""))
    return missing.to_numpy(zero_copy_only=False)


def _is_text(data_type: pa.DataType) -> bool:
    return pa.types.is_string(data_type) or pa.types.is_large_string(data_type)


def _with_numbers(row: dict[str, Any], text_counts: list[str]) -> dict[str, Any]:
    if not text_counts:
        return row
    parsed = dict(row)
    for name in text_counts:
        text = row[name]
        try:
            parsed[name] = float(text) if text is not None else None
        except ValueError:
            pass
    return parsed


def _row_json(id_column: str, user_id: Any, row: dict[str, Any]) -> str:
    # default=str keeps values that JSON has no type for (dates, decimals).
    return json.dumps({id_column: user_id, **row}, default=str, ensure_ascii=False)
