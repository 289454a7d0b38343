"""Compile a training run's model, check parity and register it in MLflow."""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from export.onnx_graph import compile_model
from export.parity import ParityReport, check_parity
from ltv.registry import champion_version, configure_mlflow
from ltv.schema import MODEL_FEATURES, clean_frame
from ltv.settings import Settings
from training.data import load_users

logger = logging.getLogger(__name__)

ONNX_ARTIFACT = "onnx_model"


class ExportError(RuntimeError):
    """There is no training run to export, or its data cannot be read."""


@dataclass
class ExportResult:
    version: str
    run_id: str
    skipped: bool
    parity: ParityReport | None


def latest_training_run(client: MlflowClient, settings: Settings) -> Run:
    experiment = client.get_experiment_by_name(settings.experiment_name)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`ltv.stage` = 'train' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise ExportError(
            f"no finished training run in experiment {settings.experiment_name!r}; "
            "run `python -m training` first"
        )
    return runs[0]


def export(settings: Settings, run_id: str | None = None) -> ExportResult:
    """Compile, check and register the run's model, then move the alias to it.

    Without ``run_id`` the newest finished training run is used. If the
    champion already comes from that run, nothing is registered again.
    """
    client = configure_mlflow(settings)
    run = client.get_run(run_id) if run_id else latest_training_run(client, settings)
    run_id = run.info.run_id

    champion = champion_version(client, settings)
    if champion is not None and champion.run_id == run_id:
        logger.info(
            "%s@%s is already version %s from run %s; nothing to export",
            settings.model_name,
            settings.model_alias,
            champion.version,
            run_id,
        )
        return ExportResult(str(champion.version), run_id, True, None)

    data_path = Path(run.data.tags["ltv.data_path"])
    if not data_path.is_file():
        raise ExportError(
            f"training data {data_path} of run {run_id} is gone; the parity "
            "check needs it"
        )
    model = mlflow.sklearn.load_model(f"runs:/{run_id}/model")
    features = clean_frame(load_users(data_path))

    onnx_model = compile_model(model)
    parity = check_parity(model, onnx_model, features)
    logger.info(
        "parity passed on %d rows (%d edge rows): max relative error %.3g",
        parity.rows,
        parity.edge_rows,
        parity.max_rel_error,
    )

    with mlflow.start_run(run_id=run_id):
        mlflow.log_dict(
            {**parity.as_tags(), "worst_row": _jsonable(parity.worst_row)},
            "parity.json",
        )
        info = mlflow.onnx.log_model(
            onnx_model,
            name=ONNX_ARTIFACT,
            registered_model_name=settings.model_name,
            save_as_external_data=False,
        )

    version = str(info.registered_model_version)
    metrics = run.data.metrics
    tags = {
        **parity.as_tags(),
        **{name: f"{value:.6g}" for name, value in metrics.items()},
        "data_sha256": run.data.params.get("data_sha256", ""),
        "data_rows": run.data.params.get("data_rows", ""),
        "objective": run.data.params.get("objective", ""),
        "model_form": run.data.params.get("model_form", ""),
        "features": ",".join(MODEL_FEATURES),
    }
    for key, value in tags.items():
        client.set_model_version_tag(settings.model_name, version, key, value)
    client.set_registered_model_alias(
        settings.model_name, settings.model_alias, version
    )
    logger.info(
        "registered %s version %s and set alias %s",
        settings.model_name,
        version,
        settings.model_alias,
    )
    return ExportResult(version, run_id, False, parity)


def _jsonable(row: dict) -> dict:
    return json.loads(json.dumps(row, default=str))
