"""Realistic request payloads drawn from the users CSV or the generated sample."""

import math
import os
from pathlib import Path

import pandas as pd

from ltv.sample import generate_users
from ltv.schema import ID_FIELD, RAW_FIELDS


def load_payloads(limit: int = 5000) -> list[dict]:
    """Return user payloads from REVENUE_DATA, or from a generated sample."""
    path = os.environ.get("REVENUE_DATA")
    if path and Path(path).is_file():
        frame = pd.read_csv(path, dtype={ID_FIELD: str, "os_version": str}, nrows=limit)
    else:
        frame = generate_users(limit, seed=11)
    payloads = []
    for record in frame.to_dict("records"):
        payload = {ID_FIELD: str(record[ID_FIELD])}
        for name in RAW_FIELDS:
            payload[name] = _json_value(record[name])
        payloads.append(payload)
    return payloads


def _json_value(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value
