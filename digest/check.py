"""`digest check`, and the same checks at the start of run, schedule, serve and worker:
everything a run will need, tried before the run needs it. Each finding is one line naming
the file and key at fault. `--connect` also talks to the SMTP relay and every source."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2

from digest.clock import utc_now
from digest.config import Config
from digest.errors import DigestError, StateUnavailable
from digest.urls import is_loopback_host

OK, WARNING, PROBLEM, UNREACHABLE = "ok", "warning", "problem", "unreachable"


@dataclass(frozen=True)
class Finding:
    """One check and what it found."""

    item: str
    status: str  # ok | warning | problem (bad config: exit 2) | unreachable (exit 1)
    detail: str

    @property
    def line(self) -> str:
        return f"{self.status:<12}{self.item}: {self.detail}"


class CheckFailed(DigestError):
    """The configuration cannot work as it stands; every problem is one line."""

    exit_code = 2

    def __init__(self, problems: list[Finding]) -> None:
        super().__init__("\n".join(f"{p.item}: {p.detail}" for p in problems))
        self.problems = problems


def require_ready(config: Config) -> None:
    """Refuse to start (CheckFailed, exit 2) when a static check finds a problem."""
    findings = check_config(config)
    problems = [f for f in findings if f.status == PROBLEM]
    if problems:
        raise CheckFailed(problems)
    for finding in findings:
        if finding.status == UNREACHABLE:  # the database: the run could not work either
            raise StateUnavailable(finding.detail)


def check_config(config: Config, now: datetime | None = None) -> list[Finding]:
    """Every check that needs no other machine."""
    checks: list[Callable[[Config, datetime], Iterator[Finding]]] = [
        _templates, _dkim, _state, _subscribers, _signing_key, _smtp, _health_file, _web]
    moment = now or utc_now()
    return [finding for check in checks for finding in _guarded(check, config, moment)]


def check_connections(config: Config) -> list[Finding]:
    """The SMTP relay (connect, EHLO, STARTTLS, AUTH, QUIT) and one read of every source."""
    return [*_guarded(_relay, config, utc_now()), *_guarded(_sources, config, utc_now())]


def _guarded(check: Callable[[Config, datetime], Iterator[Finding]], config: Config,
             now: datetime) -> Iterator[Finding]:
    try:
        yield from check(config, now)
    except StateUnavailable as exc:
        yield Finding("state", UNREACHABLE, str(exc))
    except DigestError as exc:
        yield Finding(check.__name__.strip("_").replace("_", " "), PROBLEM, str(exc))


def _where(config: Config, key: str) -> str:
    return f"{config.path}: {key}"


def _templates(config: Config, now: datetime) -> Iterator[Finding]:
    from digest.build import render, sample_digest, sample_parts
    from digest.web import web_pages

    own = config.template_folder
    if own is not None and not own.is_dir():
        yield Finding("templates", PROBLEM, f"{_where(config, '[email] templates')}: {own} is "
                      "not a folder")
        return
    rendered = render(config, sample_digest(config, now))
    html, text = sample_parts(config, rendered)
    pages = web_pages(config)
    for name in pages.list_templates(filter_func=lambda n: n.endswith(".html")):
        try:
            pages.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            yield Finding("templates", PROBLEM, f"{exc.filename}: line {exc.lineno}: "
                          f"{exc.message}")
            return
    where = f"{own} (and the bundled ones it lacks)" if own else "the bundled templates"
    yield Finding("templates", OK, f"a sample digest renders through {where}: subject "
                  f"{rendered.subject!r}, {len(html.encode()):,} bytes of HTML, "
                  f"{len(text.splitlines())} lines of text")


def _dkim(config: Config, now: datetime) -> Iterator[Finding]:
    from digest.deliver.send import message_signer

    if not config.email.dkim.selector:
        yield Finding("dkim", OK, "off ([email.dkim] selector is empty)")
        return
    sign = message_signer(config)
    try:
        sign(b"From: a@example.org\r\nTo: b@example.org\r\nSubject: check\r\n\r\ncheck\r\n")
    except Exception as exc:  # dkimpy raises several kinds for a key it cannot use
        yield Finding("dkim", PROBLEM, f"{_where(config, '[email.dkim] private_key_path')}: "
                      f"{config.resolve(config.email.dkim.private_key_path)} is not a usable "
                      f"private key ({type(exc).__name__})")
        return
    yield Finding("dkim", OK, f"signs with selector {config.email.dkim.selector!r}")


def _state(config: Config, now: datetime) -> Iterator[Finding]:
    from digest.state import open_state
    from digest.state.db import safe_url

    with open_state(config) as state:
        counts = state.subscribers.count_by_status()
    yield Finding("state", OK, f"{safe_url(config.database_url())} opens, schema up to date, "
                  f"{counts.get('active', 0)} active subscriber(s)")


def _subscribers(config: Config, now: datetime) -> Iterator[Finding]:
    from digest.subscribers import read_csv

    if not config.subscribers.path:
        yield Finding("subscribers", OK, "no list file ([subscribers] path is empty): the list "
                      "is kept in the state database only")
        return
    path = config.subscribers_path
    if not path.is_file():
        yield Finding("subscribers", PROBLEM, f"{_where(config, '[subscribers] path')}: {path} "
                      "does not exist (create it with a header row: email,name)")
        return
    problems: list[str] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = sum(1 for _ in read_csv(handle, str(path), problems))
    except (OSError, UnicodeDecodeError) as exc:
        yield Finding("subscribers", PROBLEM, f"{path}: cannot read ({exc})")
        return
    for problem in problems[:20]:
        yield Finding("subscribers", WARNING, problem)
    yield Finding("subscribers", OK, f"{path}: {rows} row(s) read, {len(problems)} skipped")


def _signing_key(config: Config, now: datetime) -> Iterator[Finding]:
    from digest.keys import key_file

    env = config.email.signing_key_env
    if os.environ.get(env):
        yield Finding("signing key", OK, f"from ${env}")
        return
    if config.database_is_server:
        yield Finding("signing key", PROBLEM, f"{_where(config, '[email] signing_key_env')}: "
                      f"set {env}; with a database server every host must sign links with "
                      "the same key")
        return
    path = key_file(config)
    if path.exists():
        loose = path.stat().st_mode & 0o077
        yield Finding("signing key", WARNING if loose else OK,
                      f"{path}" + (f" is readable by others (mode {path.stat().st_mode & 0o777:o}"
                                   "); chmod 600 it" if loose else " (generated, mode 600)"))
        return
    yield Finding("signing key", OK, f"${env} is not set: a key will be generated into {path} "
                  "(mode 600) on first use; back it up with the state")


def _smtp(config: Config, now: datetime) -> Iterator[Finding]:
    s = config.smtp
    if config.delivery.transport == "outbox":
        yield Finding("smtp", OK, f"not used: messages go to the outbox "
                      f"{config.resolve(config.delivery.outbox)}")
        return
    if s.username and not config.smtp_password():
        yield Finding("smtp", PROBLEM, f"{_where(config, '[smtp] password_env')}: "
                      f"{s.password_env} is empty but [smtp] username is set")
    if s.username and s.security == "none" and not is_loopback_host(s.host) and \
            not s.allow_plaintext_auth:
        yield Finding("smtp", PROBLEM, f"{_where(config, '[smtp] security')}: \"none\" would "
                      f"send the password for {s.username!r} in clear to {s.host}; use "
                      "starttls or ssl (or set [smtp] allow_plaintext_auth = true)")
    if s.ca_file and not config.resolve(s.ca_file).is_file():
        yield Finding("smtp", PROBLEM, f"{_where(config, '[smtp] ca_file')}: "
                      f"{config.resolve(s.ca_file)} does not exist")
    yield Finding("smtp", OK, f"{s.host}:{s.port}, security {s.security}" +
                  (f", AUTH as {s.username!r}" if s.username else ", no AUTH"))


def _health_file(config: Config, now: datetime) -> Iterator[Finding]:
    if not config.schedule.health_file:
        return
    folder = config.resolve(config.schedule.health_file).parent
    if not _writable(folder):
        yield Finding("health file", PROBLEM, f"{_where(config, '[schedule] health_file')}: "
                      f"cannot write into {folder}")


def _web(config: Config, now: datetime) -> Iterator[Finding]:
    if config.editors and not os.environ.get(config.web.secret_env):
        yield Finding("web", WARNING, f"{len(config.editors)} editor(s) configured but "
                      f"${config.web.secret_env} is not set: the editor's desk stays off")


def _relay(config: Config, now: datetime) -> Iterator[Finding]:
    from digest.deliver import configured_transport

    transport = configured_transport(config)
    try:
        transport.open()
    except DigestError as exc:
        yield Finding("smtp", UNREACHABLE, str(exc))
        return
    transport.close()
    yield Finding("smtp", OK, f"{config.smtp.host}:{config.smtp.port} answered EHLO"
                  + (", STARTTLS" if config.smtp.security == "starttls" else "")
                  + (", AUTH" if config.smtp.username else "") + " and QUIT")


def _sources(config: Config, now: datetime) -> Iterator[Finding]:
    from digest.gather import make_fetcher
    from digest.sources import read_source

    with make_fetcher(config) as fetcher:
        for source in config.sources:
            try:
                result = read_source(source, fetcher=fetcher, category=config.digest.category)
            except DigestError as exc:
                yield Finding(f"source {source.name}", UNREACHABLE, str(exc))
                continue
            yield Finding(f"source {source.name}", OK, f"{source.url}: {result.kind}, "
                          f"{len(result.entries)} entries")


def _writable(folder: Path) -> bool:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK)
