"""Merge single-user requests into one ONNX Runtime call with ``@serve.batch``."""

import logging
from collections.abc import Callable, Sequence

import numpy as np
from ray import serve

from ltv.schema import RAW_FIELDS, UserFeatures, clean_columns
from serve.scorer import Scorer

logger = logging.getLogger("ray.serve")

DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_BATCH_WAIT_S = 0.0005


class ScoringError(RuntimeError):
    """Scoring one user failed; the other users of its batch are unaffected."""


def columns_of(users: Sequence[UserFeatures]) -> dict[str, np.ndarray]:
    raw = {name: [getattr(user, name) for user in users] for name in RAW_FIELDS}
    return clean_columns(raw)


class BatchScorer:
    """Score users one request at a time while ONNX Runtime runs whole batches.

    A failing batch is retried user by user, so one bad item fails only its
    own request. In Ray 2.60 ``serve.batch`` skips requests whose futures were
    cancelled, which is what a client disconnect does.
    """

    def __init__(
        self,
        get_scorer: Callable[[], Scorer],
        on_batch: Callable[[int, np.ndarray], None] | None = None,
    ):
        self._get_scorer = get_scorer
        self._on_batch = on_batch

    def configure(self, max_batch_size: int, batch_wait_timeout_s: float) -> None:
        self.score.set_max_batch_size(max_batch_size)
        self.score.set_batch_wait_timeout_s(batch_wait_timeout_s)

    async def score_one(self, user: UserFeatures) -> float:
        result = await self.score(user)
        if isinstance(result, Exception):
            raise result
        return result

    @serve.batch(
        max_batch_size=DEFAULT_MAX_BATCH_SIZE,
        batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S,
    )
    async def score(self, users: list[UserFeatures]) -> list[float | Exception]:
        scorer = self._get_scorer()
        try:
            predicted = scorer.predict(columns_of(users))
        except Exception:
            logger.exception("batch of %d users failed; scoring one by one", len(users))
            return [self._score_alone(scorer, user) for user in users]
        if self._on_batch is not None:
            self._on_batch(len(users), predicted)
        return predicted.tolist()

    def _score_alone(self, scorer: Scorer, user: UserFeatures) -> float | Exception:
        try:
            return float(scorer.predict(columns_of([user]))[0])
        except Exception as error:
            logger.exception("scoring failed for user_id=%r", user.user_id)
            return ScoringError(f"scoring failed: {type(error).__name__}")
