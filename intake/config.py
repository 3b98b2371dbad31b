"""TOML configuration → one frozen, typed, validated :class:`Settings` object.

Which file is read, first match wins:

1. the ``path`` argument of :func:`load_settings`,
2. the ``INTAKE_CONFIG`` environment variable,
3. ``instance/config.toml`` if it exists,
4. none: every setting takes its default.

Every section and key is checked. An unknown section or key, or a value of the
wrong type or out of range, raises :class:`ConfigError` whose one-line message
names the file, the line and the key, e.g.
``config.toml:12: [limits] max_files: must be an integer between 0 and 1000, got 'x'``.
tomllib gives no positions, so the line is found by scanning the text (see
:class:`_KeyLines`); where it cannot be found for certain, the message names
the file alone rather than risk a wrong line.

Relative paths in the file (and the defaults, which are relative) are resolved
against the current working directory *at load time*, so the loaded settings
hold absolute paths and a later ``chdir`` changes nothing. A leading ``~``
means the home directory. (A ``Settings()`` built directly, not loaded, keeps
the relative defaults.)

Standard library only: this module must not import Flask or SQLAlchemy.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from intake.schema import MAX_TEXT

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_VAR",
    "SECRET_KEY_BYTES",
    "ConfigError",
    "DatabaseSettings",
    "KeysSettings",
    "LimitsSettings",
    "PrivacySettings",
    "ServerSettings",
    "Settings",
    "StorageBackend",
    "StorageSettings",
    "find_config_file",
    "load_or_create_secret_key",
    "load_settings",
    "parse_settings",
]

ENV_VAR = "INTAKE_CONFIG"
DEFAULT_CONFIG_PATH = Path("instance/config.toml")
SECRET_KEY_BYTES = 32


class ConfigError(ValueError):
    """A configuration problem; the message names the file, the line and the key."""


class StorageBackend(StrEnum):
    FILESYSTEM = "filesystem"
    DATABASE = "database"


@dataclass(frozen=True)
class ServerSettings:
    #: Flask's secret key (32 random bytes), created with mode 0600 if missing.
    secret_key_file: Path = Path("instance/secret_key")
    #: Served over HTTPS: Secure/__Host- cookies and HSTS.
    https: bool = False
    #: Behind a reverse proxy that sets X-Forwarded-* headers.
    behind_proxy: bool = False
    #: The pepper mixed into receipt derivations (32 random bytes, 0600).
    #: Losing it makes every receipt useless; keep it in backups of the server.
    receipt_pepper_file: Path = Path("instance/receipt_pepper")
    #: A signed-in reporter is signed out after this many idle minutes.
    reporter_session_minutes: int = 30
    #: The Ed25519 key that signs export bundles (PEM, 0600, made if missing).
    #: Staff pin its public half with ``intake-review trust``.
    signing_key_file: Path = Path("instance/signing_key")
    #: Where "Leave this site quickly" goes: a neutral site nobody would
    #: wonder about in a browser's history.
    leave_url: str = "https://www.google.com/"


@dataclass(frozen=True)
class KeysSettings:
    #: Public age recipients the reports are sealed to.
    recipients_file: Path = Path("keys/recipients.txt")


@dataclass(frozen=True)
class StorageSettings:
    data_dir: Path = Path("instance/data")
    backend: StorageBackend = StorageBackend.FILESYSTEM
    #: Where encrypted upload spools go; None means ``<data_dir>/spool``.
    spool_dir: Path | None = None


@dataclass(frozen=True)
class DatabaseSettings:
    #: SQLAlchemy URL; "" means ``sqlite:///<absolute data_dir>/intake.db``.
    url: str = ""


@dataclass(frozen=True)
class LimitsSettings:
    #: Flask-Limiter storage URI (``memory://``, ``redis://…``).
    storage_url: str = "memory://"
    max_request_mib: int = 500
    max_file_mib: int = 500
    max_files: int = 20
    #: The longest answer a text field of the forms takes, in characters: at
    #: most :data:`intake.schema.MAX_TEXT`, the longest text report.json holds.
    max_field_chars: int = MAX_TEXT
    #: Flask-Limiter rate string for submissions, per client.
    submit_rate: str = "10 per hour"
    #: Flask-Limiter rate string for submissions from everyone together: the
    #: backstop when clients can't be told apart (Tor) or change addresses.
    global_submit_rate: str = "300 per hour"
    #: Failed receipt sign-ins allowed per client, and from everyone together.
    signin_failure_rate: str = "10 per hour"
    global_signin_failure_rate: str = "100 per hour"
    #: Served as an onion service: every client arrives from one address, so
    #: rate limits can't be per address.
    behind_tor: bool = False


@dataclass(frozen=True)
class StaffSettings:
    #: A signed-in staff member is signed out after this many idle minutes.
    session_minutes: int = 30
    #: Failed staff sign-ins allowed per account and per client.
    signin_failure_rate_per_account: str = "5 per 15 minutes"
    signin_failure_rate_per_client: str = "20 per hour"


@dataclass(frozen=True)
class RetentionSettings:
    #: Days an envelope stays on the server after staff acknowledged holding it.
    purge_after_ack_days: int = 0
    #: Envelopes nobody collected are purged after this many days.
    max_age_days: int = 90
    #: The staff list warns this many days before such a purge.
    warn_days: int = 7
    #: Cases whose envelopes are all purged are forgotten (rows, replies,
    #: sessions) this many days after they arrived; 0 keeps them.
    case_max_age_days: int = 365


@dataclass(frozen=True)
class AlertSettings:
    #: At most one alert per this many minutes (batched, so arrival times don't leak).
    interval_minutes: int = 60
    #: Addresses that get a content-free e-mail when something new arrived.
    email_to: tuple[str, ...] = ()
    email_from: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    #: Upgrade the SMTP connection with STARTTLS (refuse to send without it).
    smtp_starttls: bool = True
    smtp_user: str = ""
    #: A file holding the SMTP password (kept out of the config file).
    smtp_password_file: Path | None = None
    #: A URL that gets a content-free POST when something new arrived.
    webhook_url: str = ""
    #: The language of the alert e-mail: "ky", "ru", "uz" or "en".
    language: str = "en"


@dataclass(frozen=True)
class PrivacySettings:
    #: Keep the "danger now" flag in clear in the database (for triage order).
    record_danger_flag: bool = False


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    keys: KeysSettings = field(default_factory=KeysSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    staff: StaffSettings = field(default_factory=StaffSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    #: The file these settings were read from; None when all are defaults.
    source: Path | None = None

    @property
    def database_url(self) -> str:
        """The configured URL, else a SQLite file in the data directory."""
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.storage.data_dir.absolute() / 'intake.db'}"

    @property
    def spool_dir(self) -> Path:
        """The configured spool directory, else ``<data_dir>/spool``."""
        if self.storage.spool_dir is not None:
            return self.storage.spool_dir
        return self.storage.data_dir / "spool"

    @property
    def max_request_bytes(self) -> int:
        return self.limits.max_request_mib * 1024 * 1024

    @property
    def max_file_bytes(self) -> int:
        return self.limits.max_file_mib * 1024 * 1024


# --- validation ---------------------------------------------------------------

# A validator turns a raw TOML value into the typed value, or returns an error
# phrase ("must be …"); the caller adds file, key and the offending value.
_Check = Callable[[Any], Any]


class _Invalid(Exception):
    def __init__(self, phrase: str, show_value: bool = True) -> None:
        super().__init__(phrase)
        self.phrase = phrase
        self.show_value = show_value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("must be true or false")
    return value


def _int_between(low: int, high: int) -> _Check:
    def check(value: Any) -> int:
        # bool is an int subclass: `max_files = true` must not mean 1.
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _Invalid(f"must be an integer between {low} and {high}")
        return value

    return check


def _path(*, empty_is_none: bool = False) -> _Check:
    def check(value: Any) -> Path | None:
        if not isinstance(value, str) or "\0" in value:
            raise _Invalid("must be a path (a string)")
        if not value.strip():
            if empty_is_none:
                return None
            raise _Invalid("must be a non-empty path")
        return Path(value).expanduser().absolute()

    return check


def _choice(enum: type[StrEnum]) -> _Check:
    def check(value: Any) -> StrEnum:
        try:
            return enum(value)
        except ValueError:
            options = " or ".join(repr(m.value) for m in enum)
            raise _Invalid(f"must be {options}") from None

    return check


_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*://", re.IGNORECASE)
_DB_DIALECTS = ("sqlite", "postgresql")


def _database_url(value: Any) -> str:
    # The URL may hold a password: never echo it back in the error.
    if not isinstance(value, str):
        raise _Invalid("must be a string", show_value=False)
    if value == "":
        return value
    if not _SCHEME.match(value) or value.split(":", 1)[0].split("+", 1)[0] not in _DB_DIALECTS:
        raise _Invalid(
            'must be "" or an SQLAlchemy URL starting sqlite:// or postgresql[+driver]://',
            show_value=False,
        )
    return value


def _storage_url(value: Any) -> str:
    if not isinstance(value, str) or not _SCHEME.match(value):
        raise _Invalid("must be a storage URI such as memory:// or redis://host:6379", False)
    return value


# The rate-string grammar of the `limits` library used by Flask-Limiter:
# "10 per hour", "10/hour", "100 per 5 minutes", several joined by , ; or |.
_RATE_ITEM = re.compile(
    r"\s*([0-9]+)\s*(?:/|\s+per\s+)\s*(?:[0-9]+\s*)?(?:second|minute|hour|day|month|year)s?\s*",
    re.IGNORECASE,
)


def _rate(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid('must be a rate such as "10 per hour"')
    for item in re.split(r"[,;|]", value):
        match = _RATE_ITEM.fullmatch(item)
        if match is None or int(match.group(1)) < 1:
            raise _Invalid('must be a rate such as "10 per hour"')
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid("must be a string")
    return value


_EMAIL = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")


def _email_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(item, str) and _EMAIL.fullmatch(item) for item in value
    ):
        raise _Invalid('must be a list of e-mail addresses, e.g. ["alerts@example.org"]')
    return tuple(value)


def _email_or_empty(value: Any) -> str:
    if not isinstance(value, str) or (value and not _EMAIL.fullmatch(value)):
        raise _Invalid('must be "" or an e-mail address')
    return value


_LANGUAGES = ("ky", "ru", "uz", "en")  # as intake.i18n.LANGUAGES (this module stays stdlib-only)


def _language(value: Any) -> str:
    if value not in _LANGUAGES:
        raise _Invalid("must be " + " or ".join(f'"{code}"' for code in _LANGUAGES))
    return str(value)


def _leave_url(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"https://[^\s\"'<>]+", value):
        raise _Invalid("must be an https:// URL")
    return value


def _http_url_or_empty(value: Any) -> str:
    # A webhook URL may carry a token: never echo it back.
    if not isinstance(value, str) or (value and not re.match(r"https?://[^\s]+$", value)):
        raise _Invalid('must be "" or an http(s):// URL', show_value=False)
    return value


_SCHEMA: dict[str, tuple[type[Any], dict[str, _Check]]] = {
    "server": (
        ServerSettings,
        {
            "secret_key_file": _path(),
            "https": _bool,
            "behind_proxy": _bool,
            "receipt_pepper_file": _path(),
            "reporter_session_minutes": _int_between(1, 24 * 60),
            "signing_key_file": _path(),
            "leave_url": _leave_url,
        },
    ),
    "keys": (KeysSettings, {"recipients_file": _path()}),
    "storage": (
        StorageSettings,
        {
            "data_dir": _path(),
            "backend": _choice(StorageBackend),
            "spool_dir": _path(empty_is_none=True),
        },
    ),
    "database": (DatabaseSettings, {"url": _database_url}),
    "limits": (
        LimitsSettings,
        {
            "storage_url": _storage_url,
            "max_request_mib": _int_between(1, 1024 * 1024),
            "max_file_mib": _int_between(1, 1024 * 1024),
            "max_files": _int_between(0, 1000),
            "max_field_chars": _int_between(1, MAX_TEXT),
            "submit_rate": _rate,
            "global_submit_rate": _rate,
            "signin_failure_rate": _rate,
            "global_signin_failure_rate": _rate,
            "behind_tor": _bool,
        },
    ),
    "privacy": (PrivacySettings, {"record_danger_flag": _bool}),
    "staff": (
        StaffSettings,
        {
            "session_minutes": _int_between(1, 24 * 60),
            "signin_failure_rate_per_account": _rate,
            "signin_failure_rate_per_client": _rate,
        },
    ),
    "retention": (
        RetentionSettings,
        {
            "purge_after_ack_days": _int_between(0, 3650),
            "max_age_days": _int_between(1, 3650),
            "warn_days": _int_between(0, 365),
            "case_max_age_days": _int_between(0, 36500),
        },
    ),
    "alerts": (
        AlertSettings,
        {
            "interval_minutes": _int_between(1, 7 * 24 * 60),
            "email_to": _email_list,
            "email_from": _email_or_empty,
            "smtp_host": _string,
            "smtp_port": _int_between(1, 65535),
            "smtp_starttls": _bool,
            "smtp_user": _string,
            "smtp_password_file": _path(empty_is_none=True),
            "webhook_url": _http_url_or_empty,
            "language": _language,
        },
    ),
}

# The defaults of these are relative paths; they resolve like the file's own.
_DEFAULT_PATHS = (
    ("server", "secret_key_file"),
    ("server", "receipt_pepper_file"),
    ("server", "signing_key_file"),
    ("keys", "recipients_file"),
    ("storage", "data_dir"),
)


# --- where a key is in the file -----------------------------------------------

KeyPath = tuple[str, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# A value that is neither a string, an array nor an inline table: a number, a
# boolean, or a date-time (which may have a space between date and time).
_SCALAR = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}[^\s,\]}#]*|[^\s,\]}#]+")
_TRIPLE_QUOTES = ('"""', "'''")


