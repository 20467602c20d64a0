"""The key that signs every link we mail (unsubscribe, confirmation, web version): from
the environment variable [email] signing_key_env names, else generated once into
`signing.key` beside the state database (mode 0600) so links from earlier digests keep
working."""

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
    return key_from(env, Path(config.database_path).parent)


def key_from(env_name: str, state_dir: Path) -> bytes:
    """The signing key from $env_name, else from (or newly into) state_dir/signing.key."""
    value = os.environ.get(env_name, "")
    if value:
        return value.encode("utf-8")
    key_file = state_dir / KEY_FILE
    if key_file.exists():
        return key_file.read_bytes().strip()
    log.warning("%s is not set; unsubscribe links are signed with a generated key in %s",
                env_name, key_file)
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode("ascii")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key
