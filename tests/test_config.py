from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import documented_keys, load_config
from digest.errors import ConfigError
from tests.conftest import REPO, write_config


def test_shipped_config_is_valid() -> None:
    config = load_config(REPO / "config.toml")
    assert config.digest.category == "Spacecraft"
    assert config.schedule.cron == "0 7 * * mon"
    assert config.sources[0].url.startswith("http://127.0.0.1:")


def _config_with(tmp_path: Path, extra: str) -> Path:
    return write_config(tmp_path, feed_urls=["http://127.0.0.1:1/feed/"], smtp_port=25,
                        extra=extra)


@pytest.mark.parametrize(("extra", "expected"), [
    ("[schedule]\ncron = \"every monday\"", "[schedule] cron: bad cron expression"),
    ("[schedule]\ntimezone = \"Mars/Olympus\"", "[schedule] timezone: unknown IANA timezone"),
    ("[schedule]\ncorn = \"0 7 * * mon\"", "[schedule] corn: unknown key (did you mean 'cron'?)"),
    ("[digest2]\nx = 1", "unknown section [digest2]"),
])
def test_bad_values_are_refused_naming_file_and_key(tmp_path: Path, extra: str,
                                                    expected: str) -> None:
    path = _config_with(tmp_path, extra)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert expected in message
    assert "\n" not in message


def test_wrong_type_is_refused(tmp_path: Path) -> None:
    path = _config_with(tmp_path, "")
    path.write_text(path.read_text().replace("port = 25", 'port = "twenty-five"'))
    with pytest.raises(ConfigError, match=r"\[smtp\] port: expected an integer"):
        load_config(path)


def test_bad_source_url_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, feed_urls=["ftp://example.org/feed"], smtp_port=25)
    with pytest.raises(ConfigError, match=r"\[\[sources\]\] #1 url: expected an http"):
        load_config(path)


def test_bad_security_is_refused(tmp_path: Path) -> None:
    path = _config_with(tmp_path, "")
    path.write_text(path.read_text().replace('security = "none"', 'security = "tls"'))
    with pytest.raises(ConfigError, match=r"\[smtp\] security: expected one of"):
        load_config(path)


def test_missing_required_key_is_named(tmp_path: Path) -> None:
    path = _config_with(tmp_path, "")
    path.write_text(path.read_text().replace('from = "Spacecraft Digest <digest@news.example>"',
                                             ""))
    with pytest.raises(ConfigError, match=r"\[email\] from: required key is missing"):
        load_config(path)


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[digest\ntitle = 1")
    with pytest.raises(ConfigError, match="config.toml: not valid TOML"):
        load_config(path)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = _config_with(tmp_path, "")
    text = path.read_text()
    start = text.index('database = "') + len('database = "')
    path.write_text(text[:start] + "state/digest.sqlite3" + text[text.index('"', start):])
    config = load_config(path)
    assert config.database_path == tmp_path / "state" / "digest.sqlite3"
    assert config.database_url() == f"sqlite:///{tmp_path / 'state' / 'digest.sqlite3'}"
    assert config.subscribers_path == tmp_path / "subscribers" / "subscribers.csv"


def test_a_postgresql_url_gets_its_driver_and_the_password_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _config_with(tmp_path, "")
    text = path.read_text()
    start = text.index('database = "') + len('database = "')
    path.write_text(text[:start] + "postgresql://digest@db.example/digest"
                    + text[text.index('"', start):])
    monkeypatch.setenv("DIGEST_DB_PASSWORD", "p@ss word")
    config = load_config(path)
    assert config.database_is_server
    from sqlalchemy.engine import make_url

    url = make_url(config.database_url())
    assert (url.drivername, url.username, url.password, url.host, url.database) == (
        "postgresql+psycopg", "digest", "p@ss word", "db.example", "digest")
    path.write_text(path.read_text().replace("digest@db.example", "digest:secret@db.example"))
    with pytest.raises(ConfigError, match=r"\[state\] database: put the password in the "
                                          "environment variable"):
        load_config(path)


def test_secrets_come_from_the_environment(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(_config_with(tmp_path, ""))
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "s3cret")
    assert config.smtp_password() == "s3cret"


def test_every_key_is_documented_in_the_shipped_config() -> None:
    shipped = (REPO / "config.toml").read_text()
    for key in documented_keys():
        name = key.rsplit(".", 1)[1]
        assert f"\n{name} =" in shipped, f"{key} is not in config.toml"
