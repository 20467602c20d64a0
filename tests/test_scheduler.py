"""The scheduler: APScheduler's own job processing driven by a fake clock (DST, misfires,
coalescing, restarts with the job store in the state database), and the scheduled cycle's
rules (one digest per slot, hold, approval, alerts, health) against real servers."""

from __future__ import annotations

import json
import pickle
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import apscheduler.executors.base
import apscheduler.schedulers.base
import pytest
from apscheduler.executors.debug import DebugExecutor
from apscheduler.schedulers.base import BaseScheduler

from digest import editorial, pipeline, scheduler
from digest.config import load_config
from digest.demo.site import SampleArticle, SiteServer
from digest.demo.smtp_sink import SmtpSink
from digest.errors import SourcesDown
from digest.scheduler import DIGEST_JOB, build_scheduler, current_slot
from digest.state import open_state
from digest.status import status_report
from tests.conftest import ACTIVE, Project, parse, query, write_config
from tests.test_cli import digest, start_scheduler, stop_scheduler

OPS = "ops@example.org"


class SteppedScheduler(BaseScheduler):
    """APScheduler's job processing, stepped by the test instead of a thread."""

    def wakeup(self) -> None:
        pass

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait=False)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return fake.now.astimezone(tz) if tz else fake.now.replace(tzinfo=None)

    for module in (apscheduler.schedulers.base, apscheduler.executors.base):
        monkeypatch.setattr(module, "datetime", FakeDatetime)
    return fake


FIRED: list[list[datetime]] = [[]]


def record_fire(_config_path: str) -> None:
    """The digest job of these tests: note the (fake) time it ran."""
    FIRED[0].append(apscheduler.schedulers.base.datetime.now(UTC))


def stepped(config_path: Path, fired: list[datetime], clock: FakeClock, *,
            persistent: bool = False) -> BaseScheduler:
    FIRED[0] = fired
    config = load_config(config_path)
    return build_scheduler(config, scheduler_class=SteppedScheduler, persistent=persistent,
                           funcs={DIGEST_JOB: f"{__name__}:record_fire"},
                           executors={"default": DebugExecutor()})


def advance(sched: BaseScheduler, clock: FakeClock, until: datetime,
            step: timedelta = timedelta(minutes=5)) -> None:
    clock.now = clock.now.astimezone(UTC)  # step real time, not wall-clock time
    sched._process_jobs()  # as the scheduler does when it starts
    while clock.now < until:
        clock.now = min(clock.now + step, until)
        sched._process_jobs()


@pytest.fixture
def config_folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def schedule_config(folder: Path, cron: str, tz: str, extra: str = "", port: int = 9) -> Path:
    return write_config(folder, feed_urls=["http://127.0.0.1:9/feed"], smtp_port=port,
                        extra=f'[schedule]\ncron = "{cron}"\ntimezone = "{tz}"\n{extra}')


@pytest.mark.parametrize("tz, spring, autumn", [
    ("Europe/London", datetime(2026, 3, 29), datetime(2026, 10, 25)),
    ("America/New_York", datetime(2026, 3, 8), datetime(2026, 11, 1)),
])
@pytest.mark.parametrize("hour", [1, 2])
def test_a_daily_job_runs_once_on_each_dst_change_day(tmp_path: Path, clock: FakeClock,
                                                      tz: str, spring: datetime,
                                                      autumn: datetime, hour: int) -> None:
    zone = ZoneInfo(tz)
    path = schedule_config(tmp_path, f"30 {hour} * * *", tz)
    for change in (spring, autumn):
        fired: list[datetime] = []
        clock.now = (change - timedelta(days=2)).replace(tzinfo=zone)
        sched = stepped(path, fired, clock)
        sched.start()
        advance(sched, clock, (change + timedelta(days=2)).replace(tzinfo=zone))
        sched.shutdown(wait=False)
        days = [f.astimezone(zone).date() for f in fired]
        assert days == [(change + timedelta(days=d)).date() for d in (-2, -1, 0, 1)], fired
        # Every fire is at its local time, or the first minute after a skipped hour.
        for f in fired:
            local = f.astimezone(zone)
            assert (local.hour, local.minute) in ((hour, 30), (hour + 1, 30), (3, 0), (3, 30))
        on_the_day = [f for f in fired if f.astimezone(zone).date() == change.date()]
        assert len(on_the_day) == 1


