"""Outgrowing one machine: schema migrations (`digest db upgrade`), copying the state to
PostgreSQL (`digest db copy`), and `digest worker` processes sharing one digest, with one
of them killed mid-batch, against the real SMTP server and the state database of the run
(SQLite, or PostgreSQL under `python -m tests.postgres`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from digest.config import load_config
from digest.demo.site import SiteServer
from digest.demo.smtp_sink import SmtpSink
from digest.state.migrate import head
from tests import postgres
from tests.conftest import POSTGRES_SERVER, Project, query
from tests.test_cli import digest, start_scheduler, stop_scheduler
from tests.test_delivery import configured, ledger, many_subscribers


def start_worker(folder: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "DIGEST_SIGNING_KEY": "cli-test-key"}
    return subprocess.Popen([sys.executable, "-m", "digest", "-q", "worker"], cwd=folder,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_run(folder: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "DIGEST_SIGNING_KEY": "cli-test-key"}
    return subprocess.Popen([sys.executable, "-m", "digest", "-q", "run"], cwd=folder,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def stop(worker: subprocess.Popen[str]) -> str:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    return err


def workers_config(folder: Path, site: SiteServer, port: int, extra: str = "") -> Path:
    return configured(folder, site, port, smtp_extra="connections = 1\n" + extra,
                      delivery='send_with = "workers"\nbatch_size = 100\nlease_seconds = 3\n'
                               "worker_poll_seconds = 0.2")


def test_db_upgrade_creates_the_schema_alembic_expects(project: Project) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from digest.state.schema import metadata

    first = digest("db", "upgrade", cwd=project.folder)
    assert first.returncode == 0, first.stderr
    assert f"state database at revision {head()}" in first.stdout
    again = digest("db", "upgrade", cwd=project.folder)
    assert "already up to date" in again.stdout
    assert query(project.folder, "SELECT version_num FROM alembic_version") == [(head(),)]
    engine = create_engine(project.config.database_url())
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_a_database_from_before_migrations_is_upgraded_keeping_its_rows(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE settings (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO settings VALUES ('hold', '{\"by\": \"ed\"}')")
    db.execute("CREATE TABLE deliveries (id INTEGER PRIMARY KEY, digest_id INTEGER NOT NULL, "
               "email TEXT NOT NULL, name TEXT NOT NULL, status VARCHAR(16) NOT NULL)")
    db.commit()
    db.close()
    from digest.state import open_url

    with open_url(f"sqlite:///{path}") as state:
        hold = state.editorial.hold()
        assert hold is not None and hold.by == "ed"
        assert state.ledger.claim_deliveries(1, "h:1:x", 10, timedelta(minutes=1),
                                             datetime.now(UTC)) == []


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new PostgreSQL database: on the run's server, or on one started for this test."""
    if POSTGRES_SERVER:
        yield postgres.fresh_database(POSTGRES_SERVER)
        return
    if not postgres.available():
        pytest.skip("PostgreSQL is not installed (make test installs it)")
    with postgres.TempPostgres() as server:
        yield postgres.fresh_database(server.url)


def test_db_copy_moves_the_state_to_postgresql_and_nothing_is_sent_twice(
        project: Project, smtp: SmtpSink, postgres_url: str) -> None:
    assert digest("run", cwd=project.folder).returncode == 0
    assert digest("subscribers", "remove", "ada@example.org", cwd=project.folder).returncode == 0
    scheduler, _ = start_scheduler(project.folder)  # its job table goes along too
    assert stop_scheduler(scheduler) == 0
    before = digest("status", "--json", cwd=project.folder).stdout
    copied = digest("db", "copy", "--to", postgres_url, cwd=project.folder)
    assert copied.returncode == 0, copied.stderr
    assert "deliveries           3 row(s)" in copied.stdout
    assert "apscheduler_jobs     1 row(s)" in copied.stdout
    again = digest("db", "copy", "--to", postgres_url, cwd=project.folder)
    assert again.returncode != 0 and "is not empty" in again.stderr
    text = project.config_path.read_text()
    start = text.index('database = "') + len('database = "')
    end = text.index('"', start)
    project.config_path.write_text(text[:start] + postgres_url + text[end:])
    after = digest("status", "--json", cwd=project.folder).stdout
    import json

    old, new = json.loads(before), json.loads(after)
    assert new["digests"] == old["digests"] and new["subscribers"] == old["subscribers"]
    rerun = digest("run", cwd=project.folder)
    assert rerun.returncode == 0 and "0 new" in rerun.stdout
    assert len(smtp.messages) == 3
    assert query(project.folder, "SELECT status FROM subscribers WHERE email_key = :e",
                 e="ada@example.org") == [("unsubscribed",)]


