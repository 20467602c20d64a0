"""Where reports land, and taking them in: an IMAP mailbox (TLS verified), a Maildir on
this machine, or one message on standard input from an MTA's pipe. Each message is
recorded, with what it does, in one commit before it is moved or flagged on its mailbox,
so a run killed half way loses nothing and counts nothing twice: the rerun finds the
message's fingerprint recorded, and only moves it."""

from __future__ import annotations

import imaplib
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Protocol

from digest.alerts import send_alert
from digest.bounces.parse import read_report
from digest.bounces.policy import Thresholds, decider, matched, rate_alerts
from digest.clock import utc_now
from digest.config import Config
from digest.errors import ConfigError, DigestError
from digest.keys import verification_keys
from digest.state import State, open_state

log = logging.getLogger(__name__)


class BounceSourceError(DigestError):
    """A bounce mailbox cannot be reached or read."""


@dataclass(frozen=True)
class Incoming:
    """One message as read from its mailbox (perhaps only its first max_message_bytes)."""

    ref: str  # its name in the mailbox: a file name, an IMAP UID
    data: bytes
    size: int
    envelope_to: tuple[str, ...] = ()


class Source(Protocol):
    """A mailbox reports land in: `kind` imap or maildir, `name` for messages."""

    kind: str
    name: str

    def messages(self) -> Iterator[Incoming]: ...

    def done(self, message: Incoming) -> None: ...

    def close(self) -> None: ...


@dataclass
class SourceResult:
    """What one pass over a mailbox did."""

    name: str
    outcomes: Counter[str] = field(default_factory=Counter)
    error: str = ""

    def line(self) -> str:
        """One line for the operator."""
        total = sum(self.outcomes.values())
        parts = ", ".join(f"{n} {what}" for what, n in sorted(self.outcomes.items()))
        return f"{self.name}: {total} message(s)" + (f" ({parts})" if parts else "")


@dataclass
class Intake:
    """Takes reports in for one state database: matching, recording, alerting."""

    config: Config
    state: State
    keys: Sequence[bytes]
    digests: set[int] = field(default_factory=set)

    def take(self, message: Incoming, source: str, now: datetime) -> str:
        """Record one message and what it does; its outcome ('already' when it was
        recorded before)."""
        limits = Thresholds.of(self.config)
        report = read_report(message.data, size=message.size, envelope_to=message.envelope_to)
        if self.state.bounces.seen(report.fingerprint):
            return "already"
        bounce = matched(report, source=source, now=now, keys=self.keys,
                         lookup=self.state.bounces.addressee)
        digest_id = bounce.target.digest_id if bounce.target else None
        outcome = self.state.bounces.record(bounce, decider(report, digest_id, limits),
                                            limits.soft_since(now))
        if outcome is None:
            return "already"
        log.info("%s %s: %s%s, %s%s%s", source, message.ref, report.kind,
                 f" {report.status}" if report.status else "", outcome,
                 f" (delivery {bounce.target.delivery_id})" if bounce.target else "",
                 f"; {report.problem}" if report.problem else "")
        if digest_id is not None and outcome in ("counted", "acted"):
            self.digests.add(digest_id)
        return outcome

    def alert(self, now: datetime) -> None:
        """Mail the rate alerts the digests touched now call for."""
        for subject, body in rate_alerts(self.state, Thresholds.of(self.config),
                                         sorted(self.digests), now):
            log.warning("%s", subject)
            send_alert(self.config, subject, body)
        self.digests.clear()


def drain(intake: Intake, source: Source, result: SourceResult) -> None:
    """Every message of one mailbox: recorded, then moved or flagged there."""
    for message in source.messages():
        outcome = intake.take(message, source.kind, utc_now())
        source.done(message)
        result.outcomes[outcome] += 1


def configured_sources(config: Config) -> list[Source]:
    """The mailboxes [bounces] names (not yet opened)."""
    from digest.bounces.mailboxes import ImapSource, MaildirSource

    b = config.bounces
    found: list[Source] = []
    if b.imap_url:
        found.append(ImapSource(config))
    if b.maildir:
        found.append(MaildirSource(config.resolve(b.maildir), b.processed_folder,
                                   b.max_message_bytes))
    if not found:
        raise ConfigError(f"{config.path}: [bounces]: no bounce mailbox configured; set "
                          "imap_url or maildir (or pipe messages to `digest bounces ingest`)")
    return found


def fetch_all(config: Config, sources: list[Source] | None = None) -> list[SourceResult]:
    """Read every configured mailbox once; a mailbox that cannot be reached is reported
    in its result and the others are still read. Only one fetch at a time."""
    sources = configured_sources(config) if sources is None else sources
    results = []
    with open_state(config) as state, state.db.lock("bounces", utc_now()):
        intake = Intake(config, state, verification_keys(config))
        for source in sources:
            result = SourceResult(source.name)
            try:
                drain(intake, source, result)
            except BounceSourceError as exc:
                result.error = str(exc)  # the caller reports it
            except (OSError, imaplib.IMAP4.error) as exc:  # the connection dropped mid-way
                result.error = f"{source.name}: stopped after {sum(result.outcomes.values())} " \
                               f"message(s): {str(exc).strip() or type(exc).__name__}"
            finally:
                source.close()
            results.append(result)
        intake.alert(utc_now())
    return results


def read_stdin(stream: BinaryIO, limit: int) -> Incoming:
    """One message from an MTA's pipe: its first `limit` bytes kept, the rest read and
    counted (the MTA expects us to take it all)."""
    kept = stream.read(limit)
    size = len(kept)
    while chunk := stream.read(1 << 20):
        size += len(chunk)
    return Incoming("stdin", kept, size)


def ingest(config: Config, message: Incoming) -> str:
    """Take in one message handed over by the MTA; its outcome."""
    with open_state(config) as state:
        intake = Intake(config, state, verification_keys(config))
        outcome = intake.take(message, "stdin", utc_now())
        intake.alert(utc_now())
    return outcome
