"""Models compared with the chosen one on the same cross-validation folds."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from ltv.schema import CATEGORICAL_FEATURES, COUNT_FIELDS, NUMERIC_FEATURES
from training.model import (
    DEFAULT_PARAMS,
    MIN_CATEGORY_COUNT,
    RevenueModel,
    build_encoder,
)

CHOSEN = "lgbm_tweedie_exposure"


@dataclass
class Candidate:
    name: str
    description: str
    make: Callable[[], Any]
    params: dict[str, Any] = field(default_factory=dict)


def _lgbm(seed: int, **params: Any) -> LGBMRegressor:
    base = {
        key: value
        for key, value in DEFAULT_PARAMS.items()
        if not key.startswith("tweedie") and key != "objective"
    }
    return LGBMRegressor(**{**base, **params}, random_state=seed, n_jobs=2, verbose=-1)


def _encoded_lgbm(seed: int, **params: Any) -> Pipeline:
    model = _lgbm(seed, **params)
    return Pipeline([("encoder", build_encoder()), ("model", model)])


class CategoricalLGBM(RegressorMixin, BaseEstimator):
    """Encoder plus LightGBM with native categorical splits, no exposure."""

    def __init__(self, seed: int = 42, objective: str = "regression"):
        self.seed = seed
        self.objective = objective

    def fit(self, features: pd.DataFrame, revenue: np.ndarray) -> "CategoricalLGBM":
        self.pipeline_ = _encoded_lgbm(self.seed, objective=self.objective)
        categorical = list(range(len(CATEGORICAL_FEATURES)))
        self.pipeline_.fit(features, revenue, model__categorical_feature=categorical)
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict(features)


class TakeHomeFeatures(TransformerMixin, BaseEstimator):
    """Features of the common take-home solution for this problem.

    Frequency encoding of the high-cardinality fields, mean revenue per
    country (target encoding, fitted on the training fold only), and event
    totals and ratios.
    """

    frequency_fields = ("country_region", "device_family", "os_version_text")

    def fit(self, features: pd.DataFrame, revenue: np.ndarray) -> "TakeHomeFeatures":
        frame = self._with_version_text(features)
        self.frequencies_ = {
            name: frame[name].value_counts(normalize=True).to_dict()
            for name in self.frequency_fields
        }
        revenue = pd.Series(np.asarray(revenue), index=features.index)
        self.country_mean_ = revenue.groupby(features["country"]).mean().to_dict()
        self.global_mean_ = float(revenue.mean())
        return self

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        frame = self._with_version_text(features)
        columns = {}
        for name in self.frequency_fields:
            columns[f"{name}_frequency"] = frame[name].map(self.frequencies_[name])
        columns["country_mean_revenue"] = features["country"].map(self.country_mean_)
        events = features[list(COUNT_FIELDS)].fillna(0)
        total = events.sum(axis=1)
        columns["event_total"] = total
        for name in COUNT_FIELDS:
            columns[name] = events[name]
            columns[f"{name}_ratio"] = events[name] / (total + 1)
        columns["platform_ios"] = features["platform"].eq("ios").astype(float)
        columns["organic"] = features["source"].eq("organic").astype(float)
        result = pd.DataFrame(columns).astype(float)
        result["country_mean_revenue"] = result["country_mean_revenue"].fillna(
            self.global_mean_
        )
        return result.fillna(0).to_numpy()

    @staticmethod
    def _with_version_text(features: pd.DataFrame) -> pd.DataFrame:
        frame = features.copy()
        frame["os_version_text"] = (
            features["os_major"].astype(str) + "." + features["os_minor"].astype(str)
        )
        return frame


def _linear() -> Pipeline:
    encoder = ColumnTransformer(
        [
            (
                "categories",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=MIN_CATEGORY_COUNT,
                ),
                list(CATEGORICAL_FEATURES),
            ),
            (
                "numbers",
                SimpleImputer(strategy="constant", fill_value=0.0),
                list(NUMERIC_FEATURES),
            ),
        ]
    )
    return Pipeline([("encoder", encoder), ("model", Ridge(alpha=1.0))])


def _sklearn_boosting(seed: int) -> Pipeline:
    model = HistGradientBoostingRegressor(
        loss="squared_error",
        max_iter=300,
        learning_rate=0.05,
        categorical_features=list(range(len(CATEGORICAL_FEATURES))),
        random_state=seed,
    )
    return Pipeline([("encoder", build_encoder()), ("model", model)])


def _take_home(seed: int) -> Pipeline:
    model = _lgbm(seed, objective="regression")
    return Pipeline([("features", TakeHomeFeatures()), ("model", model)])


def _log_target(seed: int) -> TransformedTargetRegressor:
    return TransformedTargetRegressor(
        regressor=CategoricalLGBM(seed, objective="regression"),
        func=np.log1p,
        inverse_func=np.expm1,
    )


def candidates(seed: int) -> list[Candidate]:
    """Return the baselines, the objective variants and the chosen model."""
    return [
        Candidate("constant", "mean revenue of the training fold", DummyRegressor),
        Candidate(
            "linear_ridge",
            "one-hot categories and raw counts, ridge regression",
            _linear,
            {"alpha": 1.0},
        ),
        Candidate(
            "sklearn_hist_gbm",
            "scikit-learn HistGradientBoosting, squared error",
            lambda: _sklearn_boosting(seed),
            {"max_iter": 300, "learning_rate": 0.05},
        ),
        Candidate(
            "lgbm_squared_error",
            "LightGBM, squared error, same encoder as the chosen model",
            lambda: CategoricalLGBM(seed, objective="regression"),
            {"objective": "regression"},
        ),
        Candidate(
            "reference_take_home",
            "frequency and country target encoding, event totals and ratios, "
            "LightGBM with squared error",
            lambda: _take_home(seed),
            {"objective": "regression"},
        ),
        Candidate(
            "lgbm_log_target",
            "LightGBM, squared error on log1p(revenue)",
            lambda: _log_target(seed),
            {"objective": "regression", "target": "log1p"},
        ),
        Candidate(
            "lgbm_tweedie",
            "LightGBM, Tweedie 1.5, no exposure offset",
            lambda: RevenueModel(seed=seed, use_exposure=False),
            {**DEFAULT_PARAMS, "exposure": False},
        ),
        Candidate(
            "lgbm_tweedie_exposure_p1.2",
            "LightGBM, Tweedie 1.2, exposure offset",
            lambda: RevenueModel({"tweedie_variance_power": 1.2}, seed=seed),
            {**DEFAULT_PARAMS, "tweedie_variance_power": 1.2, "exposure": True},
        ),
        Candidate(
            CHOSEN,
            "LightGBM, Tweedie 1.5, exposure offset (served)",
            lambda: RevenueModel(seed=seed),
            {**DEFAULT_PARAMS, "exposure": True},
        ),
    ]
