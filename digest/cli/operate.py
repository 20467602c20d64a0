"""The operator's commands on the state database: schema upgrades and copying it into a
new database."""

from __future__ import annotations

import click

from digest.cli.app import Context, cli, pass_context


@cli.group()
def db() -> None:
    """The state database: schema upgrades and moving it to PostgreSQL."""


@db.command("upgrade")
@pass_context
def db_upgrade(ctx: Context) -> None:
    """Create or upgrade the state database's schema to this version (Alembic)."""
    from digest.state.migrate import upgrade_url

    result = upgrade_url(ctx.config.database_url(), where=f"{ctx.config.path}: [state] database")
    click.echo(f"state database at revision {result.after}" + (
        " (already up to date)" if result.before == result.after else
        " (created)" if result.fresh else f" (was {result.before or 'from before migrations'})"))


@db.command("copy")
@click.option("--to", "target", required=True,
              help="The new, empty database: postgresql://user@host/db (password from "
                   "[state] password_env), or a SQLite file path.")
@pass_context
def db_copy(ctx: Context, target: str) -> None:
    """Copy everything in the state database into a new, empty database (stop the
    scheduler, workers and web app first), then point [state] database at it."""
    from digest.state import copy_state_to

    copied = copy_state_to(ctx.config, target)
    for table, count in copied.counts.items():
        click.echo(f"{table:<20} {count} row(s)")
    click.echo(f"copied to {copied.where}; now set [state] database = \"{target}\"")
