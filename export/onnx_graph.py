"""Compile a fitted ``RevenueModel`` into one ONNX graph.

The graph's inputs are the schema's cleaned feature columns, each shaped
``[batch, 1]``: strings for the categorical fields and float32 for the
numbers (NaN for missing). Its one output, ``predicted_revenue``, is float32
``[batch, 1]``.
"""

import numpy as np
import onnx
from lightgbm import LGBMRegressor
from onnx import TensorProto, helper, numpy_helper
from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from skl2onnx.common.shape_calculator import calculate_linear_regressor_output_shapes

from ltv.schema import CATEGORICAL_FEATURES, NUMERIC_FEATURES, OUTPUT_NAME
from training.model import EVENT_3_WEIGHT, EXPOSURE_FLOOR, RevenueModel

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}

update_registered_converter(
    LGBMRegressor,
    "LightGbmLGBMRegressor",
    calculate_linear_regressor_output_shapes,
    convert_lightgbm,
    options={"split": None},
)


def input_types() -> list[tuple[str, object]]:
    strings = [(name, StringTensorType([None, 1])) for name in CATEGORICAL_FEATURES]
    numbers = [(name, FloatTensorType([None, 1])) for name in NUMERIC_FEATURES]
    return strings + numbers


def compile_model(model: RevenueModel) -> onnx.ModelProto:
    """Convert the rate pipeline, then append ``rate * exposure`` to its graph."""
    onnx_model = convert_sklearn(
        model.pipeline_,
        initial_types=input_types(),
        target_opset=TARGET_OPSET,
        options={id(model.pipeline_.named_steps["model"]): {"split": None}},
    )
    _append_exposure(onnx_model.graph)
    onnx_model.producer_name = "ltv-serve"
    onnx.checker.check_model(onnx_model)
    return onnx_model


def _append_exposure(graph: onnx.GraphProto) -> None:
    (rate_output,) = graph.output
    rate = rate_output.name
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.float32(0.0), "exposure_zero"),
            numpy_helper.from_array(np.float32(EVENT_3_WEIGHT), "exposure_weight"),
            numpy_helper.from_array(np.float32(EXPOSURE_FLOOR), "exposure_floor"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("IsNaN", ["event_3"], ["event_3_missing"]),
            helper.make_node(
                "Where",
                ["event_3_missing", "exposure_zero", "event_3"],
                ["event_3_filled"],
            ),
            helper.make_node(
                "Mul", ["event_3_filled", "exposure_weight"], ["event_3_weighted"]
            ),
            helper.make_node("Add", ["event_2", "event_3_weighted"], ["event_sum"]),
            helper.make_node("Add", ["event_sum", "exposure_floor"], ["exposure"]),
            helper.make_node("Mul", [rate, "exposure"], [OUTPUT_NAME]),
        ]
    )
    graph.output.remove(rate_output)
    graph.output.append(
        helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, 1])
    )
