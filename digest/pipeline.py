"""gather → build → send: the one digest cycle that `run`, `preview`, the scheduler
and later the web app call. Side effects stay at the edges (fetcher, store, transport)."""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from digest.alerts import send_alert
from digest.compose import build_digest
from digest.config import Config
from digest.deliver import Transport, configured_transport
from digest.deliver.engine import Outcome, RateLimiter, SendPlan, send_all
from digest.errors import (
    ConfigError,
    DigestError,
    TransportError,
)
from digest.gather import gather, make_fetcher
from digest.message import (
    Envelope,
    address_digest,
    build_message,
    dkim_signer,
    sender_domain,
    web_version_url,
)
from digest.models import (
    Article,
    Digest,
    GatherResult,
    RenderedDigest,
    RunReport,
    Subscriber,
)
from digest.preflight import PreflightError, PreflightReport, run_preflight
from digest.render import RenderOptions, personalise, render_digest
from digest.splice import MessageTemplate
from digest.store import LedgerWriter, SlotTaken, Store, StoredDigest
from digest.subscribers import StatusLookup, SubscriberList, check_address
from digest.tokens import make_token, signing_key

log = logging.getLogger(__name__)

PAGE_WORKERS = 4
SAMPLE_SUBSCRIBER = Subscriber(email="reader@example.com", name="Sample Reader")

# Set by a SIGTERM/SIGINT handler: the send loop finishes the message in flight and stops.
stop_requested = threading.Event()


def open_store(config: Config) -> Store:
    """The state database named in [state]."""
    return Store(config.database_url(), where=f"{config.path}: [state] database")


# --- build --------------------------------------------------------------------------


def render(config: Config, digest: Digest) -> RenderedDigest:
    """Render a digest with the configured templates and subject."""
    return render_digest(digest, RenderOptions(
        templates=config.templates_path, subject_template=config.email.subject,
        base_url=config.email.base_url, postal_address=config.email.postal_address,
        utm_campaign=config.email.utm_campaign, max_html_bytes=config.email.max_html_bytes))


# --- send ---------------------------------------------------------------------------


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
    """The sender-side headers shared by every message; `key` is state_key(config) when
    the caller has it already."""
    domain = sender_domain(config.email.from_address)
    slug = "".join(c if c.isalnum() else "-" for c in config.digest.title.lower()).strip("-")
    return Envelope(from_address=config.email.from_address, reply_to=config.email.reply_to,
                    list_id=f"{config.digest.title} <{slug}.{domain}>",
                    base_url=config.email.base_url.rstrip("/"),
                    unsubscribe_mailto=config.email.unsubscribe_mailto or f"unsubscribe@{domain}",
                    archive_key=key if key is not None else state_key(config))


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


def state_key(config: Config) -> bytes:
    """The key that signs subscriber links."""
    if config.database_is_server and not os.environ.get(config.email.signing_key_env):
        raise ConfigError(f"{config.path}: [email] signing_key_env: set "
                          f"{config.email.signing_key_env}; with a database server every "
                          "host must sign links with the same key")
    state_dir = Path(config.database_path).parent
    return signing_key(config.email.signing_key_env, state_dir)


