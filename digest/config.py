"""config.toml → validated, frozen dataclasses. Every key is declared once, with type,
default and help; unknown keys, wrong types and bad values are refused with one line
naming the file and the key."""

from __future__ import annotations

import difflib
import os
import tomllib
import types
import typing
import zoneinfo
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from digest.errors import ConfigError

DEFAULT_SUBJECT = (
    "{{ title }}: {{ count }} new {{ category }} {{ 'story' if count == 1 else 'stories' }}"
)


def _check_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"expected an http:// or https:// URL, got {value!r}"
    return None


def _check_cron(value: str) -> str | None:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        return f"bad cron expression {value!r} ({exc})"
    return None


def _check_timezone(value: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown IANA timezone {value!r} (e.g. 'Europe/London')"
    return None


def check_database(value: str) -> str | None:
    if "://" not in value:
        return None if value.strip() else "expected a file path or a postgresql:// URL"
    scheme = value.split("://", 1)[0]
    if scheme.split("+")[0] not in ("postgresql", "sqlite"):
        return f"expected a SQLite path or a postgresql:// URL, got {scheme}://"
    if "@" in value.split("://", 1)[1].split("/")[0] and ":" in \
            value.split("://", 1)[1].split("@")[0]:
        return "put the password in the environment variable [state] password_env names, " \
               "not in the URL"
    return None


def _check_optional_cron(value: str) -> str | None:
    return _check_cron(value) if value else None


def _check_address_list(value: str) -> str | None:
    for part in filter(None, (p.strip() for p in value.split(","))):
        problem = _check_address(part)
        if problem:
            return problem
    return None


def _check_address(value: str) -> str | None:
    from email.utils import parseaddr

    _, addr = parseaddr(value)
    if "@" not in addr or addr.startswith("@") or addr.endswith("@"):
        return f"expected an email address, got {value!r}"
    return None


def _one_of(*choices: str) -> typing.Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value not in choices:
            return f"expected one of {', '.join(map(repr, choices))}, got {value!r}"
        return None

    return check


def _positive(value: int | float) -> str | None:
    return None if value > 0 else f"expected a number above 0, got {value!r}"


def _fraction(value: float) -> str | None:
    return None if 0 < value <= 1 else f"expected a number above 0 and at most 1, got {value!r}"


def _key(default: Any = MISSING, help: str = "", check: Any = None, toml: str = "") -> Any:
    """Declare one config key: its default, its help text and an optional value check."""
    meta = {"help": help, "check": check, "toml": toml}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DigestSettings:
    title: str = _key("Spacecraft Digest", "Name of the newsletter, shown in subject and header.")
    category: str = _key("Spacecraft", "Only articles in this category are gathered.")
    max_articles: int = _key(20, "At most this many articles in one digest.", _positive)
    summary_sentences: int = _key(3, "Sentences per article summary.", _positive)
    summary_max_words: int = _key(90, "Upper bound on words per summary.", _positive)
    order: str = _key("newest", "Article order: 'newest', 'oldest' or 'source'.",
                      _one_of("newest", "oldest", "source"))
    group_threshold: float = _key(0.45, "TF-IDF cosine of title and lead above which two "
                                  "reports count as one story (1 turns grouping off).",
                                  _fraction)
    min_articles: int = _key(1, "No digest is built with fewer new articles.", _positive)


def _non_negative(value: int | float) -> str | None:
    return None if value >= 0 else f"expected 0 or more, got {value!r}"


@dataclass(frozen=True)
class SourceSettings:
    name: str = _key(help="Site name shown next to each article.")
    url: str = _key(help="Category feed, WordPress REST API or HTML category page URL.",
                    check=_check_url)
    kind: str = _key("auto", "'auto', 'feed', 'wordpress' or 'html'.",
                     _one_of("auto", "feed", "wordpress", "html"))
    category: str = _key("", "This site's name or slug for the category; empty: [digest] one.")
    max_pages: int = _key(3, "Pages of a category page or API listing to read.", _positive)


@dataclass(frozen=True)
class SummarySettings:
    summarizer: str = _key("extractive", "'extractive', or 'openai-compatible' to ask a chat "
                           "endpoint (falls back to extractive on any failure).",
                           _one_of("extractive", "openai-compatible"))
    endpoint: str = _key("http://127.0.0.1:11434/v1", "Base URL of the OpenAI-compatible API "
                         "(…/v1) or its /chat/completions URL.", _check_url)
    model: str = _key("", "Model name sent to the endpoint.")
    api_key_env: str = _key("DIGEST_LLM_API_KEY", "Env var holding the endpoint's API key.")
    timeout: float = _key(30.0, "Seconds to wait for one summary.", _positive)


@dataclass(frozen=True)
class DkimSettings:
    selector: str = _key("", "DKIM selector; empty turns signing off.")
    domain: str = _key("", "Signing domain (d=), usually the From domain.")
    private_key_path: str = _key("", "PEM private key file, relative to config.toml; keep it "
                                 "outside the repository.")


@dataclass(frozen=True)
class EmailSettings:
    from_address: str = _key(help="From: header, e.g. 'Spacecraft Digest <digest@example.org>'.",
                             check=_check_address, toml="from")
    reply_to: str = _key("", "Reply-To: header; empty for none.")
    subject: str = _key(DEFAULT_SUBJECT, "Jinja2 template of the subject line.")
    base_url: str = _key("http://127.0.0.1:8080", "Public URL of the web app (unsubscribe links).",
                         _check_url)
    postal_address: str = _key("", "Sender's postal address shown in the footer.")
    templates: str = _key("templates", "Folder of the email templates, relative to config.toml.")
    signing_key_env: str = _key("DIGEST_SIGNING_KEY",
                                "Env var holding the key that signs unsubscribe links.")
    unsubscribe_mailto: str = _key("", "Address for mailto: unsubscribes; empty: "
                                   "unsubscribe@ the From domain.")
    return_path: str = _key("", "Envelope sender (bounces go here); empty: the From address.")
    utm_campaign: str = _key("", "Add utm_* parameters with this campaign to article links; "
                             "empty: off.")
    max_html_bytes: int = _key(100_000, "Largest HTML sent; Gmail clips over 102 KB.", _positive)
    max_spam_score: float = _key(2.0, "Preflight fails above this SpamAssassin score.")
    dkim: DkimSettings = field(default_factory=DkimSettings, metadata={"help": "DKIM signing."})


@dataclass(frozen=True)
class SmtpSettings:
    host: str = _key("localhost", "SMTP relay host.")
    port: int = _key(25, "SMTP relay port.", _positive)
    security: str = _key("starttls", "'starttls', 'ssl' or 'none'.",
                         _one_of("starttls", "ssl", "none"))
    username: str = _key("", "Login name; empty for no AUTH.")
    password_env: str = _key("DIGEST_SMTP_PASSWORD",
                             "Environment variable holding the SMTP password.")
    timeout: float = _key(30.0, "Seconds to wait for the relay.", _positive)
    ca_file: str = _key("", "PEM file of a private CA to trust for STARTTLS/SSL, relative to "
                        "config.toml; empty: the system's CAs.")
    connections: int = _key(2, "Parallel SMTP connections.", _positive)
    max_per_connection: int = _key(1000, "Messages sent on one connection before a new one.",
                                   _positive)
    rate_per_second: float = _key(0.0, "At most this many messages a second in all; 0: no "
                                  "limit.", _non_negative)
    rate_per_hour: int = _key(0, "At most this many messages an hour in all; 0: no limit.",
                              _non_negative)


@dataclass(frozen=True)
class DeliverySettings:
    transport: str = _key("smtp", "'smtp', or 'outbox' to write .eml files into `outbox`.",
                          _one_of("smtp", "outbox"))
    outbox: str = _key("outbox", "Folder for the outbox transport, relative to config.toml.")
    retry_attempts: int = _key(3, "Attempts per recipient on 4xx replies and dropped "
                               "connections before the delivery is deferred.", _positive)
    retry_delay: float = _key(1.0, "Seconds before the first retry; doubles each time.",
                              _non_negative)
    deferred_lifetime_hours: float = _key(48.0, "Deferred deliveries give up after this long "
                                          "as failed (expired).", _positive)
    bounce_after: int = _key(2, "Hard failures (5xx) after which an address is marked "
                             "bounced.", _positive)
    pause_after_failures: int = _key(50, "Consecutive failed or deferred deliveries that "
                                     "pause the digest.", _positive)
    send_with: str = _key("scheduler", "'scheduler': `digest run`/`schedule` send the digest "
                          "(and any `digest worker` helps); 'workers': they only build it "
                          "and `digest worker` processes send it.",
                          _one_of("scheduler", "workers"))
    batch_size: int = _key(200, "Deliveries a sender claims at a time.", _positive)
    lease_seconds: float = _key(120.0, "A claimed batch whose sender stops beating its heart "
                                "for this long goes to another sender.", _positive)
    worker_poll_seconds: float = _key(5.0, "How often an idle `digest worker` looks for a "
                                      "digest to send.", _positive)


@dataclass(frozen=True)
class SubscriberSettings:
    path: str = _key("subscribers/subscribers.csv",
                     "Subscriber list (CSV: email,name,status), relative to config.toml.")


@dataclass(frozen=True)
class StateSettings:
    database: str = _key("state/digest.sqlite3", "State database: a SQLite path relative to "
                         "config.toml, or a postgresql://user@host/db URL.", check_database)
    password_env: str = _key("DIGEST_DB_PASSWORD", "Env var holding the database password "
                             "(PostgreSQL).")


@dataclass(frozen=True)
class ScheduleSettings:
    cron: str = _key("0 7 * * mon", "When `digest schedule` runs a cycle (crontab syntax).",
                     _check_cron)
    timezone: str = _key("Europe/London", "IANA timezone of the cron expression.",
                         _check_timezone)
    misfire_grace_time: int = _key(3600, "Seconds a late run may still start; later, the "
                                   "slot is skipped with a log line and an alert.", _positive)
    coalesce: bool = _key(True, "Several missed runs of a job run once, not once each.")
    max_instances: int = _key(1, "Runs of one job allowed at the same time.", _positive)
    gather_cron: str = _key("", "Extra job that only reads the sources and keeps their "
                            "entries (crontab syntax); empty: none.", _check_optional_cron)
    require_approval: bool = _key(False, "Send a scheduled digest only once an editor has "
                                  "approved it; until then the scheduler waits.")
    approval_check_minutes: int = _key(5, "How often a scheduler waiting for approval looks "
                                       "again.", _positive)
    health_file: str = _key("", "JSON file rewritten after every job with the last gather and "
                            "send times, relative to config.toml; empty: none.")


@dataclass(frozen=True)
class AlertSettings:
    email: str = _key("", "Address(es), comma-separated, told when a scheduled digest is "
                      "skipped, a source keeps failing or a send ends with failures; empty: "
                      "none.", _check_address_list)


@dataclass(frozen=True)
class LogSettings:
    level: str = _key("info", "'debug', 'info', 'warning' or 'error'; -v and -q override it.",
                      _one_of("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class WebSettings:
    secret_env: str = _key("DIGEST_WEB_SECRET", "Env var holding the key that signs editor "
                           "session cookies.")
    public_archive: bool = _key(False, "Serve past digests to everyone at /archive/ (no "
                                "personal data).")
    session_hours: float = _key(12.0, "Editor sessions last this long.", _positive)


@dataclass(frozen=True)
class FetchSettings:
    timeout: float = _key(20.0, "Seconds to wait for a site to answer.", _positive)
    user_agent: str = _key("SpacecraftDigest/0.1 (+https://github.com/spacecraft-digest)",
                           "User-Agent sent to news sites.")
    max_bytes: int = _key(10_000_000, "Largest response body read, in bytes.", _positive)
    retries: int = _key(2, "Retries on connection errors, 429 and 5xx.", _non_negative)
    max_retry_after: float = _key(60.0, "Longest Retry-After honoured, in seconds.", _positive)
    max_redirects: int = _key(5, "Redirects followed before giving up.", _non_negative)
    per_host_concurrency: int = _key(4, "Parallel requests to one site at most.", _positive)
    respect_robots: bool = _key(True, "Obey robots.txt for article pages.")


@dataclass(frozen=True)
class Config:
    """The whole validated configuration, with paths resolved against the config file."""

    path: Path
    digest: DigestSettings
    summaries: SummarySettings
    sources: tuple[SourceSettings, ...]
    email: EmailSettings
    smtp: SmtpSettings
    delivery: DeliverySettings
    subscribers: SubscriberSettings
    state: StateSettings
    schedule: ScheduleSettings
    fetch: FetchSettings
    alerts: AlertSettings
    log: LogSettings
    web: WebSettings
    editors: dict[str, Editor] = field(default_factory=dict)

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the folder holding config.toml."""
        return (self.path.parent / relative).resolve()

    @property
    def database_path(self) -> Path:
        return self.resolve(self.state.database)

    @property
    def database_is_server(self) -> bool:
        """True when the state lives in a database server (PostgreSQL), not a file."""
        return self.state.database.startswith("postgresql")

    def database_url(self) -> str:
        """The SQLAlchemy URL of the state database, with the password from the env."""
        try:
            return database_url(self.state.database, self.path.parent,
                                os.environ.get(self.state.password_env, ""))
        except ConfigError as exc:
            raise ConfigError(f"{self.path}: {exc}") from None

    @property
    def subscribers_path(self) -> Path:
        return self.resolve(self.subscribers.path)

    @property
    def templates_path(self) -> Path:
        return self.resolve(self.email.templates)

    def smtp_password(self) -> str:
        """The SMTP password, read from the environment variable the config names."""
        return os.environ.get(self.smtp.password_env, "")


SECTIONS: dict[str, type] = {
    "digest": DigestSettings,
    "summaries": SummarySettings,
    "email": EmailSettings,
    "smtp": SmtpSettings,
    "delivery": DeliverySettings,
    "subscribers": SubscriberSettings,
    "state": StateSettings,
    "schedule": ScheduleSettings,
    "fetch": FetchSettings,
    "alerts": AlertSettings,
    "log": LogSettings,
    "web": WebSettings,
}
REQUIRED_SECTIONS = ("email",)


def database_url(database: str, base: Path, password: str = "") -> str:
    """A SQLAlchemy URL from the [state] database setting (a path or a URL). A
    postgresql:// URL gets the psycopg (3) driver, and the password when it has none."""
    if "://" in database:
        from sqlalchemy.engine import make_url

        url = make_url(database)
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        if password and url.password is None:
            url = url.set(password=password)
        return url.render_as_string(hide_password=False)
    path = (base / database).resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"[state] database: cannot create the folder {path.parent} "
                          f"({exc.strerror})") from None
    return f"sqlite:///{path}"


def default_config_path() -> Path:
    """$DIGEST_CONFIG when set, else ./config.toml."""
    return Path(os.environ.get("DIGEST_CONFIG") or "config.toml")


def load_config(path: Path) -> Config:
    """Read and validate a config file; raise ConfigError naming the file and key at fault."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (pass --config PATH)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, path.resolve())


def parse_config(raw: dict[str, Any], path: Path) -> Config:
    """Validate an already-parsed TOML document."""
    known = set(SECTIONS) | {"sources", "editors"}
    for name in raw:
        if name not in known:
            raise ConfigError(f"{path}: unknown section [{name}]{_hint(name, known)}")
    for name in REQUIRED_SECTIONS:
        if name not in raw:
            raise ConfigError(f"{path}: missing section [{name}]")
    sections = {name: _build(cls, raw.get(name, {}), f"[{name}]", path)
                for name, cls in SECTIONS.items()}
    sources_raw = raw.get("sources", [])
    if not isinstance(sources_raw, list) or not sources_raw:
        raise ConfigError(f"{path}: [[sources]]: at least one source block is required")
    sources = tuple(_build(SourceSettings, block, f"[[sources]] #{i}", path)
                    for i, block in enumerate(sources_raw, start=1))
    return Config(path=path, sources=sources, editors=_editors(raw.get("editors", {}), path),
                  **sections)


@dataclass(frozen=True)
class Editor:
    """One editor account: `digest editor add NAME` writes it."""

    name: str
    password_hash: str
    email: str = ""


def _editors(table: Any, path: Path) -> dict[str, Editor]:
    """[editors]: `name = "hash"`, or `[editors.name]` with password_hash and email."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [editors]: expected a table of editor accounts")
    editors = {}
    for name, value in table.items():
        where = f"{path}: [editors] {name}"
        if isinstance(value, dict):
            unknown = set(value) - {"password_hash", "email"}
            if unknown:
                raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: "
                                  "email, password_hash)")
            hashed, email = value.get("password_hash"), value.get("email", "")
        else:
            hashed, email = value, ""
        if not isinstance(hashed, str) or ":" not in hashed:
            raise ConfigError(f"{where}: expected a password hash written by "
                              "`digest editor add`")
        if not isinstance(email, str) or (email and _check_address(email)):
            raise ConfigError(f"{where}: email: expected an email address, got {email!r}")
        editors[name] = Editor(name=name, password_hash=hashed, email=email)
    return editors


