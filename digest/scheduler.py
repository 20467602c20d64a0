"""APScheduler wiring: the digest job (and the optional gather and approval jobs) in the
configured timezone, with the job store in the state database so a restart keeps each
job's next run time, and a missed run is caught up (within the grace time) or recorded."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_MISSED, EVENT_SCHEDULER_STARTED, JobExecutionEvent
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest import pipeline
from digest.alerts import send_alert
from digest.config import Config, load_config
from digest.errors import ConfigError, DigestError, LockedError
from digest.gather import capture, make_fetcher
from digest.store import Store

log = logging.getLogger(__name__)

DIGEST_JOB, GATHER_JOB, APPROVAL_JOB = "digest", "gather", "approval"
JOB_TABLE = "apscheduler_jobs"


@dataclass(frozen=True)
class PlannedJob:
    """One job the config asks for."""

    id: str
    name: str
    func: Callable[..., Any] | str  # a "module:function" reference when the store persists it
    trigger: BaseTrigger
    args: tuple[Any, ...]


class WallClockCronTrigger(CronTrigger):
    """A cron trigger that fires once, not twice, at a wall-clock time that happens twice
    on a fall-back day (01:30 on the last Sunday of October in London): APScheduler 3.x
    otherwise fires at both instants."""

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        fire = super().get_next_fire_time(previous_fire_time, now)
        while fire is not None and _second_of_a_repeated_hour(fire, self.timezone):
            after = fire.astimezone(UTC)
            while _second_of_a_repeated_hour(after, self.timezone):
                after += timedelta(minutes=1)
            fire = super().get_next_fire_time(fire, after.astimezone(self.timezone))
        return fire


def _second_of_a_repeated_hour(instant: datetime, zone: Any) -> bool:
    wall = instant.astimezone(zone).replace(tzinfo=None)
    first = wall.replace(tzinfo=zone, fold=0)
    return first.utcoffset() != instant.astimezone(zone).utcoffset() and \
        first.astimezone(UTC) < instant.astimezone(UTC)


def cron_trigger(expression: str, timezone: str) -> CronTrigger:
    """A crontab expression in an IANA timezone, once per wall-clock time."""
    return WallClockCronTrigger.from_crontab(expression, timezone=timezone)


def digest_trigger(config: Config) -> CronTrigger:
    """[schedule] cron in [schedule] timezone."""
    return cron_trigger(config.schedule.cron, config.schedule.timezone)


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
        elif job.next_run_time and job.next_run_time < datetime.now(UTC):
            late = datetime.now(UTC) - job.next_run_time
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


def current_slot(config: Config, now: datetime) -> datetime:
    """The scheduled fire time a digest job starting at `now` belongs to: the latest one
    not after `now` (a late start within the grace time still belongs to its slot)."""
    trigger = digest_trigger(config)
    window = timedelta(seconds=config.schedule.misfire_grace_time + 60)
    fire = trigger.get_next_fire_time(None, (now - window).astimezone(trigger.timezone))
    slot = None
    while fire is not None and fire <= now:
        slot = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return (slot or now.replace(second=0, microsecond=0)).astimezone(UTC)


def next_fire_after(config: Config, now: datetime) -> datetime | None:
    """When the digest job fires next after `now`, in the configured timezone."""
    trigger = digest_trigger(config)
    return trigger.get_next_fire_time(None, now.astimezone(trigger.timezone))


# --- the jobs (module-level so the job store can name them) -------------------------


def scheduled_digest(config_path: str) -> None:
    """The digest job: one cycle for the current slot."""
    config = load_config(Path(config_path))
    slot = current_slot(config, datetime.now(UTC))
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
    store = pipeline.open_store(config)
    started = datetime.now(UTC)
    try:
        with store.lock("run", started), make_fetcher(config) as fetcher:
            result = capture(config, store, fetcher)
            store.record_run(kind="gather", started_at=started, finished_at=datetime.now(UTC),
                             outcome="gathered", articles=result.new_entries,
                             reason="; ".join(f.reason for f in result.failures))
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
        store.close()
        write_health(config)


def approval_check(config_path: str) -> None:
    """While a scheduled digest waits for approval: send it once an editor approves."""
    config = load_config(Path(config_path))
    store = pipeline.open_store(config)
    try:
        waiting, approval = store.get_setting("waiting_slot"), store.get_setting("approval")
        since = store.get_setting("waiting_since") or ""
    finally:
        store.close()
    if not waiting:
        return
    if not approval or approval.get("at", "") <= since:
        # No approval yet, or only the one the last attempt found wanting.
        log.debug("digest for %s still waiting for approval", waiting[:16])
        return
    slot = datetime.fromisoformat(waiting)
    log.info("digest for %s approved by %s: sending", waiting[:16], approval.get("by", "?"))
    try:
        pipeline.run_cycle(config, slot=slot)
    except DigestError as exc:
        log.error("approved digest for %s failed: %s", waiting[:16], exc)
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
    store = pipeline.open_store(config)
    try:
        now = datetime.now(UTC)
        store.record_run(kind=kind, slot=slot, started_at=now, finished_at=now,
                         outcome="skipped", reason=reason)
    finally:
        store.close()


def health(config: Config, store: Store, now: datetime) -> dict[str, Any]:
    """What a monitor needs: last successful gather and send, last run, next run."""
    times = store.health()
    runs = store.recent_runs(1)
    upcoming = next_fire_after(config, now)
    return {
        "last_gather_at": _iso(times["last_gather_at"]),
        "last_send_at": _iso(times["last_send_at"]),
        "last_run": {"kind": runs[0]["kind"], "outcome": runs[0]["outcome"],
                     "reason": runs[0]["reason"], "at": _iso(runs[0]["finished_at"])}
        if runs else None,
        "next_run_at": _iso(upcoming.astimezone(UTC)) if upcoming else None,
        "checked_at": _iso(now),
    }


def write_health(config: Config, *, strict: bool = False) -> None:
    """Rewrite [schedule] health_file, when set (atomically: a monitor never reads half).
    A failure is logged (or, with `strict`, as when the scheduler starts, raised)."""
    if not config.schedule.health_file:
        return
    path = config.resolve(config.schedule.health_file)
    try:
        store = pipeline.open_store(config)
        try:
            data = health(config, store, datetime.now(UTC))
        finally:
            store.close()
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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
