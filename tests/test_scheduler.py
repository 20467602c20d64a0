from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from digest import pipeline
from digest.demo.smtp_sink import SmtpSink
from digest.scheduler import build_scheduler, guarded
from tests.conftest import Project


def test_cron_fires_in_the_configured_timezone(project: Project) -> None:
    scheduler = build_scheduler(project.config, lambda: None)
    trigger = scheduler.get_jobs()[0].trigger
    london = ZoneInfo("Europe/London")
    after = datetime(2026, 3, 25, 12, 0, tzinfo=london)  # a Wednesday; BST starts on the 29th
    fire = trigger.get_next_fire_time(None, after)
    assert fire == datetime(2026, 3, 30, 7, 0, tzinfo=london)
    assert fire.utcoffset() == timedelta(hours=1)


def test_job_options_come_from_config(project: Project) -> None:
    job = build_scheduler(project.config, lambda: None).get_jobs()[0]
    assert job.coalesce is True and job.max_instances == 1
    assert job.misfire_grace_time == project.config.schedule.misfire_grace_time


def test_scheduled_job_runs_the_same_cycle(project: Project, smtp: SmtpSink) -> None:
    done = threading.Event()

    def job() -> None:
        pipeline.run_cycle(project.config)
        done.set()

    scheduler = build_scheduler(project.config, guarded(job))
    scheduler.get_jobs()[0].modify(next_run_time=datetime.now(ZoneInfo("UTC"))
                                   + timedelta(seconds=0.2))
    thread = threading.Thread(target=scheduler.start, daemon=True)
    thread.start()
    try:
        assert done.wait(timeout=30)
    finally:
        scheduler.shutdown(wait=True)
        thread.join(timeout=10)
    assert len(smtp.messages) == 3


def test_a_failing_cycle_does_not_stop_the_scheduler(caplog) -> None:  # type: ignore[no-untyped-def]
    def broken() -> None:
        raise RuntimeError("boom")

    guarded(broken)()
    assert "digest cycle failed" in caplog.text
    time.sleep(0)
