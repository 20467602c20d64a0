"""The `digest` command: thin click commands over the library. `main()` is the one place
that turns a DigestError into `error: …` on stderr and an exit code."""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from digest import logs, pipeline
from digest.config import Config, default_config_path, load_config
from digest.errors import ConfigError, DigestError, SubscriberError
from digest.models import RunReport
from digest.subscribers import SubscriberList

log = logging.getLogger("digest")


class Context:
    """What every command needs: where the config is, loaded on first use."""

    def __init__(self, config_path: Path, level_from_config: bool = False,
                 log_format: str = "text") -> None:
        self.config_path = config_path
        self._config: Config | None = None
        self._level_from_config = level_from_config
        self._log_format = log_format

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
            if self._level_from_config:  # neither -v nor -q: [log] level decides
                logs.configure(getattr(logging, self._config.log.level.upper()),
                               self._log_format)
        return self._config


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Config file (default: $DIGEST_CONFIG, else ./config.toml).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors in the log.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Log lines for people, or JSON lines for machines.")
@click.version_option(package_name="spacecraft-digest")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: bool, quiet: bool,
        log_format: str) -> None:
    """Spacecraft Digest: gather new articles, summarise them, mail one digest."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logs.configure(level, log_format)
    ctx.obj = Context(config_path or default_config_path(),
                      level_from_config=not (verbose or quiet), log_format=log_format)
    ctx.meta["verbose"] = verbose


@cli.command()
@click.option("--dry-run", is_flag=True, help="Build and report, but send and record nothing.")
@click.option("--force", is_flag=True, help="Send even when a preflight check fails.")
@pass_context
def run(ctx: Context, dry_run: bool, force: bool) -> None:
    """Run one digest cycle now: gather, summarise, render, send."""
    with _graceful_stop():
        report = pipeline.run_cycle(ctx.config, dry_run=dry_run, force=force)
    _print_report(report)


@cli.command()
@pass_context
def resume(ctx: Context) -> None:
    """Finish sending an interrupted digest, and nothing else."""
    with _graceful_stop():
        report = pipeline.resume(ctx.config)
    _print_report(report)


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@click.option("--text", is_flag=True, help="The plain-text part instead of the HTML.")
@click.option("--force", is_flag=True, help="Exit 0 even when a preflight check fails.")
@pass_context
def preview(ctx: Context, out: Path | None, text: bool, force: bool) -> None:
    """Build the next digest as it would be sent, without sending or recording anything."""
    rendered, result, html, plain = pipeline.preview(ctx.config)
    checks = pipeline.preflight_digest(ctx.config, rendered)
    body = plain if text else html
    if out:
        out.write_text(body, encoding="utf-8")
    else:
        click.echo(body, nl=False)
    click.echo(f"subject: {rendered.subject}", err=True)
    click.echo(f"articles: {len(result.articles)} new of {result.found} found"
               + (f" (wrote {out})" if out else ""), err=True)
    for failure in result.failures:
        click.echo(f"problem: {failure.reason}", err=True)
    for action in rendered.size_actions:
        click.echo(f"size guard: {action}", err=True)
    for line in checks.lines():
        click.echo(line, err=True)
    if not force:
        pipeline.refuse_on_failure(checks)


@cli.command()
@pass_context
def schedule(ctx: Context) -> None:
    """Run the scheduler in the foreground: one cycle at each [schedule] cron time."""
    from apscheduler.events import EVENT_SCHEDULER_STARTED

    from digest.scheduler import build_scheduler, write_health

    config = ctx.config
    scheduler = build_scheduler(config)
    store = pipeline.open_store(config)

    def stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping the scheduler after the current job", signum)
        pipeline.stop_requested.set()
        if scheduler.running:
            scheduler.shutdown(wait=False)

    def stop_if_asked(_event: object) -> None:
        # A signal that came while the scheduler was starting: stop as soon as it runs.
        if pipeline.stop_requested.is_set():
            scheduler.shutdown(wait=False)

    scheduler.add_listener(stop_if_asked, EVENT_SCHEDULER_STARTED)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        # One scheduler per state database; a second one refuses (exit 3) naming this one.
        with store.lock("scheduler", datetime.now(UTC)):
            # APScheduler records a job's next run when it starts it, so a digest cut short
            # by a crash is never rerun by the scheduler itself: finish it first.
            try:
                _print_resumed(pipeline.resume(config))
            except DigestError as exc:
                log.error("could not finish the unfinished digest: %s", exc)
            write_health(config, strict=True)
            log.info("scheduler started: cron %r in %s (misfire_grace_time %d s)",
                     config.schedule.cron, config.schedule.timezone,
                     config.schedule.misfire_grace_time)
            if not pipeline.stop_requested.is_set():
                scheduler.start()
    finally:
        store.close()
    log.info("scheduler stopped")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (put a reverse proxy in front in production).")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@pass_context
def serve(ctx: Context, host: str, port: int) -> None:
    """Run the web app (subscribe, confirm, unsubscribe) under waitress."""
    from digest.web import serve as serve_app

    serve_app(ctx.config, host, port)


@cli.command("send-test")
@click.argument("address")
@pass_context
def send_test(ctx: Context, address: str) -> None:
    """Send the next digest, marked [TEST], to ADDRESS without recording anything."""
    reply, articles = pipeline.send_test(ctx.config, address)
    click.echo(f"test digest with {articles} article(s) sent to {address}: {reply}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for machines.")
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Next run, recent digests with their counts, unfinished digests, failing sources and
    subscribers by status."""
    summary = pipeline.status_summary(ctx.config, datetime.now(UTC))
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    upcoming = summary["next_run"]
    click.echo(f"next run:    {upcoming['local']} ({upcoming['utc']})" if upcoming
               else "next run:    none (check [schedule] cron)")
    if not summary["digests"]:
        click.echo("no digest yet")
    for d in summary["digests"]:
        state = "unfinished" if d["status"] == "sending" else d["status"]
        c = d["deliveries"]
        click.echo(f"digest {d['id']}  {d['created_at'][:16].replace('T', ' ')} UTC  "
                   f"{state:<10} sent {c['sent']}, failed {c['failed']}, pending "
                   f"{c['pending']}, deferred {c['deferred']}, skipped {c['skipped']}  "
                   f"{d['subject']}")
    for run in summary["runs"]:
        took = f"{run['duration_seconds']:.1f} s" if run["duration_seconds"] is not None else "?"
        counts = (f"{run['articles']} articles, {run['recipients']} recipients, sent "
                  f"{run['sent']}, failed {run['failed']}, deferred {run['deferred']}"
                  if run["outcome"] in ("sent", "resumed", "failed", "queued") else
                  f"{run['articles']} new entries" if run["kind"] == "gather" else "")
        click.echo(f"run {run['id']:<5} {run['started_at'][:16].replace('T', ' ')} UTC  "
                   f"{run['kind']:<7} {run['outcome']:<8} {took:>8}  " + "; ".join(
                       filter(None, (counts, run["reason"]))))
    for label, key in (("last gather", "last_gather_at"), ("last send", "last_send_at")):
        when = summary[key]
        click.echo(f"{label + ':':<13}{when[:19].replace('T', ' ') + ' UTC' if when else 'never'}")
    if summary["senders"]:
        click.echo(f"senders:     {summary['senders']} with a heartbeat in the last "
                   f"{ctx.config.delivery.lease_seconds:g} s (`digest run`, `schedule` and "
                   "`digest worker`s sending)")
    if summary["hold"]:
        hold = summary["hold"]
        click.echo(f"ON HOLD:     set by {hold['by']} at {hold['at'][:16].replace('T', ' ')} UTC"
                   + (f": {hold['reason']}" if hold.get("reason") else "")
                   + " (the next scheduled digest is skipped; `digest release` lifts it)")
    if summary["waiting_for_approval"]:
        click.echo(f"WAITING:     the digest for "
                   f"{summary['waiting_for_approval'][:16].replace('T', ' ')} UTC "
                   "awaits an editor's approval (`digest approve`)")
    if summary["approval"]:
        click.echo(f"approved:    by {summary['approval']['by']} at "
                   f"{summary['approval']['at'][:16].replace('T', ' ')} UTC, for the next "
                   "scheduled digest")
    by_status = summary["subscribers"]
    click.echo(f"subscribers: {by_status.get('active', 0)} active of {sum(by_status.values())} ("
               + ", ".join(f"{status} {n}" for status, n in sorted(by_status.items())) + ")")
    for source in summary["failing_sources"]:
        click.echo(f"FAILING source {source['url']}: {source['consecutive_failures']} cycles "
                   f"in a row; last error: {source['last_error']}")


