"""Wait until the champion alias exists in MLflow, then run the given command.

The API container starts with this. Serve marks a deployment as failed once
its replica constructor has failed three times and does not retry it (Ray
2.60), so an API started before any model is registered would stay down
after `docker compose run --rm train`. Waiting here avoids that.

Usage: python docker/wait_for_model.py COMMAND [ARG ...]
"""

import logging
import os
import sys
import time

from mlflow.tracking import MlflowClient

from ltv.registry import champion_version
from ltv.settings import get_settings

POLL_INTERVAL_S = 5.0
LOG_INTERVAL_S = 60.0

logger = logging.getLogger("wait_for_model")


def wait_for_champion() -> str:
    """Poll the registry until the alias resolves and return the version."""
    settings = get_settings()
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    started = time.monotonic()
    logged_at = -LOG_INTERVAL_S
    while (version := champion_version(client, settings)) is None:
        waited_s = time.monotonic() - started
        if waited_s - logged_at >= LOG_INTERVAL_S:
            logger.info(
                "%s not found in %s after %.0f s. Register a model with "
                "`docker compose run --rm train`.",
                settings.champion_uri,
                settings.tracking_uri,
                waited_s,
            )
            logged_at = waited_s
        time.sleep(POLL_INTERVAL_S)
    logger.info("found %s version %s", settings.champion_uri, version.version)
    return str(version.version)


def main(command: list[str]) -> int:
    if not command:
        print(
            "usage: python docker/wait_for_model.py COMMAND [ARG ...]", file=sys.stderr
        )
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        wait_for_champion()
    except KeyboardInterrupt:
        return 130
    logger.info("starting %s", " ".join(command))
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
