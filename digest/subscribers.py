"""Subscriber addresses and CSV lists: the one rule that says when two addresses are the
same (`address_key`, used everywhere), address checks, reading and writing CSV lists, and
reading the configured list file into the list whenever it changes. The rows themselves
live in the state database (`digest.state.subscribers`), which this module reaches only
through the small interface it declares."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TextIO

from email_validator import EmailNotValidError, validate_email

from digest.config import Config
from digest.errors import ConfigError, SubscriberError
from digest.models import Subscriber

log = logging.getLogger(__name__)

COLUMNS = ("email", "name", "status", "subscribed_at", "format")
STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
SUPPRESSING = ("unsubscribed", "bounced", "complained")
FORMATS = ("html", "text")
RECENT_REPEATS = 1000


@dataclass(frozen=True)
class ListEntry:
    """One row of a CSV list."""

    subscriber: Subscriber
    subscribed_at: str = ""
    format: str = "html"


@dataclass(frozen=True)
class ImportResult:
    """What an import did, and the rows it had to skip or leave alone."""

    added: int
    updated: int
    skipped: tuple[str, ...]
    suppressed: int = 0
    delimiter: str = ","


class StoredRow(Protocol):
    """One stored subscriber, as an export writes it."""

    @property
    def email(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def format(self) -> str: ...

    @property
    def subscribed_at(self) -> datetime | None: ...


class ListStore(Protocol):
    """What reading and writing list files needs of the subscriber list."""

    def import_entries(self, entries: Iterable[ListEntry], now: datetime, *, cause: str,
                       reactivate: bool = False) -> ImportResult: ...

    def rows(self) -> Iterator[StoredRow]: ...

    def file_fingerprint(self, path: str) -> str | None: ...

    def set_file_fingerprint(self, path: str, fingerprint: str) -> None: ...


# --- addresses ----------------------------------------------------------------------------


def check_address(address: str) -> str:
    """Return the address as typed (trimmed) when valid; raise SubscriberError when not.
    Syntax only: no DNS look-ups."""
    address = address.strip()
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"{address!r} is not a valid email address: {exc}") from None
    return address


# Addresses whose every part email_validator is known to accept on sight once their
# domain passed: an ASCII dot-atom local part, a domain of hostname characters.
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*")
_PLAIN_DOMAIN = re.compile(r"[A-Za-z0-9.-]+")
MAX_ADDRESS_OCTETS = 254  # RFC 5321 4.5.3.1.3, as email_validator checks it


class AddressChecker:
    """check_address for the many rows of one import, with email_validator's domain
    check (most of its cost: IDNA and Unicode tables) made once per domain. Only a plain
    address whose domain passed before takes the short way, where email_validator is
    certain to agree; every other address goes through it whole, for the same result
    and the same message."""

    def __init__(self) -> None:
        self._domains: dict[str, int] = {}

    def __call__(self, address: str) -> str:
        address = address.strip()
        local, at, domain = address.rpartition("@")
        if at and _PLAIN_LOCAL.fullmatch(local) and _PLAIN_DOMAIN.fullmatch(domain):
            longest = self._domains.get(domain)
            if longest is None:
                longest = self._domains[domain] = _domain_octets(domain)
            if 0 <= longest <= MAX_ADDRESS_OCTETS - len(local) - 1:
                return address
        return check_address(address)


def _domain_octets(domain: str) -> int:
    """The longest of the domain's forms whose lengths email_validator checks (as typed,
    normalised, in IDNA ASCII), in UTF-8 octets; -1 when it refuses the domain itself."""
    try:
        probe = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return -1
    return max(len(form.encode("utf-8")) for form in (domain, probe.domain, probe.ascii_domain))


def address_key(address: str) -> str:
    """The address as compared for duplicates, everywhere: trimmed and case-folded (the
    Unicode way, so 'ÉLODIE@…' and 'élodie@…' are one person)."""
    return address.strip().casefold()


def address_hash(address: str) -> str:
    """What the suppression list keeps of an address."""
    return hashlib.sha256(address_key(address).encode("utf-8")).hexdigest()


def parse_time(value: str, fallback: datetime) -> datetime:
    """An ISO time from a CSV cell (UTC when it has no zone), else the fallback."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return fallback
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- CSV --------------------------------------------------------------------------------


def parse_csv(text: str, origin: str) -> tuple[list[ListEntry], list[str]]:
    """Rows of a CSV list (header row with at least `email`); bad rows come back as one
    message each, with the line number."""
    problems: list[str] = []
    entries = list(read_csv(io.StringIO(text), origin, problems))
    return entries, problems


DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