@cli.command()
@click.option("--reason", default="", help="Why, shown in `digest status` and the alert.")
@click.option("--by", "who", default="", help="Who holds it (default: the login name).")
@pass_context
def hold(ctx: Context, reason: str, who: str) -> None:
    """Skip the next scheduled digest (its articles wait for the one after)."""
    pipeline.set_hold(ctx.config, who or _login(), reason, datetime.now(UTC))
    click.echo("on hold: the next scheduled digest will be skipped (`digest release` lifts it)")


@cli.command()
@pass_context
def release(ctx: Context) -> None:
    """Lift a hold: the next scheduled digest goes out as usual."""
    lifted = pipeline.release_hold(ctx.config)
    click.echo("hold lifted" if lifted else "there was no hold")


@cli.command()
@click.option("--by", "who", default="", help="Who approves (default: the login name).")
@pass_context
def approve(ctx: Context, who: str) -> None:
    """Approve the next scheduled digest ([schedule] require_approval); a scheduler that is
    waiting for it sends within [schedule] approval_check_minutes."""
    count = pipeline.approve(ctx.config, who or _login(), datetime.now(UTC))
    click.echo(f"approved: the next scheduled digest with these {count} article(s); "
               "articles that arrive later need a new approval")
    if not ctx.config.schedule.require_approval:
        click.echo("note: [schedule] require_approval is false, so scheduled digests go out "
                   "without waiting for an approval")


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


