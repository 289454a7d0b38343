"""Fit the revenue model on a users CSV and log the run to MLflow."""

import hashlib
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

import ltv
from ltv.registry import champion_version, configure_mlflow
from ltv.sample import ensure_sample
from ltv.schema import MODEL_FEATURES, TARGET, clean_frame
from ltv.settings import Settings
from training.candidates import CHOSEN, Candidate, candidates
from training.data import file_sha256, load_users
from training.evaluate import cross_validate, score
from training.model import DEFAULT_PARAMS, MODEL_FORM, RevenueModel
from training.quality import check_data_quality, quality_markdown
from training.report import write_report

logger = logging.getLogger(__name__)

VALIDATION_SHARE = 0.2
SOURCE_PACKAGES = ("ltv", "training", "export")
FINGERPRINT_TAG = "ltv.fingerprint"
# Explicit requirements spare MLflow a slow import-tracing subprocess per model.
MODEL_REQUIREMENTS = ["scikit-learn", "lightgbm", "pandas", "numpy"]
HOLDOUT_METRICS = ("mae", "rmse", "r2", "spearman")


@dataclass
class TrainResult:
    run_id: str | None
    fingerprint: str
    skipped: bool
    metrics: dict[str, float]
    candidates: dict[str, dict[str, float]] | None = None


def resolve_data_path(settings: Settings) -> Path:
    """Return REVENUE_DATA, or the generated sample when it is unset."""
    if settings.revenue_data is not None:
        return settings.revenue_data.expanduser().resolve()
    sample = settings.state_path / f"sample-{settings.sample_rows}-{settings.seed}.csv"
    return ensure_sample(sample, settings.sample_rows, settings.seed)


def source_fingerprint(data_sha256: str, settings: Settings) -> str:
    """Hash the data, the training settings and this project's code.

    Training is skipped when the champion was built from the same fingerprint.
    """
    key = f"{data_sha256}:{settings.seed}:{settings.cv_folds}:{settings.cv_repeats}"
    digest = hashlib.sha256(key.encode())
    root = Path(ltv.__file__).resolve().parent.parent
    for package in SOURCE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def train(settings: Settings, force: bool = False) -> TrainResult:
    """Check the data, compare candidates, fit the chosen model, log to MLflow.

    The parent run contains the served model (refit on all rows), its
    hold-out and cross-validated metrics and the report. Each candidate is a
    nested run with its own metrics and model.
    """
    client = configure_mlflow(settings)
    data_path = resolve_data_path(settings)
    data_sha256 = file_sha256(data_path)
    fingerprint = source_fingerprint(data_sha256, settings)

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
    findings = check_data_quality(raw)
    features = clean_frame(raw)
    revenue = raw[TARGET].to_numpy(dtype=np.float64)
    logger.info("training on %d users from %s", len(raw), data_path)

    with mlflow.start_run(run_name="train") as run:
        mlflow.set_tags(
            {
                FINGERPRINT_TAG: fingerprint,
                "ltv.stage": "train",
                "ltv.data_path": str(data_path),
                "ltv.chosen_candidate": CHOSEN,
            }
        )
        mlflow.log_params(
            {
                **DEFAULT_PARAMS,
                "seed": settings.seed,
                "validation_share": VALIDATION_SHARE,
                "cv_folds": settings.cv_folds,
                "cv_repeats": settings.cv_repeats,
                "data_sha256": data_sha256,
                "data_rows": len(raw),
                "features": ",".join(MODEL_FEATURES),
                "model_form": MODEL_FORM,
            }
        )
        metrics = _holdout_metrics(features, revenue, settings.seed)

        started = time.perf_counter()
        model = RevenueModel(seed=settings.seed).fit(features, revenue)
        metrics["fit_seconds"] = time.perf_counter() - started

        summaries, out_of_fold = _compare_candidates(
            settings, features, revenue, chosen_model=model
        )
        metrics.update(summaries[CHOSEN])
        mlflow.log_metrics(metrics)
        mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=features.head(3),
            serialization_format="cloudpickle",
            pip_requirements=MODEL_REQUIREMENTS,
        )
        _log_report(settings, findings, summaries, revenue, out_of_fold, model)
        _warn_if_not_best(summaries)
        logger.info("training run %s: %s", run.info.run_id, _format(metrics))

    return TrainResult(run.info.run_id, fingerprint, False, metrics, summaries)


