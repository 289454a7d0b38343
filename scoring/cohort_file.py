"""Open a cohort file on the driver and cut it into Arrow tables of whole rows.

CSV columns are all read as strings, with only the empty field as null, so
that type inference cannot differ between parts of the file and a country
code such as ``NA`` stays a string. The scoring actors turn count text into
numbers before validation. Parquet columns keep their types.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as pa_dataset

from ltv.schema import RAW_FIELDS, REQUIRED_COUNTS

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Bytes read to find the CSV header. Rows read with it are discarded.
HEADER_BLOCK_BYTES = 1 << 16


class CohortFileError(ValueError):
    """The cohort file is missing, of an unknown format or lacks a column."""


@dataclass(frozen=True)
class MalformedLine:
    """A CSV line with the wrong number of fields, which no column can be read from."""

    line: int | None
    expected_fields: int
    found_fields: int
    text: str

    @property
    def reason(self) -> str:
        where = f"CSV line {self.line}" if self.line is not None else "CSV line"
        return (
            f"{where}: expected {self.expected_fields} fields, "
            f"found {self.found_fields}"
        )


@dataclass(frozen=True)
class CohortFile:
    """A cohort file and the columns that scoring reads from it."""

    path: Path
    format: str
    id_column: str
    columns: tuple[str, ...]
    id_type: pa.DataType

    def tables(self, rows: int, malformed: list[MalformedLine]) -> Iterator[pa.Table]:
        """Yield the file's rows as tables of ``rows`` rows (the last may be short).

        CSV lines with the wrong number of fields go to ``malformed``
        instead. Raises ``CohortFileError`` when reading fails part-way, for
        example on text that is not valid UTF-8.
        """
        if self.format == "csv":
            batches = self._csv_batches(malformed)
        else:
            dataset = pa_dataset.dataset(self.path, format="parquet")
            batches = dataset.to_batches(columns=list(self.columns))
        try:
            yield from _rechunk(batches, rows)
        except (pa.ArrowException, OSError) as error:
            raise CohortFileError(f"{self.path}: read failed: {error}") from error

    def _csv_batches(self, malformed: list[MalformedLine]) -> Iterator[pa.RecordBatch]:
        def skip(row: pa_csv.InvalidRow) -> str:
            malformed.append(
                MalformedLine(
                    row.number, row.expected_columns, row.actual_columns, row.text
                )
            )
            return "skip"

        # newlines_in_values, as pandas reads quoted line breaks by default.
        parse = pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=skip)
        convert = pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in self.columns},
            include_columns=list(self.columns),
            null_values=[""],
            strings_can_be_null=True,
        )
        with pa.input_stream(str(self.path), compression="detect") as stream:
            yield from pa_csv.open_csv(
                stream, parse_options=parse, convert_options=convert
            )


def open_cohort(path: Path, id_column: str) -> CohortFile:
    """Check that ``path`` is a readable cohort file with the columns scoring needs.

    A Parquet dataset may also be a folder of Parquet files. Raises
    ``CohortFileError`` with the fix when the file cannot be scored.
    """
    path = path.expanduser().resolve()
    if not path.exists():
        raise CohortFileError(f"input file not found: {path}")

    file_format = _format_of(path)
    try:
        schema = _csv_schema(path) if file_format == "csv" else _parquet_schema(path)
    except (pa.ArrowException, OSError) as error:
        raise CohortFileError(
            f"{path}: cannot read as {file_format}: {error}"
        ) from error

    if id_column not in schema.names:
        raise CohortFileError(
            f"{path}: no id column {id_column!r} among the columns "
            f"{', '.join(schema.names)}; name the id column with --id-column"
        )
    missing = [name for name in REQUIRED_COUNTS if name not in schema.names]
    if missing:
        raise CohortFileError(
            f"{path}: missing required column(s) {', '.join(missing)}, so every "
            f"row would be rejected"
        )

    fields = [name for name in RAW_FIELDS if name in schema.names and name != id_column]
    id_type = pa.string() if file_format == "csv" else schema.field(id_column).type
    return CohortFile(path, file_format, id_column, (id_column, *fields), id_type)


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if path.is_dir() or name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise CohortFileError(
        f"{path}: unknown format; name the file *.csv (optionally .gz, .bz2 or "
        f".zst) or *.parquet, or pass a folder of Parquet files"
    )


def _csv_schema(path: Path) -> pa.Schema:
    read = pa_csv.ReadOptions(block_size=HEADER_BLOCK_BYTES)
    parse = pa_csv.ParseOptions(invalid_row_handler=lambda row: "skip")
    with pa.input_stream(str(path), compression="detect") as stream:
        return pa_csv.open_csv(stream, read_options=read, parse_options=parse).schema


def _parquet_schema(path: Path) -> pa.Schema:
    return pa_dataset.dataset(path, format="parquet").schema


def _rechunk(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= rows:
            table = pa.Table.from_batches(pending)
            # combine_chunks copies the slice, so that ray.put stores only
            # these rows and not the whole buffer the reader filled.
            yield table.slice(0, rows).combine_chunks()
            rest = table.slice(rows)
            pending = rest.to_batches()
            pending_rows = rest.num_rows
    if pending_rows:
        yield pa.Table.from_batches(pending).combine_chunks()
