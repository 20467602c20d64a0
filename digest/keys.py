"""The key that signs every link we mail (unsubscribe, confirmation, web version, bounce
addresses). It comes from the environment variable [email] signing_key_env names; without
it, a random key is generated once into `signing.key` in the state folder (beside a SQLite
state database), mode 0600, so links from earlier digests keep working. After a rotation
the keys that signed earlier links are listed in the variable [email]
previous_signing_keys_env names (comma-separated): links they signed still verify."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from digest.config import Config
from digest.errors import ConfigError

log = logging.getLogger(__name__)

KEY_FILE = "signing.key"


def signing_key(config: Config) -> bytes:
    """The key that signs subscriber links."""
    env = config.email.signing_key_env
    if config.database_is_server and not os.environ.get(env):
        raise ConfigError(f"{config.path}: [email] signing_key_env: set {env}; with a "
                          "database server every host must sign links with the same key")
    return key_from(env, key_file(config).parent)


def verification_keys(config: Config) -> tuple[bytes, ...]:
    """The current key, then every previous one still accepted."""
    previous = os.environ.get(config.email.previous_signing_keys_env, "")
    older = tuple(part.strip().encode("utf-8") for part in previous.split(",") if part.strip())
    return (signing_key(config), *older)


def key_file(config: Config) -> Path:
    """Where the generated key lives (or would): the state folder."""
    return config.state_folder / KEY_FILE


def key_from(env_name: str, state_dir: Path) -> bytes:
    """The signing key from $env_name, else from (or newly into) state_dir/signing.key."""
    value = os.environ.get(env_name, "")
    if value:
        return value.encode("utf-8")
    path = state_dir / KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    log.warning("%s is not set; links are signed with a key generated into %s (back it up "
                "with the state database)", env_name, path)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def carry_key(config: Config, target: str) -> str:
    """After `digest db copy --to TARGET`: make the links mailed so far keep working with
    the new database. A generated key is copied beside a new SQLite file; for a database
    server, or a key from the environment, the sentence says what to set."""
    env = config.email.signing_key_env
    if os.environ.get(env):
        return f"links are signed with ${env}: keep it set wherever the new database is used"
    source = key_file(config)
    if not source.exists():
        return "no signing key has been generated yet: nothing to carry"
    if "://" in target:
        return (f"the new database is shared by every host, so links must be signed with "
                f"${env}: set it to the contents of {source} on every host (links mailed so "
                "far keep working)")
    destination = (Path.cwd() / target).resolve().parent / KEY_FILE
    if destination.exists():
        return f"{destination} is already there; it was left as it is"
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(source.read_bytes())
    return f"copied the signing key {source} to {destination} (mode 600)"