def sender_id() -> str:
    """This sending process, as lease owner: host, PID and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def send_digest(config: Config, store: Store, stored: StoredDigest,
                make_transport: Callable[[], Transport],
                now: Callable[[], datetime], *, retry_deferred: bool = True) -> SendOutcome:
    """Send a committed digest to every recipient still waiting (that another sender does
    not hold), recording each outcome the moment the server has answered."""
    d = config.delivery
    expired = store.expire_deferred(stored.id, timedelta(hours=d.deferred_lifetime_hours), now())
    if expired:
        log.warning("digest %d: %d deferred deliveries expired after %g hours", stored.id,
                    expired, d.deferred_lifetime_hours)
    key = state_key(config)
    env = envelope(config, key)
    base = f"{config.email.base_url.rstrip('/')}/unsubscribe/"
    templates = {fmt: MessageTemplate(stored.rendered, envelope=env, digest_id=stored.id,
                                      created_at=stored.created_at, unsubscribe_base=base,
                                      text_only=fmt == "text") for fmt in ("html", "text")}
    sign = message_signer(config)
    roster = SubscriberList(store)
    domain = sender_domain(env.from_address)
    connections: list[LedgerWriter | StatusLookup] = []
    per_thread = threading.local()

    def still_wanted(subscriber: Subscriber) -> bool:
        lookup = getattr(per_thread, "lookup", None)
        if lookup is None:
            lookup = per_thread.lookup = StatusLookup(store)
            connections.append(lookup)
        return bool(lookup.is_active(subscriber.email))

    def message_for(subscriber: Subscriber) -> tuple[bytes, str]:
        token = make_token(key, "unsubscribe", subscriber.email)
        template = templates["text" if subscriber.format == "text" else "html"]
        return (sign(template.message_bytes(subscriber, token)),
                f"<digest-{stored.id}.{address_digest(subscriber.email)}@{domain}>")

    def record(subscriber: Subscriber, outcome: Outcome, mid: str) -> None:
        writer = getattr(per_thread, "writer", None)
        if writer is None:
            writer = per_thread.writer = store.ledger_writer()
            connections.append(writer)
        writer.mark(stored.id, subscriber.email, status=outcome.status, message_id=mid,
                    reply=outcome.reply, code=outcome.code, attempts=outcome.attempts,
                    now=now())
        if outcome.status == "failed" and outcome.code and 500 <= outcome.code < 600 and \
                store.hard_failures(subscriber.email) >= d.bounce_after:
            roster.set_status(subscriber.email, "bounced", now(),
                              f"{d.bounce_after} hard failures, last: {outcome.reply}")
            log.warning("%s marked bounced after %d hard failures", subscriber.email,
                        d.bounce_after)

    s = config.smtp
    owner = sender_id()
    lease = timedelta(seconds=d.lease_seconds)
    freed = store.release_dead_leases(stored.id, now())
    if freed:
        log.info("digest %d: %d deliveries held by a sender that died are free again",
                 stored.id, freed)
    store.register_sender(owner, now())
    limiter = RateLimiter(s.rate_per_second, s.rate_per_hour)
    limiter.share(store.live_senders(now(), lease))
    beating = threading.Event()

    def heartbeat() -> None:
        # Keep our leases while we work through them, and our share of the rate current.
        while not beating.wait(d.lease_seconds / 3):
            store.renew_leases(owner, lease, now())
            limiter.share(store.live_senders(now(), lease))

    def claimed() -> Iterator[Subscriber]:
        while not stop_requested.is_set():
            batch = store.claim_deliveries(stored.id, owner, d.batch_size, lease, now(),
                                           retry_deferred=retry_deferred)
            if not batch:
                return
            yield from batch

    heart = threading.Thread(target=heartbeat, name="lease-heartbeat", daemon=True)
    heart.start()
    plan = SendPlan(
        recipients=claimed(),
        total=store.delivery_counts(stored.id).unsent,
        make_transport=make_transport, message_for=message_for, record=record,
        still_wanted=still_wanted,
        sender=envelope_sender(config), connections=s.connections,
        max_per_connection=s.max_per_connection, attempts=d.retry_attempts,
        retry_delay=d.retry_delay, pause_after=d.pause_after_failures,
        limiter=limiter, stop=stop_requested, now=now)
    try:
        tally = send_all(plan)
    finally:
        beating.set()
        heart.join()
        for connection in connections:
            connection.close()
        store.release_leases(owner)
        store.unregister_sender(owner)
    if tally.paused:
        store.set_digest_status(stored.id, "paused")
    else:
        store.finish_digest(stored.id, now())
    counts = store.delivery_counts(stored.id)
    outcome = SendOutcome(sent=tally.sent, failed=tally.failed, deferred=tally.deferred,
                          skipped=tally.skipped, remaining=counts.unsent, paused=tally.paused)
    if tally.fatal is not None:
        raise TransportError(f"{tally.fatal}; digest {stored.id}: {counts.unsent} deliveries "
                             "still pending, `digest run` or `digest resume` sends them")
    return outcome


# --- the cycle ----------------------------------------------------------------------


TransportFactory = Callable[[], Transport]


def run_cycle(config: Config, *, dry_run: bool = False, force: bool = False,
              make_transport: TransportFactory | None = None,
              now: Callable[[], datetime] = lambda: datetime.now(UTC),
              slot: datetime | None = None) -> RunReport:
    """One full cycle: finish any unfinished digest, then gather, build and send a new one.
    `slot` is the scheduled fire time when the scheduler runs it: one digest per slot, and
    the editor's hold and approval apply."""
    report = RunReport(dry_run=dry_run)
    factory = make_transport or (lambda: configured_transport(config))
    slot = slot.astimezone(UTC) if slot else None
    store = open_store(config)
    try:
        with store.lock("run", now()):
            started = now()
            try:
                _cycle(config, store, factory, now, report, force=force, slot=slot)
            except DigestError as exc:
                report.outcome, report.reason = "failed", str(exc)
                raise
            finally:
                if not dry_run:
                    finish_run(config, store, report, kind="digest" if slot else "manual",
                               slot=slot, started=started, now=now(), make_transport=factory)
    finally:
        store.close()
    return report


