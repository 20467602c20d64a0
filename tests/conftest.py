"""Real local servers for the tests: the sample news site over HTTP and an aiosmtpd
server, both on 127.0.0.1 ephemeral ports, and a project folder with its own config."""

from __future__ import annotations

import email
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from digest.config import Config, load_config
from digest.demo.site import SampleSite, SiteServer, load_sample_articles
from digest.demo.smtp_sink import SmtpSink

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

SUBSCRIBERS_CSV = """email,name,status,subscribed_at
ada@example.org,Ada Lovelace,active,2026-10-01T09:00:00+00:00
yuri@example.net,Юрий Гагарин,active,2026-10-02T10:30:00+00:00
jiwon@example.com,김지원,active,2026-10-03T08:15:00+00:00
sally@example.org,Sally Ride,unsubscribed,2026-09-12T12:00:00+00:00
"""
ACTIVE = {"ada@example.org", "yuri@example.net", "jiwon@example.com"}


# Set by `python -m tests.postgres -- pytest` (what `make test` runs second): every test
# project then gets a fresh database on that server instead of a SQLite file.
POSTGRES_SERVER = os.environ.get("DIGEST_TEST_POSTGRES_URL", "")


def state_database(folder: Path) -> str:
    """[state] database of a test project: a SQLite file, or a fresh PostgreSQL database
    (the same one each time the project's config is rewritten)."""
    if not POSTGRES_SERVER:
        return "state/digest.sqlite3"
    remembered = folder / ".test-database"
    if not remembered.exists():
        from tests.postgres import fresh_database

        remembered.write_text(fresh_database(POSTGRES_SERVER), encoding="utf-8")
    return remembered.read_text(encoding="utf-8")


def query(folder: Path, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows from a test project's state database, SQLite or PostgreSQL alike."""
    from sqlalchemy import create_engine, text

    engine = create_engine(load_config(folder / "config.toml").database_url())
    try:
        with engine.begin() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def write_config(folder: Path, *, feed_urls: list[str], smtp_port: int,
                 extra: str = "", source_extra: str = "") -> Path:
    """A config.toml in `folder` using the repo's templates and a fresh state database."""
    sources = "".join(f'[[sources]]\nname = "Site {i}"\nurl = "{url}"\n{source_extra}\n'
                      for i, url in enumerate(feed_urls, start=1))
    path = folder / "config.toml"
    path.write_text(f"""
[digest]
title = "Spacecraft Digest"
category = "Spacecraft"

{sources}
[email]
from = "Spacecraft Digest <digest@news.example>"
base_url = "https://digest.example"
postal_address = "1 Launch Lane, Leicester"
templates = "{REPO / 'templates'}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
timeout = 10

[subscribers]
path = "subscribers/subscribers.csv"

[state]
database = "{state_database(folder)}"

[fetch]
timeout = 5
{extra}
""", encoding="utf-8")
    subscribers = folder / "subscribers" / "subscribers.csv"
    if not subscribers.exists():
        subscribers.parent.mkdir(parents=True, exist_ok=True)
        subscribers.write_text(SUBSCRIBERS_CSV, encoding="utf-8")
    return path


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer(SampleSite(load_sample_articles())) as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(autouse=True)
def signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SIGNING_KEY", "test-signing-key")


@dataclass
class Project:
    folder: Path
    config_path: Path

    @property
    def config(self) -> Config:
        return load_config(self.config_path)


@pytest.fixture
def project(tmp_path: Path, site: SiteServer, smtp: SmtpSink) -> Project:
    path = write_config(tmp_path, feed_urls=[site.feed_url("Spacecraft")], smtp_port=smtp.port)
    return Project(folder=tmp_path, config_path=path)


def parse(data: bytes) -> EmailMessage:
    """A received message parsed back with the email package."""
    msg = email.message_from_bytes(data, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


def parts(msg: EmailMessage) -> tuple[str, str]:
    """(text, html) bodies of a multipart/alternative message."""
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key for 127.0.0.1 and localhost."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def shared_corpus() -> Path:
    if not (SHARED / "corpus").is_dir():
        pytest.skip("../shared/corpus is not present on this machine")
    return SHARED / "corpus"


def copy_repo_files(target: Path) -> None:
    """The files an operator's checkout has: config, templates, subscribers."""
    shutil.copy(REPO / "config.toml", target / "config.toml")
    shutil.copytree(REPO / "templates", target / "templates")
    shutil.copytree(REPO / "subscribers", target / "subscribers")


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Any]:
    """A fresh, migrated state database: a SQLite file, or a new PostgreSQL database in the
    suite's second run."""
    from digest.config import database_url
    from digest.state import open_url

    url = database_url(state_database(tmp_path), tmp_path)
    with open_url(url) as opened:
        yield opened


# Files whose tests never open a state database: the PostgreSQL pass has nothing to add
# to what the SQLite pass proved of them, so it leaves them out (and stays in the time).
DATABASE_FREE = {"test_bounces_parse.py", "test_corpus.py", "test_demo_and_docs.py",
                 "test_encoding.py", "test_extract.py", "test_feed.py", "test_fetch.py",
                 "test_golden.py", "test_message.py", "test_render.py",
                 "test_smtp_transport.py", "test_sources.py", "test_stress.py",
                 "test_summarize.py", "test_transports.py"}
# Files whose subject is not the state: rendering in a browser, extraction in worker
# processes, hostile pages and hosts. They open a database only to run a cycle, through
# the same repositories the PostgreSQL pass proves elsewhere; the SQLite pass runs them.
DATABASE_INCIDENTAL = {"test_email.py", "test_isolation.py", "test_hostile.py"}


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    if POSTGRES_SERVER and collection_path.name in DATABASE_FREE | DATABASE_INCIDENTAL:
        return True
    return None
