import math

import numpy as np
import pytest
from pydantic import ValidationError

from ltv.schema import (
    FLOAT32_MAX,
    MISSING,
    MODEL_FEATURES,
    UserFeatures,
    clean_category,
    clean_columns,
    feature_frame_from_users,
    parse_os_version,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("iOS", "ios"),
        (" IOS ", "ios"),
        ("ios", "ios"),
        ("Apple  iPad11,6", "apple ipad11,6"),
        ("\tNon-Organic\n", "non-organic"),
        ("", MISSING),
        ("   ", MISSING),
        (None, MISSING),
        (float("nan"), MISSING),
        ("ÉSPAÑA", "éspaña"),
        ("Espan\u0303a", "españa"),
    ],
)
def test_clean_category(raw, expected):
    assert clean_category(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("14.4", (14.0, 4.0)),
        ("8.1.0", (8.0, 1.0)),
        ("10", (10.0, 0.0)),
        (" 12.5.1 ", (12.0, 5.0)),
        ("13.4.1-beta", (13.0, 4.0)),
    ],
)
def test_parse_os_version_reads_major_and_minor(raw, expected):
    assert parse_os_version(raw) == expected


@pytest.mark.parametrize("raw", ["", None, "unknown", ".5", float("nan")])
def test_parse_os_version_missing_gives_nan(raw):
    major, minor = parse_os_version(raw)
    assert math.isnan(major)
    assert math.isnan(minor)


def test_clean_columns_types_and_missing_keys():
    features = clean_columns({"platform": ["iOS ", None], "event_2": [3, None]})
    assert set(features) == set(MODEL_FEATURES)
    assert features["platform"].tolist() == ["ios", MISSING]
    assert features["country"].tolist() == [MISSING, MISSING]
    assert features["event_2"].dtype == np.float32
    assert features["event_2"][0] == 3.0
    assert np.isnan(features["event_2"][1])
    assert np.isnan(features["os_major"]).all()


def test_feature_frame_from_users_matches_columns():
    frame = feature_frame_from_users(
        [{"country": "ES", "os_version": "14.4", "event_1": 1, "event_2": 2}]
    )
    assert list(frame.columns) == list(MODEL_FEATURES)
    assert frame.loc[0, "country"] == "es"
    assert frame.loc[0, "os_minor"] == 4.0
    assert np.isnan(frame.loc[0, "event_3"])


def test_user_features_accepts_example_payload():
    user = UserFeatures.model_validate(
        {
            "user_id": "1d5189a4",
            "country": "es",
            "platform": "iOS",
            "event_1": 100,
            "event_2": 50,
            "event_3": None,
            "unknown_extra": {"nested": True},
        }
    )
    assert user.event_2 == 50.0
    assert user.event_3 is None


@pytest.mark.parametrize("value", ["4.5", True, b"4"])
def test_user_features_rejects_non_number_count(value):
    with pytest.raises(ValidationError, match="valid number"):
        UserFeatures.model_validate({"event_1": 0, "event_2": value})


def test_user_features_rejects_integer_beyond_float_range():
    with pytest.raises(ValidationError):
        UserFeatures.model_validate_json(
            '{"event_1": 0, "event_2": 1' + "0" * 400 + "}"
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_1", -1),
        ("event_2", None),
        ("event_2", "many"),
        ("event_2", float("inf")),
        ("event_2", float("nan")),
        ("event_3", 1e39),
        ("event_3", -0.5),
        ("country", "x" * 257),
        ("country", 12),
        ("platform", ["iOS"]),
    ],
)
def test_user_features_rejects_invalid_value(field, value):
    payload = {"event_1": 0, "event_2": 0, field: value}
    with pytest.raises(ValidationError) as caught:
        UserFeatures.model_validate(payload)
    assert caught.value.errors()[0]["loc"][0] == field


def test_user_features_requires_event_counts():
    with pytest.raises(ValidationError) as caught:
        UserFeatures.model_validate({"country": "es"})
    missing = {error["loc"][0] for error in caught.value.errors()}
    assert missing == {"event_1", "event_2"}


def test_user_features_accepts_float32_max():
    assert UserFeatures.model_validate({"event_1": 0, "event_2": FLOAT32_MAX})