def test_three_workers_share_a_digest_and_a_killed_workers_batch_goes_to_the_others(
        tmp_path: Path, site: SiteServer) -> None:
    everyone = many_subscribers(tmp_path, 5000)
    with SmtpSink() as relay:
        workers_config(tmp_path, site, relay.port)
        queued = digest("run", cwd=tmp_path, timeout=300)
        assert queued.returncode == 0, queued.stderr
        assert "5000 deliveries queued for `digest worker`" in queued.stdout
        assert relay.messages == []
        workers = [start_worker(tmp_path) for _ in range(3)]
        wait_for(lambda: len(relay.messages) >= 1500)
        victim = workers[0]
        victim.kill()  # SIGKILL mid-batch: its leased rows come back after the lease
        victim.communicate(timeout=30)
        killed_at = len(relay.messages)
        wait_for(lambda: query(tmp_path, "SELECT status FROM digests") == [("sent",)],
                 timeout=240)
        errors = [stop(w) for w in workers[1:]]
        received = Counter(m.recipients[0] for m in relay.messages)
    assert killed_at < 5000
    assert set(received) == everyone, errors  # nobody lost
    repeats = sum(n - 1 for n in received.values())
    assert repeats <= 1, received.most_common(3)  # one connection: one message in flight
    assert set(ledger(tmp_path).values()) == {"sent"}
    owners = query(tmp_path, "SELECT COUNT(*) FROM deliveries WHERE lease_owner IS NOT NULL "
                             "AND status = 'pending'")
    assert owners == [(0,)]
    # Only the killed worker could not say goodbye; the live ones forget it in time.
    left = query(tmp_path, "SELECT pid FROM senders")
    assert left in ([], [(victim.pid,)])


def test_the_global_rate_limit_holds_across_workers(tmp_path: Path, site: SiteServer) -> None:
    many_subscribers(tmp_path, 150)
    with SmtpSink() as relay:
        workers_config(tmp_path, site, relay.port, "rate_per_second = 30")
        assert digest("run", cwd=tmp_path).returncode == 0
        workers = [start_worker(tmp_path) for _ in range(2)]
        wait_for(lambda: len(relay.messages) >= 1)
        first = time.monotonic()
        wait_for(lambda: len(relay.messages) >= 150)
        elapsed = time.monotonic() - first
        for w in workers:
            stop(w)
    # 149 intervals at 30 a second take 5 s; two workers each at the full rate would
    # take half that.
    assert elapsed >= 0.8 * 149 / 30, elapsed


