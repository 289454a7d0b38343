"""Command line: ``python -m export [--run-id ID]``."""

import argparse
import logging
import sys

from export.parity import ParityError
from export.register import ExportError, export
from ltv.settings import get_settings


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Compile a training run's model to one ONNX graph, check it "
        "against the native model and register it as the champion.",
    )
    parser.add_argument(
        "--run-id", help="MLflow training run to export (default: the newest)"
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )

    try:
        result = export(get_settings(), run_id=args.run_id)
    except (ExportError, ParityError) as error:
        print(f"error: export failed: {error}", file=sys.stderr)
        return 1
    print(result.version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
