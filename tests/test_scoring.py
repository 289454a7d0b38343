"""Batch scoring of a cohort file: the actor's validation and the command end to end."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from mlflow.tracking import MlflowClient

from ltv.schema import RAW_FIELDS, clean_columns
from scoring.batch import CohortBatchScorer
from scoring.cohort import PREDICTIONS_FILE, REJECTS_FILE, fetch_graph
from serve.scorer import Scorer, load_scorer, resolve_version
from training.data import load_users

ROOT = Path(__file__).resolve().parent.parent
VALID_ROW = {
    "user_id": "good0001",
    "country": "es",
    "platform": "iOS",
    "os_version": "14.4",
    "event_1": "3",
    "event_2": "12",
    "event_3": "1.0",
}

# (user_id, field, value, words expected in the reason): rows that the HTTP
# API rejects with 422, as the CSV reader passes them on (strings, "" as null).
BAD_ROWS = [
    ("bad00001", "event_2", "-3", "greater than or equal to 0"),
    ("bad00002", "event_1", "abc", "valid number"),
    ("bad00003", "event_1", None, "valid number"),
    ("bad00004", "country", "x" * 300, "at most 256 characters"),
    ("bad00005", "event_3", "nan", "finite number"),
    ("bad00006", "event_2", "inf", "finite number"),
    ("bad00007", "event_1", "-Infinity", "finite number"),
    ("bad00008", "event_2", "1e39", "less than or equal to"),
]


# device_family "Apple iPad11,6" without quotes: 12 fields where the header has 11.
MALFORMED_LINE = "bad00009,es,Madrid,Organic,iOS,Apple iPad11,6,14.4,1,2,3,0.5"


def bad_row(user_id: str, field: str, value: str | None) -> dict:
    return {**VALID_ROW, "user_id": user_id, field: value}


def scorer_for(settings) -> CohortBatchScorer:
    model = fetch_graph(settings, settings.champion_uri)
    return CohortBatchScorer(
        model.graph, model.name, model.version, "user_id", pa.string()
    )


@pytest.fixture(scope="module")
def batch_scorer(serving_state) -> CohortBatchScorer:
    return scorer_for(serving_state.settings)


@pytest.mark.parametrize(("user_id", "field", "value", "problem"), BAD_ROWS)
def test_batch_scorer_rejects_invalid_value(
    batch_scorer, user_id, field, value, problem
):
    batch = pa.Table.from_pylist([VALID_ROW, bad_row(user_id, field, value)])
    scored = batch_scorer(batch).to_pylist()

    assert scored[0]["reason"] is None
    assert scored[0]["predicted_revenue"] >= 0
    assert scored[1]["predicted_revenue"] is None
    assert scored[1]["reason"].startswith(f"{field}: ")
    assert problem in scored[1]["reason"]
    assert f'"user_id": "{user_id}"' in scored[1]["row"]


@pytest.mark.parametrize("user_id", [None, ""])
def test_batch_scorer_rejects_row_without_id(batch_scorer, user_id):
    batch = pa.Table.from_pylist([VALID_ROW, {**VALID_ROW, "user_id": user_id}])
    scored = batch_scorer(batch).to_pylist()

    assert scored[1]["reason"] == "user_id: missing"
    assert scored[1]["predicted_revenue"] is None


class ScorerFailingOnCountry(Scorer):
    """A scorer whose ONNX Runtime call fails for any batch with one country."""

    def predict(self, features):
        if "boom" in features["country"]:
            raise RuntimeError("session failed")
        return super().predict(features)


def test_batch_scorer_rejects_failed_scoring(batch_scorer, monkeypatch):
    original = batch_scorer.scorer
    failing = ScorerFailingOnCountry(
        original.name, original.version, original.uri, original.session
    )
    monkeypatch.setattr(batch_scorer, "scorer", failing)
    batch = pa.Table.from_pylist([VALID_ROW, {**VALID_ROW, "country": "boom"}])
    scored = batch_scorer(batch).to_pylist()

    assert scored[0]["reason"] is None
    assert scored[0]["predicted_revenue"] >= 0
    assert scored[1]["reason"] == "scoring failed: RuntimeError: session failed"
    assert scored[1]["predicted_revenue"] is None


def test_batch_scorer_matches_api_for_count_text(batch_scorer, serving_state):
    numbers = {**VALID_ROW, "event_1": 3, "event_2": 12, "event_3": 1.0}
    strings = pa.Table.from_pylist([VALID_ROW])
    typed = pa.Table.from_pylist([numbers])
    scorer = load_scorer(
        serving_state.settings, serving_state.settings.champion_uri, threads=1
    )
    expected = scorer.predict(clean_columns({n: [numbers.get(n)] for n in RAW_FIELDS}))

    assert batch_scorer(strings)["predicted_revenue"][0].as_py() == expected[0]
    assert batch_scorer(typed)["predicted_revenue"][0].as_py() == expected[0]


@dataclass
class CommandRun:
    result: subprocess.CompletedProcess
    predictions: pd.DataFrame
    rejects: pd.DataFrame


def run_command(settings, *args: str) -> subprocess.CompletedProcess:
    """Run ``python -m scoring`` as a user would, on a private local Ray."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["LTV_STATE_DIR"] = str(settings.state_path)
    env["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    return subprocess.run(
        [sys.executable, "-m", "scoring", *args, "--address", "local"],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def read_outputs(result, output: Path) -> CommandRun:
    assert result.returncode == 0, result.stderr[-3000:]
    return CommandRun(
        result,
        pd.read_parquet(output / PREDICTIONS_FILE),
        pd.read_parquet(output / REJECTS_FILE),
    )


@pytest.fixture(scope="module")
def real_users(real_data) -> pd.DataFrame:
    return pd.read_csv(real_data, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def csv_run(real_trained, real_users, tmp_path_factory) -> CommandRun:
    """Score the real cohort plus BAD_ROWS from a CSV with the champion."""
    folder = tmp_path_factory.mktemp("scoring-csv")
    bad = pd.DataFrame([bad_row(*case[:3]) for case in BAD_ROWS])
    cohort = pd.concat([real_users, bad], ignore_index=True)
    cohort.to_csv(folder / "cohort.csv", index=False)
    with (folder / "cohort.csv").open("a") as csv:
        csv.write(MALFORMED_LINE + "\n")

    output = folder / "out"
    result = run_command(
        real_trained.settings, str(folder / "cohort.csv"), "--output", str(output)
    )
    return read_outputs(result, output)


@pytest.fixture(scope="module")
def parquet_run(real_trained, real_data, tmp_path_factory) -> CommandRun:
    """Score the real cohort from Parquet with numeric counts, by version number."""
    folder = tmp_path_factory.mktemp("scoring-parquet")
    load_users(real_data).to_parquet(folder / "cohort.parquet", index=False)

    output = folder / "out"
    version = real_trained.exported.version
    result = run_command(
        real_trained.settings,
        str(folder / "cohort.parquet"),
        "--output",
        str(output),
        "--model",
        f"models:/{real_trained.settings.model_name}/{version}",
        "--batch-size",
        "3000",
    )
    return read_outputs(result, output)


def expected_predictions(settings, real_data: Path, model_uri: str) -> pd.Series:
    """Scores of the real cohort through serving's scorer, read as training reads."""
    frame = load_users(real_data)
    scorer = load_scorer(settings, model_uri, threads=1)
    columns = clean_columns({name: frame[name].tolist() for name in RAW_FIELDS})
    return pd.Series(scorer.predict(columns), index=frame["user_id"])


@pytest.mark.real_data
def test_command_rows_add_up_to_input(csv_run, real_users):
    scored = len(csv_run.predictions)
    rejected = len(csv_run.rejects)

    assert scored + rejected == len(real_users) + len(BAD_ROWS) + 1
    assert csv_run.predictions["user_id"].is_unique


@pytest.mark.real_data
def test_command_rejects_exactly_bad_rows(csv_run):
    expected = {user_id: field for user_id, field, _, _ in BAD_ROWS}
    rejects = csv_run.rejects.dropna(subset="user_id").set_index("user_id")

    assert set(rejects.index) == set(expected)
    for user_id, field in expected.items():
        assert rejects.loc[user_id, "reason"].startswith(f"{field}: "), user_id
        assert f'"{user_id}"' in rejects.loc[user_id, "row"]


@pytest.mark.real_data
def test_command_rejects_malformed_csv_line(csv_run):
    without_id = csv_run.rejects[csv_run.rejects["user_id"].isna()]

    assert len(without_id) == 1
    assert "expected 11 fields, found 12" in without_id["reason"].iloc[0]
    assert without_id["row"].iloc[0] == MALFORMED_LINE


@pytest.mark.real_data
def test_command_matches_serving_scores(csv_run, real_trained, real_data):
    settings = real_trained.settings
    expected = expected_predictions(settings, real_data, settings.champion_uri)
    predicted = csv_run.predictions.set_index("user_id")["predicted_revenue"]

    assert set(predicted.index) == set(expected.index)
    np.testing.assert_allclose(
        predicted.loc[expected.index], expected, rtol=1e-5, atol=1e-12
    )


@pytest.mark.real_data
def test_command_writes_registered_version(csv_run, real_trained):
    settings = real_trained.settings
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    _, champion = resolve_version(client, settings.champion_uri)

    assert set(csv_run.predictions["model_version"]) == {champion}
    assert f"(version {champion})" in csv_run.result.stdout


@pytest.mark.real_data
def test_command_prints_summary(csv_run):
    assert f"rejected:     {len(BAD_ROWS) + 1} rows" in csv_run.result.stdout
    assert "rows/s" in csv_run.result.stdout


@pytest.mark.real_data
def test_command_scores_parquet_input(parquet_run, csv_run, real_users):
    parquet = parquet_run.predictions.set_index("user_id")["predicted_revenue"]
    from_csv = csv_run.predictions.set_index("user_id")["predicted_revenue"]

    assert len(parquet) == len(real_users)
    assert parquet_run.rejects.empty
    np.testing.assert_allclose(parquet, from_csv.loc[parquet.index], rtol=1e-5)


@pytest.mark.real_data
def test_command_rejects_missing_id_column(real_trained, tmp_path):
    cohort = tmp_path / "cohort.csv"
    pd.DataFrame([VALID_ROW]).drop(columns="user_id").to_csv(cohort, index=False)

    result = run_command(
        real_trained.settings, str(cohort), "--output", str(tmp_path / "out")
    )

    assert result.returncode != 0
    assert "no id column 'user_id'" in result.stderr
    assert "--id-column" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.real_data
def test_command_rejects_missing_input_file(real_trained, tmp_path):
    result = run_command(
        real_trained.settings, str(tmp_path / "absent.csv"), "--output", str(tmp_path)
    )

    assert result.returncode != 0
    assert "input file not found" in result.stderr
    assert "Traceback" not in result.stderr
