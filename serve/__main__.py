"""Command line: ``python -m serve [CONFIG]``, ``serve run`` with host overrides.

``serve run`` has no flag for the HTTP host, and the checked-in config binds
127.0.0.1. Inside a container the API must listen on all interfaces, so this
launcher applies ``SERVE_HOST`` and ``SERVE_PORT`` to a copy of the config
and then runs it in the foreground.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import yaml


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m serve", description=__doc__)
    parser.add_argument(
        "config",
        nargs="?",
        default="serve_config.yaml",
        type=Path,
        help="Serve config file (default: serve_config.yaml)",
    )
    args = parser.parse_args()

    config = yaml.safe_load(args.config.read_text())
    http_options = config.setdefault("http_options", {})
    if host := os.environ.get("SERVE_HOST"):
        http_options["host"] = host
    if port := os.environ.get("SERVE_PORT"):
        http_options["port"] = int(port)

    with tempfile.NamedTemporaryFile(
        "w", suffix=".yaml", prefix="serve_config.", delete=False
    ) as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    serve_cli = Path(sys.executable).with_name("serve")
    os.execv(serve_cli, [str(serve_cli), "run", handle.name])


if __name__ == "__main__":
    sys.exit(main())
