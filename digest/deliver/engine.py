"""Sending one committed digest to its recipients: parallel connections, each reused for
many messages; a global rate limit; retries with backoff on 4xx replies and dropped
connections; every outcome committed right after the server's reply, so a crash can
repeat at most the one message in flight per connection."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from digest.deliver import Transport
from digest.errors import DeliveryError, TransportError, UnknownOutcome
from digest.models import Recipient
from digest.progress import Advance, progress

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0
CONTENT_REFUSALS_TO_STOP = 5


class RateLimiter:
    """At most `per_second` and `per_hour` acquisitions, across every thread (0: no limit)."""

    def __init__(self, per_second: float = 0, per_hour: int = 0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._per_second, self._per_hour = per_second, per_hour
        self.interval = 1 / per_second if per_second else 0.0
        self.per_hour = per_hour
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._hour: deque[float] = deque()
        self._lock = threading.Lock()

    def share(self, senders: int) -> None:
        """Take one of `senders` equal shares of the configured rates (several processes
        sending one digest stay within the global limit together)."""
        with self._lock:
            self.interval = senders / self._per_second if self._per_second else 0.0
            self.per_hour = max(1, self._per_hour // senders) if self._per_hour else 0

    def acquire(self) -> None:
        """Wait until one more message is allowed."""
        if not self.interval and not self.per_hour:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            if self.per_hour:
                while self._hour and self._hour[0] <= start - 3600:
                    self._hour.popleft()
                if len(self._hour) >= self.per_hour:
                    start = max(start, self._hour[0] + 3600)
                    self._hour.popleft()
                self._hour.append(start)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


@dataclass(frozen=True)
class Outcome:
    """What happened to one recipient."""

    status: str  # sent | failed | deferred | skipped | unconfirmed
    reply: str
    code: int | None
    attempts: int
    content: bool = False  # refused for the message's content, not for its recipient


@dataclass
class Tally:
    """Counts shared by the sending threads."""

    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    unconfirmed: int = 0
    content_refusals: int = 0
    content_reason: str = ""  # what the relay said when it refused the content
    failures_in_a_row: int = 0
    fatal: TransportError | None = None
    crash: BaseException | None = None  # a bug or a database error in a sending thread
    paused: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome, pause_after: int) -> bool:
        """Count an outcome; True when the run should stop: too many failures in a row, or
        the relay refusing the content of every message so far (the digest itself is
        wrong: no point in offering it to the rest of the list)."""
        status = outcome.status
        with self.lock:
            setattr(self, status, getattr(self, status) + 1)
            if outcome.content:
                self.content_refusals += 1
                self.content_reason = self.content_reason or outcome.reply
                if self.sent == 0 and self.content_refusals >= CONTENT_REFUSALS_TO_STOP:
                    return True
            if status == "sent":
                self.failures_in_a_row = 0
            elif status in ("failed", "deferred"):
                self.failures_in_a_row += 1
                if self.failures_in_a_row >= pause_after and not self.paused:
                    self.paused = True
                    return True
            return False


@dataclass(frozen=True)
class Prepared:
    """One recipient's finished message and the envelope sender it goes out with."""

    data: bytes
    sender: str


@dataclass(frozen=True)
class SendPlan:
    """Everything the sending threads need, with side effects passed in as functions."""

    recipients: Iterator[Recipient]
    total: int
    make_transport: Callable[[], Transport]
    message_for: Callable[[Recipient], Prepared]
    record: Callable[[Recipient, Outcome], None]
    still_wanted: Callable[[Recipient], bool]
    connections: int = 2
    max_per_connection: int = 1000
    attempts: int = 3
    unconfirmed_retries: int = 1  # resends after a connection lost before the server's answer
    retry_delay: float = 1.0
    pause_after: int = 50
    limiter: RateLimiter = field(default_factory=RateLimiter)
    stop: threading.Event = field(default_factory=threading.Event)
    now: Callable[[], datetime] = datetime.now


class _SharedRecipients:
    """The recipients iterator shared by the sending threads: each takes the next one under
    a lock (cheaper than a feeding thread and a queue, on the hot path of every message)."""

    def __init__(self, recipients: Iterator[Recipient]) -> None:
        self._recipients = recipients
        self._lock = threading.Lock()

    def next(self) -> Recipient | None:
        with self._lock:
            return next(self._recipients, None)


