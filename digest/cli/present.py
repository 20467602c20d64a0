"""How the commands word their results on a terminal: a run's report and the status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from digest.models import RunReport
    from digest.report import DigestReport
    from digest.state.runs import Run
    from digest.status import StatusReport


def print_report(report: RunReport) -> None:
    """What one cycle (or resume) did, a line per fact."""
    if report.resumed_digest_id is not None:
        click.echo(f"resumed:     digest {report.resumed_digest_id}")
    if not (report.resumed_digest_id is not None and report.found == 0 and report.new == 0):
        click.echo(f"articles:    {report.found} found, {report.new} new, "
                   f"{report.summarized} summarized")
    click.echo(f"recipients:  {report.recipients}")
    extra = ", ".join(f"{n} {what}" for n, what in ((report.failed, "failed"),
                                                   (report.skipped, "skipped")) if n)
    click.echo(f"sent:        {report.sent}" + (f" ({extra})" if extra else ""))
    if report.remaining:
        click.echo(f"pending:     {report.remaining}")
    if report.failures:
        click.echo(f"problems:    {len(report.failures)} source(s) or page(s) could not be read")
    for failure in report.failures:
        click.echo(f"  - {failure.reason}")
    for note in report.notes:
        click.echo(f"note:        {note}")
    for line in report.preflight:
        click.echo(line)


def when(moment: datetime | None) -> str:
    """A stored time for people: in UTC, and saying so."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if moment else "never"


def print_if_resumed(report: RunReport) -> None:
    """The report of a resume, when it finished a digest."""
    if report.resumed_digest_id is not None:
        print_report(report)


def status_lines(status: StatusReport, lease_seconds: float) -> list[str]:
    """`digest status` as text."""
    data = status.as_json()
    lines = [f"next run:    {status.next_run:%Y-%m-%d %H:%M} {status.timezone} (local), "
             f"{status.next_run.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if status.next_run
             else "next run:    none (check [schedule] cron)"]
    lines += _digest_lines(data["digests"]) + [_run_line(run) for run in status.runs]
    for label, when in (("last gather", status.health.last_gather_at),
                        ("last send", status.health.last_send_at)):
        lines.append(f"{label + ':':<13}{f'{when:%Y-%m-%d %H:%M:%S} UTC' if when else 'never'}")
    if status.senders:
        lines.append(f"senders:     {status.senders} with a heartbeat in the last "
                     f"{lease_seconds:g} s (`digest run`, `schedule` and `digest worker`s "
                     "sending)")
    return lines + _mark_lines(status) + _list_lines(status)


def _digest_lines(digests: list[dict[str, Any]]) -> list[str]:
    if not digests:
        return ["no digest yet"]
    lines = []
    for d in digests:
        state = "unfinished" if d["status"] == "sending" else d["status"]
        c = d["deliveries"]
        lines.append(f"digest {d['id']}  {d['created_at'][:16].replace('T', ' ')} UTC  "
                     f"{state:<10} sent {c['sent']}, failed {c['failed']}, pending "
                     f"{c['pending']}, deferred {c['deferred']}, skipped {c['skipped']}  "
                     f"{d['subject']}")
        b = d["bounces"]
        if b["hard"] or b["soft"] or b["complaints"]:
            lines.append(f"  bounces:   hard {b['hard']} ({b['hard_rate']:.2%}), soft "
                         f"{b['soft']}, complaints {b['complaints']} "
                         f"({b['complaint_rate']:.2%})")
    return lines


def _run_line(run: Run) -> str:
    took = f"{run.duration_seconds:.1f} s" if run.duration_seconds is not None else "?"
    counts = (f"{run.articles} articles, {run.recipients} recipients, sent {run.sent}, "
              f"failed {run.failed}, deferred {run.deferred}"
              if run.outcome in ("sent", "resumed", "failed", "queued") else
              f"{run.articles} new entries" if run.kind == "gather" else
              f"{run.articles} message(s) read" if run.kind == "bounces" else "")
    return (f"run {run.id:<5} {run.started_at:%Y-%m-%d %H:%M} UTC  {run.kind:<7} "
            f"{run.outcome:<8} {took:>8}  " + "; ".join(filter(None, (counts, run.reason))))


def _mark_lines(status: StatusReport) -> list[str]:
    lines = []
    if status.hold:
        lines.append(f"ON HOLD:     set by {status.hold.by} at {status.hold.at:%Y-%m-%d %H:%M} UTC"
                     + (f": {status.hold.reason}" if status.hold.reason else "")
                     + " (the next scheduled digest is skipped; `digest release` lifts it)")
    if status.waiting:
        lines.append(f"WAITING:     the digest for {status.waiting.slot:%Y-%m-%d %H:%M} UTC "
                     "awaits an editor's approval (`digest approve`)")
    if status.approval:
        lines.append(f"approved:    by {status.approval.by} at "
                     f"{status.approval.at:%Y-%m-%d %H:%M} UTC, for the next scheduled digest")
    upcoming = status.health.next_digest
    last = upcoming.last_approval if upcoming else None
    if last and last.used_at:
        lines.append(f"last approval: by {last.by} at {last.at:%Y-%m-%d %H:%M} UTC, used by "
                     f"digest {last.used_digest_id} at {last.used_at:%Y-%m-%d %H:%M} UTC")
    if upcoming is not None:
        lines.append(f"next digest: {upcoming.entries_waiting} listed entr"
                     f"{'y' if upcoming.entries_waiting == 1 else 'ies'} not yet in a digest"
                     + ("" if status.approval or not status.hold else ", on hold"))
    return lines


def _list_lines(status: StatusReport) -> list[str]:
    by_status = status.subscribers
    lines = [f"subscribers: {by_status.get('active', 0)} active of {sum(by_status.values())} ("
             + ", ".join(f"{name} {n}" for name, n in sorted(by_status.items())) + ")"]
    if status.bounce_reports:
        reports = status.bounce_reports
        lines.append(f"bounce mail: {sum(reports.values())} report(s) read ("
                     + ", ".join(f"{name} {n}" for name, n in sorted(reports.items())) + ")")
    for source in status.failing_sources:
        lines.append(f"FAILING source {source.url}: {source.consecutive_failures} cycles "
                     f"in a row; last error: {source.last_error}")
    return lines


def report_lines(report: DigestReport) -> list[str]:
    """`digest report` as text."""
    r = report
    lines = [f"digest {r.digest_id}  {when(r.created_at)}  {r.status}  {r.subject}",
             f"recipients:  {r.recipients}",
             f"delivered:   {r.delivered}" + (f" ({r.pending} pending)" if r.pending else ""),
             f"failed:      {r.failed}",
             f"bounced:     {r.bounced}",
             f"complaints:  {r.complaints}",
             f"unsubscribed after it: {r.unsubscribed_after}"]
    if r.tracking.opens:
        lines.append(f"opens:       {r.opens.people} (and {r.opens.automated} by privacy "
                     "proxies, scanners or programs; opens are unreliable)")
    if not r.tracking.clicks:
        lines.append("clicks:      not counted ([tracking] clicks was off for this digest)")
        return lines
    total = r.clicks
    lines.append(f"clicks:      {total.people} (and {total.automated} by link scanners)")
    width = max((len(a.title) for a in r.articles), default=0)
    for a in r.articles:
        lines.append(f"  {a.position + 1:>2}. {a.title[:60]:<{min(width, 60)}}  "
                     f"{a.clicks.people:>6}  ({a.clicks.automated} automated)")
    return lines
