"""Ray Serve application: HTTP API in front of an ONNX Runtime scorer.

``serve run serve_config.yaml`` starts it. The config's ``user_config``
names the model URI and the batching settings; changing it reconfigures the
running replicas in place. Each replica also polls the model alias and
switches to a new version when the alias moves.
"""

import asyncio
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import numpy as np
import ray
from fastapi import FastAPI, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import ORJSONResponse
from mlflow.tracking import MlflowClient
from ray import serve

from ltv.schema import UserFeatures, clean_columns
from ltv.settings import get_settings
from serve import v2
from serve.api import (
    BatchPredictResponse,
    ErrorResponse,
    HealthResponse,
    PredictResponse,
    batch_request_model,
)
from serve.batching import (
    DEFAULT_BATCH_WAIT_S,
    DEFAULT_MAX_BATCH_SIZE,
    BatchScorer,
    columns_of,
)
from serve.errors import ServiceError, install_error_handlers, shorten
from serve.fastpath import PredictFastPath
from serve.log_store import StoreUnavailable, open_store
from serve.metrics import MetricsMiddleware, ServiceMetrics
from serve.prediction_log import PredictionLog, PredictionRecord, now
from serve.scorer import Scorer, describe, load_scorer, resolve_version
from serve.security import KEY_ID_SCOPE, OPEN_PATHS, GuardConfig, RequestGuard

logger = logging.getLogger("ray.serve")

SETTINGS = get_settings()
BatchPredictRequest = batch_request_model(SETTINGS.max_batch_users)
ERRORS = {
    status: {"model": ErrorResponse} for status in (400, 401, 413, 415, 422, 429, 503)
}
NOT_FOUND = {404: {"model": ErrorResponse}}
READINESS_USER = UserFeatures(event_1=0, event_2=1)
SINCE = Query(
    None,
    description="Only predictions at or after this ISO 8601 time; UTC if it "
    "has no offset.",
    json_schema_extra={"format": "date-time"},
)
V2_INFER_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "id": {"type": "string"},
                    "inputs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "shape", "datatype", "data"],
                            "properties": {
                                "name": {"type": "string"},
                                "shape": {
                                    "type": "array",
                                    "items": {"type": "integer"},
                                },
                                "datatype": {"type": "string"},
                                "data": {"type": "array"},
                            },
                        },
                    },
                },
            }
        }
    },
}


class ReplicaRef:
    """The replica's service object, for middleware built before it exists."""

    service: "RevenueService | None" = None
    metrics: ServiceMetrics | None = None
    guard: GuardConfig | None = None


replica = ReplicaRef()
api = FastAPI(
    title="7-day revenue prediction",
    description="Predicts each user's revenue in the first 7 days after install.",
    version="0.2.0",
    default_response_class=ORJSONResponse,
    responses=ERRORS,
)
install_error_handlers(api)
# Starlette puts the middleware added last outermost: metrics see every
# response, and the key, rate and size checks run before the fast path.
api.add_middleware(PredictFastPath, replica=replica)
api.add_middleware(RequestGuard, ref=replica)
api.add_middleware(MetricsMiddleware, service_metrics=replica)


def _openapi() -> dict[str, Any]:
    """Return the OpenAPI document, with the bearer key on all but the open paths."""
    if api.openapi_schema is None:
        schema = get_openapi(
            title=api.title,
            version=api.version,
            description=api.description,
            routes=api.routes,
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "apiKey": {"type": "http", "scheme": "bearer"}
        }
        schema["security"] = [{"apiKey": []}]
        for path in OPEN_PATHS:
            for operation in schema["paths"].get(path, {}).values():
                operation["security"] = []
        api.openapi_schema = schema
    return api.openapi_schema


api.openapi = _openapi


def _replica_cpus() -> int:
    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    except RuntimeError:
        cpus = 1
    return max(1, int(cpus))