def _cycle(config: Config, store: Store, factory: TransportFactory,
           now: Callable[[], datetime], report: RunReport, *, force: bool,
           slot: datetime | None) -> None:
    dry_run = report.dry_run
    roster = SubscriberList(store)
    roster.sync_file(config.subscribers_path, now())
    if not dry_run:
        _resume_unfinished(config, store, factory, now, report)
    if slot and (existing := store.digest_for_slot(slot)) is not None:
        _skip(report, f"the slot of {slot:%Y-%m-%d %H:%M} UTC already has its digest "
                      f"({existing})", alert=False)
        return
    with make_fetcher(config) as fetcher:
        result = gather(config, store, fetcher, record=not dry_run, now=now)
    report.found, report.new = result.found, result.new_entries
    report.failures.extend(result.failures)
    report.newly_failing.extend(result.newly_failing)
    if not result.articles:
        _skip(report, "nothing new: no digest built")
        return
    if len(result.articles) < config.digest.min_articles:
        _skip(report, f"only {len(result.articles)} new (min_articles = "
                      f"{config.digest.min_articles}): no digest built; the articles wait "
                      "for the next one")
        return
    if not dry_run and not _cleared_to_send(store, report, slot, len(result.articles)):
        return
    digest = compose_next(config, store, result.articles, now())
    report.summarized = len(digest.items)
    if not dry_run and slot and config.schedule.require_approval and \
            not _approved(store, report, slot, digest):
        return
    rendered = render(config, digest)
    report.notes.extend(f"size guard: {action}" for action in rendered.size_actions)
    checks = preflight_digest(config, rendered)
    report.preflight = checks.lines()
    if not force:
        refuse_on_failure(checks)
    if dry_run:
        report.recipients = roster.count_by_status().get("active", 0)
        report.notes.append("dry run: nothing sent, nothing recorded")
        return
    try:
        digest_id = store.create_digest(rendered, [i.article for i in digest.items],
                                        roster.iter_active(), now(), slot=slot)
    except SlotTaken:
        _skip(report, "another process built this slot's digest meanwhile", alert=False)
        return
    if digest_id is None:
        _skip(report, "no active subscribers: nothing sent, the articles stay new")
        return
    store.set_setting("draft_note", None)  # the note opened this digest; the next starts blank
    if slot:
        store.set_setting("approval", None)
        store.set_setting("waiting_slot", None)
    report.digest_id = digest_id
    stored = store.get_digest(digest_id)
    assert stored is not None
    _send_and_count(config, store, stored, factory, now, report)


def _skip(report: RunReport, reason: str, *, alert: bool = True) -> None:
    report.notes.append(reason)
    # A run that finished an interrupted digest did send something: it counts as resumed.
    report.outcome = "resumed" if report.resumed_digest_id is not None else "skipped"
    report.reason, report.alert_skip = reason, alert


def _cleared_to_send(store: Store, report: RunReport, slot: datetime | None,
                     articles: int) -> bool:
    """The editor's hold."""
    hold = store.get_setting("hold")
    if hold:
        why = f"on hold (set by {hold['by']} at {hold['at'][:16].replace('T', ' ')} UTC" + (
            f": {hold['reason']})" if hold.get("reason") else ")")
        if slot:
            store.set_setting("hold", None)  # a hold skips one send
            _skip(report, f"{why}; {articles} article(s) wait for the next digest")
        else:
            _skip(report, f"{why}; `digest release` lifts it")
        return False
    return True