class _Unreadable(Exception):
    """The scanner met text it does not understand: no line numbers then."""


class _KeyLines:
    """The line on which each table and key of a TOML text is first defined.

    tomllib gives no positions, so this scanner reads just enough TOML to
    skip values and follow keys: ``[table]`` and ``[[array]]`` headers,
    dotted, quoted and literal keys, inline tables (their keys count as keys
    of the table they make), arrays over several lines, every kind of string
    (a multi-line string holding ``[limits]`` is not a header), and comments
    (a commented-out ``# max_files = 3`` is not a key). ``lines`` maps a key
    path such as ``("limits", "max_files")`` to its 1-based line; a table made
    implicitly (by ``[a.b]`` or ``a.b = 1``) gets the line that made it.

    Only meant for text tomllib has accepted; anything unexpected raises
    :class:`_Unreadable` (see :func:`_key_lines`, which also cross-checks).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[KeyPath, int] = {}
        self._document()

    def _document(self) -> None:
        table: KeyPath = ()
        while True:
            self._skip_blank_lines()
            if self.pos >= len(self.text):
                return
            start = self.pos
            if self.text.startswith("[", start):
                closing = "]]" if self.text.startswith("[[", start) else "]"
                self.pos += len(closing)
                self._skip_spaces()
                table = self._key()
                self._expect(closing)
                self._define((), table, start)
            else:
                key = self._key()
                self._expect("=")
                self._skip_spaces()
                self._define(table, key, start)
                self._value(table + key)
            self._skip_spaces()
            self._skip_comment()
            if self.pos < len(self.text) and not self.text.startswith(("\n", "\r\n"), self.pos):
                raise _Unreadable(self.pos)

    def _define(self, base: KeyPath, key: KeyPath, start: int) -> None:
        line = self.text.count("\n", 0, start) + 1
        for end in range(1, len(key) + 1):
            self.lines.setdefault(base + key[:end], line)

    def _skip_spaces(self) -> None:
        while self.text.startswith((" ", "\t"), self.pos):
            self.pos += 1

    def _skip_comment(self) -> None:
        if self.text.startswith("#", self.pos):
            end = self.text.find("\n", self.pos)
            self.pos = len(self.text) if end < 0 else end

    def _skip_blank_lines(self) -> None:
        """Spaces, newlines and comments (between statements, or inside an array)."""
        while True:
            self._skip_spaces()
            self._skip_comment()
            if self.text.startswith("\n", self.pos):
                self.pos += 1
            elif self.text.startswith("\r\n", self.pos):
                self.pos += 2
            else:
                return

    def _expect(self, token: str) -> None:
        if not self.text.startswith(token, self.pos):
            raise _Unreadable(self.pos)
        self.pos += len(token)

    def _key(self) -> KeyPath:
        """A dotted key, and the spaces after it."""
        parts = [self._simple_key()]
        self._skip_spaces()
        while self.text.startswith(".", self.pos):
            self.pos += 1
            self._skip_spaces()
            parts.append(self._simple_key())
            self._skip_spaces()
        return tuple(parts)

    def _simple_key(self) -> str:
        start = self.pos
        if self.text.startswith('"', start):
            self._basic_string()
            # tomllib undoes the escapes: "max\u005ffiles" is max_files.
            return str(tomllib.loads("k = " + self.text[start : self.pos])["k"])
        if self.text.startswith("'", start):
            self._literal_string()
            return self.text[start + 1 : self.pos - 1]
        match = _BARE_KEY.match(self.text, start)
        if match is None:
            raise _Unreadable(start)
        self.pos = match.end()
        return match.group()

    def _basic_string(self) -> None:
        end = self.pos + 1
        while not self.text.startswith('"', end):
            if end >= len(self.text) or self.text.startswith(("\n", "\r"), end):
                raise _Unreadable(self.pos)
            end += 2 if self.text.startswith("\\", end) else 1
        self.pos = end + 1

    def _literal_string(self) -> None:
        end = self.text.find("'", self.pos + 1)
        if end < 0 or "\n" in self.text[self.pos : end]:
            raise _Unreadable(self.pos)
        self.pos = end + 1

    def _multiline_string(self, quotes: str) -> None:
        escapes = quotes == _TRIPLE_QUOTES[0]
        end = self.pos + 3
        while not self.text.startswith(quotes, end):
            if end >= len(self.text):
                raise _Unreadable(self.pos)
            end += 2 if escapes and self.text.startswith("\\", end) else 1
        # Up to two more quotes just before the closing three belong to the string.
        end += 3
        for _ in range(2):
            if self.text.startswith(quotes[0], end):
                end += 1
        self.pos = end

    def _value(self, path: KeyPath | None) -> None:
        """Skip one value; ``path`` names it if it is an inline table whose keys count."""
        text, start = self.text, self.pos
        if text.startswith(_TRIPLE_QUOTES, start):
            self._multiline_string(text[start : start + 3])
        elif text.startswith('"', start):
            self._basic_string()
        elif text.startswith("'", start):
            self._literal_string()
        elif text.startswith("[", start):
            self._array()
        elif text.startswith("{", start):
            self._inline_table(path)
        else:
            match = _SCALAR.match(text, start)
            if match is None:
                raise _Unreadable(start)
            self.pos = match.end()

    def _array(self) -> None:
        self.pos += 1
        while True:
            self._skip_blank_lines()
            if self.text.startswith("]", self.pos):
                self.pos += 1
                return
            self._value(None)  # no key inside an array is a setting
            self._skip_blank_lines()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif not self.text.startswith("]", self.pos):
                raise _Unreadable(self.pos)

    def _inline_table(self, path: KeyPath | None) -> None:
        self.pos += 1
        self._skip_spaces()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return
        while True:
            self._skip_spaces()
            start = self.pos
            key = self._key()
            self._expect("=")
            self._skip_spaces()
            if path is not None:
                self._define(path, key, start)
            self._value(None if path is None else path + key)
            self._skip_spaces()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif self.text.startswith("}", self.pos):
                self.pos += 1
                return
            else:
                raise _Unreadable(self.pos)


def _key_lines(text: str, data: Mapping[str, Any]) -> dict[KeyPath, int]:
    """:attr:`_KeyLines.lines` for ``text``, or {} unless they agree with ``data``.

    ``data`` is what tomllib made of ``text``: every section, and every key of
    every section, must have been found, and nothing else, or no line is trusted.
    """
    try:
        lines = _KeyLines(text).lines
    except (_Unreadable, IndexError, ValueError):
        return {}
    expected = {(name,) for name in data} | {
        (name, key) for name, table in data.items() if isinstance(table, Mapping) for key in table
    }
    found = {
        key_path
        for key_path in lines
        if len(key_path) == 1 or (len(key_path) == 2 and isinstance(data.get(key_path[0]), Mapping))
    }
    return lines if found == expected else {}


def _shown(key: str) -> str:
    """A key as TOML would write it, on one line: bare if it can be, else quoted."""
    if _BARE_KEY.fullmatch(key):
        return key
    escaped = []
    for ch in key:
        if ch in '"\\':
            escaped.append("\\" + ch)
        elif ch.isprintable():
            escaped.append(ch)
        else:
            escaped.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return '"' + "".join(escaped) + '"'


def parse_settings(
    data: Mapping[str, Any],
    source: str = "<settings>",
    path: Path | None = None,
    text: str | None = None,
) -> Settings:
    """Validate an already-parsed TOML document (a dict of sections).

    ``source`` is the name used in error messages; ``path`` is recorded as
    :attr:`Settings.source`. ``text``, the TOML ``data`` was parsed from, lets
    an error name the line too: ``source:line: [section] key: ...``.
    """
    found_lines: dict[KeyPath, int] | None = None

    def where(*key_paths: KeyPath) -> str:
        """``source:line`` of the first of ``key_paths`` found in the text, else ``source``."""
        nonlocal found_lines
        if found_lines is None:
            found_lines = {} if text is None else _key_lines(text, data)
        for key_path in key_paths:
            if key_path in found_lines:
                return f"{source}:{found_lines[key_path]}"
        return source

    sections: dict[str, Any] = {}
    for name, table in data.items():
        known = ", ".join(f"[{s}]" for s in _SCHEMA)
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"{where((name,))}: {_shown(name)}: a value outside any section (sections: {known})"
            )
        if name not in _SCHEMA:
            raise ConfigError(
                f"{where((name,))}: [{_shown(name)}]: unknown section (known: {known})"
            )
        cls, checks = _SCHEMA[name]
        values: dict[str, Any] = {}
        for key, raw in table.items():
            if key not in checks:
                known = ", ".join(checks)
                raise ConfigError(
                    f"{where((name, key))}: [{name}] {_shown(key)}: unknown key (known: {known})"
                )
            try:
                values[key] = checks[key](raw)
            except _Invalid as exc:
                shown = f", got {raw!r}" if exc.show_value else ""
                raise ConfigError(
                    f"{where((name, key))}: [{name}] {key}: {exc.phrase}{shown}"
                ) from None
        sections[name] = cls(**values)
    for name, key in _DEFAULT_PATHS:
        section = sections.setdefault(name, _SCHEMA[name][0]())
        sections[name] = replace(section, **{key: getattr(section, key).absolute()})

    settings = Settings(**sections, source=path)
    if settings.limits.max_file_mib > settings.limits.max_request_mib:
        # The line of max_file_mib; if that is left at its default, of max_request_mib.
        raise ConfigError(
            f"{where(('limits', 'max_file_mib'), ('limits', 'max_request_mib'))}: "
            f"[limits] max_file_mib: must not exceed max_request_mib "
            f"({settings.limits.max_request_mib}), got {settings.limits.max_file_mib}"
        )
    return settings


def find_config_file(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The file :func:`load_settings` reads, or None for all defaults."""
    if path is not None and str(path) != "":
        return Path(path)
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(env)
    if DEFAULT_CONFIG_PATH.is_file():
        return DEFAULT_CONFIG_PATH
    return None


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load and validate the configuration (see the module docstring)."""
    found = find_config_file(path)
    if found is None:
        return parse_settings({}, source="<defaults>")
    source = str(found)
    try:
        raw = found.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{source}: invalid TOML: not UTF-8 text (at line {line})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    return parse_settings(data, source=source, path=found.absolute(), text=text)


def _create_secret_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(SECRET_KEY_BYTES))
            out.flush()
            os.fsync(out.fileno())
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process won the race; use its key
    finally:
        tmp.unlink(missing_ok=True)


def load_or_create_secret_key(path: Path) -> bytes:
    """Read the secret key file, creating it (mode 0600, 32 random bytes) if missing.

    Creation is atomic: the key is written to a private temp file, fsynced and
    hard-linked into place, so a crash never leaves a short key and two
    processes starting at once end up with the same key.
    """
    try:
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            _create_secret_key(path)
            key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read or create the secret key: {exc.strerror}") from None
    if len(key) < SECRET_KEY_BYTES:
        raise ConfigError(
            f"{path}: the secret key is {len(key)} bytes, at least {SECRET_KEY_BYTES} needed "
            "(delete the file to have a new one made)"
        )
    return key
