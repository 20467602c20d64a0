"""The subscriber list: a CSV file (email,name,status,subscribed_at) under subscribers/,
read for every send and rewritten atomically on every change."""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from digest.errors import SubscriberError
from digest.models import Subscriber

log = logging.getLogger(__name__)

COLUMNS = ("email", "name", "status", "subscribed_at")
STATUSES = ("active", "pending", "unsubscribed", "bounced", "complained")


@dataclass(frozen=True)
class ListEntry:
    """One row of the list file."""

    subscriber: Subscriber
    subscribed_at: str


@dataclass(frozen=True)
class ImportResult:
    """What an import did, and the rows it had to skip."""

    added: int
    updated: int
    skipped: tuple[str, ...]


def check_address(address: str) -> str:
    """Return the address as typed (trimmed) when valid; raise SubscriberError when not."""
    address = address.strip()
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"{address!r} is not a valid email address: {exc}") from None
    return address


def comparison_key(address: str) -> str:
    """The address as compared for duplicates: trimmed and case-folded."""
    return address.strip().casefold()


def read_list(path: Path) -> list[ListEntry]:
    """Read the list file; a missing file is an empty list, a bad row is logged and skipped."""
    if not path.exists():
        return []
    entries, problems = _parse(path.read_text(encoding="utf-8-sig"), str(path))
    for problem in problems:
        log.warning("%s", problem)
    return entries


def active_subscribers(path: Path) -> list[Subscriber]:
    """Everyone on the list whose status is active."""
    return list(iter_active(path))


def iter_active(path: Path) -> Iterator[Subscriber]:
    """Active subscribers read row by row, so a long list never sits in memory whole;
    a bad row is logged with its line number and skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if "email" not in header:
            raise SubscriberError(f"{path}: line 1: header row must have an 'email' column")
        reader.fieldnames = header
        for row in reader:
            try:
                entry = _row_entry(row, "")
            except SubscriberError as exc:
                log.warning("%s: line %d: %s; row skipped", path, reader.line_num, exc)
                continue
            if entry.subscriber.status == "active":
                yield entry.subscriber  # a repeated address is ignored by the ledger


def count_active(path: Path) -> int:
    """How many active subscribers the list has."""
    return sum(1 for _ in iter_active(path))


def add_subscriber(path: Path, email: str, name: str, now: datetime) -> bool:
    """Add (or re-activate) one address; True when the list changed."""
    email = check_address(email)
    entries = read_list(path)
    for i, entry in enumerate(entries):
        if comparison_key(entry.subscriber.email) == comparison_key(email):
            if entry.subscriber.status == "active" and (not name or name == entry.subscriber.name):
                return False
            entries[i] = ListEntry(replace(entry.subscriber, status="active",
                                           name=name or entry.subscriber.name),
                                   entry.subscribed_at)
            _write(path, entries)
            return True
    entries.append(ListEntry(Subscriber(email=email, name=name), _stamp(now)))
    _write(path, entries)
    return True


def remove_subscriber(path: Path, email: str) -> bool:
    """Remove one address from the list; True when it was there."""
    entries = read_list(path)
    kept = [e for e in entries if comparison_key(e.subscriber.email) != comparison_key(email)]
    if len(kept) == len(entries):
        return False
    _write(path, kept)
    return True


def import_csv(path: Path, source: Path, now: datetime) -> ImportResult:
    """Merge a CSV (at least an `email` column) into the list; bad rows are skipped and reported."""
    try:
        text = source.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SubscriberError(f"{source}: cannot read ({exc})") from None
    incoming, skipped = _parse(text, str(source), default_stamp=_stamp(now))
    entries = read_list(path)
    index = {comparison_key(e.subscriber.email): i for i, e in enumerate(entries)}
    added = updated = 0
    for entry in incoming:
        key = comparison_key(entry.subscriber.email)
        if key not in index:
            index[key] = len(entries)
            entries.append(entry)
            added += 1
        elif entries[index[key]].subscriber != entry.subscriber:
            entries[index[key]] = ListEntry(entry.subscriber,
                                            entries[index[key]].subscribed_at)
            updated += 1
    if added or updated:
        _write(path, entries)
    return ImportResult(added=added, updated=updated, skipped=tuple(skipped))


def export_csv(path: Path) -> str:
    """The whole list as CSV text with a header row."""
    return _render(read_list(path))


def _parse(text: str, origin: str, default_stamp: str = "") -> tuple[list[ListEntry], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "email" not in header:
        raise SubscriberError(f"{origin}: line 1: header row must have an 'email' column")
    reader.fieldnames = header
    entries: list[ListEntry] = []
    problems: list[str] = []
    seen: set[str] = set()
    for row in reader:
        line = reader.line_num
        try:
            entry = _row_entry(row, default_stamp)
        except SubscriberError as exc:
            problems.append(f"{origin}: line {line}: {exc}; row skipped")
            continue
        key = comparison_key(entry.subscriber.email)
        if key in seen:
            problems.append(f"{origin}: line {line}: duplicate of an earlier row; merged")
            continue
        seen.add(key)
        entries.append(entry)
    return entries, problems


def _row_entry(row: dict[str, str | None], default_stamp: str) -> ListEntry:
    email = check_address(row.get("email") or "")
    status = (row.get("status") or "active").strip().lower()
    if status not in STATUSES:
        raise SubscriberError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
    name = " ".join((row.get("name") or "").split())
    stamp = (row.get("subscribed_at") or "").strip() or default_stamp
    return ListEntry(Subscriber(email=email, name=name, status=status), stamp)


def _render(entries: Iterable[ListEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for e in entries:
        writer.writerow([e.subscriber.email, e.subscriber.name, e.subscriber.status,
                         e.subscribed_at])
    return out.getvalue()


def _write(path: Path, entries: list[ListEntry]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(_render(entries))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="seconds")


def set_status(path: Path, email: str, status: str) -> bool:
    """Change one subscriber's status (e.g. to 'bounced'); True when the list changed."""
    if status not in STATUSES:
        raise SubscriberError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
    entries = read_list(path)
    key = comparison_key(email)
    changed = False
    for i, entry in enumerate(entries):
        if comparison_key(entry.subscriber.email) == key and entry.subscriber.status != status:
            entries[i] = ListEntry(replace(entry.subscriber, status=status), entry.subscribed_at)
            changed = True
    if changed:
        _write(path, entries)
    return changed


class ActiveGate:
    """Answers "is this address still subscribed?" right before its message goes out,
    re-reading the list only when the file has changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._active: set[str] = set()
        self._lock = threading.Lock()

    def is_active(self, email: str) -> bool:
        """True when the address is on the list with status active."""
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            return False
        with self._lock:
            if stamp != self._stamp:
                self._active = _active_keys(self.path)
                self._stamp = stamp
            return comparison_key(email) in self._active


def _active_keys(path: Path) -> set[str]:
    """Comparison keys of the active rows; addresses were validated when they were written."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        reader.fieldnames = [h.strip().lower() for h in (reader.fieldnames or [])]
        return {comparison_key(row.get("email") or "") for row in reader
                if (row.get("status") or "active").strip().lower() == "active"}