def test_the_weekly_digest_keeps_its_local_hour_across_a_dst_change(tmp_path: Path,
                                                                    clock: FakeClock) -> None:
    london = ZoneInfo("Europe/London")
    path = schedule_config(tmp_path, "0 7 * * mon", "Europe/London")
    fired: list[datetime] = []
    clock.now = datetime(2026, 3, 20, tzinfo=london)
    sched = stepped(path, fired, clock)
    sched.start()
    advance(sched, clock, datetime(2026, 4, 7, tzinfo=london), timedelta(minutes=15))
    assert [f.astimezone(UTC).hour for f in fired] == [7, 6, 6]  # GMT, then BST
    assert {f.astimezone(london).hour for f in fired} == {7}


def test_a_machine_back_within_the_grace_time_runs_once_and_later_skips_with_a_record(
        tmp_path: Path, clock: FakeClock, smtp: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    path = schedule_config(tmp_path, "0 7 * * *", "UTC", port=smtp.port,
                           extra=f'misfire_grace_time = 3600\n[alerts]\nemail = "{OPS}"')
    fired: list[datetime] = []
    clock.now = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
    sched = stepped(path, fired, clock, persistent=True)
    sched.start()
    sched.shutdown(wait=False)  # machine off at 06:00
    clock.now = datetime(2026, 5, 1, 7, 40, tzinfo=UTC)  # back 40 minutes late
    sched = stepped(path, fired, clock, persistent=True)
    sched.start()
    advance(sched, clock, datetime(2026, 5, 1, 8, 0, tzinfo=UTC))
    sched.shutdown(wait=False)
    assert fired == [datetime(2026, 5, 1, 7, 40, tzinfo=UTC)]
    # Off for four days, back three hours after the slot: every run was missed.
    clock.now = datetime(2026, 5, 5, 10, 0, tzinfo=UTC)
    sched = stepped(path, fired, clock, persistent=True)
    sched.start()
    advance(sched, clock, datetime(2026, 5, 5, 10, 30, tzinfo=UTC))
    sched.shutdown(wait=False)
    assert len(fired) == 1
    assert "was missed by" in caplog.text
    summary = status_report(load_config(path), clock.now).as_json()
    missed = [r for r in summary["runs"] if r["reason"].startswith("missed")]
    # The four missed days are coalesced: one skip, for the latest slot, and one alert.
    assert [r["slot"] for r in missed] == ["2026-05-05T07:00:00+00:00"]
    sent = [parse(m.data) for m in smtp.messages]
    assert len(sent) == 1 and sent[0]["To"] == OPS and "skipped" in sent[0]["Subject"]
    assert "misfire_grace_time (3600 s)" in sent[0].get_content()


def test_missed_runs_within_the_grace_time_are_coalesced_into_one(tmp_path: Path,
                                                                  clock: FakeClock) -> None:
    path = schedule_config(tmp_path, "*/10 * * * *", "UTC", "misfire_grace_time = 7200")
    fired: list[datetime] = []
    clock.now = datetime(2026, 5, 1, 6, 1, tzinfo=UTC)
    sched = stepped(path, fired, clock)
    sched.start()
    clock.now = datetime(2026, 5, 1, 6, 55, tzinfo=UTC)  # five runs due at once
    sched._process_jobs()
    assert len(fired) == 1
    advance(sched, clock, datetime(2026, 5, 1, 7, 25, tzinfo=UTC), timedelta(minutes=1))
    assert len(fired) == 4  # then 07:00, 07:10, 07:20 on time


def test_the_job_store_lives_in_the_state_database_and_follows_config_changes(
        tmp_path: Path, clock: FakeClock) -> None:
    path = schedule_config(tmp_path, "0 7 * * mon", "Europe/London",
                           'gather_cron = "0 6 * * *"')
    clock.now = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
    sched = stepped(path, [], clock, persistent=True)
    sched.start()
    sched.shutdown(wait=False)
    rows = dict(query(tmp_path, "SELECT id, next_run_time FROM apscheduler_jobs"))
    assert set(rows) == {"digest", "gather"}
    assert datetime.fromtimestamp(rows["digest"], UTC) == datetime(2026, 6, 8, 6, 0, tzinfo=UTC)
    schedule_config(tmp_path, "0 9 * * fri", "Europe/London")  # new cron, no gather job
    sched = stepped(path, [], clock, persistent=True)
    sched.start()
    sched.shutdown(wait=False)
    rows = dict(query(tmp_path, "SELECT id, next_run_time FROM apscheduler_jobs"))
    assert set(rows) == {"digest"}
    assert datetime.fromtimestamp(rows["digest"], UTC) == datetime(2026, 6, 5, 8, 0, tzinfo=UTC)


def test_the_slot_is_the_latest_fire_time_not_after_now(tmp_path: Path) -> None:
    config = load_config(schedule_config(tmp_path, "0 7 * * mon", "Europe/London"))
    late = datetime(2026, 6, 8, 6, 40, tzinfo=UTC)  # 07:40 BST, 40 minutes late
    assert current_slot(config, late) == datetime(2026, 6, 8, 6, 0, tzinfo=UTC)


# --- the scheduled cycle against real servers ---------------------------------------

SLOT = datetime(2026, 6, 8, 6, 0, tzinfo=UTC)


def alerting(project: Project, extra: str = "") -> Project:
    text = project.config_path.read_text()
    project.config_path.write_text(text + f'\n[alerts]\nemail = "{OPS}"\n{extra}')
    return project


def alerts(smtp: SmtpSink) -> list[str]:
    return [str(parse(m.data)["Subject"]) for m in smtp.messages if m.recipients == (OPS,)]


def digests_to_subscribers(smtp: SmtpSink) -> int:
    return sum(1 for m in smtp.messages if set(m.recipients) <= ACTIVE)


def test_one_digest_per_slot_however_often_the_job_runs(project: Project, site: SiteServer,
                                                        smtp: SmtpSink) -> None:
    first = pipeline.run_cycle(project.config, slot=SLOT)
    assert first.outcome == "sent" and digests_to_subscribers(smtp) == 3
    site.site.articles.insert(0, SampleArticle(
        slug="probe-wakes", title="Probe Wakes From Hibernation", category="Spacecraft",
        published=datetime(2026, 11, 26, tzinfo=UTC), author="A. Writer",
        standfirst="A deep-space probe is awake.",
        body="The probe answered its first call from Earth after eight months asleep. " * 3,
        source="Source: ESA", disclaimer="Disclaimer: Details may change."))
    again = pipeline.run_cycle(project.config, slot=SLOT)
    assert again.outcome == "skipped" and "already has its digest" in again.reason
    assert digests_to_subscribers(smtp) == 3
    later = pipeline.run_cycle(project.config, slot=SLOT + timedelta(days=7))
    assert later.outcome == "sent" and digests_to_subscribers(smtp) == 6


def test_a_hold_skips_the_next_scheduled_send_tells_ops_and_keeps_the_articles(
        project: Project, smtp: SmtpSink) -> None:
    alerting(project)
    with open_state(project.config) as state:
        editorial.put_on_hold(state, "editor", "waiting for launch news", SLOT)
    held = pipeline.run_cycle(project.config, slot=SLOT)
    assert held.outcome == "skipped" and "on hold" in held.reason
    assert "waiting for launch news" in held.reason
    assert digests_to_subscribers(smtp) == 0
    assert alerts(smtp) == ["[Spacecraft Digest alert] scheduled digest skipped"]
    after = pipeline.run_cycle(project.config, slot=SLOT + timedelta(days=7))
    assert after.outcome == "sent" and after.summarized == 12  # the same articles, waited


def test_a_digest_awaiting_approval_waits_then_goes_once_approved(project: Project,
                                                                  smtp: SmtpSink) -> None:
    alerting(project)
    text = project.config_path.read_text()
    project.config_path.write_text(text + "\n[schedule]\nrequire_approval = true\n")
    waiting = pipeline.run_cycle(project.config, slot=SLOT)
    assert waiting.outcome == "skipped" and "awaiting approval" in waiting.reason
    scheduler.approval_check(str(project.config_path))  # not approved yet: nothing
    assert digests_to_subscribers(smtp) == 0
    status = digest("status", cwd=project.folder).stdout
    assert "WAITING" in status and "awaiting approval" in status
    assert digest("approve", "--by", "edith", cwd=project.folder).returncode == 0
    scheduler.approval_check(str(project.config_path))
    assert digests_to_subscribers(smtp) == 3
    scheduler.approval_check(str(project.config_path))  # approval was used up
    assert digests_to_subscribers(smtp) == 3
    assert alerts(smtp) == ["[Spacecraft Digest alert] scheduled digest skipped"]


def test_too_few_new_articles_skip_with_an_alert_and_a_status_line(project: Project,
                                                                   smtp: SmtpSink) -> None:
    alerting(project)
    text = project.config_path.read_text()
    project.config_path.write_text(text.replace('category = "Spacecraft"\n',
                                                'category = "Spacecraft"\nmin_articles = 40\n',
                                                1))
    report = pipeline.run_cycle(project.config, slot=SLOT)
    assert report.outcome == "skipped" and "min_articles = 40" in report.reason
    assert len(alerts(smtp)) == 1 and digests_to_subscribers(smtp) == 0
    status = digest("status", cwd=project.folder).stdout
    assert "digest  skipped" in status and "min_articles = 40" in status


def test_a_source_failing_three_cycles_in_a_row_is_alerted_once(tmp_path: Path,
                                                                smtp: SmtpSink) -> None:
    path = write_config(tmp_path, feed_urls=["http://127.0.0.1:9/feed"], smtp_port=smtp.port,
                        extra=f'[alerts]\nemail = "{OPS}"')
    config = load_config(path)
    for day in range(5):
        with pytest.raises(SourcesDown):  # the only source is down: the run fails
            pipeline.run_cycle(config, slot=SLOT + timedelta(days=day))
    failing = [s for s in alerts(smtp) if "keeps failing" in s]
    assert len(failing) == 1


def test_a_send_with_failures_alerts_ops(project: Project, smtp: SmtpSink) -> None:
    alerting(project)
    smtp._keeper.answer = lambda _n, rcpt: ("550 5.1.1 no such user" if rcpt.startswith("yuri")
                                    else "250 OK")
    report = pipeline.run_cycle(project.config, slot=SLOT)
    assert report.sent == 2 and report.failed == 1
    assert alerts(smtp) == ["[Spacecraft Digest alert] digest sent with 1 failed deliveries"]


def test_the_health_file_and_status_show_the_last_gather_and_send(project: Project,
                                                                  smtp: SmtpSink) -> None:
    text = project.config_path.read_text()
    project.config_path.write_text(text + '\n[schedule]\nhealth_file = "state/health.json"\n')
    scheduler.scheduled_digest(str(project.config_path))
    health = json.loads((project.folder / "state" / "health.json").read_text())
    assert health["last_send_at"] and health["last_gather_at"]
    assert health["last_run"]["outcome"] == "sent"
    summary = json.loads(digest("status", "--json", cwd=project.folder).stdout)
    run = summary["runs"][0]
    assert run["kind"] == "digest" and run["sent"] == 3 and run["duration_seconds"] >= 0
    assert summary["last_send_at"] == health["last_send_at"]


def make_digest_job_overdue(folder: Path, by: timedelta) -> None:
    """As if the machine was off when the stored digest job was due `by` ago (APScheduler
    keeps the next run time both in a column and in the pickled job)."""
    due = datetime.now(UTC) - by
    ((blob,),) = query(folder, "SELECT job_state FROM apscheduler_jobs WHERE id = 'digest'")
    state = pickle.loads(blob)
    state["next_run_time"] = due
    query(folder, "UPDATE apscheduler_jobs SET next_run_time = :t, job_state = :s "
                  "WHERE id = 'digest' RETURNING id", t=due.timestamp(), s=pickle.dumps(state))


def test_a_restarted_scheduler_catches_up_a_slot_it_missed_within_the_grace_time(
        project: Project, smtp: SmtpSink) -> None:
    proc, seen = start_scheduler(project.folder)
    assert "next digest at" in seen
    assert stop_scheduler(proc) == 0
    make_digest_job_overdue(project.folder, timedelta(minutes=10))
    proc, seen = start_scheduler(project.folder)
    deadline = time.monotonic() + 60
    while digests_to_subscribers(smtp) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stop_scheduler(proc) == 0
    assert digests_to_subscribers(smtp) == 3
    summary = json.loads(digest("status", "--json", cwd=project.folder).stdout)
    assert summary["runs"][0]["kind"] == "digest" and summary["runs"][0]["outcome"] == "sent"


def test_healthz_tells_a_monitor_when_no_digest_went_out_for_too_long(project: Project,
                                                                      smtp: SmtpSink) -> None:
    import requests

    from tests.test_web import WebServer

    with WebServer(project.config) as web:
        before = requests.get(f"{web.url}/healthz?max_age_hours=192", timeout=10)
        assert before.status_code == 503 and before.json()["last_send_at"] is None
        pipeline.run_cycle(project.config)
        after = requests.get(f"{web.url}/healthz?max_age_hours=192", timeout=10)
        assert after.status_code == 200 and after.json()["ok"] is True
        assert after.json()["last_gather_at"] and after.json()["last_send_at"]
        assert requests.get(f"{web.url}/healthz", timeout=10).status_code == 200


def test_the_gather_job_keeps_entries_for_the_next_digest_without_sending(
        project: Project, smtp: SmtpSink) -> None:
    text = project.config_path.read_text()
    project.config_path.write_text(text + '\n[schedule]\ngather_cron = "0 6 * * *"\n')
    scheduler.scheduled_gather(str(project.config_path))
    assert smtp.messages == []
    assert query(project.folder, "SELECT COUNT(*) FROM source_entries") == [(12,)]
    runs = status_report(project.config, datetime.now(UTC)).as_json()["runs"]
    assert [(r["kind"], r["outcome"], r["articles"]) for r in runs] == [("gather", "gathered",
                                                                          12)]
    sent = pipeline.run_cycle(project.config, slot=SLOT)
    assert sent.summarized == 12 and digests_to_subscribers(smtp) == 3
    assert query(project.folder, "SELECT COUNT(*) FROM source_entries") == [(0,)]


def test_sigterm_during_a_scheduled_send_finishes_the_message_and_the_restart_resumes(
        tmp_path: Path, site: SiteServer) -> None:
    from tests.test_delivery import ledger, many_subscribers

    everyone = many_subscribers(tmp_path, 40)
    with SmtpSink(delay=0.05) as relay:
        path = write_config(tmp_path, feed_urls=[site.feed_url("Spacecraft")],
                            smtp_port=relay.port)
        path.write_text(path.read_text().replace("[smtp]", "[smtp]\nconnections = 1"))
        proc, seen = start_scheduler(tmp_path)
        assert stop_scheduler(proc) == 0
        make_digest_job_overdue(tmp_path, timedelta(minutes=5))
        proc, seen = start_scheduler(tmp_path)
        deadline = time.monotonic() + 60
        while len(relay.messages) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stop_scheduler(proc) == 0  # SIGTERM mid-send
        interrupted = Counter(ledger(tmp_path).values())
        assert 5 <= interrupted["sent"] < 40 and interrupted["pending"] > 0
        assert interrupted["sent"] == len(relay.messages)  # every message sent is recorded
        proc, seen = start_scheduler(tmp_path)  # finishes the digest before waiting
        assert "next digest at" in seen
        assert stop_scheduler(proc) == 0
        received = Counter(m.recipients[0] for m in relay.messages)
    assert set(received) == everyone and max(received.values()) == 1
    assert set(ledger(tmp_path).values()) == {"sent"}


def test_an_approval_covers_the_articles_the_editor_saw(project: Project, site: SiteServer,
                                                       smtp: SmtpSink) -> None:
    text = project.config_path.read_text()
    project.config_path.write_text(text + "\n[schedule]\nrequire_approval = true\n")
    approved = digest("approve", "--by", "edith", cwd=project.folder)
    assert approved.returncode == 0 and "these 12 article(s)" in approved.stdout
    site.site.articles.insert(0, SampleArticle(
        slug="late-news", title="Late News From Orbit", category="Spacecraft",
        published=datetime(2026, 11, 26, tzinfo=UTC), author="A. Writer",
        standfirst="Something happened.",
        body="The station crew reported a quiet week of experiments in orbit. " * 3,
        source="Source: NASA", disclaimer="Disclaimer: Details may change."))
    waiting = pipeline.run_cycle(project.config, slot=SLOT)
    assert waiting.outcome == "skipped"
    assert "13 article(s) ready, 1 of them new since edith approved" in waiting.reason
    scheduler.approval_check(str(project.config_path))  # the same approval: still waits
    assert digests_to_subscribers(smtp) == 0
    assert digest("approve", "--by", "edith", cwd=project.folder).returncode == 0
    scheduler.approval_check(str(project.config_path))
    assert digests_to_subscribers(smtp) == 3


def test_there_is_nothing_to_approve_without_articles(project: Project, smtp: SmtpSink) -> None:
    assert digest("run", cwd=project.folder).returncode == 0
    empty = digest("approve", cwd=project.folder)
    assert empty.returncode == 1
    assert "error: nothing to approve: the next digest has no articles yet" in empty.stderr


def test_healthz_refuses_a_max_age_that_is_not_a_number(project: Project) -> None:
    import requests

    from tests.test_web import WebServer

    with WebServer(project.config) as web:
        response = requests.get(f"{web.url}/healthz?max_age_hours=abc", timeout=10)
    assert response.status_code == 400 and "max_age_hours" in response.text
