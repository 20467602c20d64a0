"""The schedule's times: when the digest job fires next, and which scheduled slot a run
belongs to, in the configured timezone and the way people expect across daylight-saving
changes (a wall-clock time that happens twice fires once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from digest.config import Config


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


def cadence(expression: str) -> tuple[str, str]:
    """How often a crontab expression sends, in words for readers: ('once a week', 'this
    week'), ('every day', 'today'), ('once a month', 'this month'), else ('regularly',
    'since the last issue')."""
    fields = expression.split()
    if len(fields) != 5:
        return "regularly", "since the last issue"
    minute, hour, day, month, weekday = fields
    fixed_time = not any(c in minute + hour for c in "*/,-")
    if fixed_time and day == "*" and month == "*":
        if weekday == "*":
            return "every day", "today"
        if not any(c in weekday for c in "*/,-"):
            return "once a week", "this week"
    if fixed_time and month == "*" and weekday == "*" and day.isdigit():
        return "once a month", "this month"
    return "regularly", "since the last issue"