def _approved(store: Store, report: RunReport, slot: datetime, digest: Digest) -> bool:
    """With [schedule] require_approval: an approval covers the articles the editor saw;
    a digest with others waits for a new one."""
    approval = store.get_setting("approval")
    unseen = [i for i in digest.items if i.article.url not in set(
        (approval or {}).get("articles", []))]
    if approval and not unseen:
        return True
    store.set_setting("waiting_slot", slot.isoformat())
    store.set_setting("waiting_since", datetime.now(UTC).isoformat())
    ready = f"{len(digest.items)} article(s) ready"
    if approval:
        ready += f", {len(unseen)} of them new since {approval['by']} approved"
    _skip(report, f"awaiting approval: {ready}; the scheduler sends as soon as an editor "
                  "approves (`digest approve` or the editor page)")
    log.info("digest for %s is waiting for an editor's approval", f"{slot:%Y-%m-%d %H:%M}")
    return False


def finish_run(config: Config, store: Store, report: RunReport, *, kind: str,
               slot: datetime | None, started: datetime, now: datetime,
               make_transport: TransportFactory | None = None) -> None:
    """Record the run for `digest status`, and alert when it did not go as planned."""
    if not report.outcome:
        report.outcome = "sent" if report.digest_id else (
            "resumed" if report.resumed_digest_id is not None else "skipped")
        if config.delivery.send_with == "workers" and report.remaining and not report.sent:
            report.outcome = "queued"  # the `digest worker` processes send it
    store.record_run(kind=kind, slot=slot, started_at=started, finished_at=now,
                     outcome=report.outcome, reason=report.reason, articles=report.summarized,
                     recipients=report.recipients, sent=report.sent, failed=report.failed,
                     deferred=report.deferred,
                     digest_id=report.digest_id or report.resumed_digest_id)
    for subject, body in alerts_for(report, scheduled=slot is not None):
        send_alert(config, subject, body,
                   transport=make_transport() if make_transport else None, now=now)


def alerts_for(report: RunReport, *, scheduled: bool) -> list[tuple[str, str]]:
    """The alerts a finished run calls for: (subject, body) each."""
    found = []
    if scheduled and report.outcome == "skipped" and report.alert_skip:
        found.append(("scheduled digest skipped", f"No digest went out: {report.reason}\n\n"
                      f"Articles found: {report.found}, new: {report.new}."))
    if report.outcome == "failed":
        found.append(("digest run failed", f"The run failed: {report.reason}\n\n"
                      f"Sent {report.sent}, failed {report.failed}, still pending "
                      f"{report.remaining}."))
    elif report.failed:
        found.append((f"digest sent with {report.failed} failed deliveries",
                      f"Sent {report.sent}, failed {report.failed}, deferred "
                      f"{report.deferred} of {report.recipients} recipients.\n"
                      "`digest subscribers show ADDRESS` tells what each server answered."))
    for failure in report.newly_failing:
        found.append(("a source keeps failing", f"This source has failed 3 cycles in a row:\n"
                      f"{failure.reason}\n\nIts articles are missing from the digest "
                      "until it recovers."))
    return found


