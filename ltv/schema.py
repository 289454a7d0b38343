"""Input fields of the revenue model and their cleaning.

Training, export, serving and batch scoring all import this module, so that a
value such as ``" iOS "`` or a missing ``event_3`` means the same everywhere.
"""

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, Strict

CATEGORICAL_FIELDS = (
    "country",
    "country_region",
    "source",
    "platform",
    "device_family",
)
COUNT_FIELDS = ("event_1", "event_2", "event_3")
RAW_FIELDS = (*CATEGORICAL_FIELDS, "os_version", *COUNT_FIELDS)
ID_FIELD = "user_id"
TARGET = "revenue"

# Features after cleaning, in the order of the ONNX graph's inputs.
# device_brand is the first word of device_family ("samsung", "redmi"), or its
# first two for Apple ("apple ipad"), so that an unseen raw model string still
# shares a category with known devices of its brand.
CATEGORICAL_FEATURES = (*CATEGORICAL_FIELDS, "device_brand")
OS_VERSION_FEATURES = ("os_major", "os_minor")
NUMERIC_FEATURES = (*OS_VERSION_FEATURES, *COUNT_FIELDS)
MODEL_FEATURES = (*CATEGORICAL_FEATURES, *NUMERIC_FEATURES)

# Name of the ONNX graph's output. Defined here, not in export/, so that
# serving and batch scoring do not import LightGBM and skl2onnx for it.
OUTPUT_NAME = "predicted_revenue"
MISSING = "(missing)"
MAX_TEXT_LENGTH = 256
FLOAT32_MAX = float(np.finfo(np.float32).max)

_SPACES = re.compile(r"\s+")
_VERSION = re.compile(r"^\s*(\d+)(?:\.(\d+))?")
_APPLE_PRODUCT = re.compile(r"^apple ([a-z]+)")


def clean_category(value: Any) -> str:
    """Fold letter case, spaces and Unicode forms; map null and blank to ``MISSING``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    text = unicodedata.normalize("NFKC", str(value))
    text = _SPACES.sub(" ", text).strip().casefold()
    return text or MISSING


def device_brand(device_family: str) -> str:
    """Return the brand part of a cleaned ``device_family``."""
    if device_family == MISSING:
        return MISSING
    apple = _APPLE_PRODUCT.match(device_family)
    if apple:
        return f"apple {apple.group(1)}"
    return device_family.split(" ", 1)[0]


def parse_os_version(value: Any) -> tuple[float, float]:
    """Return the major and minor version, NaN where they cannot be read.

    ``"8.1.0"`` gives (8, 1), ``"10"`` gives (10, 0) because a bare major
    version means its first minor release, and ``""`` or a number beyond
    float32 range gives (NaN, NaN).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan, math.nan
    match = _VERSION.match(str(value))
    if match is None:
        return math.nan, math.nan
    major, minor = (float(part or 0) for part in match.groups())
    # A version too large for float32 would reach the model as infinity.
    if major > FLOAT32_MAX or minor > FLOAT32_MAX:
        return math.nan, math.nan
    return major, minor