@cli.command()
@click.option("--once", is_flag=True, help="Exit when nothing is left to send.")
@pass_context
def worker(ctx: Context, once: bool) -> None:
    """Help send digests: claim batches of deliveries from the state database and send
    them; run any number, on any number of machines (see docs/scaling.md)."""
    from digest.worker import run_worker

    with _graceful_stop():
        report = run_worker(ctx.config, once=once)
    click.echo(f"worker: {report.sent} sent, {report.failed} failed, {report.deferred} "
               f"deferred, in {report.digests} batch round(s)")


@cli.group()
def db() -> None:
    """The state database: schema upgrades and moving it to PostgreSQL."""


@db.command("upgrade")
@pass_context
def db_upgrade(ctx: Context) -> None:
    """Create or upgrade the state database's schema to this version (Alembic)."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.exc import OperationalError

    from digest.migrate import upgrade
    from digest.store import first_line, safe_url

    url = ctx.config.database_url()
    engine = create_engine(url)
    try:
        fresh = "digests" not in inspect(engine).get_table_names()
        before, after = upgrade(engine)
    except OperationalError as exc:
        raise DigestError(f"{ctx.config.path}: [state] database: cannot open {safe_url(url)}: "
                          f"{first_line(exc.orig)}") from None
    finally:
        engine.dispose()
    click.echo(f"state database at revision {after}" + (
        " (already up to date)" if before == after else " (created)" if fresh else
        f" (was {before or 'from before migrations'})"))


@db.command("copy")
@click.option("--to", "target", required=True,
              help="The new, empty database: postgresql://user@host/db (password from "
                   "[state] password_env), or a SQLite file path.")
@pass_context
def db_copy(ctx: Context, target: str) -> None:
    """Copy everything in the state database into a new, empty database (stop the
    scheduler, workers and web app first), then point [state] database at it."""
    import os

    from digest.config import _check_database
    from digest.migrate import copy_state
    from digest.store import database_url, safe_url

    problem = _check_database(target)
    if problem:
        raise ConfigError(f"--to {safe_url(target) if '://' in target else target}: {problem}")
    url = database_url(target, Path.cwd(), os.environ.get(ctx.config.state.password_env, ""))
    store = pipeline.open_store(ctx.config)
    try:
        with store.lock("run", datetime.now(UTC)):
            counts = copy_state(store.engine, url)
    finally:
        store.close()
    for table, count in counts.items():
        click.echo(f"{table:<20} {count} row(s)")
    click.echo(f"copied to {safe_url(url)}; now set [state] database = \"{target}\"")


@cli.group()
def editor() -> None:
    """Editor accounts for the editor's desk (/editor/ of `digest serve`), kept in the
    [editors] table of config.toml as password hashes."""


@editor.command("add")
@click.argument("name")
@click.option("--email", default="", help="Where their test digests go by default.")
@click.password_option("--password", prompt="Password", envvar="DIGEST_EDITOR_PASSWORD",
                       help="Asked for when not given (or set DIGEST_EDITOR_PASSWORD).")
@pass_context
def editor_add(ctx: Context, name: str, email: str, password: str) -> None:
    """Add an editor (or set a new password), writing the hash into config.toml."""
    from digest.accounts import add_editor

    add_editor(ctx.config_path, name, password, email)
    click.echo(f"editor {name} saved in {ctx.config_path} (password stored as a hash)")


@editor.command("remove")
@click.argument("name")
@pass_context
def editor_remove(ctx: Context, name: str) -> None:
    """Remove an editor account from config.toml."""
    from digest.accounts import remove_editor

    remove_editor(ctx.config_path, name)
    click.echo(f"editor {name} removed from {ctx.config_path}")


@editor.command("list")
@pass_context
def editor_list(ctx: Context) -> None:
    """Print the editor accounts."""
    for account in ctx.config.editors.values():
        click.echo(f"{account.name}\t{account.email}")
    click.echo(f"{len(ctx.config.editors)} editor(s)", err=True)


@cli.command()
@click.option("--fresh", is_flag=True, help="Forget the demo's state and outbox first.")
@click.option("--serve", is_flag=True,
              help="Only serve the sample site (:8631) and SMTP server (:8025) until Ctrl-C.")
@pass_context
def demo(ctx: Context, fresh: bool, serve: bool) -> None:
    """Run one cycle against the bundled sample site and a local SMTP server."""
    from digest.demo.runner import run_demo, serve_forever

    if serve:
        serve_forever(ctx.config.resolve("outbox"))
        return

    result = run_demo(ctx.config, fresh=fresh)
    _print_report(result.report)
    click.echo(f"outbox:      {result.eml_files} new .eml file(s) in {result.outbox}/")
    if result.preview:
        click.echo(f"preview:     {result.preview}")
    if not result.report.digest_id:
        click.echo("(run `digest demo --fresh` to start again from an empty demo state)")


@cli.group()
def summary() -> None:
    """Replace an article's generated summary by hand for the next digest."""


