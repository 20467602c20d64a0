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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from typing import TypeVar

from digest.clock import Clock
from digest.config import Config
from digest.deliver import Transport
from digest.deliver.engine import Outcome, RateLimiter, SendPlan, send_all
from digest.errors import ConfigError, TransportError
from digest.keys import signing_key
from digest.message import Envelope, address_digest, dkim_signer, sender_domain
from digest.models import Subscriber
from digest.shutdown import stop_requested
from digest.splice import MessageTemplate
from digest.state import State
from digest.state.ledger import LedgerWriter, StoredDigest
from digest.state.subscribers import StatusLookup
from digest.tokens import make_token

log = logging.getLogger(__name__)

Connection = TypeVar("Connection", LedgerWriter, StatusLookup)


@dataclass(frozen=True)
class SendOutcome:
    """What one pass over a digest's pending deliveries did."""

    sent: int
    failed: int
    deferred: int
    remaining: int
    skipped: int = 0
    paused: bool = False


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


def unsubscribe_link(config: Config, key: bytes, email: str) -> str:
    """The signed one-click unsubscribe URL of one subscriber."""
    token = make_token(key, "unsubscribe", email)
    return f"{config.email.base_url.rstrip('/')}/unsubscribe/{token}"


def sender_id() -> str:
    """This sending process, as lease owner: host, PID and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def send_digest(config: Config, state: State, stored: StoredDigest,
                make_transport: Callable[[], Transport], clock: Clock, *,
                retry_deferred: bool = True) -> SendOutcome:
    """Send a committed digest to every recipient still waiting (that another sender does
    not hold), recording each outcome the moment the server has answered."""
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
        record=sending.record, still_wanted=sending.still_wanted,
        sender=envelope_sender(config), connections=s.connections,
        max_per_connection=s.max_per_connection, attempts=d.retry_attempts,
        retry_delay=d.retry_delay, pause_after=d.pause_after_failures,
        limiter=limiter, stop=stop_requested, now=clock)
    heart.start()
    try:
        tally = send_all(plan)
    finally:
        heart.stop()
        sending.close()
        ledger.release_leases(sending.owner)
        ledger.unregister_sender(sending.owner)
    if tally.paused:
        ledger.set_digest_status(stored.id, "paused")
    else:
        ledger.finish_digest(stored.id, clock())
    counts = ledger.delivery_counts(stored.id)
    if tally.fatal is not None:
        raise TransportError(f"{tally.fatal}; digest {stored.id}: {counts.unsent} deliveries "
                             "still pending, `digest run` or `digest resume` sends them")
    return SendOutcome(sent=tally.sent, failed=tally.failed, deferred=tally.deferred,
                       skipped=tally.skipped, remaining=counts.unsent, paused=tally.paused)


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
        self._local = threading.local()
        self._connections: list[LedgerWriter | StatusLookup] = []
        self._lock = threading.Lock()

    def claimed(self) -> Iterator[Subscriber]:
        """Recipients in leased batches, until none is left or a stop is asked for."""
        d = self.config.delivery
        while not stop_requested.is_set():
            batch = self.state.ledger.claim_deliveries(
                self.stored.id, self.owner, d.batch_size, self.lease, self.clock(),
                retry_deferred=self.retry_deferred)
            if not batch:
                return
            yield from batch

    def still_wanted(self, subscriber: Subscriber) -> bool:
        """Whether the address is still subscribed right before its message goes out."""
        lookup = getattr(self._local, "lookup", None)
        if lookup is None:
            lookup = self._local.lookup = self._keep(self.state.subscribers.status_lookup())
        return bool(lookup.is_active(subscriber.email))

    def message_for(self, subscriber: Subscriber) -> tuple[bytes, str]:
        """One subscriber's signed message and its Message-ID."""
        token = make_token(self.key, "unsubscribe", subscriber.email)
        template = self.templates["text" if subscriber.format == "text" else "html"]
        return (self.sign(template.message_bytes(subscriber, token)),
                f"<digest-{self.stored.id}.{address_digest(subscriber.email)}@{self.domain}>")

    def record(self, subscriber: Subscriber, outcome: Outcome, message_id: str) -> None:
        """Commit one outcome; mark the address bounced after repeated hard failures."""
        writer = getattr(self._local, "writer", None)
        if writer is None:
            writer = self._local.writer = self._keep(self.state.ledger.writer())
        writer.mark(self.stored.id, subscriber.email, status=outcome.status,
                    message_id=message_id, reply=outcome.reply, code=outcome.code,
                    attempts=outcome.attempts, now=self.clock())
        if outcome.status == "failed" and outcome.code and 500 <= outcome.code < 600:
            self._bounce_if_due(subscriber.email, outcome.reply)

    def _bounce_if_due(self, email: str, reply: str) -> None:
        limit = self.config.delivery.bounce_after
        if self.state.ledger.hard_failures(email) >= limit:
            self.state.subscribers.set_status(email, "bounced", self.clock(),
                                              f"{limit} hard failures, last: {reply}")
            log.warning("%s marked bounced after %d hard failures", email, limit)

    def _keep(self, connection: Connection) -> Connection:
        with self._lock:
            self._connections.append(connection)
        return connection

    def close(self) -> None:
        """Give back every thread's connections."""
        for connection in self._connections:
            connection.close()


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
            ledger.renew_leases(self.owner, self.lease, self.clock())
            self.limiter.share(ledger.live_senders(self.clock(), self.lease))

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