def send_all(plan: SendPlan) -> Tally:
    """Send to every recipient the plan yields; returns the counts. Stops early on a fatal
    transport error, a pause, or `plan.stop` (each thread finishes its message first)."""
    tally = Tally()
    halt = threading.Event()
    recipients = _SharedRecipients(plan.recipients)
    with progress("Sending", plan.total) as advance:
        threads = [threading.Thread(target=_Worker(plan, tally, halt, advance).run,
                                    args=(recipients,), name=f"smtp-{i}", daemon=True)
                   for i in range(plan.connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if tally.crash is not None:
        raise tally.crash
    return tally


class _Worker:
    """One connection's thread: takes recipients off the queue until told to stop."""

    def __init__(self, plan: SendPlan, tally: Tally, halt: threading.Event,
                 advance: Advance) -> None:
        self.plan, self.tally, self.halt, self.advance = plan, tally, halt, advance
        self.transport = plan.make_transport()
        self.on_this_connection = 0

    def run(self, recipients: _SharedRecipients) -> None:
        try:
            while not (self.halt.is_set() or self.plan.stop.is_set()):
                recipient = recipients.next()
                if recipient is None:
                    return
                self.one(recipient)
        except TransportError as exc:
            with self.tally.lock:
                self.tally.fatal = self.tally.fatal or exc
            self.halt.set()
        except BaseException as exc:  # re-raised by send_all in the calling thread
            with self.tally.lock:
                self.tally.crash = self.tally.crash or exc
            self.halt.set()
        finally:
            self.transport.close()

    def one(self, recipient: Recipient) -> None:
        if not self.plan.still_wanted(recipient):
            self._record(recipient, Outcome("skipped", "no longer subscribed when its turn "
                                            "came", None, 0))
            return
        prepared = self.plan.message_for(recipient)
        utf8 = not recipient.email.isascii()
        if utf8:
            self._ensure_open()
            if not self.transport.supports_smtputf8():
                self._record(recipient, Outcome("skipped", "address needs SMTPUTF8, which "
                                                "the server does not offer", None, 0))
                return
        self._record(recipient, self._send(recipient, prepared, utf8))

    def _record(self, recipient: Recipient, outcome: Outcome) -> None:
        self.plan.record(recipient, outcome)
        self.advance(1, **{outcome.status: 1})
        if outcome.status != "sent":
            log.warning("delivery to %s %s: %s", recipient.email, outcome.status, outcome.reply)
        if self.tally.add(outcome, self.plan.pause_after):
            if self.tally.content_refusals and not self.tally.sent:
                log.error("the relay refused the content of every message so far: stopping")
            else:
                self.tally.paused = True
                log.error("%d failed or deferred deliveries in a row: pausing this digest "
                          "(`digest resume` continues it)", self.plan.pause_after)
            self.halt.set()

    def _ensure_open(self) -> None:
        if self.on_this_connection >= self.plan.max_per_connection and self.transport.is_open:
            self.transport.close()
            self.on_this_connection = 0
        if not self.transport.is_open:
            self.transport.open()  # a TransportError here is fatal for the whole run

    def _send(self, recipient: Recipient, prepared: Prepared, utf8: bool) -> Outcome:
        reply, code = "", None
        unknown = 0
        for attempt in range(1, self.plan.attempts + 1):
            if attempt > 1:
                self._pause_before_retry(attempt)
            try:
                self._ensure_open()
                self.plan.limiter.acquire()
                reply = self.transport.send(prepared.sender, recipient.email, prepared.data,
                                            utf8=utf8)
                self.on_this_connection += 1
                return Outcome("sent", reply, _code(reply), attempt)
            except DeliveryError as exc:
                reply, code = str(exc), exc.code
                if exc.permanent:
                    return Outcome("failed", reply, code, attempt, content=exc.content)
            except UnknownOutcome as exc:
                # It may have been taken: resend at most unconfirmed_retries times, then
                # leave it recorded as sent but unconfirmed rather than risk more copies.
                self.transport.close()
                self.on_this_connection = 0
                unknown += 1
                if unknown > self.plan.unconfirmed_retries:
                    return Outcome("unconfirmed", str(exc), None, attempt)
                reply, code = str(exc), None
            except TransportError as exc:
                if exc.fatal:
                    raise
                reply, code = str(exc), None
                self.transport.close()
                self.on_this_connection = 0
        return Outcome("deferred", reply, code, self.plan.attempts)

    def _pause_before_retry(self, attempt: int) -> None:
        delay = min(MAX_BACKOFF, self.plan.retry_delay * 2 ** (attempt - 2))
        delay *= random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not security)
        self.plan.stop.wait(delay)


def _code(reply: str) -> int | None:
    head = reply.split(" ", 1)[0]
    return int(head) if head.isdigit() else None
