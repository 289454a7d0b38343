"""Property-based tests of the input schema: cleaning and validation."""

import json
import math
import string

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ltv.schema import (
    CATEGORICAL_FEATURES,
    FLOAT32_MAX,
    MAX_TEXT_LENGTH,
    MISSING,
    NUMERIC_FEATURES,
    RAW_FIELDS,
    TEXT_FIELDS,
    UserFeatures,
    clean_category,
    clean_columns,
    parse_os_version,
    validate_columns,
)

settings.register_profile(
    "ltv", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ltv")

texts = st.text(max_size=MAX_TEXT_LENGTH)
valid_counts = st.floats(min_value=0, max_value=FLOAT32_MAX, allow_nan=False)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.one_of(
    json_values,
    valid_counts,
    st.floats(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.text(alphabet=string.digits + ".-+eE inf", max_size=12),
    st.text(min_size=MAX_TEXT_LENGTH - 2, max_size=MAX_TEXT_LENGTH + 2),
)
valid_users = st.fixed_dictionaries(
    {"event_1": valid_counts, "event_2": valid_counts},
    optional={
        **{name: st.none() | texts for name in TEXT_FIELDS},
        "event_3": st.none() | valid_counts,
    },
)
# A valid user with one field replaced or removed, so most examples are one
# mistake away from valid and each rule gets exercised on its own.
changed_users = st.builds(
    lambda user, name, value, drop: (
        {k: v for k, v in user.items() if k != name} if drop else {**user, name: value}
    ),
    valid_users,
    st.sampled_from(RAW_FIELDS),
    field_values,
    st.booleans(),
)
user_dicts = changed_users | st.dictionaries(st.sampled_from(RAW_FIELDS), field_values)


@given(texts)
def test_clean_category_is_idempotent(value):
    assert clean_category(clean_category(value)) == clean_category(value)


@given(texts, st.sampled_from([" ", "\t", "\n", "  \u00a0"]))
def test_clean_category_ignores_surrounding_space(value, space):
    assert clean_category(space + value + space) == clean_category(value)


@given(st.text(alphabet=string.ascii_letters + " -_.0123456789", max_size=40))
def test_clean_category_ignores_ascii_letter_case(value):
    assert clean_category(value.swapcase()) == clean_category(value)


@given(st.text(alphabet=string.whitespace, max_size=10))
def test_clean_category_maps_blank_to_missing(value):
    assert clean_category(value) == MISSING


@given(st.one_of(st.none(), texts, st.floats(), st.integers()))
@example("9" * 60)
@example("1" + "0" * 400 + ".5")
def test_parse_os_version_is_finite_float32_or_nan(value):
    for part in parse_os_version(value):
        assert math.isnan(part) or abs(part) <= FLOAT32_MAX


@given(valid_users)
def test_user_features_accepts_valid_user(user):
    parsed = UserFeatures.model_validate(user)
    assert parsed.event_2 == user["event_2"]


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_user_features_any_bytes_give_validation_error(body):
    try:
        UserFeatures.model_validate_json(body)
    except ValidationError:
        pass


@given(user_dicts)
def test_user_features_any_fields_give_validation_error(user):
    try:
        UserFeatures.model_validate(user)
    except ValidationError:
        pass


@given(user_dicts)
def test_validate_columns_agrees_with_user_features(user):
    """The column check used by V2 and batch scoring accepts what the API accepts."""
    try:
        UserFeatures.model_validate(user)
        accepted = True
    except ValidationError:
        accepted = False
    columns = {name: [value] for name, value in user.items()}
    assert (validate_columns(columns) == []) == accepted, user


@given(st.sampled_from(["event_1", "event_2", "event_3"]), st.floats())
@example("event_2", 3.5e38)
@example("event_1", -0.0)
def test_counts_outside_range_are_rejected_not_clipped(name, value):
    user = {"event_1": 1, "event_2": 1, name: value}
    valid = math.isfinite(value) and 0 <= value <= FLOAT32_MAX
    try:
        parsed = UserFeatures.model_validate(user)
    except ValidationError:
        assert not valid
    else:
        assert valid
        assert getattr(parsed, name) == value


@given(valid_users)
def test_user_features_round_trips_through_json(user):
    body = json.dumps(user)
    assert UserFeatures.model_validate_json(body) == UserFeatures.model_validate(user)


@given(st.lists(valid_users, min_size=1, max_size=20))
def test_clean_columns_gives_model_ready_arrays(users):
    parsed = [UserFeatures.model_validate(user) for user in users]
    columns = {name: [getattr(u, name) for u in parsed] for name in RAW_FIELDS}
    features = clean_columns(columns)
    for name in CATEGORICAL_FEATURES:
        assert all(isinstance(v, str) and v for v in features[name])
    for name in NUMERIC_FEATURES:
        assert features[name].dtype == np.float32
        assert len(features[name]) == len(users)
        assert not np.isinf(features[name]).any()
