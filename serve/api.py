"""Request and response bodies of the HTTP API."""

from pydantic import BaseModel, Field, create_model

from ltv.schema import UserFeatures


class PredictResponse(BaseModel):
    predicted_revenue: float = Field(ge=0, description="Predicted 7-day revenue.")
    model_version: str
    inference_time_ms: float
    request_id: str


class Prediction(BaseModel):
    predicted_revenue: float = Field(ge=0)


class BatchPredictResponse(BaseModel):
    predictions: list[Prediction]
    total_users: int
    model_version: str
    inference_time_ms: float
    request_id: str


class HealthResponse(BaseModel):
    status: str
    model_name: str
    model_version: str


class ErrorResponse(BaseModel):
    error: str = Field(description="Machine-readable error code.")
    message: str = Field(description="What is wrong and how to fix it.")


def batch_request_model(max_users: int) -> type[BaseModel]:
    """Return the ``POST /batch_predict`` body with its size limit built in."""
    return create_model(
        "BatchPredictRequest",
        users=(
            list[UserFeatures],
            Field(min_length=1, max_length=max_users, description="Users to score."),
        ),
    )
