"""A deployment that drives the production ``BatchScorer`` with a test scorer.

The scorer is slow, so clients can leave while their request is queued, and
it raises for users whose country is ``explode``, so one item can fail.
"""

import time

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from ray import serve

from ltv.schema import UserFeatures
from serve.batching import BatchScorer, ScoringError

SCORING_DELAY_S = 0.02
probe_api = FastAPI()


class FlakyScorer:
    version = "probe"

    def predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        time.sleep(SCORING_DELAY_S)
        if "explode" in set(features["country"]):
            raise ValueError("scorer failure injected by the test")
        return features["event_2"].astype(np.float64)


@serve.deployment(max_ongoing_requests=256)
@serve.ingress(probe_api)
class BatchProbe:
    def __init__(self) -> None:
        scorer = FlakyScorer()
        self.batcher = BatchScorer(lambda: scorer)
        self.batcher.configure(max_batch_size=16, batch_wait_timeout_s=0.01)

    @probe_api.post("/score")
    async def score(self, user: UserFeatures):
        try:
            return {"value": await self.batcher.score_one(user)}
        except ScoringError as error:
            return JSONResponse({"error": "scoring_failed", "message": str(error)}, 500)