def _parse_time(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        # The log stores UTC times, and SQLite compares them as text.
        if parsed.tzinfo:
            return parsed.astimezone(UTC)
        return parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        # OverflowError: a time near year 1 or 9999 whose offset moves it
        # outside the years datetime supports.
        raise ServiceError(
            422,
            "invalid_request",
            f"{name}: expected an ISO 8601 time such as 2026-12-01T00:00:00Z, "
            "between years 1 and 9999 in UTC",
        ) from None


def _request_id(request: Request) -> str:
    return request.headers.get("x-request-id") or uuid.uuid4().hex


@serve.deployment
@serve.ingress(api)
class RevenueService:
    def __init__(self) -> None:
        self.settings = get_settings()
        self.metrics = ServiceMetrics()
        replica.metrics = self.metrics
        guard = GuardConfig.from_settings(self.settings)
        guard.log_summary()
        replica.guard = guard
        self.model_uri = self.settings.champion_uri
        self.scorer: Scorer = self._load(self.model_uri)
        self.batcher = BatchScorer(lambda: self.scorer, self.metrics.observe_batch)
        self.prediction_log = self._open_prediction_log()
        # /stats scans the whole log: one at a time, on a thread of its own,
        # so a burst of them cannot hold the threads that batches run on.
        self._stats_lock = asyncio.Lock()
        self._stats_thread = ThreadPoolExecutor(1, thread_name_prefix="stats")
        self._poller: asyncio.Task | None = None
        if self.settings.model_poll_interval_s > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll_alias())
        replica.service = self

    def _open_prediction_log(self) -> PredictionLog | None:
        if not self.settings.prediction_log:
            logger.warning("prediction log is off (PREDICTION_LOG=0)")
            return None
        state = self.settings.state_path
        store = open_store(self.settings.database_url, state / "predictions.db")
        return PredictionLog(
            store,
            state / "predictions-spill.jsonl",
            max_pending_rows=self.settings.prediction_log_max_rows,
        )

    def _record(
        self,
        endpoint: str,
        request_id: str,
        api_key_id: str | None,
        scorer: Scorer,
        users: list[UserFeatures],
        predicted: list[float],
        inference_time_ms: float,
    ) -> None:
        if self.prediction_log is None:
            return
        created_at = now()
        self.prediction_log.record(
            [
                PredictionRecord(
                    request_id,
                    created_at,
                    scorer.name,
                    scorer.version,
                    endpoint,
                    api_key_id,
                    user,
                    value,
                    inference_time_ms,
                )
                for user, value in zip(users, predicted, strict=True)
            ]
        )

    def __del__(self) -> None:
        # Serve calls this when the replica shuts down: flush the log.
        log = getattr(self, "prediction_log", None)
        if log is not None:
            log.close()

    def _load(self, model_uri: str) -> Scorer:
        scorer = load_scorer(self.settings, model_uri, _replica_cpus())
        self.metrics.model_version.set(
            float(scorer.version), tags={"model_name": scorer.name}
        )
        return scorer

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply ``user_config``: the model URI and the batching settings.

        Serve calls this at start and whenever ``user_config`` changes. A
        model URI that resolves to the loaded version is not loaded again.
        """
        self.batcher.configure(
            int(config.get("max_batch_size", DEFAULT_MAX_BATCH_SIZE)),
            float(config.get("batch_wait_timeout_s", DEFAULT_BATCH_WAIT_S)),
        )
        self.model_uri = config.get("model_uri") or self.settings.champion_uri
        await self._swap_if_changed()

    async def _swap_if_changed(self) -> None:
        name, version = await asyncio.to_thread(
            resolve_version, MlflowClient(self.settings.tracking_uri), self.model_uri
        )
        current = self.scorer
        if (name, version) == (current.name, current.version):
            return
        # Requests already holding the old scorer finish on it; new batches
        # pick up the new one, so the swap fails no request.
        self.scorer = await asyncio.to_thread(self._load, self.model_uri)
        logger.info("switched %s from version %s to %s", name, current.version, version)

    async def _poll_alias(self) -> None:
        while True:
            await asyncio.sleep(self.settings.model_poll_interval_s)
            try:
                await self._swap_if_changed()
            except Exception:
                logger.exception("checking %s for a new version failed", self.model_uri)

    async def predict_user(
        self, user: UserFeatures, request_id: str | None, api_key_id: str | None
    ) -> dict[str, Any]:
        """Score one user; shared by the route and ``PredictFastPath``."""
        started = time.perf_counter()
        scorer = self.scorer
        predicted = await self.batcher.score_one(user)
        elapsed_ms = (time.perf_counter() - started) * 1000
        request_id = request_id or uuid.uuid4().hex
        self._record(
            "predict", request_id, api_key_id, scorer, [user], [predicted], elapsed_ms
        )
        return {
            "predicted_revenue": predicted,
            "model_version": scorer.version,
            "inference_time_ms": elapsed_ms,
            "request_id": request_id,
        }

    @api.post("/predict", response_model=PredictResponse)
    async def predict(self, user: UserFeatures, request: Request) -> ORJSONResponse:
        """Predict one user's 7-day revenue.

        Requests normally take ``PredictFastPath``, which has the same
        validation, errors and response; this route documents them.
        """
        payload = await self.predict_user(
            user, request.headers.get("x-request-id"), request.scope.get(KEY_ID_SCOPE)
        )
        return ORJSONResponse(payload)

    @api.post("/batch_predict", response_model=BatchPredictResponse)
    async def batch_predict(
        self, body: BatchPredictRequest, request: Request
    ) -> ORJSONResponse:
        """Predict many users in one call; predictions keep the input order."""
        scorer = self.scorer
        started = time.perf_counter()
        predicted = await asyncio.to_thread(scorer.predict, columns_of(body.users))
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.metrics.observe_batch(len(predicted), predicted)
        values = predicted.tolist()
        request_id = _request_id(request)
        api_key_id = request.scope.get(KEY_ID_SCOPE)
        self._record(
            "batch_predict",
            request_id,
            api_key_id,
            scorer,
            body.users,
            values,
            elapsed_ms,
        )
        return ORJSONResponse(
            {
                "predictions": [{"predicted_revenue": p} for p in values],
                "total_users": len(values),
                "model_version": scorer.version,
                "inference_time_ms": elapsed_ms,
                "request_id": request_id,
            }
        )

    @api.api_route("/health", methods=["GET", "HEAD"], response_model=HealthResponse)
    async def health(self) -> dict[str, str]:
        """Liveness: the replica responds, with the model it has loaded."""
        scorer = self.scorer
        return {
            "status": "ok",
            "model_name": scorer.name,
            "model_version": scorer.version,
        }

    @api.api_route("/ready", methods=["GET", "HEAD"], response_model=HealthResponse)
    async def ready(self) -> dict[str, str]:
        """Readiness: the loaded model scores a user."""
        scorer = self.scorer
        try:
            predicted = scorer.predict(columns_of([READINESS_USER]))
        except Exception as error:
            logger.exception("readiness check failed")
            raise ServiceError(
                503, "not_ready", f"model cannot score: {error}"
            ) from None
        if not np.isfinite(predicted).all():
            raise ServiceError(503, "not_ready", "model returned a non-finite value")
        return {
            "status": "ready",
            "model_name": scorer.name,
            "model_version": scorer.version,
        }

    @api.get("/model/info")
    async def model_info(self) -> dict[str, Any]:
        """The loaded model: version, training data, features, metrics, parity."""
        return describe(self.scorer)

    @api.get("/stats")
    async def stats(self, since: str | None = SINCE) -> dict[str, Any]:
        """Statistics from the prediction log, optionally since an ISO time."""
        start = _parse_time("since", since)
        if self.prediction_log is None:
            raise ServiceError(503, "log_disabled", "the prediction log is off")
        try:
            async with self._stats_lock:
                return await asyncio.get_running_loop().run_in_executor(
                    self._stats_thread, self.prediction_log.store.stats, start
                )
        except StoreUnavailable as error:
            logger.warning("GET /stats failed: prediction log store unavailable")
            raise ServiceError(
                503,
                "log_unavailable",
                f"the prediction log database is unavailable ({error}); "
                "predictions are still served and logged when it returns",
            ) from None

    @api.get("/v2/health/live")
    async def v2_live(self) -> dict[str, bool]:
        return {"live": True}

    @api.get("/v2/health/ready")
    async def v2_ready(self) -> dict[str, bool]:
        await self.ready()
        return {"ready": True}

    @api.get("/v2/models/{model_name}", responses=NOT_FOUND)
    async def v2_metadata(self, model_name: str) -> dict[str, Any]:
        scorer = self._v2_scorer(model_name)
        return v2.metadata(scorer.name, scorer.version)

    @api.get("/v2/models/{model_name}/ready", responses=NOT_FOUND)
    async def v2_model_ready(self, model_name: str) -> dict[str, Any]:
        scorer = self._v2_scorer(model_name)
        return {"name": scorer.name, "ready": True}

    @api.post(
        "/v2/models/{model_name}/infer",
        responses=NOT_FOUND,
        openapi_extra={"requestBody": V2_INFER_BODY},
    )
    async def v2_infer(self, model_name: str, request: Request) -> ORJSONResponse:
        """Open Inference Protocol inference: one tensor per raw field."""
        scorer = self._v2_scorer(model_name)
        body = await request.body()
        inference, binary = v2.split_body(body, request.headers.get(v2.HEADER_LENGTH))
        request_id = v2.request_id(inference) or _request_id(request)
        columns = v2.parse_inputs(inference, binary, self.settings.max_batch_users)
        started = time.perf_counter()
        predicted = await asyncio.to_thread(scorer.predict, clean_columns(columns))
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.metrics.observe_batch(len(predicted), predicted)
        users = [
            UserFeatures.model_construct(**dict(zip(columns, row, strict=True)))
            for row in zip(*columns.values(), strict=True)
        ]
        self._record(
            "v2",
            request_id,
            request.scope.get(KEY_ID_SCOPE),
            scorer,
            users,
            predicted.tolist(),
            elapsed_ms,
        )
        return ORJSONResponse(
            v2.response(scorer.name, scorer.version, request_id, predicted)
        )

    def _v2_scorer(self, model_name: str) -> Scorer:
        scorer = self.scorer
        if model_name != scorer.name:
            raise ServiceError(
                404,
                "model_not_found",
                f"model {shorten(model_name)!r} is not served here",
            )
        return scorer


app = RevenueService.bind()
