import numpy as np
import onnxruntime as ort
import pytest
from mlflow.tracking import MlflowClient
from onnx import numpy_helper

from export.onnx_graph import compile_model
from export.parity import ParityError, check_parity, edge_rows, onnx_inputs
from export.register import export
from ltv.schema import MODEL_FEATURES, clean_frame
from training.data import load_users
from training.model import RevenueModel
from training.train import train


@pytest.fixture(scope="module")
def fitted(sample_data):
    raw = load_users(sample_data)
    features = clean_frame(raw)
    model = RevenueModel(params={"n_estimators": 80}).fit(features, raw["revenue"])
    return model, features


def test_compiled_graph_takes_raw_feature_inputs(fitted):
    model, _ = fitted
    graph = compile_model(model).graph
    assert [i.name for i in graph.input] == list(MODEL_FEATURES)
    assert [o.name for o in graph.output] == ["predicted_revenue"]


def test_parity_holds_on_sample_and_edge_rows(fitted):
    model, features = fitted
    report = check_parity(model, compile_model(model), features)
    assert report.passed
    assert report.edge_rows == len(edge_rows(features))
    assert report.rows == len(features) + report.edge_rows


def test_edge_rows_predict_finite_non_negative(fitted):
    model, features = fitted
    session = ort.InferenceSession(compile_model(model).SerializeToString())
    (output,) = session.run(None, onnx_inputs(edge_rows(features)))
    assert np.isfinite(output).all()
    assert (output >= 0).all()


def test_parity_failure_names_worst_row(fitted):
    model, features = fitted
    onnx_model = compile_model(model)
    floor = next(t for t in onnx_model.graph.initializer if t.name == "exposure_floor")
    floor.CopyFrom(numpy_helper.from_array(np.float32(5.0), "exposure_floor"))
    with pytest.raises(ParityError, match="worst row"):
        check_parity(model, onnx_model, features)


def test_export_registers_champion_with_parity(sample_settings):
    train(sample_settings)
    result = export(sample_settings)
    client = MlflowClient(sample_settings.tracking_uri)
    version = client.get_model_version_by_alias("revenue-7d", "champion")
    assert str(version.version) == result.version
    assert version.tags["parity_passed"] == "True"
    assert "valid_mae" in version.tags
    assert version.tags["data_rows"] == "4000"


def test_export_twice_keeps_version(sample_settings):
    train(sample_settings)
    first = export(sample_settings)
    second = export(sample_settings)
    assert second.skipped
    assert second.version == first.version
