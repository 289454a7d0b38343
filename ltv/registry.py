"""MLflow set-up and look-ups shared by training, export and serving."""

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ltv.settings import Settings


def configure_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store and make sure the experiment exists.

    With the default SQLite store the artifacts go to the state folder too, so
    a fresh clone needs no MLflow server.
    """
    if settings.mlflow_tracking_uri is None:
        settings.state_path.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)

    client = MlflowClient()
    if client.get_experiment_by_name(settings.experiment_name) is None:
        artifact_location = None
        if settings.mlflow_tracking_uri is None:
            artifact_location = settings.artifact_location
        client.create_experiment(
            settings.experiment_name, artifact_location=artifact_location
        )
    mlflow.set_experiment(settings.experiment_name)
    return client


def champion_version(client: MlflowClient, settings: Settings) -> ModelVersion | None:
    """Return the model version behind the alias, or None if there is none yet."""
    try:
        return client.get_model_version_by_alias(
            settings.model_name, settings.model_alias
        )
    except MlflowException:
        return None
