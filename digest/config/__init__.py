"""config.toml → validated, frozen dataclasses. Every key is declared once, with type,
default and help (`digest.config.sections`); unknown keys, wrong types and bad values are
refused with one line naming the file and the key."""

from __future__ import annotations

import difflib
import os
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from digest.config.checks import check_database, email_problem
from digest.config.sections import (
    DEFAULT_SUBJECT,
    REQUIRED_SECTIONS,
    SECTIONS,
    AlertSettings,
    BounceSettings,
    DeliverySettings,
    DigestSettings,
    DkimSettings,
    Editor,
    EmailSettings,
    FetchSettings,
    LogSettings,
    ScheduleSettings,
    SmtpSettings,
    SourceSettings,
    StateSettings,
    SubscriberSettings,
    SummarySettings,
    TrackingSettings,
    WebSettings,
)
from digest.errors import ConfigError

__all__ = [
    "DEFAULT_SUBJECT", "AlertSettings", "BounceSettings", "Config", "DeliverySettings",
    "DigestSettings", "DkimSettings", "Editor", "EmailSettings", "FetchSettings", "LogSettings",
    "ScheduleSettings", "SmtpSettings", "SourceSettings", "StateSettings",
    "SubscriberSettings", "SummarySettings", "TrackingSettings", "WebSettings", "check_database",
    "database_url", "default_config_path", "documented_keys", "email_problem",
    "load_config", "parse_config",
]

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
    bounces: BounceSettings
    log: LogSettings
    web: WebSettings
    tracking: TrackingSettings
    editors: dict[str, Editor] = field(default_factory=dict)

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the folder holding config.toml."""
        return (self.path.parent / relative).resolve()

    @property
    def database_path(self) -> Path:
        return self.resolve(self.state.database)

    @property
    def state_folder(self) -> Path:
        """Where the state lives on this machine: a SQLite database's folder (the generated
        signing key sits beside it), else `state/` beside config.toml."""
        return self.resolve("state") if self.database_is_server else self.database_path.parent

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
    def template_folder(self) -> Path | None:
        """The operator's own templates folder, when [email] templates names one; each
        template it lacks comes from the bundled ones."""
        return self.resolve(self.email.templates) if self.email.templates else None

    def smtp_password(self) -> str:
        """The SMTP password, read from the environment variable the config names."""
        return os.environ.get(self.smtp.password_env, "")


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
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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
        raise ConfigError(f"{path}: config file not found (pass --config PATH, or run "
                          "`digest init FOLDER` to write one)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file (pass --config "
                          f"{path / 'config.toml'}?)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") \
            from None
    except tomllib.TOMLDecodeError as exc:
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
    _check_tracking(sections["tracking"], sections["email"], path)
    return Config(path=path, sources=sources, editors=_editors(raw.get("editors", {}), path),
                  **sections)


def _check_tracking(tracking: TrackingSettings, email: EmailSettings, path: Path) -> None:
    """Tracked links and the open image carry a reader's click through [email] base_url:
    over https only (plain http on this machine is fine, for trying it out)."""
    wanted = [name for name in ("clicks", "opens") if getattr(tracking, name)]
    if not wanted:
        return
    parts = urlsplit(email.base_url)
    if parts.scheme == "https" or is_loopback_host(parts.hostname or ""):
        return
    raise ConfigError(f"{path}: [tracking] {wanted[0]}: needs [email] base_url to be an "
                      f"https:// URL, got {email.base_url!r} (readers' clicks would travel "
                      "in clear)")


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1."""
    import ipaddress

    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
        if not isinstance(email, str) or (email and email_problem(email)):
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
