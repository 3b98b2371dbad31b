"""Configuration: defaults, every key, every kind of mistake, the example file."""

from __future__ import annotations

import dataclasses
import re
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from intake import schema
from intake.config import (
    ConfigError,
    Settings,
    StorageBackend,
    load_or_create_secret_key,
    load_settings,
    parse_settings,
)

from conftest import ROOT, SettingsFactory, write_toml


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No INTAKE_CONFIG from the caller's environment; cwd is an empty tmp dir."""
    monkeypatch.delenv("INTAKE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_without_any_file(tmp_path: Path) -> None:
    s = load_settings()
    assert s.source is None
    assert s.server.secret_key_file == tmp_path / "instance" / "secret_key"
    assert s.server.https is False
    assert s.server.behind_proxy is False
    assert s.keys.recipients_file == tmp_path / "keys" / "recipients.txt"
    assert s.storage.data_dir == tmp_path / "instance" / "data"
    assert s.storage.backend is StorageBackend.FILESYSTEM
    assert s.storage.spool_dir is None
    assert s.spool_dir == tmp_path / "instance" / "data" / "spool"
    assert s.database.url == ""
    assert s.database_url == f"sqlite:///{tmp_path}/instance/data/intake.db"
    assert s.limits.storage_url == "memory://"
    assert s.limits.max_request_mib == 500
    assert s.limits.max_file_mib == 500
    assert s.limits.max_files == 20
    assert s.limits.max_field_chars == 20000 == schema.MAX_TEXT  # the longest report.json holds
    assert s.limits.submit_rate == "10 per hour"
    assert s.limits.behind_tor is False
    assert s.privacy.record_danger_flag is False
    assert s.max_request_bytes == 500 * 1024 * 1024
    assert s.max_file_bytes == 500 * 1024 * 1024


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.limits.max_files = 3  # type: ignore[misc]


ALL_KEYS: dict[str, dict[str, Any]] = {
    "server": {
        "secret_key_file": "/srv/intake/secret",
        "https": True,
        "behind_proxy": True,
        "receipt_pepper_file": "/srv/intake/pepper",
        "reporter_session_minutes": 45,
        "signing_key_file": "/srv/intake/signing",
        "leave_url": "https://weather.example.org/",
    },
    "keys": {"recipients_file": "/etc/intake/recipients.txt"},
    "storage": {"data_dir": "/var/lib/intake", "backend": "database", "spool_dir": "/run/spool"},
    "database": {"url": "postgresql+psycopg://intake:pw@db.internal:5432/intake"},
    "limits": {
        "storage_url": "redis://127.0.0.1:6379/0",
        "max_request_mib": 200,
        "max_file_mib": 100,
        "max_files": 5,
        "max_field_chars": 5000,
        "submit_rate": "3/minute; 20 per day",
        "global_submit_rate": "100 per hour",
        "signin_failure_rate": "5 per hour",
        "global_signin_failure_rate": "50 per hour",
        "behind_tor": True,
    },
    "privacy": {"record_danger_flag": True},
    "staff": {
        "session_minutes": 20,
        "signin_failure_rate_per_account": "3 per 15 minutes",
        "signin_failure_rate_per_client": "10 per hour",
    },
    "retention": {
        "purge_after_ack_days": 2,
        "max_age_days": 30,
        "warn_days": 3,
        "case_max_age_days": 200,
    },
    "alerts": {
        "interval_minutes": 15,
        "email_to": ("alerts@example.org", "duty@example.org"),
        "email_from": "intake@example.org",
        "smtp_host": "smtp.example.org",
        "smtp_port": 2525,
        "smtp_starttls": False,
        "smtp_user": "intake",
        "smtp_password_file": "/etc/intake/smtp-password",
        "webhook_url": "https://hooks.example.org/intake",
        "language": "ky",
    },
}


def test_every_key_round_trips(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "config.toml", ALL_KEYS)
    s = load_settings(path)
    assert s.source == path
    got = {
        section: {key: getattr(getattr(s, section), key) for key in ALL_KEYS[section]}
        for section in ALL_KEYS
    }
    expected = {
        section: {
            key: Path(v) if key.endswith(("_file", "_dir")) else v for key, v in values.items()
        }
        for section, values in ALL_KEYS.items()
    }
    assert got == expected
    assert s.storage.backend is StorageBackend.DATABASE
    assert s.database_url == ALL_KEYS["database"]["url"]
    assert s.spool_dir == Path("/run/spool")


def test_every_field_has_a_key_in_the_test() -> None:
    """ALL_KEYS above covers every setting, so adding one means testing it."""
    defaults = Settings()
    fields = {
        f.name: {g.name for g in dataclasses.fields(getattr(defaults, f.name))}
        for f in dataclasses.fields(Settings)
        if f.name != "source"
    }
    assert fields == {section: set(keys) for section, keys in ALL_KEYS.items()}


def test_relative_paths_resolve_against_cwd(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = write_toml(
        elsewhere / "config.toml",
        {"storage": {"data_dir": "d", "spool_dir": "s"}, "keys": {"recipients_file": "k.txt"}},
    )
    s = load_settings(path)
    assert s.storage.data_dir == tmp_path / "d"
    assert s.spool_dir == tmp_path / "s"
    assert s.keys.recipients_file == tmp_path / "k.txt"
    assert s.database_url == f"sqlite:///{tmp_path}/d/intake.db"


def test_file_selection_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(tmp_path / "arg.toml", {"limits": {"max_files": 1}})
    write_toml(tmp_path / "env.toml", {"limits": {"max_files": 2}})
    (tmp_path / "instance").mkdir()
    write_toml(tmp_path / "instance" / "config.toml", {"limits": {"max_files": 3}})

    assert load_settings().limits.max_files == 3
    monkeypatch.setenv("INTAKE_CONFIG", str(tmp_path / "env.toml"))
    assert load_settings().limits.max_files == 2
    assert load_settings(tmp_path / "arg.toml").limits.max_files == 1
    assert load_settings(str(tmp_path / "arg.toml")).limits.max_files == 1


def test_missing_named_file_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such file"):
        load_settings(tmp_path / "nope.toml")
    monkeypatch.setenv("INTAKE_CONFIG", "gone.toml")
    with pytest.raises(ConfigError, match=r"^gone\.toml: no such file"):
        load_settings()


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[limits\nmax_files = 3\n")
    with pytest.raises(ConfigError, match=r"config\.toml: invalid TOML"):
        load_settings("config.toml")


def test_text_that_is_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_bytes(b'[limits]\n\nsubmit_rate = "10 \xff hour"\n')
    with pytest.raises(ConfigError) as info:
        load_settings("config.toml")
    assert str(info.value) == "config.toml: invalid TOML: not UTF-8 text (at line 3)"


def test_unknown_section(tmp_path: Path) -> None:
    write_toml(tmp_path / "config.toml", {"server": {"https": True}, "limit": {"max_files": 3}})
    # [server] / https = true / (blank) / [limit]
    with pytest.raises(ConfigError, match=r"^config\.toml:4: \[limit\]: unknown section"):
        load_settings("config.toml")


def test_unknown_key(tmp_path: Path) -> None:
    write_toml(tmp_path / "config.toml", {"limits": {"max_files": 3, "max_file": 3}})
    with pytest.raises(ConfigError, match=r"^config\.toml:3: \[limits\] max_file: unknown key"):
        load_settings("config.toml")


def test_top_level_value_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("# intake\nhttps = true\n")
    with pytest.raises(ConfigError, match=r"^config\.toml:2: https: a value outside any section"):
        load_settings("config.toml")


def test_the_line_is_the_one_in_the_right_section(tmp_path: Path) -> None:
    """The same key name in two sections: the line is that of the offending one."""
    (tmp_path / "config.toml").write_text(
        "[server]\nhttps = true\n\n[limits]\nmax_files = 3\nhttps = true\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_settings("config.toml")
    assert str(info.value).startswith("config.toml:6: [limits] https: unknown key"), info.value

    # The other way round: the first one is wrong, the later one is fine.
    (tmp_path / "config.toml").write_text(
        "[limits]\nhttps = true\n\n[server]\nhttps = true\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_settings("config.toml")
    assert str(info.value).startswith("config.toml:2: [limits] https: unknown key"), info.value


#: Files with a mistake, and the line it is on: the key inside its section
#: whatever way TOML lets it be written, never a look-alike in a comment or a
#: string.
MISTAKE_LINES = [
    pytest.param(
        "[server]\nhttps = true\n\n[limits]\n  max_files   =  'x'  # five\n",
        5,
        "[limits] max_files: must be an integer",
        id="indented-with-comment",
    ),
    pytest.param(
        "[limits]\n# max_files = 20\n# max_files = 'x'\nmax_files = 'x'\n",
        4,
        "[limits] max_files: must be an integer",
        id="after-commented-out-lines",
    ),
    pytest.param(
        '[alerts]\nsmtp_host = """mail.example.org\n[limits]\nmax_files = \'x\'"""\n'
        "[limits]\nmax_files = 'x'\n",
        6,
        "[limits] max_files: must be an integer",
        id="look-alike-inside-a-multi-line-string",
    ),
    pytest.param(
        "[alerts]\nemail_to = [\n  'a@example.org',  # [limits]\n  'b@example.org',\n]\n"
        "[limits]\nmax_file = 3\n",
        7,
        "[limits] max_file: unknown key",
        id="after-an-array-over-several-lines",
    ),
    pytest.param(
        "[server]\nhttps = true\nlimits.max_files = 3\n",
        3,
        "[server] limits: unknown key",
        id="dotted-key-inside-a-section",
    ),
    pytest.param(
        "limits.max_request_mib = 10\nlimits.max_files = 'x'\n",
        2,
        "[limits] max_files: must be an integer",
        id="dotted-key-at-the-top",
    ),
    pytest.param(
        "# limits\nlimits = { max_request_mib = 10, max_files = 'x' }\n",
        2,
        "[limits] max_files: must be an integer",
        id="inline-table",
    ),
    pytest.param(
        '[limits]\n"max_request_mib" = 10\n\n"max_file" = 3\n',
        4,
        "[limits] max_file: unknown key",
        id="quoted-key",
    ),
    pytest.param(
        "[server]\nhttps = true\n[limits.max_files]\nvalue = 3\n",
        3,
        "[limits] max_files: must be an integer",
        id="sub-table-header",
    ),
    pytest.param(
        "[server]\nhttps = true\n[ limit . sub ]\nx = 1\n",
        3,
        "[limit]: unknown section",
        id="section-made-by-a-dotted-header",
    ),
    pytest.param(
        "[server]\r\nhttps = true\r\n[limits]\r\nmax_files = 'x'\r\n",
        4,
        "[limits] max_files: must be an integer",
        id="crlf-line-ends",
    ),
    pytest.param(
        "[limits]\nmax_request_mib = 10\nmax_file_mib = 20\n",
        3,
        "[limits] max_file_mib: must not exceed max_request_mib (10)",
        id="file-limit-above-request-limit",
    ),
    pytest.param(
        "[limits]\nmax_files = 3\nmax_request_mib = 10\n",
        3,
        "[limits] max_file_mib: must not exceed max_request_mib (10), got 500",
        id="request-limit-below-the-default-file-limit",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), MISTAKE_LINES)
def test_errors_name_the_line_of_the_key(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    (tmp_path / "config.toml").write_bytes(text.encode())
    with pytest.raises(ConfigError) as info:
        load_settings("config.toml")
    assert str(info.value).startswith(f"config.toml:{line}: {message}"), info.value


def test_a_mistake_in_the_example_file_names_its_line(tmp_path: Path) -> None:
    """The shipped file, full of commented-out keys, with one of them wrong."""
    lines = (ROOT / "config.example.toml").read_text(encoding="utf-8").splitlines()
    number = lines.index("# max_files = 20") + 1
    lines[number - 1] = "max_files = 1001"
    (tmp_path / "config.toml").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings("config.toml")
    assert str(info.value) == (
        f"config.toml:{number}: [limits] max_files: must be an integer between 0 and 1000, got 1001"
    )


def test_without_a_sure_line_the_file_alone_is_named() -> None:
    data = {"limits": {"max_files": "x"}}
    expected = "c.toml: [limits] max_files: must be an integer"
    for text in (None, "[server]\nhttps = true\n", "not toml at all"):
        with pytest.raises(ConfigError) as info:
            parse_settings(data, source="c.toml", text=text)
        assert str(info.value).startswith(expected), (text, info.value)


def test_a_key_is_shown_on_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[limits]\n"max\\nfile\\u2028" = 3\n')
    with pytest.raises(ConfigError) as info:
        load_settings("config.toml")
    message = str(info.value)
    assert message.startswith('config.toml:2: [limits] "max\\u000afile\\u2028": unknown key')
    assert len(message.splitlines()) == 1


BAD_VALUES = [
    ("server", "secret_key_file", 3, "must be a path"),
    ("server", "secret_key_file", "", "must be a non-empty path"),
    ("server", "https", "yes", "must be true or false"),
    ("server", "https", 1, "must be true or false"),
    ("server", "behind_proxy", "false", "must be true or false"),
    ("keys", "recipients_file", True, "must be a path"),
    ("storage", "data_dir", "  ", "must be a non-empty path"),
    ("storage", "backend", "s3", "must be 'filesystem' or 'database'"),
    ("storage", "spool_dir", 0, "must be a path"),
    ("database", "url", "mysql://u:pw@h/db", 'must be "" or an SQLAlchemy URL'),
    ("database", "url", "not a url", 'must be "" or an SQLAlchemy URL'),
    ("database", "url", 5, "must be a string"),
    ("limits", "storage_url", "localhost:6379", "must be a storage URI"),
    ("limits", "max_request_mib", 0, "must be an integer between 1 and 1048576"),
    ("limits", "max_file_mib", -1, "must be an integer between 1 and 1048576"),
    ("limits", "max_files", "x", "must be an integer between 0 and 1000"),
    ("limits", "max_files", 1001, "must be an integer between 0 and 1000"),
    ("limits", "max_files", True, "must be an integer between 0 and 1000"),
    ("limits", "max_files", 2.5, "must be an integer between 0 and 1000"),
    ("limits", "max_field_chars", 0, "must be an integer between 1 and 20000"),
    ("limits", "max_field_chars", 20001, "must be an integer between 1 and 20000"),
    ("limits", "submit_rate", "often", "must be a rate"),
    ("limits", "submit_rate", "0 per hour", "must be a rate"),
    ("limits", "submit_rate", "10 per fortnight", "must be a rate"),
    ("limits", "submit_rate", 10, "must be a rate"),
    ("limits", "behind_tor", "no", "must be true or false"),
    ("privacy", "record_danger_flag", 0, "must be true or false"),
    ("alerts", "language", "de", 'must be "ky" or "ru" or "uz" or "en"'),
]


@pytest.mark.parametrize(("section", "key", "value", "phrase"), BAD_VALUES)
def test_bad_values_name_file_line_and_key(
    tmp_path: Path, section: str, key: str, value: Any, phrase: str
) -> None:
    write_toml(tmp_path / "config.toml", {section: {key: value}})
    with pytest.raises(ConfigError) as info:
        load_settings("config.toml")
    message = str(info.value)
    assert message.startswith(f"config.toml:2: [{section}] {key}: {phrase}"), message
    assert len(message.splitlines()) == 1


def test_bad_value_message_shows_the_value(tmp_path: Path) -> None:
    write_toml(tmp_path / "config.toml", {"limits": {"max_files": "x"}})
    with pytest.raises(ConfigError) as info:
        load_settings("config.toml")
    assert str(info.value) == (
        "config.toml:2: [limits] max_files: must be an integer between 0 and 1000, got 'x'"
    )


def test_database_url_password_never_echoed(tmp_path: Path) -> None:
    write_toml(tmp_path / "config.toml", {"database": {"url": "mysql://u:hunter2@h/db"}})
    with pytest.raises(ConfigError) as info:
        load_settings("config.toml")
    assert "hunter2" not in str(info.value)


def test_file_limit_not_above_request_limit(tmp_path: Path) -> None:
    write_toml(tmp_path / "config.toml", {"limits": {"max_request_mib": 10, "max_file_mib": 20}})
    with pytest.raises(ConfigError, match=r"\[limits\] max_file_mib: must not exceed"):
        load_settings("config.toml")


@pytest.mark.parametrize(
    "rate", ["10 per hour", "10/hour", "1 per 5 minutes", "3/minute; 20 per day", "2 per Second"]
)
def test_good_rates(rate: str) -> None:
    assert parse_settings({"limits": {"submit_rate": rate}}).limits.submit_rate == rate


def test_empty_spool_dir_means_default(tmp_path: Path) -> None:
    s = parse_settings({"storage": {"data_dir": "/data", "spool_dir": ""}})
    assert s.storage.spool_dir is None
    assert s.spool_dir == Path("/data/spool")


def _uncommented_example() -> dict[str, Any]:
    """config.example.toml with every `# key = value` line switched on."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = re.sub(r"^# ([a-z_]+ = .*)$", r"\1", text, flags=re.MULTILINE)
    return tomllib.loads(text)


def test_example_file_documents_exactly_the_defaults() -> None:
    example = ROOT / "config.example.toml"
    assert dataclasses.replace(load_settings(example), source=None) == load_settings()
    data = _uncommented_example()
    # Every setting is there...
    assert {s: set(keys) for s, keys in data.items()} == {
        s: set(keys) for s, keys in ALL_KEYS.items()
    }
    # ...and each shows its default.
    assert parse_settings(data) == load_settings()


def test_settings_factory_writes_a_real_file(settings_factory: SettingsFactory) -> None:
    s = settings_factory(limits={"max_files": 7}, storage={"backend": "database"})
    assert s.source is not None and s.source.is_file()
    assert s.limits.max_files == 7
    assert s.storage.backend is StorageBackend.DATABASE


def test_secret_key_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "instance" / "secret_key"
    key = load_or_create_secret_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == key
    assert load_or_create_secret_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no temp file left
    assert load_or_create_secret_key(tmp_path / "other") != key


def test_short_secret_key_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret_key"
    path.write_bytes(b"")
    with pytest.raises(ConfigError, match="secret_key: the secret key is 0 bytes"):
        load_or_create_secret_key(path)


def test_config_imports_no_flask_or_sqlalchemy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, intake.config; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('flask', 'sqlalchemy')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_secret_key_unusable_path_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_bytes(b"")
    with pytest.raises(ConfigError, match="plain-file/secret_key: cannot read or create"):
        load_or_create_secret_key(tmp_path / "plain-file" / "secret_key")
