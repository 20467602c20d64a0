"""gather → build → send: the digest cycle that `run`, the scheduler and the web app call,
plus resume, preview and the test send. Orchestration only: each stage lives in its own
module, side effects at the edges (fetcher, state, transport)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from digest import editorial
from digest.alerts import alerts_for, send_alert
from digest.build import (
    compose_next,
    preflight_digest,
    refuse_on_failure,
    render,
    sample_parts,
)
from digest.clock import Clock, utc_now
from digest.config import Config
from digest.deliver import Transport, configured_transport, transport_factory
from digest.deliver.send import (
    envelope,
    envelope_sender,
    message_signer,
    send_digest,
    unsubscribe_link,
)
from digest.errors import (
    DigestError,
    EditorialError,
    SendStopped,
    SourcesDown,
    StateUnavailable,
)
from digest.gather import gather, make_fetcher
from digest.keys import signing_key
from digest.message import build_message, new_message_id, sender_domain
from digest.models import Article, Digest, GatherResult, RenderedDigest, RunReport, Subscriber
from digest.shutdown import stop_requested
from digest.state import State, open_state
from digest.state.ledger import Created, StoredDigest
from digest.state.runs import Run
from digest.subscribers import check_address, read_subscriber_file
from digest.tokens import TEST_TOKEN_ID
from digest.urls import strip_tracking

log = logging.getLogger(__name__)

TransportFactory = Callable[[], Transport]


@dataclass(frozen=True)
class Preview:
    """The next digest as it would be sent, for the sample subscriber; nothing recorded."""

    rendered: RenderedDigest
    gathered: GatherResult
    html: str
    text: str
    digest: Digest


def run_cycle(config: Config, *, dry_run: bool = False, force: bool = False,
              make_transport: TransportFactory | None = None, clock: Clock = utc_now,
              slot: datetime | None = None) -> RunReport:
    """One full cycle: finish any unfinished digest, then gather, build and send a new one.
    `slot` is the scheduled fire time when the scheduler runs it: one digest per slot, and
    the editor's hold and approval apply."""
    report = RunReport(dry_run=dry_run)
    factory = make_transport or transport_factory(config)
    slot = slot.astimezone(UTC) if slot else None
    with open_state(config) as state, state.db.lock("run", clock()):
        started = clock()
        lost = False  # the database went away: the run cannot be recorded
        try:
            _cycle(config, state, factory, clock, report, force=force, slot=slot)
        except DigestError as exc:
            report.outcome, report.reason = "failed", str(exc)
            lost = isinstance(exc, StateUnavailable)
            raise
        finally:
            if not (dry_run or lost):
                finish_run(config, state, report, kind="digest" if slot else "manual",
                           slot=slot, started=started, now=clock(), make_transport=factory)
    return report


def _cycle(config: Config, state: State, factory: TransportFactory, clock: Clock,
           report: RunReport, *, force: bool, slot: datetime | None) -> None:
    dry_run = report.dry_run
    read_subscriber_file(config, state.subscribers, clock())
    if not dry_run:
        _resume_unfinished(config, state, factory, clock, report)
    if slot and (existing := state.ledger.digest_for_slot(slot)) is not None:
        _skip(report, f"the slot of {slot:%Y-%m-%d %H:%M} UTC already has its digest "
                      f"({existing})", alert=False)
        return
    with make_fetcher(config) as fetcher:
        result = gather(config, state, fetcher, record=not dry_run, clock=clock)
    report.found, report.new = result.found, result.new_entries
    report.failures.extend(result.failures)
    report.newly_failing.extend(result.newly_failing)
    if result.sources_failed and result.sources_failed == len(config.sources):
        raise SourcesDown(f"no source could be read ({result.sources_failed} of "
                          f"{len(config.sources)} failed; first: {result.failures[0].reason}); "
                          "no digest built, the articles wait")
    candidates = editorial.not_excluded(result.articles, state.editorial.article_edits())
    report.excluded = len(result.articles) - len(candidates)
    if not candidates:
        _skip(report, "nothing new: no digest built" + (
            f" ({report.excluded} new article(s) excluded by an editor)"
            if report.excluded else ""))
        return
    if len(candidates) < config.digest.min_articles:
        _skip(report, f"only {len(candidates)} new (min_articles = "
                      f"{config.digest.min_articles}): no digest built; the articles wait "
                      "for the next one")
        return
    if not dry_run and not _not_held(state, report, slot, len(candidates), clock()):
        return
    digest = compose_next(config, state, result.articles, clock())
    report.summarized = len(digest.items)
    if not digest.items:
        _skip(report, "nothing to send: the digest has no articles")
        return
    if not dry_run and slot and config.schedule.require_approval and \
            not _approved(state, report, slot, digest, clock()):
        return
    rendered = render(config, digest)
    report.notes.extend(f"size guard: {action}" for action in rendered.size_actions)
    checks = preflight_digest(config, rendered, clock())
    report.preflight = checks.lines()
    if not force:
        refuse_on_failure(checks)
    if dry_run:
        report.recipients = state.subscribers.count_by_status().get("active", 0)
        report.notes.append("dry run: nothing sent, nothing recorded")
        return
    created = state.ledger.create_digest(rendered, [i.article for i in digest.items],
                                         state.subscribers.iter_active(), clock(), slot=slot)
    if created is Created.SLOT_TAKEN:
        _skip(report, "another process built this slot's digest meanwhile", alert=False)
        return
    if created is Created.NO_ARTICLES:
        _skip(report, "nothing to send: the digest has no articles")
        return
    if created is Created.NO_RECIPIENTS:
        _skip(report, "no active subscribers: nothing sent, the articles stay new")
        return
    assert isinstance(created, int)
    state.editorial.use_note(created, clock())
    state.editorial.use_approval(created, clock())  # the articles it covered have gone out
    if slot:
        state.editorial.end_waiting(clock())
    report.digest_id = created
    stored = state.ledger.get_digest(created)
    assert stored is not None
    _send_and_count(config, state, stored, factory, clock, report)


