"""The `digest` command as an operator runs it: a real subprocess, real servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from digest.demo.site import SiteServer
from digest.demo.smtp_sink import SmtpSink
from tests.conftest import Project


def digest(*args: str, cwd: Path, env: dict[str, str] | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "DIGEST_SIGNING_KEY": "cli-test-key", **(env or {})}
    return subprocess.run([sys.executable, "-m", "digest", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def test_run_prints_what_it_did_and_a_second_run_finds_nothing_new(project: Project,
                                                                   smtp: SmtpSink) -> None:
    first = digest("--config", str(project.config_path), "run", cwd=project.folder)
    assert first.returncode == 0, first.stderr
    assert "articles:    12 found, 12 new, 12 summarized" in first.stdout
    assert "recipients:  3" in first.stdout and "sent:        3" in first.stdout
    second = digest("--config", str(project.config_path), "run", cwd=project.folder)
    assert second.returncode == 0
    assert "nothing new" in second.stdout and "sent:        0" in second.stdout
    assert len(smtp.messages) == 3


def test_config_defaults_to_env_then_current_folder(project: Project, smtp: SmtpSink) -> None:
    via_env = digest("run", "--dry-run", cwd=Path("/"),
                     env={"DIGEST_CONFIG": str(project.config_path)})
    assert via_env.returncode == 0 and "dry run" in via_env.stdout
    via_cwd = digest("run", "--dry-run", cwd=project.folder)
    assert via_cwd.returncode == 0 and "12 summarized" in via_cwd.stdout
    assert smtp.messages == []


def test_bad_config_is_one_line_and_exit_code_2(project: Project) -> None:
    text = project.config_path.read_text().replace("[smtp]", "[smtp]\nprot = 25")
    project.config_path.write_text(text)
    result = digest("run", cwd=project.folder)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {project.config_path}: [smtp] prot: unknown key "
                                     "(did you mean 'port'?)")


def test_preview_writes_html_or_text_and_sends_nothing(project: Project,
                                                       smtp: SmtpSink) -> None:
    out = project.folder / "next.html"
    result = digest("preview", "--out", str(out), cwd=project.folder)
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("<!DOCTYPE html>") or "<html" in out.read_text()
    assert "Subject" not in out.read_text()
    assert "subject: Spacecraft Digest: 12 new Spacecraft stories" in result.stderr
    text = digest("preview", "--text", cwd=project.folder)
    assert "SPACECRAFT DIGEST" in text.stdout and "<p" not in text.stdout
    assert smtp.messages == []
    assert "12 new" in digest("run", "--dry-run", cwd=project.folder).stdout


def test_subscribers_commands(project: Project, tmp_path: Path) -> None:
    def sub(*args: str) -> subprocess.CompletedProcess[str]:
        return digest("subscribers", *args, cwd=project.folder)

    assert "added: bob@example.org" in sub("add", "bob@example.org", "--name", "Bob").stdout
    listed = sub("list").stdout
    assert "bob@example.org\tBob\tactive" in listed and "ada@example.org" in listed
    assert "removed: bob@example.org" in sub("remove", "bob@example.org").stdout
    missing = sub("remove", "bob@example.org")
    assert missing.returncode == 1 and "error: bob@example.org: not on the list" in missing.stderr
    again = sub("add", "bob@example.org")
    assert again.returncode == 1 and "pass --reactivate" in again.stderr
    assert "updated: bob@example.org" in sub("add", "bob@example.org", "--reactivate").stdout
    incoming = tmp_path / "import.csv"
    incoming.write_text("email,name\ncy@example.org,Cy\nbad-address,Dee\n", encoding="utf-8")
    imported = sub("import", str(incoming))
    assert "imported: 1 added, 0 updated, 1 skipped, 0 left suppressed" in imported.stdout
    assert f"{incoming}: line 3:" in imported.stderr
    exported = sub("export").stdout
    assert exported.startswith("email,name,status,subscribed_at,format\n")
    assert "cy@example.org,Cy,active," in exported
    bad = sub("add", "not-an-address")
    assert bad.returncode == 1 and "not a valid email address" in bad.stderr
    shown = sub("show", "cy@example.org").stdout
    assert "status:      active" in shown and "imported from import.csv" in shown
    assert "forgotten: cy@example.org" in sub("forget", "cy@example.org").stdout
    assert "cy@example.org" not in sub("export").stdout
    assert sub("show", "cy@example.org").stdout.strip() == "suppressed:  yes"


def test_status_shows_digests_and_subscribers(project: Project, smtp: SmtpSink) -> None:
    assert "no digest yet" in digest("status", cwd=project.folder).stdout
    digest("run", cwd=project.folder)
    status = digest("status", cwd=project.folder).stdout
    assert "digest 1" in status and "sent 3, failed 0, pending 0" in status
    assert "subscribers: 3 active of 4" in status


def test_unreachable_relay_exits_1_with_one_line(project: Project, site: SiteServer) -> None:
    text = project.config_path.read_text()
    project.config_path.write_text(text.replace(f"port = {_smtp_port(text)}", "port = 9"))
    result = digest("run", cwd=project.folder)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "SMTP 127.0.0.1:9: cannot connect" in errors[0]
    assert "3 deliveries still pending" in errors[0]


def _smtp_port(config_text: str) -> int:
    smtp_section = config_text.split("[smtp]")[1]
    return int(smtp_section.split("port = ")[1].split()[0])


def start_scheduler(folder: Path, signing_key: str = "k",
                    timeout: float = 60) -> tuple[subprocess.Popen[str], str]:
    """`digest schedule` in a subprocess, once it has said when the next digest is due."""
    env = {**os.environ, "DIGEST_SIGNING_KEY": signing_key}
    proc = subprocess.Popen([sys.executable, "-m", "digest", "schedule"], cwd=folder,
                            env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while "next digest at" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.readline()
    return proc, seen


def stop_scheduler(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=20)
    if proc.stderr is not None:
        proc.stderr.close()
    return code


def test_schedule_runs_in_the_foreground_and_stops_on_sigterm(project: Project) -> None:
    proc, seen = start_scheduler(project.folder, timeout=30)
    assert "next digest at" in seen and "Europe/London" in seen
    time.sleep(0.5)
    assert stop_scheduler(proc) == 0


def test_python_dash_m_and_help_list_the_commands(tmp_path: Path) -> None:
    result = digest("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("run", "preview", "schedule", "subscribers", "demo", "status", "resume"):
        assert f"  {command}" in result.stdout


def test_a_second_scheduler_refuses_naming_the_first(project: Project) -> None:
    import socket

    first, seen = start_scheduler(project.folder)
    assert "next digest at" in seen
    second = digest("schedule", cwd=project.folder)
    assert second.returncode == 3
    assert f"locked by another scheduler (host {socket.gethostname()}, pid {first.pid}" \
        in second.stderr
    assert stop_scheduler(first) == 0


def test_schedule_finishes_an_unfinished_digest_before_waiting(project: Project,
                                                               smtp: SmtpSink) -> None:
    text = project.config_path.read_text()
    project.config_path.write_text(text.replace(f"port = {smtp.port}", "port = 9"))
    assert digest("run", cwd=project.folder).returncode == 1  # relay down: all pending
    project.config_path.write_text(text)
    proc, seen = start_scheduler(project.folder, signing_key="cli-test-key")
    assert "next digest at" in seen and len(smtp.messages) == 3
    assert stop_scheduler(proc) == 0
    status = digest("status", cwd=project.folder).stdout
    assert "digest 1" in status and "sent 3, failed 0, pending 0" in status


def test_status_json_and_json_logs(project: Project, smtp: SmtpSink) -> None:
    import json

    run = digest("--log-format", "json", "run", cwd=project.folder)
    assert run.returncode == 0
    log_lines = [json.loads(line) for line in run.stderr.splitlines() if line.strip()]
    assert log_lines and all({"time", "level", "logger", "message"} <= set(x) for x in log_lines)
    summary = json.loads(digest("status", "--json", cwd=project.folder).stdout)
    assert summary["next_run"]["timezone"] == "Europe/London"
    assert summary["next_run"]["utc"].endswith("+00:00")
    assert summary["digests"][0]["deliveries"]["sent"] == 3
    assert summary["unfinished"] == [] and summary["subscribers"]["active"] == 3


def test_a_state_database_from_an_earlier_version_is_brought_up_to_date(tmp_path: Path) -> None:
    import sqlite3

    from digest.state import open_url

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE source_state (url TEXT PRIMARY KEY, etag TEXT NOT NULL, "
               "last_modified TEXT NOT NULL, last_success_at DATETIME, last_failure_at "
               "DATETIME, last_error TEXT NOT NULL, consecutive_failures INTEGER NOT NULL)")
    db.execute("INSERT INTO source_state VALUES ('https://n.example/feed', '', '', NULL, NULL, "
               "'', 0)")
    db.commit()
    db.close()
    with open_url(f"sqlite:///{path}") as state:
        assert state.sources.state("https://n.example/feed").listed == 0


def test_serve_reports_a_busy_port_in_one_line_and_stops_on_sigterm(project: Project) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        refused = digest("serve", "--port", str(taken), cwd=project.folder)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith(
        f"error: digest serve: cannot listen on 127.0.0.1:{taken}")
    assert "Traceback" not in refused.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DIGEST_SIGNING_KEY": "k"}
    proc = subprocess.Popen([sys.executable, "-m", "digest", "serve", "--port", str(port)],
                            cwd=project.folder, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = ""
    while "serving" not in seen:
        seen += proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    proc.stderr.close()


def test_an_unwritable_health_file_stops_the_scheduler_with_one_line(project: Project) -> None:
    text = project.config_path.read_text()
    project.config_path.write_text(text + '\n[schedule]\nhealth_file = "/proc/nope/h.json"\n')
    result = digest("schedule", cwd=project.folder)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {project.config_path}: [schedule] health_file: cannot write "
        "/proc/nope/h.json (No such file or directory)")
