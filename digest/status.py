"""What `digest status`, `GET /healthz` and the health file tell: the last runs, the next
one, holds and approvals, recent digests and their deliveries, failing sources and the
list by status. Records here, wording in the CLI."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from digest.bounces.policy import DigestRates, rates
from digest.clock import Clock, utc_now
from digest.config import Config
from digest.errors import ConfigError, DigestError
from digest.report import DigestReport, audience, digest_report
from digest.slots import next_fire_after
from digest.state import State, open_state
from digest.state.editorial import Approval, ApprovalWait, Hold
from digest.state.engagement import AudiencePoint
from digest.state.ledger import DigestWithCounts
from digest.state.runs import Run
from digest.state.sources import SourceState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NextDigest:
    """What stands for the next digest: entries waiting for it, and the editor's marks."""

    entries_waiting: int
    hold: Hold | None
    approval: Approval | None  # in force, for the next digest
    last_approval: Approval | None  # the one that let a digest out most recently

    def as_json(self) -> dict[str, Any]:
        last = self.last_approval
        return {"entries_waiting": self.entries_waiting, "on_hold": self.hold is not None,
                "approved": self.approval is not None,
                "last_approval": {"by": last.by, "at": _iso(last.at),
                                  "used_by_digest": last.used_digest_id,
                                  "used_at": _iso(last.used_at)} if last else None}


def next_digest(state: State) -> NextDigest:
    """The next digest as far as it is known without reading the sources."""
    return NextDigest(state.sources.waiting_count(), state.editorial.hold(),
                      state.editorial.approval(), state.editorial.last_used_approval())