def sniff_delimiter(header: str) -> str:
    """The delimiter a list's header row uses: comma, semicolon or tab (spreadsheets in
    many locales write semicolons)."""
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_csv(handle: TextIO, origin: str, problems: list[str],
             found: list[str] | None = None) -> Iterator[ListEntry]:
    """Stream the rows of a CSV list; each bad row adds a message (with its line number)
    to `problems` and is skipped. Repeats within a thousand rows are merged and reported;
    further apart, the later row simply updates the earlier one. The delimiter is found
    from the header row (and appended to `found`)."""
    first = handle.readline()
    delimiter = sniff_delimiter(first)
    if found is not None:
        found.append(delimiter)
    reader = csv.DictReader(itertools.chain([first], handle), delimiter=delimiter, strict=True)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "email" not in header:
        raise SubscriberError(f"{origin}: line 1: header row must have an 'email' column "
                              f"(read as {DELIMITERS[delimiter]}-separated)")
    reader.fieldnames = header
    yield from _rows(reader, origin, problems)


def _rows(reader: csv.DictReader[str], origin: str, problems: list[str]
          ) -> Iterator[ListEntry]:
    recent: set[str] = set()
    check = AddressChecker()
    while True:
        starts = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if _unclosed_quote(exc):
                problems.append(f"{origin}: line {starts}: a quote opened here is never "
                                "closed; the rest of the file was not read")
                return
            problems.append(f"{origin}: line {starts}: not readable as CSV ({exc}); row "
                            "skipped")
            continue
        try:
            entry = _row_entry(row, check)
        except SubscriberError as exc:
            problems.append(f"{origin}: line {reader.line_num}: {exc}; row skipped")
            continue
        key = address_key(entry.subscriber.email)
        if key in recent:
            problems.append(f"{origin}: line {reader.line_num}: duplicate of an earlier row; "
                            "merged")
            continue
        if len(recent) >= RECENT_REPEATS:
            recent.clear()
        recent.add(key)
        yield entry


def _unclosed_quote(error: csv.Error) -> bool:
    return "unexpected end of data" in str(error)


def _row_entry(row: dict[str, str | None], check: AddressChecker) -> ListEntry:
    email = check(row.get("email") or "")
    status = (row.get("status") or "active").strip().lower()
    if status not in STATUSES:
        raise SubscriberError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
    fmt = (row.get("format") or "html").strip().lower()
    if fmt not in FORMATS:
        raise SubscriberError(f"unknown format {fmt!r} (html or text)")
    name = " ".join((row.get("name") or "").split())
    return ListEntry(Subscriber(email=email, name=name, status=status),
                     (row.get("subscribed_at") or "").strip(), fmt)


# --- list files ---------------------------------------------------------------------------


def import_csv(records: ListStore, source: Path, now: datetime, *,
               reactivate: bool = False) -> ImportResult:
    """Import a CSV file; bad rows are reported with their line numbers and skipped."""
    problems: list[str] = []
    found: list[str] = []
    try:
        with source.open(encoding="utf-8-sig", newline="") as handle:
            result = records.import_entries(read_csv(handle, str(source), problems, found),
                                            now, cause=f"imported from {source.name}",
                                            reactivate=reactivate)
    except (OSError, UnicodeDecodeError) as exc:
        raise SubscriberError(f"{source}: cannot read ({exc})") from None
    return ImportResult(result.added, result.updated, tuple(problems), result.suppressed,
                        found[0] if found else ",")


def sync_file(records: ListStore, path: Path, now: datetime) -> ImportResult | None:
    """Read the configured list file into the database when it has changed since the
    last time; None when it has not (or does not exist)."""
    if not path.exists():
        return None
    fingerprint = _file_digest(path)
    if records.file_fingerprint(str(path)) == fingerprint:
        return None
    result = import_csv(records, path, now)
    for problem in result.skipped:
        log.warning("%s", problem)
    records.set_file_fingerprint(str(path), fingerprint)
    log.info("%s read into the subscriber list: %d added, %d updated, %d left "
             "suppressed", path, result.added, result.updated, result.suppressed)
    return result


def read_subscriber_file(config: Config, records: ListStore, now: datetime) -> None:
    """Read [subscribers] path into the list when it changed; a file that is configured but
    missing is an error (an empty file is fine; path = "" means the list lives only in the
    database)."""
    if not config.subscribers.path:
        return
    if not config.subscribers_path.is_file():
        raise ConfigError(f"{config.path}: [subscribers] path: {config.subscribers_path} does "
                          "not exist (create it with a header row, or set path = \"\" to keep "
                          "the list only in the database)")
    sync_file(records, config.subscribers_path, now)


def export_csv(records: ListStore, out: TextIO) -> int:
    """Write the list as CSV with a header row; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for row in records.rows():
        stamp = row.subscribed_at
        writer.writerow([row.email, row.name, row.status,
                         stamp.isoformat(timespec="seconds") if stamp else "", row.format])
        count += 1
    return count


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
