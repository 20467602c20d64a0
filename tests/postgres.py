"""A throwaway PostgreSQL server for the tests and benchmarks: initdb into a temporary
folder, pg_ctl start on a free 127.0.0.1 port, stopped and deleted afterwards. PostgreSQL
refuses to run as root, so as root the server runs as the `postgres` system user.

    python -m tests.postgres -- pytest …   runs a command with DIGEST_TEST_POSTGRES_URL set
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

USER = "digest"


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(
        f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise RuntimeError(f"{name} not found: install PostgreSQL (apt-get install postgresql)")
    return found


def available() -> bool:
    """Whether the PostgreSQL server binaries are on this machine."""
    try:
        _binary("initdb")
        _binary("pg_ctl")
    except RuntimeError:
        return False
    return True


class TempPostgres:
    """A PostgreSQL server of our own; `url` reaches its `postgres` database."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="digest-pg-"))
        self.port = _free_port()
        self.url = f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.folder, "postgres")

    def __enter__(self) -> TempPostgres:
        self._run(_binary("initdb"), "-D", str(self.folder / "data"), "-U", USER,
                  "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        self.start()
        return self

    def start(self) -> None:
        """Start the server (again) on its port, with its data."""
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=300")
        self._run(_binary("pg_ctl"), "-D", str(self.folder / "data"), "-o", options, "-l",
                  str(self.folder / "server.log"), "-w", "start")

    def stop(self) -> None:
        """Shut the server down the way an administrator does (every client is
        disconnected at once), keeping its data for `start`."""
        self._run(_binary("pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w",
                  "stop")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._run(_binary("pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate",
                  "-w", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, *command: str, check: bool = True) -> None:
        subprocess.run([*self._as, *command], check=check, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, cwd=self.folder)


def fresh_database(server_url: str) -> str:
    """A new empty database on the server at `server_url`; its URL."""
    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:16]}"
    from digest.config import database_url

    engine = create_engine(database_url(server_url, Path.cwd()), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(argv: list[str]) -> int:
    """Run a command with a temporary server's URL in DIGEST_TEST_POSTGRES_URL."""
    command = argv[argv.index("--") + 1:] if "--" in argv else argv
    if not command:
        print("usage: python -m tests.postgres -- COMMAND …", file=sys.stderr)
        return 2
    with TempPostgres() as server:
        print(f"PostgreSQL for the tests at {server.url}", flush=True)
        env = {**os.environ, "DIGEST_TEST_POSTGRES_URL": server.url}
        return subprocess.run(command, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