def _skip(report: RunReport, reason: str, *, alert: bool = True) -> None:
    report.notes.append(reason)
    # A run that finished an interrupted digest did send something: it counts as resumed.
    report.outcome = "resumed" if report.resumed_digest_id is not None else "skipped"
    report.reason, report.alert_skip = reason, alert


def _not_held(state: State, report: RunReport, slot: datetime | None, articles: int,
              now: datetime) -> bool:
    """The editor's hold; a scheduled slot spends it."""
    hold = state.editorial.hold()
    reason = editorial.held(hold, scheduled=slot is not None, articles=articles)
    if reason is None:
        return True
    if slot:
        state.editorial.use_hold(slot, now)
    _skip(report, reason)
    return False


def _approved(state: State, report: RunReport, slot: datetime, digest: Digest,
              now: datetime) -> bool:
    """With [schedule] require_approval: an approval covers the articles the editor saw."""
    reason = editorial.unapproved(state.editorial.approval(),
                                  [item.article.url for item in digest.items])
    if reason is None:
        return True
    state.editorial.set_waiting(slot, now)
    _skip(report, reason)
    log.info("digest for %s is waiting for an editor's approval", f"{slot:%Y-%m-%d %H:%M}")
    return False


def finish_run(config: Config, state: State, report: RunReport, *, kind: str,
               slot: datetime | None, started: datetime, now: datetime,
               make_transport: TransportFactory | None = None) -> None:
    """Record the run for `digest status`, and alert when it did not go as planned."""
    if not report.outcome:
        report.outcome = "sent" if report.digest_id else (
            "resumed" if report.resumed_digest_id is not None else "skipped")
        if config.delivery.send_with == "workers" and report.remaining and not report.sent:
            report.outcome = "queued"  # the `digest worker` processes send it
    state.runs.record(Run(kind=kind, slot=slot, started_at=started, finished_at=now,
                          outcome=report.outcome, reason=report.reason,
                          articles=report.summarized, recipients=report.recipients,
                          sent=report.sent, failed=report.failed, deferred=report.deferred,
                          digest_id=report.digest_id or report.resumed_digest_id))
    for subject, body in alerts_for(report, scheduled=slot is not None):
        send_alert(config, subject, body,
                   transport=make_transport() if make_transport else None, now=now)


def resume(config: Config, *, make_transport: TransportFactory | None = None,
           clock: Clock = utc_now) -> RunReport:
    """Finish unfinished digests, if there are any, and nothing else."""
    report = RunReport()
    factory = make_transport or transport_factory(config)
    with open_state(config) as state, state.db.lock("run", clock()):
        started = clock()
        lost = False
        try:
            _resume_unfinished(config, state, factory, clock, report)
        except DigestError as exc:
            report.outcome, report.reason = "failed", str(exc)
            lost = isinstance(exc, StateUnavailable)
            raise
        finally:
            if report.resumed_digest_id is not None and not lost:
                finish_run(config, state, report, kind="resume", slot=None,
                           started=started, now=clock(), make_transport=factory)
    if report.resumed_digest_id is None:
        report.notes.append("no unfinished digest")
    return report


def _resume_unfinished(config: Config, state: State, make_transport: TransportFactory,
                       clock: Clock, report: RunReport) -> None:
    for stored in state.ledger.unfinished_digests():
        log.info("finishing digest %d from %s before anything new", stored.id,
                 f"{stored.created_at:%Y-%m-%d %H:%M}")
        report.resumed_digest_id = stored.id
        if stored.status == "paused":
            state.ledger.set_digest_status(stored.id, "sending")
        _send_and_count(config, state, stored, make_transport, clock, report)


