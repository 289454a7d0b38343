"""Command line: ``python -m scoring INPUT --output DIR [options]``."""

import argparse
import logging
import sys
import time
from pathlib import Path

import ray

from ltv.schema import ID_FIELD
from ltv.settings import get_settings
from scoring.cohort import (
    DEFAULT_BATCH_SIZE,
    CohortSummary,
    OutputExistsError,
    score_cohort,
)
from scoring.cohort_file import CohortFileError
from serve.scorer import ModelNotFoundError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scoring",
        description="Score every user of a cohort file with a registered model "
        "version on Ray Data, writing predictions.parquet and rejects.parquet.",
    )
    parser.add_argument(
        "input",
        type=Path,
        help="cohort file: .csv (optionally compressed), "
        ".parquet, or a folder of Parquet files",
    )
    parser.add_argument(
        "--output", type=Path, required=True, help="folder for the two Parquet files"
    )
    parser.add_argument(
        "--model",
        help="models:/NAME@ALIAS or models:/NAME/VERSION (default: the champion "
        "alias from LTV_MODEL_NAME and LTV_MODEL_ALIAS)",
    )

    parser.add_argument(
        "--address",
        default="local",
        help="Ray cluster: 'local' (default) starts a private one on 127.0.0.1, "
        "and 'auto', HOST:PORT or ray://HOST:PORT connect to a running cluster",
    )
    parser.add_argument(
        "--id-column", default=ID_FIELD, help=f"user id column (default {ID_FIELD})"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per block and per ONNX Runtime call (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="scoring actors, one CPU each (default: one per CPU of the cluster)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing output files"
    )

    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def format_summary(summary: CohortSummary, total_seconds: float) -> str:
    return "\n".join(
        [
            f"model:        {summary.model_uri} (version {summary.model_version})",
            f"input:        {summary.input_path}, {summary.input_rows:,} rows",
            f"scored:       {summary.scored_rows:,} rows",
            f"rejected:     {summary.rejected_rows:,} rows",
            (
                f"scoring time: {summary.seconds:.1f} s, "
                f"{summary.rows_per_second:,.0f} rows/s"
            ),
            f"total time:   {total_seconds:.1f} s, Ray start included",
            f"predictions:  {summary.predictions_path}",
            f"rejects:      {summary.rejects_path}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        summary = score_cohort(
            args.input,
            args.output,
            model_uri=args.model,
            settings=get_settings(),
            id_column=args.id_column,
            batch_size=args.batch_size,
            workers=args.workers,
            overwrite=args.overwrite,
            address=args.address,
        )
    except (CohortFileError, OutputExistsError, ModelNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        ray.shutdown()
    print(format_summary(summary, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
