import numpy as np
import pandas as pd
import pytest

from ltv.sample import generate_users
from training.data import REQUIRED_COLUMNS, DataValidationError, load_users


def write(tmp_path, frame: pd.DataFrame):
    path = tmp_path / "users.csv"
    frame.to_csv(path, index=False)
    return path


def test_sample_has_real_schema():
    sample = generate_users(3000, seed=1)
    assert list(sample.columns) == list(REQUIRED_COLUMNS)
    assert sample["user_id"].is_unique


def test_sample_is_messy_and_heavy_tailed():
    sample = generate_users(20_000, seed=1)
    assert (sample["revenue"] == 0).mean() > 0.2
    assert sample["revenue"].max() > 1000 * sample["revenue"].quantile(0.99)
    assert sample["event_3"].isna().any()
    assert (sample["source"] == "").any()
    assert sample["platform"].nunique() > sample["platform"].str.lower().nunique()


def test_load_users_reads_sample(tmp_path):
    frame = load_users(write(tmp_path, generate_users(500, seed=2)))
    assert len(frame) == 500
    assert frame["event_2"].dtype.kind in "if"


def test_load_users_names_missing_column(tmp_path):
    path = write(tmp_path, generate_users(50).drop(columns=["event_2"]))
    with pytest.raises(DataValidationError, match="missing column.*event_2"):
        load_users(path)


def test_load_users_counts_unparseable_rows(tmp_path):
    frame = generate_users(50)
    frame["event_1"] = frame["event_1"].astype(object)
    frame.loc[[3, 7, 9], "event_1"] = "lots"
    with pytest.raises(DataValidationError, match=r"'event_1': 3 of 50 rows"):
        load_users(write(tmp_path, frame))


def test_load_users_rejects_negative_revenue(tmp_path):
    frame = generate_users(50)
    frame.loc[0, "revenue"] = -1.0
    with pytest.raises(DataValidationError, match=r"'revenue': 1 of 50 rows"):
        load_users(write(tmp_path, frame))


def test_load_users_allows_empty_event_3(tmp_path):
    frame = generate_users(50)
    frame.loc[0, "event_3"] = np.nan
    assert np.isnan(load_users(write(tmp_path, frame)).loc[0, "event_3"])


def test_load_users_rejects_empty_event_2(tmp_path):
    frame = generate_users(50)
    frame["event_2"] = frame["event_2"].astype(object)
    frame.loc[0, "event_2"] = ""
    with pytest.raises(DataValidationError, match="'event_2'"):
        load_users(write(tmp_path, frame))


def test_load_users_missing_file(tmp_path):
    with pytest.raises(DataValidationError, match="not found"):
        load_users(tmp_path / "nope.csv")
