"""APScheduler wiring: the digest job (and the optional gather and approval jobs) in the
configured timezone, with the job store in the state database so a restart keeps each
job's next run time, and a missed run is caught up (within the grace time) or recorded."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_MISSED, EVENT_SCHEDULER_STARTED, JobExecutionEvent
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest import pipeline
from digest.alerts import send_alert
from digest.clock import utc_now
from digest.config import Config, load_config
from digest.errors import DigestError, LockedError
from digest.gather import capture, make_fetcher
from digest.models import RunReport
from digest.shutdown import stop_requested

# Jobs stored by earlier versions name the trigger class as digest.scheduler's: keep the
# name here so they still unpickle.
from digest.slots import (
    WallClockCronTrigger,  # noqa: F401
    cron_trigger,
    current_slot,
    digest_trigger,
)
from digest.state import open_state
from digest.state.runs import Run
from digest.status import write_health

log = logging.getLogger(__name__)

DIGEST_JOB, GATHER_JOB, APPROVAL_JOB, BOUNCES_JOB = "digest", "gather", "approval", "bounces"
JOB_TABLE = "apscheduler_jobs"


@dataclass(frozen=True)
class PlannedJob:
    """One job the config asks for."""

    id: str
    name: str
    func: Callable[..., Any] | str  # a "module:function" reference when the store persists it
    trigger: BaseTrigger
    args: tuple[Any, ...]


def planned_jobs(config: Config, funcs: dict[str, Callable[..., Any] | str] | None = None
                 ) -> list[PlannedJob]:
    """The jobs [schedule] asks for; `funcs` replaces their functions (tests)."""
    s = config.schedule
    funcs = funcs or {}
    args = (str(config.path),)
    plans = [PlannedJob(DIGEST_JOB, "digest cycle",
                        funcs.get(DIGEST_JOB, f"{__name__}:scheduled_digest"),
                        digest_trigger(config), args)]
    if s.gather_cron:
        plans.append(PlannedJob(GATHER_JOB, "gather sources",
                                funcs.get(GATHER_JOB, f"{__name__}:scheduled_gather"),
                                cron_trigger(s.gather_cron, s.timezone),
                                args))
    if config.bounces.cron:
        plans.append(PlannedJob(BOUNCES_JOB, "read bounce mailboxes",
                                funcs.get(BOUNCES_JOB, f"{__name__}:scheduled_bounces"),
                                cron_trigger(config.bounces.cron, s.timezone), args))
    if s.require_approval:
        plans.append(PlannedJob(APPROVAL_JOB, "send once approved",
                                funcs.get(APPROVAL_JOB, f"{__name__}:approval_check"),
                                IntervalTrigger(minutes=s.approval_check_minutes,
                                                timezone=s.timezone), args))
    return plans


def build_scheduler(config: Config, *, scheduler_class: type[BaseScheduler] = BlockingScheduler,
                    persistent: bool = True,
                    funcs: dict[str, Callable[..., Any] | str] | None = None,
                    **options: Any) -> BaseScheduler:
    """A scheduler whose jobs are brought in line with the config as it starts: a job kept
    in the state database keeps its next run time unless its schedule changed."""
    s = config.schedule
    store = (SQLAlchemyJobStore(url=config.database_url(), tablename=JOB_TABLE)
             if persistent else MemoryJobStore())
    scheduler = scheduler_class(
        timezone=ZoneInfo(s.timezone), jobstores={"default": store},
        job_defaults={"coalesce": s.coalesce, "max_instances": s.max_instances,
                      "misfire_grace_time": s.misfire_grace_time}, **options)
    plans = planned_jobs(config, funcs)
    scheduler.add_listener(lambda _event: reconcile(scheduler, config, plans),
                           EVENT_SCHEDULER_STARTED)
    scheduler.add_listener(lambda event: record_missed(config, event), EVENT_JOB_MISSED)
    return scheduler


def reconcile(scheduler: BaseScheduler, config: Config, plans: list[PlannedJob]) -> None:
    """Add, update or remove the stored jobs to match the plan."""
    s = config.schedule
    options = {"coalesce": s.coalesce, "max_instances": s.max_instances,
               "misfire_grace_time": s.misfire_grace_time}
    for plan in plans:
        job = scheduler.get_job(plan.id)
        if job is None:
            scheduler.add_job(plan.func, plan.trigger, args=plan.args, id=plan.id,
                              name=plan.name, **options)
            continue
        scheduler.modify_job(plan.id, func=plan.func, args=plan.args, name=plan.name,
                             **options)
        if repr(job.trigger) != repr(plan.trigger):
            log.info("job %s: schedule changed to %s", plan.id, plan.trigger)
            scheduler.reschedule_job(plan.id, trigger=plan.trigger)
        elif job.next_run_time and job.next_run_time < utc_now():
            late = utc_now() - job.next_run_time
            log.info("job %s was due %s ago, at %s: it runs now if within misfire_grace_time "
                     "(%d s), else it is skipped", plan.id, str(late).split(".")[0],
                     f"{job.next_run_time:%Y-%m-%d %H:%M %Z}", s.misfire_grace_time)
    wanted = {p.id for p in plans}
    for job in scheduler.get_jobs():
        if job.id not in wanted:
            log.info("job %s is no longer configured: removed", job.id)
            job.remove()
    for job in scheduler.get_jobs():
        log.info("next %s at %s", "digest" if job.id == DIGEST_JOB else f"{job.id} job",
                 f"{job.next_run_time:%Y-%m-%d %H:%M %Z}" if job.next_run_time else "never")


# --- the jobs (module-level so the job store can name them) -------------------------


def scheduled_digest(config_path: str) -> None:
    """The digest job: one cycle for the current slot."""
    config = load_config(Path(config_path))
    slot = current_slot(config, utc_now())
    try:
        report = pipeline.run_cycle(config, slot=slot)
        log.info("digest for %s: %s%s; %d article(s), %d recipient(s), %d sent, %d failed",
                 f"{slot:%Y-%m-%d %H:%M} UTC", report.outcome,
                 f" ({report.reason})" if report.reason else "", report.summarized,
                 report.recipients, report.sent, report.failed)
    except LockedError as exc:
        _record_outside_run(config, "digest", slot, f"not run: {exc}")
    except DigestError as exc:
        log.error("digest for %s failed: %s", f"{slot:%Y-%m-%d %H:%M} UTC", exc)
    except Exception:  # the scheduler must outlive any one cycle
        log.exception("digest cycle failed; the next scheduled run will try again")
    finally:
        write_health(config)


def scheduled_gather(config_path: str) -> None:
    """The gather job: read every source and keep the entries for the next digest."""
    config = load_config(Path(config_path))
    started = utc_now()
    try:
        with open_state(config) as state, state.db.lock("run", started), \
                make_fetcher(config) as fetcher:
            result = capture(config, state, fetcher)
            state.runs.record(Run(kind="gather", started_at=started, finished_at=utc_now(),
                                  outcome="gathered", articles=result.new_entries,
                                  reason="; ".join(f.reason for f in result.failures)))
        log.info("gathered: %d entries listed, %d not yet in a digest, %d source(s) failed",
                 result.found, result.new_entries, len(result.failures))
        for failure in result.newly_failing:
            send_alert(config, "a source keeps failing", f"This source has failed 3 cycles "
                       f"in a row:\n{failure.reason}")
    except LockedError:
        log.info("gather skipped: a digest run holds the state database")
    except Exception:
        log.exception("gather job failed; the next one will try again")
    finally:
        write_health(config)


def scheduled_bounces(config_path: str) -> None:
    """The bounces job: read every bounce mailbox once, recorded in the runs."""
    from digest.bounces.ingest import fetch_all

    config = load_config(Path(config_path))
    started = utc_now()
    try:
        results = fetch_all(config)
    except LockedError:
        log.info("bounces job skipped: another `digest bounces fetch` is reading")
        return
    except Exception:
        log.exception("bounces job failed; the next one will try again")
        return
    failed = [r.error for r in results if r.error]
    with open_state(config) as state:
        state.runs.record(Run(kind="bounces", started_at=started, finished_at=utc_now(),
                              outcome="failed" if failed else "fetched",
                              articles=sum(sum(r.outcomes.values()) for r in results),
                              reason="; ".join(failed or [r.line() for r in results])))
    for result in results:
        log.info("bounces: %s", result.line())
    for problem in failed:
        log.error("bounces: %s", problem)


def approval_check(config_path: str) -> None:
    """While a scheduled digest waits for approval: send it once an editor approves."""
    config = load_config(Path(config_path))
    with open_state(config) as state:
        waiting, approval = state.editorial.waiting(), state.editorial.approval()
    if waiting is None:
        return
    slot = f"{waiting.slot:%Y-%m-%d %H:%M} UTC"
    if approval is None or approval.at <= waiting.since:
        # No approval yet, or only the one the last attempt found wanting.
        log.debug("digest for %s still waiting for approval", slot)
        return
    log.info("digest for %s approved by %s: sending", slot, approval.by)
    try:
        pipeline.run_cycle(config, slot=waiting.slot)
    except DigestError as exc:
        log.error("approved digest for %s failed: %s", slot, exc)
    finally:
        write_health(config)


def record_missed(config: Config, event: JobExecutionEvent) -> None:
    """A run the scheduler could not start within misfire_grace_time: record it and alert."""
    if event.job_id != DIGEST_JOB:
        log.warning("job %s: run of %s missed", event.job_id, event.scheduled_run_time)
        return
    slot = event.scheduled_run_time.astimezone(UTC)
    reason = (f"missed: the scheduler was not running at {slot:%Y-%m-%d %H:%M} UTC and came "
              f"back more than misfire_grace_time ({config.schedule.misfire_grace_time} s) "
              "later; the articles wait for the next digest")
    _record_outside_run(config, "digest", slot, reason)
    send_alert(config, "scheduled digest skipped", f"No digest went out: {reason}")


def _record_outside_run(config: Config, kind: str, slot: datetime, reason: str) -> None:
    log.warning("digest for %s skipped: %s", f"{slot:%Y-%m-%d %H:%M} UTC", reason)
    with open_state(config) as state:
        now = utc_now()
        state.runs.record(Run(kind=kind, slot=slot, started_at=now, finished_at=now,
                              outcome="skipped", reason=reason))


def run_scheduler(config: Config, *, on_resumed: Callable[[RunReport], None]) -> None:
    """`digest schedule`: one scheduler per state database (a second one refuses, naming
    this one), the unfinished digest finished first, then the jobs until SIGTERM/SIGINT."""
    scheduler = build_scheduler(config)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping the scheduler after the current job", signum)
        stop_requested.set()
        if scheduler.running:
            scheduler.shutdown(wait=False)

    def stop_if_asked(_event: object) -> None:
        # A signal that came while the scheduler was starting: stop as soon as it runs.
        if stop_requested.is_set():
            scheduler.shutdown(wait=False)

    scheduler.add_listener(stop_if_asked, EVENT_SCHEDULER_STARTED)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with open_state(config) as state, state.db.lock("scheduler", utc_now()):
        # APScheduler records a job's next run when it starts it, so a digest cut short by
        # a crash is never rerun by the scheduler itself: finish it first.
        try:
            on_resumed(pipeline.resume(config))
        except DigestError as exc:
            log.error("could not finish the unfinished digest: %s", exc)
        write_health(config, strict=True)
        log.info("scheduler started: cron %r in %s (misfire_grace_time %d s)",
                 config.schedule.cron, config.schedule.timezone,
                 config.schedule.misfire_grace_time)
        if not stop_requested.is_set():
            scheduler.start()
    log.info("scheduler stopped")
