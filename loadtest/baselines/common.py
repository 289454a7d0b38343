"""Locate the champion model for the baseline servers."""

from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from ltv.registry import champion_version
from ltv.settings import get_settings


def champion_run_and_graph() -> tuple[str, Path]:
    """Return the champion's training run id and the path of its ONNX graph."""
    settings = get_settings()
    mlflow.set_tracking_uri(settings.tracking_uri)
    version = champion_version(MlflowClient(settings.tracking_uri), settings)
    if version is None:
        raise SystemExit(f"no {settings.champion_uri}; run `make model` first")
    graph = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{settings.model_name}/{version.version}"
        )
    )
    return version.run_id, graph / "model.onnx"
