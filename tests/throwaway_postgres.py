"""A PostgreSQL server of the test's own, on a free loopback port.

The outage test stops and starts it, so the machine's shared server on 5432
is never touched. PostgreSQL refuses to run as root, so the server runs as
the ``postgres`` system user when the tests run as root.
"""

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.serving import free_port


def _postgres_bin(name: str) -> str:
    # Debian puts the server tools under /usr/lib/postgresql/<major>/bin; the
    # pg_ctl on PATH, if any, may be a wrapper that wants a cluster name.
    installed = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = installed[0] if installed else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found; install the PostgreSQL server")
    return found


class ThrowawayPostgres:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="ltv-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust")

    def _run(self, name: str, *args: str) -> None:
        command = [_postgres_bin(name), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}"
        # The server's output goes to a file: a server holding the pipes of
        # subprocess.run open would keep run() waiting forever.
        log = str(self.folder / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)