@dataclass(frozen=True)
class Health:
    """What a monitor needs: the last successful gather and send, the last run, the next."""

    last_gather_at: datetime | None
    last_send_at: datetime | None
    last_run: Run | None
    next_run_at: datetime | None
    checked_at: datetime
    next_digest: NextDigest | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON document of /healthz and the health file."""
        run = self.last_run
        return {
            "last_gather_at": _iso(self.last_gather_at),
            "last_send_at": _iso(self.last_send_at),
            "last_run": {"kind": run.kind, "outcome": run.outcome, "reason": run.reason,
                         "at": _iso(run.finished_at)} if run else None,
            "next_run_at": _iso(self.next_run_at),
            "next_digest": self.next_digest.as_json() if self.next_digest else None,
            "checked_at": _iso(self.checked_at),
        }

    def fresh(self, max_age: timedelta, now: datetime) -> bool:
        """Whether a digest went out within `max_age` of now."""
        return self.last_send_at is not None and now - self.last_send_at <= max_age


def health(config: Config, state: State, now: datetime) -> Health:
    """The health of this install as of `now`."""
    times = state.runs.health_times()
    runs = state.runs.recent(1)
    upcoming = next_fire_after(config, now)
    return Health(times.last_gather_at, times.last_send_at, runs[0] if runs else None,
                  upcoming.astimezone(UTC) if upcoming else None, now, next_digest(state))


def write_health(config: Config, clock: Clock = utc_now, *, strict: bool = False) -> None:
    """Rewrite [schedule] health_file, when set (atomically: a monitor never reads half).
    A failure is logged (or, with `strict`, as when the scheduler starts, raised)."""
    if not config.schedule.health_file:
        return
    path = config.resolve(config.schedule.health_file)
    try:
        with open_state(config) as state:
            data = health(config, state, clock()).as_json()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        problem = (f"{config.path}: [schedule] health_file: cannot write {path} "
                   f"({exc.strerror})")
        if strict:
            raise ConfigError(problem) from None
        log.warning("%s", problem)
    except DigestError as exc:
        if strict:
            raise
        log.warning("health file not updated: %s", exc)


@dataclass(frozen=True)
class StatusReport:
    """Everything `digest status` shows."""

    runs: tuple[Run, ...]
    hold: Hold | None
    approval: Approval | None
    waiting: ApprovalWait | None
    health: Health
    senders: int
    next_run: datetime | None  # in the configured timezone
    timezone: str
    digests: tuple[DigestWithCounts, ...]
    sources: tuple[SourceState, ...]
    subscribers: dict[str, int]
    bounces: dict[int, DigestRates] = field(default_factory=dict)
    bounce_reports: dict[str, int] = field(default_factory=dict)  # outcome → messages
    reports: tuple[DigestReport, ...] = ()  # the sent digests among `digests`
    audience: tuple[AudiencePoint, ...] = ()

    @property
    def unfinished(self) -> list[int]:
        return [d.digest.id for d in self.digests if d.digest.status in ("sending", "paused")]

    @property
    def failing_sources(self) -> list[SourceState]:
        return [s for s in self.sources if s.failing]

    def as_json(self) -> dict[str, Any]:
        """The document `digest status --json` prints."""
        return {
            "runs": [_run_json(run) for run in self.runs],
            "hold": {"by": self.hold.by, "at": _iso(self.hold.at), "reason": self.hold.reason}
            if self.hold else None,
            "approval": {"by": self.approval.by, "at": _iso(self.approval.at),
                         "articles": list(self.approval.articles)} if self.approval else None,
            "waiting_for_approval": _iso(self.waiting.slot) if self.waiting else None,
            "next_digest": self.health.next_digest.as_json() if self.health.next_digest
            else None,
            "last_gather_at": _iso(self.health.last_gather_at),
            "last_send_at": _iso(self.health.last_send_at),
            "senders": self.senders,
            "next_run": {"local": self.next_run.isoformat(),
                         "utc": self.next_run.astimezone(UTC).isoformat(),
                         "timezone": self.timezone} if self.next_run else None,
            "digests": [{"id": d.digest.id, "created_at": d.digest.created_at.isoformat(),
                         "status": d.digest.status, "subject": d.digest.subject,
                         "deliveries": asdict(d.counts),
                         "bounces": _rates_json(self.bounces.get(d.digest.id))}
                        for d in self.digests],
            "bounce_reports": self.bounce_reports,
            "unfinished": self.unfinished,
            "failing_sources": [{"url": s.url, "consecutive_failures": s.consecutive_failures,
                                 "last_error": s.last_error} for s in self.failing_sources],
            "sources": [{"url": s.url, "last_success_at": _iso(s.last_success_at),
                         "consecutive_failures": s.consecutive_failures} for s in self.sources],
            "subscribers": self.subscribers,
            "reports": [report.as_json() for report in self.reports],
            "audience": [{"digest_id": p.digest_id, "at": p.at.isoformat(),
                          "recipients": p.recipients} for p in self.audience],
        }


def status_report(config: Config, now: datetime) -> StatusReport:
    """The status of this install as of `now`."""
    with open_state(config) as state:
        lease = timedelta(seconds=config.delivery.lease_seconds)
        recent = tuple(state.ledger.recent_digests())
        return StatusReport(
            runs=tuple(state.runs.recent()), hold=state.editorial.hold(),
            approval=state.editorial.approval(), waiting=state.editorial.waiting(),
            health=health(config, state, now),
            senders=state.ledger.count_live_senders(now, lease),
            next_run=next_fire_after(config, now), timezone=config.schedule.timezone,
            digests=recent, sources=tuple(state.sources.all_states()),
            subscribers=state.subscribers.count_by_status(),
            bounces=rates(state, [d.digest.id for d in recent]),
            bounce_reports=state.bounces.outcomes(),
            reports=tuple(r for d in recent if d.digest.status == "sent"
                          and (r := digest_report(state, d.digest.id)) is not None),
            audience=tuple(audience(state)))


def _rates_json(r: DigestRates | None) -> dict[str, Any]:
    r = r or DigestRates(0, 0)
    return {"hard": r.hard, "soft": r.soft, "complaints": r.complaints,
            "hard_rate": round(r.hard_rate, 6), "complaint_rate": round(r.complaint_rate, 6)}


def _run_json(run: Run) -> dict[str, Any]:
    return {"id": run.id, "kind": run.kind, "outcome": run.outcome, "reason": run.reason,
            "articles": run.articles, "recipients": run.recipients, "sent": run.sent,
            "failed": run.failed, "deferred": run.deferred, "digest_id": run.digest_id,
            "slot": _iso(run.slot), "started_at": run.started_at.isoformat(),
            "duration_seconds": run.duration_seconds}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