@summary.command("set")
@click.argument("url")
@click.argument("text")
@pass_context
def summary_set(ctx: Context, url: str, text: str) -> None:
    """Use TEXT as the summary of the article at URL."""
    store = pipeline.open_store(ctx.config)
    try:
        store.set_summary_edit(url, " ".join(text.split()), datetime.now(UTC))
    finally:
        store.close()
    click.echo(f"summary set: {url}")


@summary.command("clear")
@click.argument("url")
@pass_context
def summary_clear(ctx: Context, url: str) -> None:
    """Go back to the generated summary of the article at URL."""
    store = pipeline.open_store(ctx.config)
    try:
        cleared = store.clear_summary_edit(url)
    finally:
        store.close()
    click.echo(f"{'generated summary restored' if cleared else 'no edit to clear'}: {url}")


@summary.command("list")
@pass_context
def summary_list(ctx: Context) -> None:
    """Print the edited summaries waiting for the next digest."""
    store = pipeline.open_store(ctx.config)
    try:
        edits = store.pending_summary_edits()
    finally:
        store.close()
    for url, text in sorted(edits.items()):
        click.echo(f"{url}\t{text}")
    click.echo(f"{len(edits)} edited summary(ies)", err=True)


@cli.group()
def subscribers() -> None:
    """Manage the subscriber list (kept in the state database; [subscribers] path is read
    into it whenever the file changes)."""


@contextmanager
def _roster(ctx: Context) -> Iterator[SubscriberList]:
    store = pipeline.open_store(ctx.config)
    try:
        roster = SubscriberList(store)
        roster.sync_file(ctx.config.subscribers_path, datetime.now(UTC))
        yield roster
    finally:
        store.close()


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
@click.option("--format", "fmt", type=click.Choice(["html", "text"]), default="html",
              show_default=True, help="HTML with a text part, or plain text only.")
@click.option("--reactivate", is_flag=True,
              help="Mail an address even though it unsubscribed, bounced or complained.")
@pass_context
def subscribers_add(ctx: Context, email: str, name: str, fmt: str, reactivate: bool) -> None:
    """Add an address as an active subscriber."""
    with _roster(ctx) as roster:
        outcome = roster.add(email, name, datetime.now(UTC), reactivate=reactivate, format=fmt)
    if outcome == "suppressed":
        raise SubscriberError(f"{email}: unsubscribed, bounced or complained earlier; not "
                              "added (pass --reactivate if they asked to be mailed again)")
    click.echo(f"{ {'unchanged': 'already subscribed'}.get(outcome, outcome)}: {email}")


