"""Command line: ``python -m training [--force]``."""

import argparse
import logging
import os
import sys

from ltv.settings import get_settings
from training.data import DataValidationError
from training.train import train


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train the 7-day revenue model on REVENUE_DATA (or a "
        "generated sample) and log the run to MLflow.",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        default=os.environ.get("FORCE_RETRAIN", "") not in ("", "0"),
        help="train even if the champion was built from the same data and code "
        "(also FORCE_RETRAIN=1)",
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )

    # The pickled models are read back only from this project's own MLflow
    # store, so MLflow's per-model warning about pickle adds nothing.
    logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)

    try:
        result = train(get_settings(), force=args.force)
    except DataValidationError as error:
        print(f"error: invalid training data: {error}", file=sys.stderr)
        return 2
    if result.run_id is not None:
        print(result.run_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
