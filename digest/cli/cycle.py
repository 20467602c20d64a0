"""Commands that run the digest: run, resume, preview, schedule, serve, worker, send-test
and demo."""

from __future__ import annotations

from pathlib import Path

import click

from digest.cli.app import Context, cli, pass_context
from digest.cli.present import print_if_resumed, print_report


@cli.command()
@click.option("--dry-run", is_flag=True, help="Build and report, but send and record nothing.")
@click.option("--force", is_flag=True, help="Send even when a preflight check fails.")
@pass_context
def run(ctx: Context, dry_run: bool, force: bool) -> None:
    """Run one digest cycle now: gather, summarise, render, send."""
    from digest.pipeline import run_cycle
    from digest.shutdown import graceful_stop

    config = ctx.ready_config()
    with graceful_stop():
        report = run_cycle(config, dry_run=dry_run, force=force)
    print_report(report)


@cli.command()
@pass_context
def resume(ctx: Context) -> None:
    """Finish sending an interrupted digest, and nothing else."""
    from digest.pipeline import resume as resume_sending
    from digest.shutdown import graceful_stop

    with graceful_stop():
        report = resume_sending(ctx.config)
    print_report(report)


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@click.option("--text", is_flag=True, help="The plain-text part instead of the HTML.")
@click.option("--force", is_flag=True, help="Exit 0 even when a preflight check fails.")
@pass_context
def preview(ctx: Context, out: Path | None, text: bool, force: bool) -> None:
    """Build the next digest as it would be sent, without sending or recording anything."""
    from digest.build import preflight_digest, refuse_on_failure
    from digest.clock import utc_now
    from digest.pipeline import preview as build_preview

    draft = build_preview(ctx.config)
    checks = preflight_digest(ctx.config, draft.rendered, utc_now())
    body = draft.text if text else draft.html
    if out:
        out.write_text(body, encoding="utf-8")
    else:
        click.echo(body, nl=False)
    click.echo(f"subject: {draft.rendered.subject}", err=True)
    click.echo(f"articles: {len(draft.gathered.articles)} new of {draft.gathered.found} found"
               + (f" (wrote {out})" if out else ""), err=True)
    for line in [f"problem: {f.reason}" for f in draft.gathered.failures] + \
            [f"size guard: {a}" for a in draft.rendered.size_actions] + checks.lines():
        click.echo(line, err=True)
    if not force:
        refuse_on_failure(checks)


@cli.command()
@pass_context
def schedule(ctx: Context) -> None:
    """Run the scheduler in the foreground: one cycle at each [schedule] cron time."""
    from digest.scheduler import run_scheduler

    run_scheduler(ctx.ready_config(), on_resumed=print_if_resumed)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (put a reverse proxy in front in production).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, which the log names).")
@pass_context
def serve(ctx: Context, host: str, port: int) -> None:
    """Run the web app (subscribe, confirm, unsubscribe) under waitress."""
    from digest.web import serve as serve_app

    serve_app(ctx.ready_config(), host, port)


@cli.command()
@click.option("--once", is_flag=True, help="Exit when nothing is left to send.")
@pass_context
def worker(ctx: Context, once: bool) -> None:
    """Help send digests: claim batches of deliveries from the state database and send
    them; run any number, on any number of machines (see docs/scaling.md)."""
    from digest.shutdown import graceful_stop
    from digest.worker import run_worker

    config = ctx.ready_config()
    with graceful_stop():
        report = run_worker(config, once=once)
    click.echo(f"worker: {report.sent} sent, {report.failed} failed, {report.deferred} "
               f"deferred, in {report.digests} batch round(s)")


@cli.command("send-test")
@click.argument("address")
@pass_context
def send_test(ctx: Context, address: str) -> None:
    """Send the next digest, marked [TEST], to ADDRESS without recording anything."""
    from digest.pipeline import send_test as send_one

    reply, articles = send_one(ctx.config, address)
    click.echo(f"test digest with {articles} article(s) sent to {address}: {reply}")


@cli.command()
@click.option("--fresh", is_flag=True, help="Forget the demo's state and outbox first.")
@click.option("--serve", is_flag=True,
              help="Only serve the sample site and SMTP server until Ctrl-C.")
@click.option("--site-port", type=click.IntRange(1, 65535), default=8631, show_default=True,
              help="Port of the sample site (keep it between runs: articles are known by URL).")
@click.option("--smtp-port", type=click.IntRange(0, 65535), default=None,
              help="Port of the SMTP server [default: 8025 with --serve, else any free port].")
@pass_context
def demo(ctx: Context, fresh: bool, serve: bool, site_port: int, smtp_port: int | None) -> None:
    """Run one cycle against the bundled sample site and a local SMTP server."""
    from digest.demo.runner import default_config, run_demo, serve_forever

    config = ctx.config if ctx.named or ctx.config_path.exists() else default_config(Path.cwd())
    if serve:
        serve_forever(config.resolve("outbox"), site_port,
                      8025 if smtp_port is None else smtp_port)
        return
    result = run_demo(config, fresh=fresh, site_port=site_port, smtp_port=smtp_port or 0)
    print_report(result.report)
    click.echo(f"outbox:      {result.eml_files} new .eml file(s) in {result.outbox}/")
    if result.preview:
        click.echo(f"preview:     {result.preview}")
    if not result.report.digest_id:
        click.echo("(run `digest demo --fresh` to start again from an empty demo state)")