@subscribers.command("remove")
@click.argument("email")
@pass_context
def subscribers_remove(ctx: Context, email: str) -> None:
    """Stop mailing an address (it becomes unsubscribed)."""
    with _roster(ctx) as roster:
        if not roster.remove(email, datetime.now(UTC)):
            raise SubscriberError(f"{email}: not on the list (or already removed)")
    click.echo(f"removed: {email}")


@subscribers.command("list")
@pass_context
def subscribers_list(ctx: Context) -> None:
    """Print every subscriber with their status."""
    count = 0
    with _roster(ctx) as roster:
        for row in roster.rows():
            click.echo(f"{row['email']}\t{row['name']}\t{row['status']}")
            count += 1
    click.echo(f"{count} subscriber(s)", err=True)


@subscribers.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reactivate", is_flag=True,
              help="Let rows re-activate addresses that unsubscribed, bounced or complained.")
@pass_context
def subscribers_import(ctx: Context, csv_file: Path, reactivate: bool) -> None:
    """Merge a CSV (columns email[,name,status,subscribed_at,format]) into the list."""
    with _roster(ctx) as roster:
        result = roster.import_csv(csv_file, datetime.now(UTC), reactivate=reactivate)
    for problem in result.skipped:
        click.echo(f"warning: {problem}", err=True)
    click.echo(f"imported: {result.added} added, {result.updated} updated, "
               f"{len(result.skipped)} skipped, {result.suppressed} left suppressed")


@subscribers.command("export")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@pass_context
def subscribers_export(ctx: Context, out: Path | None) -> None:
    """Write the list as CSV (email,name,status,subscribed_at,format)."""
    with _roster(ctx) as roster:
        if out:
            with out.open("w", encoding="utf-8", newline="") as handle:
                count = roster.export_csv(handle)
            click.echo(f"exported {count} subscriber(s) to {out}", err=True)
        else:
            roster.export_csv(sys.stdout)


@subscribers.command("show")
@click.argument("email")
@pass_context
def subscribers_show(ctx: Context, email: str) -> None:
    """Everything stored about one person."""
    with _roster(ctx) as roster:
        found = roster.show(email)
    if found is None:
        raise SubscriberError(f"{email}: nothing stored about this address")
    row = found["subscriber"]
    if row:
        click.echo(f"email:       {row['email']}\nname:        {row['name']}\n"
                   f"status:      {row['status']}\nformat:      {row['format']}\n"
                   f"subscribed:  {row['subscribed_at']}\nupdated:     {row['updated_at']}")
    click.echo(f"suppressed:  {'yes' if found['suppressed'] else 'no'}")
    for event in found["events"]:
        click.echo(f"event:       {event['at']}  {event['status']:<12} {event['cause']}")
    for delivery in found["deliveries"]:
        click.echo(f"digest:      {delivery['digest_id']}  {delivery['status']}  "
                   f"{delivery['updated_at']}")


@subscribers.command("forget")
@click.argument("email")
@pass_context
def subscribers_forget(ctx: Context, email: str) -> None:
    """Erase all personal data of EMAIL; keep only a hash so it is never mailed again."""
    with _roster(ctx) as roster:
        roster.forget(email, datetime.now(UTC))
    click.echo(f"forgotten: {email} (only a hash remains, on the suppression list)")


def _print_resumed(report: RunReport) -> None:
    if report.resumed_digest_id is not None:
        _print_report(report)


def _print_report(report: RunReport) -> None:
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


class _graceful_stop:  # noqa: N801 (used as a context manager, reads as a phrase)
    """SIGTERM/SIGINT ask the send loop to stop after the message in flight."""

    def __enter__(self) -> None:
        self._previous = {sig: signal.signal(sig, self._handle)
                          for sig in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum: int, _frame: Any) -> None:
        log.warning("signal %d: finishing the message in flight, then stopping", signum)
        pipeline.stop_requested.set()

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, report DigestErrors as one line and an exit code."""
    try:
        cli.main(args=argv, prog_name="digest", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DigestError as exc:
        if "-v" in sys.argv or "--verbose" in sys.argv:
            log.exception("details")
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