def clean_columns(columns: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
    """Turn raw field values into the model's feature columns.

    Categorical features become object arrays of cleaned strings, numeric
    features float32 arrays with NaN for missing values. Missing keys count
    as all-missing, so a caller only has to pass the fields it has.
    """
    length = len(next(iter(columns.values())))
    absent = [None] * length
    features: dict[str, np.ndarray] = {}

    for name in CATEGORICAL_FIELDS:
        values = columns.get(name, absent)
        features[name] = np.array([clean_category(v) for v in values], dtype=object)
    features["device_brand"] = np.array(
        [device_brand(v) for v in features["device_family"]], dtype=object
    )

    versions = [parse_os_version(v) for v in columns.get("os_version", absent)]
    version_array = np.array(versions, dtype=np.float32).reshape(length, 2)
    features["os_major"] = version_array[:, 0]
    features["os_minor"] = version_array[:, 1]

    for name in COUNT_FIELDS:
        values = pd.to_numeric(pd.Series(columns.get(name, absent)), errors="coerce")
        features[name] = values.to_numpy(dtype=np.float32, na_value=np.nan)

    return features


def clean_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the model's feature columns for a frame of raw fields."""
    columns = {name: frame[name].tolist() for name in RAW_FIELDS if name in frame}
    return pd.DataFrame(clean_columns(columns), index=frame.index)


def feature_frame_from_users(users: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Return the model's feature columns for request-style user dicts."""
    rows = list(users)
    columns = {name: [row.get(name) for row in rows] for name in RAW_FIELDS}
    return pd.DataFrame(clean_columns(columns))


# Strict: a count must be a JSON number. Booleans and numeric strings are
# rejected, so a client that sends "12" or true learns of its bug.
Count = Annotated[
    float,
    Strict(),
    Field(
        ge=0,
        le=FLOAT32_MAX,
        allow_inf_nan=False,
        description="Event count; finite, non-negative and within float32 range.",
    ),
]
Text = Annotated[str | None, Field(default=None, max_length=MAX_TEXT_LENGTH)]

# The payload that clients of this service send, as documented in the README.
EXAMPLE_USER = {
    "country": "es",
    "country_region": "Madrid",
    "source": "Organic",
    "platform": "iOS",
    "device_family": "Apple iPhone",
    "os_version": "14.4",
    "event_1": 100,
    "event_2": 50,
    "event_3": 10.0,
}


class UserFeatures(BaseModel):
    """One user as clients send it. Unknown extra fields are ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [EXAMPLE_USER]},
    )

    user_id: Text = None
    country: Text = None
    country_region: Text = None
    source: Text = None
    platform: Text = None
    device_family: Text = None
    os_version: Text = None
    event_1: Count
    event_2: Count
    event_3: Count | None = None


class FieldError(NamedTuple):
    """One invalid value: the row index (None for a whole column), field, problem."""

    index: int | None
    field: str
    problem: str


REQUIRED_COUNTS = ("event_1", "event_2")
TEXT_FIELDS = (*CATEGORICAL_FIELDS, "os_version")


def validate_columns(
    columns: Mapping[str, Sequence[Any]], max_errors: int = 10
) -> list[FieldError]:
    """Check column-wise input with the same rules as ``UserFeatures``.

    Used where rows arrive as columns (the Open Inference Protocol and batch
    scoring) and per-row pydantic validation would be slow.
    """
    errors: list[FieldError] = []
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        return [
            FieldError(None, "inputs", f"columns differ in length: {sorted(lengths)}")
        ]
    for name in REQUIRED_COUNTS:
        if name not in columns:
            errors.append(FieldError(None, name, "field required"))

    for name in TEXT_FIELDS:
        for index, value in enumerate(columns.get(name, ())):
            if value is not None and not isinstance(value, str):
                errors.append(FieldError(index, name, "must be a string or null"))
            elif value is not None and len(value) > MAX_TEXT_LENGTH:
                errors.append(
                    FieldError(index, name, f"longer than {MAX_TEXT_LENGTH} characters")
                )
            if len(errors) >= max_errors:
                return errors

    for name in COUNT_FIELDS:
        for index, value in enumerate(columns.get(name, ())):
            problem = _count_problem(value, nullable=name not in REQUIRED_COUNTS)
            if problem:
                errors.append(FieldError(index, name, problem))
            if len(errors) >= max_errors:
                return errors
    return errors


def _count_problem(value: Any, nullable: bool) -> str | None:
    if value is None:
        return None if nullable else "must not be null"
    if isinstance(value, bool | str | bytes):
        return f"must be a number, not {type(value).__name__}"
    try:
        number = float(value)
    except OverflowError:
        return "exceeds the float32 range"
    except (TypeError, ValueError):
        return "must be a number"
    if not math.isfinite(number):
        return "must be finite"
    if number < 0:
        return "must be non-negative"
    if number > FLOAT32_MAX:
        return "exceeds the float32 range"
    return None
