"""Ray Serve application: HTTP API in front of an ONNX Runtime scorer.

``serve run serve_config.yaml`` starts it; the config's ``user_config`` names
the model URI and the batching settings, and changing it reloads the model
in place.
"""

import logging
import time
import uuid
from typing import Any

import ray
from fastapi import FastAPI, Header
from fastapi.responses import ORJSONResponse
from mlflow.tracking import MlflowClient
from pydantic import BaseModel
from ray import serve

from ltv.schema import RAW_FIELDS, UserFeatures, clean_columns
from ltv.settings import get_settings
from serve.errors import ServiceError, install_error_handlers
from serve.scorer import Scorer, describe, load_scorer, resolve_version

logger = logging.getLogger("ray.serve")

DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_BATCH_WAIT_S = 0.002


class PredictResponse(BaseModel):
    predicted_revenue: float
    model_version: str
    inference_time_ms: float
    request_id: str


class HealthResponse(BaseModel):
    status: str
    model_name: str
    model_version: str


api = FastAPI(
    title="7-day revenue prediction",
    description="Predicts each user's revenue in the first 7 days after install.",
    version="0.1.0",
    default_response_class=ORJSONResponse,
)
install_error_handlers(api)


def _replica_cpus() -> int:
    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    except RuntimeError:
        cpus = 1
    return max(1, int(cpus))


@serve.deployment
@serve.ingress(api)
class RevenueService:
    def __init__(self) -> None:
        self.settings = get_settings()
        self.scorer: Scorer | None = None
        # Without a user_config Serve never calls reconfigure, so load the
        # default model here; reconfigure skips a reload of the same version.
        self.scorer = load_scorer(
            self.settings, self.settings.champion_uri, _replica_cpus()
        )

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Load the configured model and apply batching settings.

        Serve calls this at start and whenever ``user_config`` changes, so
        pointing ``model_uri`` at a new version swaps it without a restart.
        """
        model_uri = config.get("model_uri") or self.settings.champion_uri
        self._score_batch.set_max_batch_size(
            int(config.get("max_batch_size", DEFAULT_MAX_BATCH_SIZE))
        )
        self._score_batch.set_batch_wait_timeout_s(
            float(config.get("batch_wait_timeout_s", DEFAULT_BATCH_WAIT_S))
        )
        current = self.scorer
        if current is not None and current.uri == model_uri:
            name, version = resolve_version(MlflowClient(), model_uri)
            if (name, version) == (current.name, current.version):
                return
        self.scorer = load_scorer(self.settings, model_uri, _replica_cpus())

    def _require_scorer(self) -> Scorer:
        if self.scorer is None:
            raise ServiceError(503, "model_not_loaded", "no model is loaded yet")
        return self.scorer

    @serve.batch(
        max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S
    )
    async def _score_batch(self, users: list[UserFeatures]) -> list[float]:
        scorer = self._require_scorer()
        columns = {name: [getattr(u, name) for u in users] for name in RAW_FIELDS}
        return scorer.predict(clean_columns(columns)).tolist()

    @api.post("/predict", response_model=PredictResponse)
    async def predict(
        self,
        user: UserFeatures,
        x_request_id: str | None = Header(default=None, max_length=128),
    ) -> PredictResponse:
        scorer = self._require_scorer()
        started = time.perf_counter()
        predicted = await self._score_batch(user)
        return PredictResponse(
            predicted_revenue=predicted,
            model_version=scorer.version,
            inference_time_ms=(time.perf_counter() - started) * 1000,
            request_id=x_request_id or uuid.uuid4().hex,
        )

    @api.get("/health", response_model=HealthResponse)
    async def health(self) -> HealthResponse:
        scorer = self._require_scorer()
        return HealthResponse(
            status="ok", model_name=scorer.name, model_version=scorer.version
        )

    @api.get("/model/info")
    async def model_info(self) -> dict[str, Any]:
        return describe(self._require_scorer())


app = RevenueService.bind()
