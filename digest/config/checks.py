"""Value checks for config keys, and `key()`, which declares one key with its default, help
text and check. Each check returns None for a good value, else what is wrong with it."""

from __future__ import annotations

import typing
import zoneinfo
from dataclasses import MISSING, field
from typing import Any
from urllib.parse import urlsplit


def check_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"expected an http:// or https:// URL, got {value!r}"
    return None


def check_optional_url(value: str) -> str | None:
    return check_url(value) if value else None


def check_imap_url(value: str) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname:
        return f"expected an imaps:// (or imap://, with STARTTLS) URL, got {value!r}"
    if parts.password is not None or parts.username is not None:
        return "put the user in imap_user and the password in the environment variable " \
               "imap_password_env names, not in the URL"
    try:
        parts.port  # noqa: B018  (urlsplit checks the port only when asked)
    except ValueError:
        return f"bad port in {value!r}"
    return None


def check_cron(value: str) -> str | None:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        return f"bad cron expression {value!r} ({exc})"
    return None


def check_timezone(value: str) -> str | None:
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


def check_optional_cron(value: str) -> str | None:
    return check_cron(value) if value else None


def check_address_list(value: str) -> str | None:
    for part in filter(None, (p.strip() for p in value.split(","))):
        problem = email_problem(part)
        if problem:
            return problem
    return None


def email_problem(value: str) -> str | None:
    from email.utils import parseaddr

    _, addr = parseaddr(value)
    if "@" not in addr or addr.startswith("@") or addr.endswith("@"):
        return f"expected an email address, got {value!r}"
    return None


def one_of(*choices: str) -> typing.Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value not in choices:
            return f"expected one of {', '.join(map(repr, choices))}, got {value!r}"
        return None

    return check


def positive(value: int | float) -> str | None:
    return None if value > 0 else f"expected a number above 0, got {value!r}"


def fraction(value: float) -> str | None:
    return None if 0 < value <= 1 else f"expected a number above 0 and at most 1, got {value!r}"


def key(default: Any = MISSING, help: str = "", check: Any = None, toml: str = "") -> Any:
    """Declare one config key: its default, its help text and an optional value check."""
    meta = {"help": help, "check": check, "toml": toml}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def non_negative(value: int | float) -> str | None:
    return None if value >= 0 else f"expected 0 or more, got {value!r}"


def check_networks(values: tuple[str, ...]) -> str | None:
    import ipaddress

    for value in values:
        try:
            ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            return f"expected IP addresses or networks like '127.0.0.1' or '10.0.0.0/8', " \
                   f"got {value!r}"
    return None
