"""ONNX Runtime session for a registered model version."""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime as ort
from mlflow.tracking import MlflowClient

from ltv.schema import CATEGORICAL_FEATURES, FLOAT32_MAX, NUMERIC_FEATURES, OUTPUT_NAME
from ltv.settings import Settings

logger = logging.getLogger("ray.serve")


class ModelNotFoundError(LookupError):
    """The model URI does not resolve to a registered version."""


@dataclass
class Scorer:
    """A loaded model version and the session that runs it."""

    name: str
    version: str
    uri: str
    session: ort.InferenceSession
    tags: dict[str, str] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)

    def predict(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Return predicted revenue, finite and non-negative, for cleaned columns."""
        inputs = {}
        for name in CATEGORICAL_FEATURES:
            inputs[name] = features[name].reshape(-1, 1)
        for name in NUMERIC_FEATURES:
            inputs[name] = features[name].astype(np.float32, copy=False).reshape(-1, 1)
        (output,) = self.session.run([OUTPUT_NAME], inputs)
        # Counts near the float32 maximum can overflow the product; clip so
        # the response stays valid JSON.
        return np.clip(np.nan_to_num(output.ravel(), nan=0.0), 0.0, FLOAT32_MAX)


def _number(text: str) -> float | bool | str:
    if text in ("True", "False"):
        return text == "True"
    try:
        return float(text)
    except ValueError:
        return text


def describe(scorer: Scorer) -> dict:
    """Return what ``GET /model/info`` reports, from the version's registry tags."""
    tags = scorer.tags
    cv_metrics: dict[str, dict[str, float]] = {}
    for key, value in tags.items():
        if key.startswith("cv_") and key.endswith(("_mean", "_std")):
            metric, statistic = key[3:].rsplit("_", 1)
            cv_metrics.setdefault(metric, {})[statistic] = float(value)
    return {
        "model_name": scorer.name,
        "model_version": scorer.version,
        "model_uri": scorer.uri,
        "loaded_at": scorer.loaded_at,
        "training_data": {
            "sha256": tags.get("data_sha256"),
            "rows": int(tags["data_rows"]) if tags.get("data_rows") else None,
        },
        "features": tags.get("features", "").split(",") if tags.get("features") else [],
        "objective": tags.get("objective"),
        "model_form": tags.get("model_form"),
        "cv_metrics": cv_metrics,
        "validation_metrics": {
            key.removeprefix("valid_"): float(value)
            for key, value in tags.items()
            if key.startswith("valid_")
        },
        "parity": {
            key.removeprefix("parity_"): _number(value)
            for key, value in tags.items()
            if key.startswith("parity_")
        },
    }


def resolve_version(client: MlflowClient, model_uri: str) -> tuple[str, str]:
    """Return (name, version) for ``models:/name@alias`` or ``models:/name/version``."""
    if not model_uri.startswith("models:/"):
        raise ModelNotFoundError(
            f"model URI must start with models:/, got {model_uri!r}"
        )
    reference = model_uri.removeprefix("models:/")
    try:
        if "@" in reference:
            name, alias = reference.split("@", 1)
            return name, str(client.get_model_version_by_alias(name, alias).version)
        name, version = reference.rsplit("/", 1)
        return name, str(client.get_model_version(name, version).version)
    except (ValueError, mlflow.exceptions.MlflowException) as error:
        raise ModelNotFoundError(
            f"{model_uri} not found in the registry: {error}"
        ) from error


def open_session(graph: str | bytes, threads: int) -> ort.InferenceSession:
    """Open an ONNX Runtime session on a graph file path or the graph's bytes.

    The API and batch scoring both use these options, so their scores agree.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        graph, sess_options=options, providers=["CPUExecutionProvider"]
    )


def load_scorer(settings: Settings, model_uri: str, threads: int) -> Scorer:
    """Download the ONNX graph of ``model_uri`` and open an ORT session on it."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    client = MlflowClient()
    name, version = resolve_version(client, model_uri)
    pinned_uri = f"models:/{name}/{version}"

    local = Path(mlflow.artifacts.download_artifacts(pinned_uri))
    graph = local / "model.onnx" if local.is_dir() else local
    session = open_session(str(graph), threads)
    tags = client.get_model_version(name, version).tags
    logger.info("loaded %s version %s from %s", name, version, model_uri)
    return Scorer(name, version, model_uri, session, dict(tags))
