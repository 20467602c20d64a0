"""The editor's commands: hold, release, approve, status, and hand-written summaries."""

from __future__ import annotations

import json

import click

from digest.cli.app import Context, cli, login_name, pass_context


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for machines.")
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Next run, recent digests with their counts, unfinished digests, failing sources and
    subscribers by status."""
    from digest.cli.present import status_lines
    from digest.clock import utc_now
    from digest.status import status_report

    report = status_report(ctx.config, utc_now())
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
        return
    for line in status_lines(report, ctx.config.delivery.lease_seconds):
        click.echo(line)


@cli.command()
@click.option("--reason", default="", help="Why, shown in `digest status` and the alert.")
@click.option("--by", "who", default="", help="Who holds it (default: the login name).")
@pass_context
def hold(ctx: Context, reason: str, who: str) -> None:
    """Skip the next scheduled digest (its articles wait for the one after)."""
    from digest import editorial
    from digest.clock import utc_now
    from digest.state import open_state

    with open_state(ctx.config) as state:
        replaced = editorial.put_on_hold(state, who or login_name(), reason, utc_now())
    if replaced is not None:
        click.echo(f"this hold replaces the one set by {replaced.by} at "
                   f"{replaced.at:%Y-%m-%d %H:%M} UTC"
                   + (f" ({replaced.reason})" if replaced.reason else ""))
    click.echo("on hold: the next scheduled digest will be skipped (`digest release` lifts it)")


@cli.command()
@pass_context
def release(ctx: Context) -> None:
    """Lift a hold: the next scheduled digest goes out as usual."""
    from digest import editorial
    from digest.clock import utc_now
    from digest.state import open_state

    with open_state(ctx.config) as state:
        lifted = editorial.release(state, utc_now())
    click.echo("hold lifted" if lifted else "there was no hold")


@cli.command()
@click.option("--by", "who", default="", help="Who approves (default: the login name).")
@click.option("--withdraw", is_flag=True, help="Withdraw the approval in force instead.")
@pass_context
def approve(ctx: Context, who: str, withdraw: bool) -> None:
    """Approve the next scheduled digest ([schedule] require_approval); a scheduler that is
    waiting for it sends within [schedule] approval_check_minutes."""
    from digest.pipeline import approve_next

    if withdraw:
        _withdraw(ctx)
        return
    count = approve_next(ctx.config, who or login_name())
    click.echo(f"approved: the next scheduled digest with these {count} article(s); "
               "articles that arrive later need a new approval")
    if not ctx.config.schedule.require_approval:
        click.echo("note: [schedule] require_approval is false, so scheduled digests go out "
                   "without waiting for an approval")


def _withdraw(ctx: Context) -> None:
    from digest import editorial
    from digest.clock import utc_now
    from digest.errors import EditorialError
    from digest.state import open_state

    with open_state(ctx.config) as state:
        if not editorial.withdraw(state, utc_now()):
            raise EditorialError("no approval in force: nothing to withdraw")
    click.echo("approval withdrawn: the next scheduled digest needs a new one")


@cli.group()
def summary() -> None:
    """Replace an article's generated summary by hand for the next digest."""


@summary.command("set")
@click.argument("url")
@click.argument("text")
@pass_context
def summary_set(ctx: Context, url: str, text: str) -> None:
    """Use TEXT as the summary of the article at URL."""
    from digest.pipeline import edit_summary

    article = edit_summary(ctx.config, url, " ".join(text.split()))
    click.echo(f"summary set: {article}")


@summary.command("clear")
@click.argument("url")
@pass_context
def summary_clear(ctx: Context, url: str) -> None:
    """Go back to the generated summary of the article at URL."""
    from digest.pipeline import edit_summary

    article = edit_summary(ctx.config, url, None)
    click.echo(f"generated summary restored: {article}")


@summary.command("list")
@pass_context
def summary_list(ctx: Context) -> None:
    """Print the edited summaries waiting for the next digest."""
    from digest.state import open_state

    with open_state(ctx.config) as state:
        edits = state.editorial.pending_summary_edits()
    for url, text in sorted(edits.items()):
        click.echo(f"{url}\t{text}")
    click.echo(f"{len(edits)} edited summary(ies)", err=True)


@cli.command()
@click.argument("digest_id", type=int)
@click.option("--csv", "as_csv", is_flag=True, help="CSV: a row for the digest, then one per "
              "article.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for machines.")
@pass_context
def report(ctx: Context, digest_id: int, as_csv: bool, as_json: bool) -> None:
    """What became of one digest: delivered, failed, bounced, complaints, unsubscribed
    after it, opens and clicks per article."""
    from digest.cli.present import report_lines
    from digest.errors import DigestError
    from digest.report import digest_report, report_csv
    from digest.state import open_state

    with open_state(ctx.config) as state:
        found = digest_report(state, digest_id)
    if found is None:
        raise DigestError(f"digest report: there is no digest {digest_id} (`digest status` "
                          "lists the latest)")
    if as_csv:
        click.echo(report_csv(found), nl=False)
    elif as_json:
        click.echo(json.dumps(found.as_json(), indent=2, ensure_ascii=False))
    else:
        for line in report_lines(found):
            click.echo(line)
