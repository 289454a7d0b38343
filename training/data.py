"""Read and validate a users CSV."""

import hashlib
from pathlib import Path

import pandas as pd

from ltv.schema import COUNT_FIELDS, ID_FIELD, RAW_FIELDS, TARGET

REQUIRED_COLUMNS = (ID_FIELD, *RAW_FIELDS, TARGET)
# event_3 is empty for about 2% of real users; the other numbers never are.
NULLABLE_NUMBERS = {"event_3"}


class DataValidationError(ValueError):
    """The users CSV cannot be used for training."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_users(path: Path) -> pd.DataFrame:
    """Read the CSV and check its columns and numbers.

    Raises ``DataValidationError`` naming each bad column and how many rows
    fail, so that a broken export is caught before any fitting starts.
    """
    if not path.is_file():
        raise DataValidationError(f"users CSV not found: {path}")

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{path}: missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(REQUIRED_COLUMNS)}"
        )
    if frame.empty:
        raise DataValidationError(f"{path}: no rows")

    problems = []
    for name in (*COUNT_FIELDS, TARGET):
        text = frame[name].str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        blank = text.eq("")
        bad = numbers.isna() & ~blank
        if name not in NULLABLE_NUMBERS:
            bad |= blank
        bad |= numbers.lt(0)
        if bad.any():
            first = int(bad.to_numpy().nonzero()[0][0])
            problems.append(
                f"column {name!r}: {int(bad.sum())} of {len(frame)} rows are not "
                f"non-negative numbers (first at data row {first + 1}: "
                f"{frame[name].iloc[first]!r})"
            )
        frame[name] = numbers

    if problems:
        raise DataValidationError(f"{path}: " + "; ".join(problems))
    return frame
