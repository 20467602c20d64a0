"""One committed digest → its recipients: the envelope and DKIM signing every message
shares, the leases this process holds on batches of deliveries (renewed by a heartbeat),
each outcome recorded the moment the server has answered, and addresses marked bounced
after repeated hard failures. `send_all` in `digest.deliver.engine` does the sending."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from typing import Any

from digest.bounces.verp import verp_address
from digest.clock import Clock
from digest.config import Config
from digest.deliver import Transport
from digest.deliver.engine import Outcome, Prepared, RateLimiter, SendPlan, Tally, send_all
from digest.errors import ConfigError, ContentRejected, StateUnavailable, TransportError
from digest.keys import signing_key
from digest.message import Envelope, dkim_signer, sender_domain
from digest.models import Recipient
from digest.shutdown import stop_requested
from digest.splice import MessageTemplate
from digest.state import State
from digest.state.ledger import LedgerWriter, StoredDigest
from digest.state.subscribers import StatusLookup
from digest.tokens import make_token, unsubscribe_token

log = logging.getLogger(__name__)

# How long a send stopped by the database going away keeps trying to record the messages
# the relay had already accepted (a restart or a failover takes seconds), so that the
# digest can be resumed without sending them twice.
RECORD_GRACE_SECONDS = 30.0

@dataclass(frozen=True)
class SendOutcome:
    """What one pass over a digest's pending deliveries did."""

    sent: int
    failed: int
    deferred: int
    remaining: int
    skipped: int = 0
    paused: bool = False
    unconfirmed: int = 0


def envelope(config: Config, key: bytes | None = None) -> Envelope:
    """The sender-side headers shared by every message; `key` is the signing key when the
    caller has it already."""
    domain = sender_domain(config.email.from_address)
    slug = "".join(c if c.isalnum() else "-" for c in config.digest.title.lower()).strip("-")
    return Envelope(from_address=config.email.from_address, reply_to=config.email.reply_to,
                    list_id=f"{config.digest.title} <{slug}.{domain}>",
                    base_url=config.email.base_url.rstrip("/"),
                    unsubscribe_mailto=config.email.unsubscribe_mailto or f"unsubscribe@{domain}",
                    archive_key=key if key is not None else signing_key(config))


def envelope_sender(config: Config) -> str:
    """MAIL FROM: the configured return path, else the From address."""
    return parseaddr(config.email.return_path or config.email.from_address)[1]


def message_signer(config: Config) -> Callable[[bytes], bytes]:
    """DKIM signing when [email.dkim] is set up, else the message unchanged."""
    dkim = config.email.dkim
    if not dkim.selector:
        return lambda message: message
    key_path = config.resolve(dkim.private_key_path)
    try:
        private_key = key_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{config.path}: [email.dkim] private_key_path: cannot read "
                          f"{key_path} ({exc.strerror})") from None
    return dkim_signer(dkim.selector, dkim.domain or sender_domain(config.email.from_address),
                       private_key)


def unsubscribe_link(config: Config, key: bytes, token_id: str) -> str:
    """The signed one-click unsubscribe URL of the subscriber with this token id."""
    return f"{config.email.base_url.rstrip('/')}/unsubscribe/{unsubscribe_token(key, token_id)}"


def _reply_text(reply: str) -> str:
    """The server's words from a refusal message ('…: DATA refused: 500 Line too long')."""
    return reply.split(" refused: ", 1)[-1]


