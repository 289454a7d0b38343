"""Open Inference Protocol (KServe V2) requests and responses.

Each raw field is one input tensor: BYTES for the text fields, a numeric
type (FP32 by default) for the counts. Both the JSON form and the binary
data extension that Triton clients use by default are accepted; responses
are always JSON.
"""

import struct
from typing import Any

import numpy as np
import orjson

from ltv.schema import (
    COUNT_FIELDS,
    RAW_FIELDS,
    TEXT_FIELDS,
    FieldError,
    validate_columns,
)
from serve.errors import MAX_REQUEST_ID_LENGTH, ServiceError, shorten

OUTPUT = "predicted_revenue"
NUMERIC_TYPES = {
    "FP32": "<f4",
    "FP64": "<f8",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT32": "<u4",
    "UINT64": "<u8",
}
HEADER_LENGTH = "inference-header-content-length"
_END = object()


def metadata(name: str, version: str) -> dict[str, Any]:
    inputs = [
        {"name": field, "datatype": "BYTES", "shape": [-1, 1]} for field in TEXT_FIELDS
    ] + [
        {"name": field, "datatype": "FP32", "shape": [-1, 1]} for field in COUNT_FIELDS
    ]
    return {
        "name": name,
        "versions": [version],
        "platform": "onnxruntime_onnx",
        "inputs": inputs,
        "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, 1]}],
    }


def _invalid(message: str) -> ServiceError:
    return ServiceError(400, "invalid_request", message)


def split_body(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """Return the JSON header and the binary tail of an inference request."""
    if header_length is None:
        json_part, binary = body, b""
    else:
        try:
            length = int(header_length)
        except ValueError:
            raise _invalid(f"{HEADER_LENGTH} must be an integer") from None
        if not 0 <= length <= len(body):
            raise _invalid(f"{HEADER_LENGTH} {length} is outside the body")
        json_part, binary = body[:length], body[length:]
    try:
        request = orjson.loads(json_part)
    except orjson.JSONDecodeError as error:
        raise _invalid(f"request body is not valid JSON: {error}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise _invalid("request must be an object with an 'inputs' list")
    return request, binary


def _flatten(data: Any) -> list:
    """Return the leaves of nested lists in order, without recursion.

    A loop instead of recursion, because a body nested about 1,000 levels deep
    would otherwise raise RecursionError and turn into a 500.
    """
    flat: list = []
    stack = [iter([data])]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            flat.append(item)
    return flat


def _decode_bytes(chunk: bytes, name: str) -> list[str]:
    values, offset = [], 0
    while offset < len(chunk):
        if offset + 4 > len(chunk):
            raise _invalid(f"input {name!r}: truncated BYTES element")
        (size,) = struct.unpack_from("<I", chunk, offset)
        offset += 4
        if offset + size > len(chunk):
            raise _invalid(f"input {name!r}: truncated BYTES element")
        values.append(chunk[offset : offset + size].decode("utf-8", "replace"))
        offset += size
    return values


def _binary_values(tensor: dict, chunk: bytes) -> list:
    name, datatype = tensor["name"], tensor.get("datatype")
    if datatype == "BYTES":
        return _decode_bytes(chunk, name)
    if datatype not in NUMERIC_TYPES:
        raise _invalid(f"input {name!r}: unsupported datatype {datatype!r}")
    dtype = np.dtype(NUMERIC_TYPES[datatype])
    if len(chunk) % dtype.itemsize:
        raise _invalid(f"input {name!r}: binary size is not a multiple of {datatype}")
    return np.frombuffer(chunk, dtype=dtype).tolist()


def request_id(request: dict) -> str | None:
    """Return the request's ``id``: None if absent, 422 if not a short string."""
    value = request.get("id")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_REQUEST_ID_LENGTH:
        raise ServiceError(
            422,
            "invalid_request",
            f"id must be a string of at most {MAX_REQUEST_ID_LENGTH} characters",
        )
    return value


def parse_inputs(request: dict, binary: bytes, max_rows: int) -> dict[str, list]:
    """Return one list of raw values per field, validated like ``UserFeatures``.

    More than ``max_rows`` rows, the batch limit of ``/batch_predict``, is 422.
    """
    columns: dict[str, list] = {}
    offset = 0
    for tensor in request["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise _invalid("each input must be an object with a 'name'")
        name = tensor["name"]
        if name not in RAW_FIELDS:
            raise _invalid(
                f"unknown input {shorten(name)!r}; expected {', '.join(RAW_FIELDS)}"
            )
        datatype = tensor.get("datatype")
        parameters = tensor.get("parameters") or {}
        if not isinstance(datatype, str) or not isinstance(parameters, dict):
            raise _invalid(
                f"input {name!r}: 'datatype' must be a string and 'parameters' "
                "an object"
            )
        expected = "BYTES" if name in TEXT_FIELDS else "a numeric type"
        if (name in TEXT_FIELDS) != (datatype == "BYTES"):
            raise _invalid(f"input {name!r} must have datatype {expected}")
        if datatype != "BYTES" and datatype not in NUMERIC_TYPES:
            raise _invalid(f"input {name!r}: unsupported datatype {datatype!r}")

        size = parameters.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise _invalid(f"input {name!r}: binary_data_size is outside the body")
            columns[name] = _binary_values(tensor, binary[offset : offset + size])
            offset += size
        elif "data" in tensor:
            columns[name] = _flatten(tensor["data"])
        else:
            raise _invalid(f"input {name!r} has neither 'data' nor binary data")

    if not columns:
        raise _invalid("no inputs")
    rows = max(len(values) for values in columns.values())
    if not rows:
        raise _invalid("inputs have no rows")
    if rows > max_rows:
        raise ServiceError(
            422, "invalid_request", f"{rows} rows; at most {max_rows} per request"
        )
    errors = validate_columns(columns)
    if errors:
        raise ServiceError(422, "invalid_request", _describe(errors))
    return columns


def _describe(errors: list[FieldError]) -> str:
    parts = []
    for error in errors:
        where = error.field if error.index is None else f"{error.field}[{error.index}]"
        parts.append(f"{where}: {error.problem}")
    return "; ".join(parts)


def response(
    name: str, version: str, request_id: str, predicted: np.ndarray
) -> dict[str, Any]:
    return {
        "model_name": name,
        "model_version": version,
        "id": request_id,
        "outputs": [
            {
                "name": OUTPUT,
                "datatype": "FP32",
                "shape": [len(predicted), 1],
                "data": predicted.astype(np.float32).tolist(),
            }
        ],
    }
