"""Repeated K-fold cross-validation and the metrics reported for each model."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.model_selection import RepeatedKFold

TOP_SHARE = 0.10
METRIC_NAMES = (
    "mae",
    "rmse",
    "r2",
    "spearman",
    "normalized_gini",
    "mae_log1p",
    "top10_revenue_share",
)


def gini(actual: np.ndarray, score: np.ndarray) -> float:
    """Gini coefficient of ``actual`` ordered by ``score``, highest first."""
    order = np.lexsort((np.arange(len(score)), -score))
    cumulative = np.cumsum(actual[order]) / actual.sum()
    population = np.arange(1, len(actual) + 1) / len(actual)
    return float(np.sum(cumulative - population) / len(actual))


def normalized_gini(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Gini of the prediction's ordering over the Gini of the perfect ordering."""
    return gini(actual, predicted) / gini(actual, actual)


def top_revenue_share(
    actual: np.ndarray, predicted: np.ndarray, share: float = TOP_SHARE
) -> float:
    """Share of total revenue from the top ``share`` of users by prediction."""
    count = max(1, int(round(len(actual) * share)))
    top = np.argsort(-predicted, kind="stable")[:count]
    return float(actual[top].sum() / actual.sum())


def score(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    predicted = np.maximum(predicted, 0.0)
    # Spearman is undefined for a constant prediction (the mean baseline).
    constant = np.ptp(predicted) == 0
    return {
        "mae": float(mean_absolute_error(actual, predicted)),
        "rmse": float(root_mean_squared_error(actual, predicted)),
        "r2": float(r2_score(actual, predicted)),
        "spearman": np.nan
        if constant
        else float(spearmanr(actual, predicted).statistic),
        "normalized_gini": normalized_gini(actual, predicted),
        "mae_log1p": float(np.mean(np.abs(np.log1p(actual) - np.log1p(predicted)))),
        "top10_revenue_share": top_revenue_share(actual, predicted),
    }


@dataclass
class CrossValidation:
    """Per-fold metrics of one candidate and its out-of-fold predictions."""

    name: str
    folds: pd.DataFrame
    out_of_fold: np.ndarray

    def summary(self) -> dict[str, float]:
        means = self.folds.mean()
        stds = self.folds.std(ddof=1)
        result = {}
        for metric in METRIC_NAMES:
            result[f"cv_{metric}_mean"] = float(means[metric])
            result[f"cv_{metric}_std"] = float(stds[metric])
        return result


def cross_validate(
    name: str,
    make_model: Callable[[], object],
    features: pd.DataFrame,
    revenue: np.ndarray,
    folds: int,
    repeats: int,
    seed: int,
) -> CrossValidation:
    """Fit and score a fresh model on each fold of repeated K-fold.

    Every candidate gets the same splits for the same seed. ``out_of_fold``
    contains the first repeat's predictions, one per user.
    """
    splitter = RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    rows = []
    out_of_fold = np.full(len(revenue), np.nan)
    for index, (train_rows, test_rows) in enumerate(splitter.split(features)):
        model = make_model().fit(features.iloc[train_rows], revenue[train_rows])
        predicted = np.asarray(model.predict(features.iloc[test_rows]), dtype=float)
        rows.append(score(revenue[test_rows], predicted))
        if index < folds:
            out_of_fold[test_rows] = predicted
    return CrossValidation(name, pd.DataFrame(rows), out_of_fold)
