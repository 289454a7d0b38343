"""The revenue model: categorical encoder plus LightGBM, scaled by an exposure.

Revenue per ``event_2`` is nearly constant within a country and platform but
differs by orders of magnitude between countries. So the model predicts a
*rate* with a Tweedie LightGBM whose log-link offset is the log of an exposure
built from the event counts, and the prediction is ``rate * exposure``. In
5-fold cross-validation on the real cohort this form cut the MAE from 7.8 to
4.3 and lifted R^2 from 0.85 to 0.92 against the same LightGBM without the
offset.
"""

from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from ltv.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES

# Categories seen fewer times than this share one code, so a value seen a
# handful of times cannot get a leaf of its own.
MIN_CATEGORY_COUNT = 20
UNKNOWN_CODE = -1

# exposure = event_2 + EVENT_3_WEIGHT * event_3 + EXPOSURE_FLOOR, with a
# missing event_3 counted as 0. The floor keeps users with no events at a
# small positive prediction instead of log(0).
EVENT_3_WEIGHT = 1.0
EXPOSURE_FLOOR = 0.05

MODEL_FORM = (
    f"tweedie rate x exposure (event_2 + {EVENT_3_WEIGHT:g} * event_3 "
    f"+ {EXPOSURE_FLOOR:g})"
)

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "tweedie",
    "tweedie_variance_power": 1.5,
    "n_estimators": 600,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.9,
    "cat_smooth": 10.0,
    "max_cat_to_onehot": 8,
    # The ONNX converter turns a categorical split into a chain of equality
    # nodes, one per category on its left side, so this bounds the chain
    # length. At 4 (LightGBM's default is 32) the compiled graph scored 1.75x
    # faster per row with no loss in 5x2-fold cross-validated MAE or Spearman.
    "max_cat_threshold": 4,
}


def build_encoder() -> ColumnTransformer:
    categories = OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=UNKNOWN_CODE,
        min_frequency=MIN_CATEGORY_COUNT,
        dtype=np.float32,
    )
    return ColumnTransformer(
        [
            ("categories", categories, list(CATEGORICAL_FEATURES)),
            ("numbers", "passthrough", list(NUMERIC_FEATURES)),
        ],
        verbose_feature_names_out=False,
    )


def exposure(features: pd.DataFrame) -> np.ndarray:
    """Return the exposure the rate is multiplied by, in float32 as in ONNX."""
    event_2 = features["event_2"].to_numpy(dtype=np.float32)
    event_3 = np.nan_to_num(features["event_3"].to_numpy(dtype=np.float32))
    return event_2 + np.float32(EVENT_3_WEIGHT) * event_3 + np.float32(EXPOSURE_FLOOR)


class RevenueModel(RegressorMixin, BaseEstimator):
    """Predict 7-day revenue as a LightGBM rate times the exposure.

    ``pipeline_`` is the fitted scikit-learn ``Pipeline`` of encoder and
    LightGBM that predicts the rate. Export compiles it and appends the
    multiplication by the exposure to the same ONNX graph.
    """

    def __init__(
        self,
        params: dict[str, Any] | None = None,
        seed: int = 42,
        use_exposure: bool = True,
    ):
        self.params = params
        self.seed = seed
        self.use_exposure = use_exposure

    def fit(self, features: pd.DataFrame, revenue: np.ndarray) -> "RevenueModel":
        model_params = {**DEFAULT_PARAMS, **(self.params or {})}
        # Monotone in event_2: more of the event tied to revenue never lowers
        # the rate, and the exposure grows with it too.
        monotone = [0] * len(CATEGORICAL_FEATURES) + [
            1 if name == "event_2" else 0 for name in NUMERIC_FEATURES
        ]
        model = LGBMRegressor(
            **model_params,
            monotone_constraints=monotone,
            random_state=self.seed,
            n_jobs=2,
            verbose=-1,
        )
        self.pipeline_ = Pipeline([("encoder", build_encoder()), ("model", model)])
        fit_params = {
            "model__categorical_feature": list(range(len(CATEGORICAL_FEATURES)))
        }
        if self.use_exposure:
            fit_params["model__init_score"] = np.log(exposure(features))
        self.pipeline_.fit(
            features, np.asarray(revenue, dtype=np.float64), **fit_params
        )
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        rate = self.pipeline_.predict(features)
        if not self.use_exposure:
            return rate
        return rate * exposure(features)