def resume(config: Config, *, make_transport: TransportFactory | None = None,
           now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> RunReport:
    """Finish unfinished digests, if there are any, and nothing else."""
    report = RunReport()
    factory = make_transport or (lambda: configured_transport(config))
    store = open_store(config)
    try:
        with store.lock("run", now()):
            started = now()
            try:
                _resume_unfinished(config, store, factory, now, report)
            except DigestError as exc:
                report.outcome, report.reason = "failed", str(exc)
                raise
            finally:
                if report.resumed_digest_id is not None:
                    finish_run(config, store, report, kind="resume", slot=None,
                               started=started, now=now(), make_transport=factory)
    finally:
        store.close()
    if report.resumed_digest_id is None:
        report.notes.append("no unfinished digest")
    return report


def _resume_unfinished(config: Config, store: Store, make_transport: TransportFactory,
                       now: Callable[[], datetime], report: RunReport) -> None:
    for stored in store.unfinished_digests():
        log.info("finishing digest %d from %s before anything new", stored.id,
                 f"{stored.created_at:%Y-%m-%d %H:%M}")
        report.resumed_digest_id = stored.id
        if stored.status == "paused":
            store.set_digest_status(stored.id, "sending")
        _send_and_count(config, store, stored, make_transport, now, report)


def _send_and_count(config: Config, store: Store, stored: StoredDigest,
                    make_transport: TransportFactory, now: Callable[[], datetime],
                    report: RunReport) -> None:
    counts = store.delivery_counts(stored.id)
    report.recipients = max(report.recipients, counts.total)
    if config.delivery.send_with == "workers":
        report.remaining = counts.unsent
        report.notes.append(f"digest {stored.id}: {counts.unsent} deliveries queued for "
                            "`digest worker` ([delivery] send_with = \"workers\")")
        return
    outcome = send_digest(config, store, stored, make_transport, now)
    report.sent += outcome.sent
    report.failed += outcome.failed
    report.deferred += outcome.deferred
    report.skipped += outcome.skipped
    report.remaining = outcome.remaining
    if outcome.paused:
        raise DigestError(f"digest {stored.id} paused after "
                          f"{config.delivery.pause_after_failures} failed or deferred "
                          f"deliveries in a row ({outcome.remaining} still to send); check "
                          "the relay and the log, then `digest resume`")
    if stop_requested.is_set() and outcome.remaining:
        raise DigestError(f"interrupted: digest {stored.id} has {outcome.remaining} "
                          "deliveries still to send; `digest resume` sends them")
    if outcome.deferred:
        report.notes.append(f"{outcome.deferred} deliveries deferred by the server; "
                            "the next run retries them")


def set_hold(config: Config, who: str, reason: str, now: datetime) -> None:
    """Hold the next scheduled digest; a hold withdraws any approval."""
    store = open_store(config)
    try:
        store.set_setting("hold", {"by": who, "at": now.astimezone(UTC).isoformat(),
                                   "reason": reason})
        store.set_setting("approval", None)
    finally:
        store.close()
    log.info("digest put on hold by %s%s", who, f": {reason}" if reason else "")


def release_hold(config: Config) -> bool:
    """Lift the hold; False when there was none."""
    store = open_store(config)
    try:
        held = store.get_setting("hold") is not None
        store.set_setting("hold", None)
    finally:
        store.close()
    return held


def approve(config: Config, who: str, now: datetime,
            articles: Sequence[str] | None = None) -> int:
    """Approve the next scheduled digest as it stands: its articles (the URLs given, or
    the draft built now); approving lifts a hold. Returns how many articles it covers."""
    if articles is None:
        _, _, _, _, draft = _preview(config, now=lambda: now)
        articles = [item.article.url for item in draft.items]
    if not articles:
        raise DigestError("nothing to approve: the next digest has no articles yet")
    store = open_store(config)
    try:
        store.set_setting("approval", {"by": who, "at": now.astimezone(UTC).isoformat(),
                                       "articles": list(articles)})
        store.set_setting("hold", None)
    finally:
        store.close()
    log.info("next digest approved by %s (%d articles)", who, len(articles))
    return len(articles)


def preflight_digest(config: Config, rendered: RenderedDigest) -> PreflightReport:
    """The preflight checks on the digest as the sample subscriber would receive it."""
    html, text = sample_parts(config, rendered)
    unsubscribe = f"{config.email.base_url.rstrip('/')}/unsubscribe/SAMPLE-TOKEN"
    message = build_message(rendered, SAMPLE_SUBSCRIBER, envelope=envelope(config),
                            digest_id=0, created_at=datetime.now(UTC),
                            unsubscribe_url=unsubscribe)
    report = run_preflight(html=html, text=text, message=message_signer(config)(
        message.as_bytes()), unsubscribe_url=unsubscribe,
        max_html_bytes=config.email.max_html_bytes, max_spam_score=config.email.max_spam_score)
    for check, line in zip(report.checks, report.lines(), strict=True):
        log.log(logging.DEBUG if check.status in ("ok", "skipped") else logging.WARNING,
                "%s", line)
    return report


def refuse_on_failure(report: PreflightReport) -> None:
    """Raise PreflightError naming the failed checks."""
    if report.failed:
        names = ", ".join(f"{c.name} ({c.detail})" for c in report.failed)
        raise PreflightError(f"preflight failed: {names}; nothing sent and nothing recorded "
                             "(fix it, or pass --force to send anyway)")


def send_test(config: Config, address: str, *, name: str = "Test Reader",
              now: Callable[[], datetime] = lambda: datetime.now(UTC),
              rendered: RenderedDigest | None = None, articles: int = 0) -> tuple[str, int]:
    """Send the next digest (or this rendered draft), marked [TEST], to one address, as a
    sample subscriber; record nothing. Returns the server's reply and the article count."""
    address = check_address(address)
    if rendered is None:
        rendered, result, _, _ = preview(config, now=now)
        articles = len(result.articles)
    test = dataclasses.replace(rendered, subject=f"[TEST] {rendered.subject}")
    key = state_key(config)
    message = build_message(test, Subscriber(email=address, name=name),
                            envelope=envelope(config, key), digest_id=0, created_at=now(),
                            unsubscribe_url=unsubscribe_link(config, key, address))
    transport = configured_transport(config)
    transport.open()
    try:
        reply = transport.send(envelope_sender(config), address,
                               message_signer(config)(message.as_bytes()),
                               utf8=not address.isascii())
    finally:
        transport.close()
    return reply, articles


def status_summary(config: Config, now: datetime) -> dict[str, Any]:
    """What `digest status` shows, as plain data."""
    from digest.scheduler import health, next_fire_after

    store = open_store(config)
    try:
        recent = store.recent_digests()
        sources = store.all_source_states()
        subscribers = SubscriberList(store).count_by_status()
        runs = store.recent_runs()
        hold, approval = store.get_setting("hold"), store.get_setting("approval")
        waiting = store.get_setting("waiting_slot")
        checks = health(config, store, now)
        live = store.count_live_senders(now, timedelta(seconds=config.delivery.lease_seconds))
    finally:
        store.close()
    upcoming = next_fire_after(config, now)
    return {
        "runs": [{**{k: run[k] for k in ("id", "kind", "outcome", "reason", "articles",
                                          "recipients", "sent", "failed", "deferred",
                                          "digest_id")},
                  "slot": run["slot"].isoformat() if run["slot"] else None,
                  "started_at": run["started_at"].isoformat(),
                  "duration_seconds": round((run["finished_at"] - run["started_at"])
                                            .total_seconds(), 1)
                  if run["finished_at"] else None} for run in runs],
        "hold": hold,
        "approval": approval,
        "waiting_for_approval": waiting,
        "last_gather_at": checks["last_gather_at"],
        "last_send_at": checks["last_send_at"],
        "senders": live,
        "next_run": {"local": upcoming.isoformat(), "utc": upcoming.astimezone(UTC).isoformat(),
                     "timezone": config.schedule.timezone} if upcoming else None,
        "digests": [{"id": d.id, "created_at": d.created_at.isoformat(), "status": d.status,
                     "subject": d.subject, "deliveries": dataclasses.asdict(c)}
                    for d, c in recent],
        "unfinished": [d.id for d, _ in recent if d.status in ("sending", "paused")],
        "failing_sources": [{"url": s.url, "consecutive_failures": s.consecutive_failures,
                             "last_error": s.last_error} for s in sources if s.failing],
        "sources": [{"url": s.url, "last_success_at": s.last_success_at.isoformat()
                     if s.last_success_at else None,
                     "consecutive_failures": s.consecutive_failures} for s in sources],
        "subscribers": subscribers,
    }


def sample_parts(config: Config, rendered: RenderedDigest) -> tuple[str, str]:
    """HTML and text of a digest as the sample subscriber would get them."""
    base = config.email.base_url.rstrip("/")
    return personalise(rendered, name=SAMPLE_SUBSCRIBER.name, email=SAMPLE_SUBSCRIBER.email,
                       unsubscribe_url=f"{base}/unsubscribe/SAMPLE-TOKEN",
                       web_url=web_version_url(base, 0))


# --- preview ------------------------------------------------------------------------


def compose_next(config: Config, store: Store, articles: Sequence[Article],
                 now: datetime) -> Digest:
    """The next digest of these articles with the editor's changes and note applied."""
    note = store.get_setting("draft_note") or {}
    return build_digest(config, articles, now, store.article_edits(), note.get("text", ""))


def preview(config: Config, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
            ) -> tuple[RenderedDigest, GatherResult, str, str]:
    """Build the next digest as it would be sent, for a sample subscriber; record nothing."""
    rendered, result, html, text, _ = _preview(config, now=now)
    return rendered, result, html, text


def _preview(config: Config, *, now: Callable[[], datetime]
             ) -> tuple[RenderedDigest, GatherResult, str, str, Digest]:
    store = open_store(config)
    try:
        with make_fetcher(config) as fetcher:
            result = gather(config, store, fetcher, record=False, now=now)
        digest = compose_next(config, store, result.articles, now())
    finally:
        store.close()
    rendered = render(config, digest)
    html, text = sample_parts(config, rendered)
    return rendered, result, html, text, digest
