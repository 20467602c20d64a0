"""The `digest` command group and what every command shares: the config, loaded on first
use, and the logging set up from the global options."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digest import logs

if TYPE_CHECKING:  # digest.config (its declarations, tomllib) loads when a command runs
    from digest.config import Config


class Context:
    """What every command needs: where the config is, loaded on first use."""

    def __init__(self, config_path: Path, level_from_config: bool = False,
                 log_format: str = "text", named: bool = False) -> None:
        self.config_path = config_path
        self.named = named  # --config or $DIGEST_CONFIG named it
        self._config: Config | None = None
        self._level_from_config = level_from_config
        self._log_format = log_format

    def ready_config(self) -> Config:
        """The config, once every check a run needs has passed (CheckFailed: exit 2)."""
        from digest.check import require_ready

        require_ready(self.config)
        return self.config

    @property
    def config(self) -> Config:
        if self._config is None:
            from digest.config import load_config

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
    from digest.config import default_config_path

    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logs.configure(level, log_format)
    ctx.obj = Context(config_path or default_config_path(),
                      level_from_config=not (verbose or quiet), log_format=log_format,
                      named=config_path is not None or bool(os.environ.get("DIGEST_CONFIG")))
    ctx.meta["verbose"] = verbose


def login_name() -> str:
    """Who is at the keyboard, for holds and approvals given from the command line."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"
