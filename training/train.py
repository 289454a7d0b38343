"""Fit the revenue model on a users CSV and log the run to MLflow."""

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.model_selection import train_test_split

import ltv
from ltv.registry import champion_version, configure_mlflow
from ltv.sample import ensure_sample
from ltv.schema import TARGET, clean_frame
from ltv.settings import Settings
from training.data import file_sha256, load_users
from training.model import DEFAULT_PARAMS, RevenueModel

logger = logging.getLogger(__name__)

VALIDATION_SHARE = 0.2
SOURCE_PACKAGES = ("ltv", "training", "export")
FINGERPRINT_TAG = "ltv.fingerprint"


@dataclass
class TrainResult:
    run_id: str | None
    fingerprint: str
    skipped: bool
    metrics: dict[str, float]


def resolve_data_path(settings: Settings) -> Path:
    """Return REVENUE_DATA, or the generated sample when it is unset."""
    if settings.revenue_data is not None:
        return settings.revenue_data.expanduser().resolve()
    sample = settings.state_path / f"sample-{settings.sample_rows}-{settings.seed}.csv"
    return ensure_sample(sample, settings.sample_rows, settings.seed)


def source_fingerprint(data_sha256: str, seed: int) -> str:
    """Hash the data, the seed and this project's training and export code.

    Training is skipped when the champion was built from the same fingerprint.
    """
    digest = hashlib.sha256(f"{data_sha256}:{seed}".encode())
    root = Path(ltv.__file__).resolve().parent.parent
    for package in SOURCE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {
        "mae": float(mean_absolute_error(actual, predicted)),
        "rmse": float(root_mean_squared_error(actual, predicted)),
        "r2": float(r2_score(actual, predicted)),
        "spearman": float(spearmanr(actual, predicted).statistic),
    }


def train(settings: Settings, force: bool = False) -> TrainResult:
    """Validate the data, fit, evaluate on a held-out split and log to MLflow.

    The logged model is refit on all rows after the validation metrics are
    taken, so the served model has seen the whole cohort.
    """
    client = configure_mlflow(settings)
    data_path = resolve_data_path(settings)
    data_sha256 = file_sha256(data_path)
    fingerprint = source_fingerprint(data_sha256, settings.seed)

    champion = champion_version(client, settings)
    if champion is not None and not force:
        run = client.get_run(champion.run_id)
        if run.data.tags.get(FINGERPRINT_TAG) == fingerprint:
            logger.info(
                "model %s version %s was built from the same data and code; "
                "skipping training (set FORCE_RETRAIN=1 to retrain)",
                settings.model_name,
                champion.version,
            )
            return TrainResult(None, fingerprint, True, {})

    raw = load_users(data_path)
    features = clean_frame(raw)
    revenue = raw[TARGET].to_numpy(dtype=np.float64)
    logger.info("training on %d users from %s", len(raw), data_path)

    with mlflow.start_run(run_name="train") as run:
        mlflow.set_tags(
            {
                FINGERPRINT_TAG: fingerprint,
                "ltv.stage": "train",
                "ltv.data_path": str(data_path),
            }
        )
        mlflow.log_params(
            {
                **DEFAULT_PARAMS,
                "seed": settings.seed,
                "validation_share": VALIDATION_SHARE,
                "data_sha256": data_sha256,
                "data_rows": len(raw),
            }
        )
        metrics = _fit_and_validate(features, revenue, settings.seed)
        mlflow.log_metrics(metrics)

        started = time.perf_counter()
        model = RevenueModel(seed=settings.seed).fit(features, revenue)
        mlflow.log_metric("fit_seconds", time.perf_counter() - started)
        mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=features.head(3),
            serialization_format="cloudpickle",
        )
        logger.info("training run %s: %s", run.info.run_id, _format(metrics))

    return TrainResult(run.info.run_id, fingerprint, False, metrics)


def _fit_and_validate(
    features: pd.DataFrame, revenue: np.ndarray, seed: int
) -> dict[str, float]:
    train_x, valid_x, train_y, valid_y = train_test_split(
        features, revenue, test_size=VALIDATION_SHARE, random_state=seed
    )
    model = RevenueModel(seed=seed).fit(train_x, train_y)
    metrics = regression_metrics(valid_y, model.predict(valid_x))
    return {f"valid_{name}": value for name, value in metrics.items()}


def _format(metrics: dict[str, float]) -> str:
    return ", ".join(f"{name}={value:.4g}" for name, value in metrics.items())