def _send_and_count(config: Config, state: State, stored: StoredDigest,
                    make_transport: TransportFactory, clock: Clock,
                    report: RunReport) -> None:
    counts = state.ledger.delivery_counts(stored.id)
    report.recipients = max(report.recipients, counts.total)
    if config.delivery.send_with == "workers":
        report.remaining = counts.unsent
        report.notes.append(f"digest {stored.id}: {counts.unsent} deliveries queued for "
                            "`digest worker` ([delivery] send_with = \"workers\")")
        return
    outcome = send_digest(config, state, stored, make_transport, clock)
    report.sent += outcome.sent
    report.failed += outcome.failed
    report.deferred += outcome.deferred
    report.skipped += outcome.skipped
    report.unconfirmed += outcome.unconfirmed
    report.remaining = outcome.remaining
    if outcome.paused:
        raise SendStopped(f"digest {stored.id} paused after "
                          f"{config.delivery.pause_after_failures} failed or deferred "
                          f"deliveries in a row ({outcome.remaining} still to send); check "
                          "the relay and the log, then `digest resume`")
    if stop_requested.is_set() and outcome.remaining:
        raise SendStopped(f"interrupted: digest {stored.id} has {outcome.remaining} "
                          "deliveries still to send; `digest resume` sends them")
    if outcome.deferred:
        report.notes.append(f"{outcome.deferred} deliveries deferred by the server; "
                            "the next run retries them")


def preview(config: Config, *, clock: Clock = utc_now) -> Preview:
    """Build the next digest as it would be sent, for a sample subscriber; record nothing."""
    with open_state(config) as state:
        with make_fetcher(config) as fetcher:
            result = gather(config, state, fetcher, record=False, clock=clock)
        digest = compose_next(config, state, result.articles, clock())
    rendered = render(config, digest)
    html, text = sample_parts(config, rendered)
    return Preview(rendered=rendered, gathered=result, html=html, text=text, digest=digest)


def next_articles(config: Config, clock: Clock = utc_now) -> tuple[Article, ...]:
    """The candidate articles of the next digest, as a run would gather them now."""
    with open_state(config) as state, make_fetcher(config) as fetcher:
        return gather(config, state, fetcher, record=False, clock=clock).articles


def edit_summary(config: Config, url: str, text: str | None, clock: Clock = utc_now) -> str:
    """Set (or, with None, clear) the summary of an article of the next digest, named by
    its URL as gathering knows it (tracking parameters stripped, the URL a feed listed or
    the page's canonical one); returns that URL. An URL naming no article is refused."""
    wanted = strip_tracking(url.strip())
    articles = next_articles(config, clock)
    found = next((a for a in articles if wanted in (a.url, a.feed_url)), None)
    if found is None:
        with open_state(config) as state:
            sent_in = state.ledger.digest_of(wanted)
        if sent_in is not None:
            raise EditorialError(f"{wanted}: already sent in digest {sent_in}; it can no "
                                 "longer change")
        listed = ", ".join(a.url for a in articles[:3]) or "none yet"
        raise EditorialError(f"{url}: not an article of the next digest ({len(articles)} "
                             f"candidate(s): {listed}{', …' if len(articles) > 3 else ''}; "
                             "`digest preview` shows them)")
    with open_state(config) as state:
        if text is None:
            if not state.editorial.clear_summary_edit(found.url):
                raise EditorialError(f"{found.url}: its summary was not edited; nothing to "
                                     "clear")
        else:
            state.editorial.set_summary_edit(found.url, text, clock())
    return found.url


def approve_next(config: Config, who: str, clock: Clock = utc_now) -> int:
    """Approve the next scheduled digest as it would be built now; how many articles."""
    draft = preview(config, clock=clock)
    with open_state(config) as state:
        return editorial.approve(state, who, [i.article.url for i in draft.digest.items],
                                 clock())


def send_test(config: Config, address: str, *, name: str = "Test Reader",
              clock: Clock = utc_now, rendered: RenderedDigest | None = None,
              articles: int = 0) -> tuple[str, int]:
    """Send the next digest (or this rendered draft), marked [TEST], to one address, as a
    sample subscriber; record nothing. Returns the server's reply and the article count."""
    address = check_address(address)
    if rendered is None:
        draft = preview(config, clock=clock)
        rendered, articles = draft.rendered, len(draft.gathered.articles)
    test = dataclasses.replace(rendered, subject=f"[TEST] {rendered.subject}")
    key = signing_key(config)
    with open_state(config) as state:
        row = state.subscribers.get(address)
    message = build_message(test, Subscriber(email=address, name=name),
                            envelope=envelope(config, key), digest_id=0, created_at=clock(),
                            unsubscribe_url=unsubscribe_link(
                                config, key, row.token_id if row else TEST_TOKEN_ID),
                            message_id=new_message_id(0, sender_domain(config.email.from_address)),
                            # not sent yet, so no web version: the desk's preview instead
                            web_url=f"{config.email.base_url.rstrip('/')}/editor/draft.html")
    transport = configured_transport(config)
    transport.open()
    try:
        reply = transport.send(envelope_sender(config), address,
                               message_signer(config)(message.as_bytes()),
                               utf8=not address.isascii())
    finally:
        transport.close()
    return reply, articles
