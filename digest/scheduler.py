"""APScheduler wiring: the digest cycle as a cron job in the configured timezone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from digest.config import Config

log = logging.getLogger(__name__)


def build_scheduler(config: Config, job: Callable[[], None]) -> BlockingScheduler:
    """A blocking scheduler that runs `job` on [schedule] cron, once at a time."""
    s = config.schedule
    scheduler = BlockingScheduler(timezone=s.timezone)
    scheduler.add_job(job, CronTrigger.from_crontab(s.cron, timezone=s.timezone),
                      id="digest", name="digest cycle", coalesce=True, max_instances=1,
                      misfire_grace_time=s.misfire_grace_time, replace_existing=True)
    return scheduler


def next_fire_after(config: Config, now: datetime) -> datetime | None:
    """When the digest job fires next after `now`, in the configured timezone."""
    s = config.schedule
    trigger = CronTrigger.from_crontab(s.cron, timezone=s.timezone)
    return trigger.get_next_fire_time(None, now.astimezone(trigger.timezone))


def next_fire_time(scheduler: BlockingScheduler) -> datetime | None:
    """When the digest job fires next, in the configured timezone."""
    job = scheduler.get_job("digest")
    return job.trigger.get_next_fire_time(None, datetime.now(scheduler.timezone))


def guarded(job: Callable[[], object]) -> Callable[[], None]:
    """Wrap a job so one failed cycle is logged and the scheduler keeps running."""

    def run() -> None:
        try:
            job()
        except Exception:  # the scheduler must outlive any one cycle
            log.exception("digest cycle failed; the next scheduled run will try again")

    return run
