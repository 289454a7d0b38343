"""Check that the ONNX graph predicts what the native model predicts."""

from dataclasses import asdict, dataclass

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd

from ltv.schema import CATEGORICAL_FEATURES, MISSING, MODEL_FEATURES, NUMERIC_FEATURES
from training.model import RevenueModel

RELATIVE_TOLERANCE = 1e-4
ABSOLUTE_TOLERANCE = 1e-6


class ParityError(AssertionError):
    """ONNX Runtime and the native model disagree beyond the tolerance."""


@dataclass
class ParityReport:
    rows: int
    edge_rows: int
    failed_rows: int
    max_abs_error: float
    max_rel_error: float
    worst_row: dict

    @property
    def passed(self) -> bool:
        return self.failed_rows == 0

    def as_tags(self) -> dict[str, str]:
        fields = asdict(self)
        fields.pop("worst_row")
        fields["passed"] = self.passed
        return {f"parity_{name}": str(value) for name, value in fields.items()}


def edge_rows(reference: pd.DataFrame) -> pd.DataFrame:
    """Rows that training data rarely has: unseen and missing values, extremes."""
    base = reference.iloc[[0]].reset_index(drop=True)
    cases = []

    def case(**changes) -> None:
        row = base.copy()
        for name, value in changes.items():
            row[name] = value
        cases.append(row)

    unseen = {name: f"never-seen {name}" for name in CATEGORICAL_FEATURES}
    missing = {name: MISSING for name in CATEGORICAL_FEATURES}
    zeros = {name: 0.0 for name in NUMERIC_FEATURES}
    case(**unseen)
    case(**missing)
    case(os_major=np.nan, os_minor=np.nan, event_3=np.nan)
    case(**zeros)
    case(**unseen, **zeros)
    for count in (1e3, 1e6, 1e9):
        case(event_1=count, event_2=count, event_3=count)
    case(event_2=1e6, event_3=np.nan, **missing)
    case(country="pe", event_2=300.0, event_3=30.0)
    case(country="PE ", event_2=300.0)
    return pd.concat(cases, ignore_index=True)


def onnx_inputs(features: pd.DataFrame) -> dict[str, np.ndarray]:
    inputs = {}
    for name in CATEGORICAL_FEATURES:
        inputs[name] = features[name].to_numpy(dtype=object).reshape(-1, 1)
    for name in NUMERIC_FEATURES:
        inputs[name] = features[name].to_numpy(dtype=np.float32).reshape(-1, 1)
    return inputs


def check_parity(
    model: RevenueModel, onnx_model: onnx.ModelProto, features: pd.DataFrame
) -> ParityReport:
    """Compare predictions on ``features`` plus edge rows; raise on any miss.

    A row passes when it is within 1e-4 relative or 1e-6 absolute error.
    """
    rows = pd.concat(
        [features[list(MODEL_FEATURES)], edge_rows(features)], ignore_index=True
    )
    session = ort.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (onnx_output,) = session.run(None, onnx_inputs(rows))
    compiled = onnx_output.ravel().astype(np.float64)
    native = model.predict(rows)

    abs_error = np.abs(compiled - native)
    rel_error = abs_error / np.maximum(np.abs(native), np.finfo(np.float64).tiny)
    failed = (abs_error > ABSOLUTE_TOLERANCE) & (rel_error > RELATIVE_TOLERANCE)
    failed |= np.isfinite(native) != np.isfinite(compiled)
    worst = int(np.argmax(np.where(abs_error > ABSOLUTE_TOLERANCE, rel_error, 0)))

    report = ParityReport(
        rows=len(rows),
        edge_rows=len(rows) - len(features),
        failed_rows=int(failed.sum()),
        max_abs_error=float(abs_error.max()),
        max_rel_error=float(
            np.where(abs_error > ABSOLUTE_TOLERANCE, rel_error, 0).max()
        ),
        worst_row={
            "index": worst,
            "native": float(native[worst]),
            "onnx": float(compiled[worst]),
            "features": rows.iloc[worst].to_dict(),
        },
    )
    if not report.passed:
        raise ParityError(
            f"ONNX and native predictions differ on {report.failed_rows} of "
            f"{report.rows} rows; worst row {worst}: native {native[worst]!r}, "
            f"ONNX {compiled[worst]!r}, features {report.worst_row['features']}"
        )
    return report