def _build(cls: type, table: Any, where: str, path: Path) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {where}: expected a table")
    by_toml = {(f.metadata.get("toml") or f.name): f for f in fields(cls)}
    for key in table:
        if key not in by_toml:
            raise ConfigError(f"{path}: {where} {key}: unknown key{_hint(key, by_toml)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for toml_name, f in by_toml.items():
        if toml_name not in table:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ConfigError(f"{path}: {where} {toml_name}: required key is missing")
            continue
        if is_dataclass(hints[f.name]):
            inner = f"[{where.strip('[]')}.{toml_name}]"
            values[f.name] = _build(hints[f.name], table[toml_name], inner, path)
            continue
        value = _coerce(table[toml_name], hints[f.name], f"{path}: {where} {toml_name}")
        check = f.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            raise ConfigError(f"{path}: {where} {toml_name}: {problem}")
        values[f.name] = value
    return cls(**values)


def _coerce(value: Any, expected: Any, where: str) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    origin = typing.get_origin(expected)
    if origin in (list, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if isinstance(expected, types.UnionType):
        expected = typing.get_args(expected)
    wrong_bool = isinstance(value, bool) and expected is not bool
    if wrong_bool or not isinstance(value, expected):
        name = getattr(expected, "__name__", str(expected))
        raise ConfigError(f"{where}: expected {_type_word(name)}, got {value!r}")
    return value


def _type_word(name: str) -> str:
    return {"str": "a string", "int": "an integer", "float": "a number",
            "bool": "true or false"}.get(name, name)


def _hint(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"


def documented_keys() -> list[str]:
    """Every config key as 'section.key', for the docs test and `digest config keys`."""
    keys: list[str] = []
    for name, cls in [*SECTIONS.items(), ("sources", SourceSettings)]:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            key = f.metadata.get("toml") or f.name
            if is_dataclass(hints[f.name]):
                keys += [f"{name}.{key}.{g.name}" for g in fields(hints[f.name])]
            else:
                keys.append(f"{name}.{key}")
    return keys