def sender_id() -> str:
    """This sending process, as lease owner: host, PID and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def send_digest(config: Config, state: State, stored: StoredDigest,
                make_transport: Callable[[], Transport], clock: Clock, *,
                retry_deferred: bool = True) -> SendOutcome:
    """Send a committed digest to every recipient still waiting (that another sender does
    not hold), recording each outcome the moment the server has answered. The database
    going away is StateUnavailable, with the digest left for `digest resume`."""
    with state.db.reachable(f"sending digest {stored.id}"):
        return _send_digest(config, state, stored, make_transport, clock, retry_deferred)


def _send_digest(config: Config, state: State, stored: StoredDigest,
                 make_transport: Callable[[], Transport], clock: Clock,
                 retry_deferred: bool) -> SendOutcome:
    d = config.delivery
    ledger = state.ledger
    expired = ledger.expire_deferred(stored.id, timedelta(hours=d.deferred_lifetime_hours),
                                     clock())
    if expired:
        log.warning("digest %d: %d deferred deliveries expired after %g hours", stored.id,
                    expired, d.deferred_lifetime_hours)
    sending = _Sending(config, state, stored, clock, retry_deferred)
    freed = ledger.release_dead_leases(stored.id, clock())
    if freed:
        log.info("digest %d: %d deliveries held by a sender that died are free again",
                 stored.id, freed)
    s = config.smtp
    ledger.register_sender(sending.owner, clock())
    limiter = RateLimiter(s.rate_per_second, s.rate_per_hour)
    limiter.share(ledger.live_senders(clock(), sending.lease))
    heart = _Heartbeat(state, sending.owner, sending.lease, limiter, clock)
    plan = SendPlan(
        recipients=sending.claimed(), total=ledger.delivery_counts(stored.id).unsent,
        make_transport=make_transport, message_for=sending.message_for,
        record=sending.record, still_wanted=sending.still_wanted, connections=s.connections,
        max_per_connection=s.max_per_connection, attempts=d.retry_attempts,
        unconfirmed_retries=d.unconfirmed_retries,
        retry_delay=d.retry_delay, pause_after=d.pause_after_failures,
        limiter=limiter, stop=stop_requested, now=clock)
    heart.start()
    try:
        tally = send_all(plan)
    except StateUnavailable as exc:
        raise sending.after_outage(exc) from None
    finally:
        heart.stop()
        sending.finish()
    return _outcome(config, state, stored, tally, clock)


def _outcome(config: Config, state: State, stored: StoredDigest, tally: Tally,
             clock: Clock) -> SendOutcome:
    ledger = state.ledger
    if tally.content_refusals and not (tally.sent or tally.unconfirmed):
        ledger.reject_digest(stored.id, tally.content_reason, clock())
        raise ContentRejected(
            f"digest {stored.id} not sent: the relay refused its content ("
            f"{_reply_text(tally.content_reason)}); nothing was marked sent, its articles are "
            "new again and no address was marked bounced; fix what the relay objects to, "
            "then run again")
    if tally.paused:
        ledger.set_digest_status(stored.id, "paused")
    else:
        ledger.finish_digest(stored.id, clock())
    counts = ledger.delivery_counts(stored.id)
    if tally.fatal is not None:
        raise TransportError(f"{tally.fatal}; digest {stored.id}: {counts.unsent} deliveries "
                             "still pending, `digest run` or `digest resume` sends them")
    return SendOutcome(sent=tally.sent, failed=tally.failed, deferred=tally.deferred,
                       skipped=tally.skipped, remaining=counts.unsent, paused=tally.paused,
                       unconfirmed=tally.unconfirmed)


class _Sending:
    """This process's pass over one digest: what each sending thread calls back into."""

    def __init__(self, config: Config, state: State, stored: StoredDigest, clock: Clock,
                 retry_deferred: bool) -> None:
        self.config, self.state, self.stored, self.clock = config, state, stored, clock
        self.retry_deferred = retry_deferred
        self.owner = sender_id()
        self.lease = timedelta(seconds=config.delivery.lease_seconds)
        self.key = signing_key(config)
        env = envelope(config, self.key)
        base = f"{config.email.base_url.rstrip('/')}/unsubscribe/"
        self.templates = {fmt: MessageTemplate(stored.rendered, envelope=env,
                                               digest_id=stored.id,
                                               created_at=stored.created_at,
                                               unsubscribe_base=base, text_only=fmt == "text")
                          for fmt in ("html", "text")}
        self.sign = message_signer(config)
        self.domain = sender_domain(env.from_address)
        self.return_path = envelope_sender(config)
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self.doing = f"sending digest {stored.id}"
        self.unrecorded: list[tuple[Recipient, Outcome]] = []  # accepted, not committed
        self.lost = False  # the database went away: its connections are not given back

    def claimed(self) -> Iterator[Recipient]:
        """Recipients in leased batches, until none is left or a stop is asked for."""
        d = self.config.delivery
        while not stop_requested.is_set():
            with self.state.db.reachable(self.doing):
                batch = self.state.ledger.claim_deliveries(
                    self.stored.id, self.owner, d.batch_size, self.lease, self.clock(),
                    retry_deferred=self.retry_deferred, message_domain=self.domain)
            if not batch:
                return
            yield from batch

    def still_wanted(self, recipient: Recipient) -> bool:
        """Whether the address is still subscribed right before its message goes out."""
        with self.state.db.reachable(self.doing):
            return self._thread().lookup.is_active(recipient.email)

    def message_for(self, recipient: Recipient) -> Prepared:
        """One recipient's signed message and the envelope sender it goes out with."""
        token = unsubscribe_token(self.key, recipient.token_id) if recipient.token_id \
            else make_token(self.key, "unsubscribe", recipient.email)
        template = self.templates["text" if recipient.format == "text" else "html"]
        data = template.message_bytes(recipient, token, recipient.message_id)
        sender = verp_address(self.return_path, recipient.delivery_id, self.key) \
            if self.config.bounces.verp else self.return_path
        return Prepared(self.sign(data), sender)

    def record(self, recipient: Recipient, outcome: Outcome) -> None:
        """Commit one outcome; mark the address bounced after repeated hard failures. An
        outcome the database cannot take now is kept for `after_outage`."""
        try:
            self._thread().writer.mark(recipient.delivery_id, status=outcome.status,
                                       reply=outcome.reply, code=outcome.code,
                                       attempts=outcome.attempts, now=self.clock())
        except self.state.db.outages as exc:
            with self._lock:
                self.unrecorded.append((recipient, outcome))
            raise self.state.db.unavailable(exc, self.doing) from None
        if outcome.status == "failed" and outcome.code and 500 <= outcome.code < 600 \
                and not outcome.content:
            with self.state.db.reachable(self.doing):
                self._bounce_if_due(recipient.email, outcome.reply)

    def after_outage(self, error: StateUnavailable) -> StateUnavailable:
        """The send stopped because the database went away. What the relay accepted and
        could not be recorded is retried for a while (a restart or a failover takes
        seconds); the error then says whether a resume may repeat any of it."""
        self.lost = True
        deadline = time.monotonic() + RECORD_GRACE_SECONDS
        delay = 0.25
        while self.unrecorded and time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(2 * delay, 4.0)
            try:
                self._record_late()
            except self.state.db.outages:
                continue
        left = len(self.unrecorded)
        if not left:
            return StateUnavailable(f"{error}; every message the relay accepted is "
                                    "recorded: `digest resume` sends the rest once the "
                                    "database is back")
        return StateUnavailable(f"{error}; {left} message(s) the relay accepted could not "
                                "be recorded and may go out again: `digest resume` sends "
                                "the rest once the database is back")

    def _record_late(self) -> None:
        while self.unrecorded:
            recipient, outcome = self.unrecorded[0]
            self.state.ledger.mark(recipient.delivery_id, status=outcome.status,
                                   reply=outcome.reply, code=outcome.code,
                                   attempts=outcome.attempts, now=self.clock())
            self.unrecorded.pop(0)

    def _bounce_if_due(self, email: str, reply: str) -> None:
        limit = self.config.delivery.bounce_after
        if self.state.ledger.hard_failures(email) >= limit:
            self.state.subscribers.set_status(email, "bounced", self.clock(),
                                              f"{limit} hard failures, last: {reply}")
            log.warning("%s marked bounced after %d hard failures", email, limit)

    def _thread(self) -> _ThreadLink:
        # One DBAPI connection per sending thread, for its status checks and its ledger
        # commits alike: the pool needs one connection per [smtp] connections, not two.
        link = getattr(self._local, "link", None)
        if link is None:
            connection = self.state.db.raw_connection()
            with self._lock:
                self._connections.append(connection)
            link = self._local.link = _ThreadLink(
                self.state.subscribers.status_lookup(connection),
                self.state.ledger.writer(connection))
        return link

    def finish(self) -> None:
        """Give back every thread's connection and the leases still held. After the
        database went away, a connection is dropped rather than given back (its reset
        would fail), and the leases run out by themselves (or a restart on this host
        frees them at once)."""
        for connection in self._connections:
            if self.lost:
                connection.invalidate()
            else:
                connection.close()
        try:
            self.state.ledger.release_leases(self.owner)
            self.state.ledger.unregister_sender(self.owner)
        except self.state.db.outages:
            if not self.lost:
                raise


@dataclass(frozen=True)
class _ThreadLink:
    lookup: StatusLookup
    writer: LedgerWriter


class _Heartbeat:
    """Keeps this sender's leases while it works through them, and its share of the rate
    limit current as other senders come and go."""

    def __init__(self, state: State, owner: str, lease: timedelta, limiter: RateLimiter,
                 clock: Clock) -> None:
        self.state, self.owner, self.lease = state, owner, lease
        self.limiter, self.clock = limiter, clock
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _beat(self) -> None:
        ledger = self.state.ledger
        while not self._stopped.wait(self.lease.total_seconds() / 3):
            try:
                ledger.renew_leases(self.owner, self.lease, self.clock())
                self.limiter.share(ledger.live_senders(self.clock(), self.lease))
            except self.state.db.outages as exc:
                # The sending threads meet the same outage and stop the send; the next
                # beat tries again, as the database may be back by then.
                log.debug("lease heartbeat: %s", exc)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
