"""Settings read from environment variables, in one typed object."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    revenue_data: Path | None = Field(
        default=None,
        description="Users CSV to train on; unset means a generated sample.",
    )
    state_dir: Path = Field(
        default=Path(".ltv"),
        validation_alias="LTV_STATE_DIR",
        description="Folder for the generated sample, MLflow's SQLite file "
        "and artifacts.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking and registry URI; unset means SQLite "
        "in the state folder.",
    )
    model_name: str = Field(default="revenue-7d", validation_alias="LTV_MODEL_NAME")
    model_alias: str = Field(default="champion", validation_alias="LTV_MODEL_ALIAS")
    experiment_name: str = Field(
        default="revenue-7d", validation_alias="LTV_EXPERIMENT"
    )
    sample_rows: int = Field(default=20_000, validation_alias="LTV_SAMPLE_ROWS")
    seed: int = Field(default=42, validation_alias="LTV_SEED")
    cv_folds: int = Field(default=5, ge=2, validation_alias="LTV_CV_FOLDS")
    cv_repeats: int = Field(default=2, ge=1, validation_alias="LTV_CV_REPEATS")

    max_batch_users: int = Field(
        default=10_000,
        ge=1,
        validation_alias="MAX_BATCH_USERS",
        description="Maximum users in one POST /batch_predict request.",
    )
    model_poll_interval_s: float = Field(
        default=10.0,
        ge=0,
        validation_alias="MODEL_POLL_INTERVAL_S",
        description="Seconds between checks of the model alias; 0 turns polling off.",
    )

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL for the prediction log; unset means SQLite "
        "in the state folder.",
    )
    prediction_log: bool = Field(
        default=True,
        validation_alias="PREDICTION_LOG",
        description="Record every prediction.",
    )
    prediction_log_max_rows: int = Field(
        default=100_000,
        ge=1,
        validation_alias="PREDICTION_LOG_MAX_ROWS",
        description="Rows kept in memory during a database outage before they "
        "move to the spill file.",
    )

    api_keys: SecretStr | None = Field(
        default=None,
        validation_alias="API_KEYS",
        description="Comma-separated API keys; set, every endpoint but health "
        "and readiness needs one.",
    )
    api_keys_file: Path | None = Field(
        default=None,
        validation_alias="API_KEYS_FILE",
        description="File of accepted keys' SHA-256 digests, one per line with "
        "an optional label.",
    )
    rate_limit_per_s: float | None = Field(
        default=None,
        gt=0,
        validation_alias="RATE_LIMIT_PER_S",
        description="Requests per second per key (or client address without "
        "keys), per replica; unset means no limit.",
    )
    rate_limit_burst: int | None = Field(
        default=None,
        ge=1,
        validation_alias="RATE_LIMIT_BURST",
        description="Requests a client may send at once before the rate applies.",
    )
    rate_limit_client_header: str | None = Field(
        default=None,
        validation_alias="RATE_LIMIT_CLIENT_HEADER",
        description="Header whose last entry names the client address, set by "
        "a trusted proxy (for example X-Forwarded-For).",
    )
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1,
        validation_alias="MAX_BODY_BYTES",
        description="Largest request body accepted; larger bodies get 413.",
    )

    @field_validator(
        "revenue_data",
        "mlflow_tracking_uri",
        "database_url",
        "api_keys",
        "api_keys_file",
        "rate_limit_per_s",
        "rate_limit_burst",
        "rate_limit_client_header",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def state_path(self) -> Path:
        return self.state_dir.expanduser().resolve()

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.state_path / 'mlflow.db'}"

    @property
    def artifact_location(self) -> str:
        return (self.state_path / "mlartifacts").as_uri()

    @property
    def champion_uri(self) -> str:
        return f"models:/{self.model_name}@{self.model_alias}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
