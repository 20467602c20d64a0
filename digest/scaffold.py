"""`digest init`: a new install's folder — a commented config.toml written from the key
declarations themselves (every key, its default and its meaning), an empty subscriber
list, a private state folder and, on request, a copy of the bundled templates to edit.
It never overwrites anything."""

from __future__ import annotations

import os
import shutil
import textwrap
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

import tomlkit

from digest import bundled
from digest.config.sections import SECTIONS, SourceSettings
from digest.errors import ConfigError
from digest.subscribers import COLUMNS

WIDTH = 92
# Keys a new install must change, with the example value the file shows.
PLACEHOLDERS = {
    ("email", "from"): "Spacecraft Digest <digest@example.org>",
    ("sources", "name"): "Example News",
    ("sources", "url"): "https://news.example.org/category/spacecraft/feed/",
}
# Where this layout differs from the defaults (the list sits beside config.toml).
LAYOUT = {("subscribers", "path"): "subscribers.csv"}


class InitError(ConfigError):
    """`digest init` found a file it would have to overwrite."""


def init_folder(folder: Path, *, with_templates: bool = False) -> list[Path]:
    """Write a new install's files into `folder`; returns what it created."""
    config, subscribers, state = folder / "config.toml", folder / "subscribers.csv", \
        folder / "state"
    targets = [config, subscribers] + ([folder / "templates"] if with_templates else [])
    existing = [path for path in targets if path.exists()]
    if existing:
        raise InitError(f"{existing[0]} already exists; digest init never overwrites a file "
                        "(move it away, or pick another folder)")
    folder.mkdir(parents=True, exist_ok=True)
    _write_private(config, config_text(templates="templates" if with_templates else ""))
    _write_private(subscribers, ",".join(COLUMNS) + "\n")
    state.mkdir(mode=0o700, exist_ok=True)
    created = [config, subscribers, state]
    if with_templates:
        shutil.copytree(bundled.templates(), folder / "templates")
        created.append(folder / "templates")
    return created


def config_text(*, templates: str = "") -> str:
    """A complete, commented config.toml: every section and key with its default."""
    overrides = {**LAYOUT, **({("email", "templates"): templates} if templates else {})}
    out = ["# Spacecraft Digest configuration, written by `digest init`.",
           "# Every key is here with its default and what it means; paths are relative to",
           "# this file. Change at least [email] from and the [[sources]] block, then run",
           "# `digest check` (and `digest check --connect` to try the relay and sources).",
           "# Secrets never go in this file: they come from the environment variables the",
           "# *_env keys name.", ""]
    for name, section in SECTIONS.items():
        out += _section(f"[{name}]", name, section, overrides)
        if name == "summaries":
            out += ["# One [[sources]] block per site: a category feed (RSS, Atom), a WordPress",
                    "# REST API (https://site/wp-json/wp/v2/posts) or an HTML category page."]
            out += _section("[[sources]]", "sources", SourceSettings, overrides)
    out += ["# [editors.NAME] tables hold the editor's desk accounts; `digest editor add NAME`",
            "# asks for the password and writes only its hash here.", ""]
    return "\n".join(out)


def _section(header: str, name: str, section: type, overrides: dict[tuple[str, str], Any]
             ) -> list[str]:
    lines, nested = [header], []
    hints = typing.get_type_hints(section)
    for f in fields(section):
        toml_name = f.metadata.get("toml") or f.name
        if is_dataclass(hints[f.name]):
            nested.append((f"[{name}.{toml_name}]", f"{name}.{toml_name}", hints[f.name]))
            continue
        value = overrides.get((name, toml_name), PLACEHOLDERS.get((name, toml_name),
                                                                 f.default))
        required = f.default is MISSING and f.default_factory is MISSING
        lines += _comment(f.metadata.get("help", ""), required)
        value = list(value) if isinstance(value, tuple) else value
        lines.append(f"{toml_name} = {tomlkit.item(value).as_string()}")
    lines.append("")
    for header_, name_, cls in nested:
        lines += _section(header_, name_, cls, overrides)
    return lines


def _comment(text: str, required: bool) -> list[str]:
    text = ("(required) " if required else "") + text
    return ["# " + line for line in textwrap.wrap(text, WIDTH - 2)]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