def _holdout_metrics(
    features: pd.DataFrame, revenue: np.ndarray, seed: int
) -> dict[str, float]:
    train_x, valid_x, train_y, valid_y = train_test_split(
        features, revenue, test_size=VALIDATION_SHARE, random_state=seed
    )
    model = RevenueModel(seed=seed).fit(train_x, train_y)
    metrics = score(valid_y, model.predict(valid_x))
    return {f"valid_{name}": metrics[name] for name in HOLDOUT_METRICS}


def _compare_candidates(
    settings: Settings,
    features: pd.DataFrame,
    revenue: np.ndarray,
    chosen_model: RevenueModel,
) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    summaries = {}
    chosen_out_of_fold = np.array([])
    for candidate in candidates(settings.seed):
        started = time.perf_counter()
        result = cross_validate(
            candidate.name,
            candidate.make,
            features,
            revenue,
            folds=settings.cv_folds,
            repeats=settings.cv_repeats,
            seed=settings.seed,
        )
        summaries[candidate.name] = result.summary()
        full_model = chosen_model if candidate.name == CHOSEN else None
        _log_candidate(
            candidate, summaries[candidate.name], features, revenue, full_model
        )
        logger.info(
            "candidate %s: MAE %.4g, Spearman %.4f, R^2 %.4f (%.1f s)",
            candidate.name,
            summaries[candidate.name]["cv_mae_mean"],
            summaries[candidate.name]["cv_spearman_mean"],
            summaries[candidate.name]["cv_r2_mean"],
            time.perf_counter() - started,
        )
        if candidate.name == CHOSEN:
            chosen_out_of_fold = result.out_of_fold
    return summaries, chosen_out_of_fold


def _log_candidate(
    candidate: Candidate,
    summary: dict[str, float],
    features: pd.DataFrame,
    revenue: np.ndarray,
    full_model: object | None,
) -> None:
    with mlflow.start_run(run_name=candidate.name, nested=True):
        mlflow.set_tags(
            {"ltv.stage": "candidate", "ltv.description": candidate.description}
        )
        mlflow.log_params({"candidate": candidate.name, **candidate.params})
        mlflow.log_metrics({k: v for k, v in summary.items() if np.isfinite(v)})
        model = full_model or candidate.make().fit(features, revenue)
        mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="cloudpickle",
            pip_requirements=MODEL_REQUIREMENTS,
        )


def _log_report(
    settings: Settings,
    findings,
    summaries: dict[str, dict[str, float]],
    revenue: np.ndarray,
    out_of_fold: np.ndarray,
    model: RevenueModel,
) -> None:
    booster = model.pipeline_.named_steps["model"].booster_
    importance = pd.Series(
        booster.feature_importance(importance_type="gain"), index=list(MODEL_FEATURES)
    )
    descriptions = {c.name: c.description for c in candidates(settings.seed)}
    with tempfile.TemporaryDirectory() as folder:
        write_report(
            Path(folder),
            quality_markdown(findings),
            summaries,
            descriptions,
            CHOSEN,
            revenue,
            out_of_fold,
            importance,
            settings.cv_folds,
            settings.cv_repeats,
        )
        mlflow.log_artifacts(folder, artifact_path="report")


def _warn_if_not_best(summaries: dict[str, dict[str, float]]) -> None:
    best = min(summaries, key=lambda name: summaries[name]["cv_mae_mean"])
    if best != CHOSEN:
        logger.warning(
            "candidate %s has a lower cross-validated MAE than the served %s",
            best,
            CHOSEN,
        )


def _format(metrics: dict[str, float]) -> str:
    names = ("valid_mae", "valid_r2", "cv_mae_mean", "cv_spearman_mean", "cv_r2_mean")
    return ", ".join(f"{name}={metrics[name]:.4g}" for name in names)