def test_worker_once_exits_when_nothing_is_left(project: Project) -> None:
    text = project.config_path.read_text()
    project.config_path.write_text(text + '\n[delivery]\nsend_with = "workers"\n')
    assert digest("run", cwd=project.folder).returncode == 0
    import json

    queued = json.loads(digest("status", "--json", cwd=project.folder).stdout)
    assert queued["runs"][0]["outcome"] == "queued"
    assert queued["digests"][0]["deliveries"]["pending"] == 3
    done = digest("worker", "--once", cwd=project.folder, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "worker: 3 sent, 0 failed" in done.stdout
    after = json.loads(digest("status", "--json", cwd=project.folder).stdout)
    assert after["digests"][0]["status"] == "sent" and after["senders"] == 0
    assert load_config(project.config_path).delivery.send_with == "workers"


def test_an_unreachable_database_is_one_line_without_the_password(project: Project) -> None:
    port = postgres._free_port()
    text = project.config_path.read_text()
    start = text.index('database = "') + len('database = "')
    end = text.index('"', start)
    project.config_path.write_text(text[:start] + f"postgresql://app@127.0.0.1:{port}/digest"
                                   + text[end:])
    env = {"DIGEST_DB_PASSWORD": "S3cretPw!x"}
    for command in (("status",), ("db", "upgrade"), ("run",)):
        result = digest(*command, cwd=project.folder, env=env)
        assert result.returncode == 1, (command, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("error: "), (command, errors)
        assert "config.toml: [state] database: cannot open" in errors[0]
        assert "S3cretPw" not in result.stderr + result.stdout and "***" in errors[0]
    project.config_path.write_text(text)
    copy = digest("db", "copy", "--to", f"postgresql://app@127.0.0.1:{port}/x",
                  cwd=project.folder, env=env)
    assert copy.returncode == 1 and "S3cretPw" not in copy.stderr
    assert "Traceback" not in copy.stderr
    assert [line for line in copy.stderr.splitlines() if line.startswith("error:")] == [
        line for line in copy.stderr.splitlines() if line.startswith("error: --to ")]


def _point_at(config_path: Path, url: str) -> None:
    text = config_path.read_text()
    start = text.index('database = "') + len('database = "')
    end = text.index('"', start)
    config_path.write_text(text[:start] + url + text[end:])


def test_sixteen_connections_send_every_message_once(tmp_path: Path, site: SiteServer) -> None:
    # More sending threads than SQLAlchemy's default pool holds (5 + 10 overflow): the
    # pool is sized from [smtp] connections.
    everyone = many_subscribers(tmp_path, 300)
    with SmtpSink() as relay:
        configured(tmp_path, site, relay.port, smtp_extra="connections = 16")
        result = digest("run", cwd=tmp_path, timeout=300)
        received = Counter(m.recipients[0] for m in relay.messages)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert set(received) == everyone and set(received.values()) == {1}
    assert set(ledger(tmp_path).values()) == {"sent"}


def test_a_worker_with_sixteen_connections_sends_the_whole_digest(
        tmp_path: Path, site: SiteServer) -> None:
    everyone = many_subscribers(tmp_path, 300)
    with SmtpSink() as relay:
        configured(tmp_path, site, relay.port, smtp_extra="connections = 16",
                   delivery='send_with = "workers"\nbatch_size = 50')
        queued = digest("run", cwd=tmp_path, timeout=300)
        assert queued.returncode == 0, queued.stderr
        done = digest("worker", "--once", cwd=tmp_path, timeout=300)
        received = Counter(m.recipients[0] for m in relay.messages)
    assert done.returncode == 0, done.stderr
    assert "worker: 300 sent, 0 failed" in done.stdout
    assert set(received) == everyone and set(received.values()) == {1}
    assert query(tmp_path, "SELECT status FROM digests") == [("sent",)]


@pytest.mark.skipif(bool(POSTGRES_SERVER), reason="starts and stops a server of its own: "
                    "the SQLite pass runs it")
def test_the_database_going_away_mid_send_is_one_line_and_resume_sends_nobody_twice(
        tmp_path: Path, site: SiteServer) -> None:
    if not postgres.available():
        pytest.skip("PostgreSQL is not installed (make test installs it)")
    everyone = many_subscribers(tmp_path, 600)
    with postgres.TempPostgres() as server, SmtpSink(delay=0.1) as relay:
        path = configured(tmp_path, site, relay.port, smtp_extra="connections = 16")
        _point_at(path, postgres.fresh_database(server.url))
        run = start_run(tmp_path)
        wait_for(lambda: len(relay.messages) >= 60 or run.poll() is not None)
        server.stop()  # every connection of the run is cut mid-send
        server.start()
        _, err = run.communicate(timeout=120)
        # Past the preflight's warnings about the digest itself, one line.
        lines = [line for line in err.splitlines() if line.strip() and "preflight" not in line]
        stopped_at = len(relay.messages)
        assert query(tmp_path, "SELECT status FROM digests") == [("sending",)]
        resumed = digest("resume", cwd=tmp_path, timeout=120)
        received = Counter(m.recipients[0] for m in relay.messages)
        outcomes = set(ledger(tmp_path).values())
    assert run.returncode == 1, err
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: state database postgresql+psycopg://digest@127.0.0.1:")
    assert "unavailable while sending digest 1" in lines[0]
    assert "every message the relay accepted is recorded" in lines[0]
    assert stopped_at < 600
    assert resumed.returncode == 0, resumed.stderr
    assert set(received) == everyone
    assert set(received.values()) == {1}, received.most_common(3)
    assert outcomes == {"sent"}
