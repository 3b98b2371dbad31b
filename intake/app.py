"""The Flask application factory.

``create_app`` reads the configuration, refuses to start on anything unsafe
(a missing or malformed recipients file, a private key where public keys
belong, an unknown config key), then wires the request class that spools
uploads encrypted, the database, the envelope store and the blueprints.
"""

from __future__ import annotations

import logging
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, cast

from flask import Flask, Request, current_app, has_request_context, request
from flask_migrate import Migrate
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, ServiceUnavailable
from werkzeug.middleware.proxy_fix import ProxyFix

from intake.config import ConfigError, Settings, load_or_create_secret_key, load_settings
from intake.crypto.keys import (
    KeyFileError,
    is_demo_recipients,
    load_identities,
    load_recipients,
    recipient_fingerprint,
)
from intake.crypto.spool import EncryptedSpool, SpoolLimitExceededError
from intake.demo import DEMO_IDENTITY
from intake.models import db
from intake.schema import MAX_TEXT
from intake.signing import Ed25519PrivateKey, SigningKeyError, load_or_create_signing_key
from intake.store import EnvelopeStore, make_store

__all__ = [
    "IntakeFlask",
    "IntakeState",
    "SpoolingRequest",
    "StartupError",
    "create_app",
    "intake_state",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The server must not start; the message says which file, key or line to fix."""


@dataclass(frozen=True)
class IntakeState:
    """What the views need besides the database: settings, public keys, the store."""

    settings: Settings
    recipients: list[Any]
    fingerprints: list[str]
    demo: bool
    store: EnvelopeStore
    #: Mixed into every receipt derivation (see intake.crypto.receipts).
    pepper: bytes
    #: Signs export bundles (see intake.signing); staff pin its public half.
    signing_key: Ed25519PrivateKey


def intake_state() -> IntakeState:
    """The running app's :class:`IntakeState`."""
    return cast(IntakeState, current_app.extensions["intake"])


class UploadNotStored(ServiceUnavailable):
    """The upload could not be spooled (a full or read-only disk): nothing was kept."""


class _UploadSpool(EncryptedSpool):
    """An encrypted spool whose failures answer with a page, not a 500.

    Werkzeug swallows a ValueError while parsing (the form would just look
    empty), and an OSError (a full or read-only disk) would escape the view's
    own error handling: both become HTTP errors. The spool is closed at once,
    so the disk space it held comes back now, not whenever the garbage
    collector breaks the traceback's reference cycle.
    """

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except SpoolLimitExceededError:
            self.close()
            raise RequestEntityTooLarge("a file is larger than the limit") from None
        except OSError:
            self.close()
            raise UploadNotStored() from None


class SpoolingRequest(Request):
    """A request whose uploaded files are spooled encrypted, never in plaintext.

    Werkzeug's form parser asks ``_get_file_stream`` for a container for every
    file part; the default one is a plain temp file beyond 500 KB.
    """

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        settings = intake_state().settings
        directory = settings.spool_dir
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            return cast(IO[bytes], _UploadSpool(directory, limit=settings.max_file_bytes))
        except OSError:
            raise UploadNotStored() from None


class IntakeFlask(Flask):
    """Flask, but an unexpected error is logged without request data.

    Flask's default names the request path, and an exception's message can
    quote what the user sent (a decoding error shows the bytes). Logged here:
    the exception type, the endpoint name and the stack frames, nothing else.
    """

    def log_exception(
        self,
        exc_info: tuple[type, BaseException, TracebackType] | tuple[None, None, None],
    ) -> None:
        exc_type, _exc, trace = exc_info
        name = exc_type.__name__ if exc_type else "unknown error"
        frames = "".join(traceback.format_tb(trace)) if trace else ""
        endpoint = request.endpoint if has_request_context() else None
        self.logger.error("unhandled %s in %s\n%s", name, endpoint or "-", frames.rstrip())


class _NoAccessLog(logging.Filter):
    """Drops the development server's per-request lines: they name the client's address.

    Werkzeug writes ``<address> - - [<time>] "<request line>" <status>`` (and
    the same prefix before its request errors).
    """

    _LINE = re.compile(r"\S+ - - \[[^\]]*\] ")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and self._LINE.match(record.msg))


class _RefuseBadHost:
    """Answer 400 to a request whose Host header Werkzeug cannot route.

    Werkzeug raises while Flask sets up the request, before any error handler
    can render a page; without this, the client got a bare 500 with none of
    our headers.
    """

    def __init__(self, app: Flask, wsgi_app: Any) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            self.app.url_map.bind_to_environ(environ)
        except (HTTPException, ValueError):
            body = (
                b'<!doctype html><html lang="en"><head><meta charset="utf-8">'
                b"<title>Bad request</title></head><body><p>Bad request.</p></body></html>"
            )
            start_response(
                "400 Bad Request",
                [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Content-Length", str(len(body))),
                    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
                    ("X-Content-Type-Options", "nosniff"),
                    ("Cache-Control", "no-store"),
                    ("Referrer-Policy", "no-referrer"),
                ],
            )
            return [body]
        return self.wsgi_app(environ, start_response)


def _refuse_a_hidden_demo_key(recipients_file: Path, recipients: list[Any]) -> None:
    """Refuse to seal to the demo key once the demo marker is gone.

    The demo identity lies on this server (``make run`` made it): a recipients
    file that still lists its recipient without the marker on its first line
    (so no banner shows) would seal every report to a key a seizure reads.
    """
    if not DEMO_IDENTITY.is_file():
        return
    demo_text = DEMO_IDENTITY.read_bytes()
    demo_recipients = {str(i.to_public()) for i in load_identities(demo_text, str(DEMO_IDENTITY))}
    if demo_recipients & {str(r) for r in recipients}:
        raise StartupError(
            f"{recipients_file}: lists the demo key, whose private half is "
            f"{DEMO_IDENTITY} on this server; remove that line (or keep the demo "
            "marker as the first line while you are only trying intake out)"
        )


def _read_only_database_is_a_disconnect(context: ExceptionContext) -> None:
    """Drop a connection that SQLite opened read-only, so the next one can write.

    SQLite opens a file it cannot write read-only without a word, and that
    connection would stay in the pool after the file became writable again.
    """
    if "readonly database" in str(context.original_exception):
        context.is_disconnect = True


def create_app(config_path: str | None = None, **overrides: Any) -> Flask:
    """Build the app; raise :class:`StartupError` when the configuration is unsafe.

    ``overrides`` are Flask config values for tests (e.g. ``WTF_CSRF_ENABLED``).
    """
    try:
        settings = load_settings(config_path)
        recipients_file = settings.keys.recipients_file
        recipients = load_recipients(recipients_file)
        demo = is_demo_recipients(recipients_file)
        if not demo:
            _refuse_a_hidden_demo_key(recipients_file, recipients)
    except (ConfigError, KeyFileError) as exc:
        raise StartupError(str(exc)) from None

    app = IntakeFlask(__name__, instance_path=str(Path("instance").absolute()))
    app.request_class = SpoolingRequest
    settings.storage.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    secure = settings.server.https
    app.config.update(
        SECRET_KEY=load_or_create_secret_key(settings.server.secret_key_file),
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        # Text fields are parsed in memory: cap them, and the number of parts.
        # The cap is the longest answer any form takes (MAX_TEXT characters,
        # 4 bytes at most each in UTF-8) and some room, whatever
        # [limits] max_field_chars says: the forms enforce that (see
        # intake.forms.MaxChars), so an answer that is too long gets a form
        # error that keeps what was typed, not a 413 that loses it. (Werkzeug
        # also holds each chunk of a multipart body it reads, 64 KiB, to this
        # cap: a cap below that would refuse every larger request, uploads too.)
        MAX_FORM_MEMORY_SIZE=MAX_TEXT * 4 + 1024,
        MAX_FORM_PARTS=settings.limits.max_files + 200,
        SESSION_COOKIE_NAME="__Host-session" if secure else "intake_session",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PREFERRED_URL_SCHEME="https" if secure else "http",
        # A stressed person may take long over the form; the token is still
        # bound to their session cookie.
        WTF_CSRF_TIME_LIMIT=6 * 3600,
        WTF_CSRF_SSL_STRICT=secure,
    )
    app.config.update(overrides)
    app.wsgi_app = _RefuseBadHost(app, app.wsgi_app)  # type: ignore[method-assign]
    if settings.server.behind_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]

    db.init_app(app)
    Migrate(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    with app.app_context():
        event.listen(db.engine, "handle_error", _read_only_database_is_a_disconnect)
        store = make_store(settings, db.engine)
    try:
        signing_key = load_or_create_signing_key(settings.server.signing_key_file)
    except SigningKeyError as exc:
        raise StartupError(str(exc)) from None
    app.extensions["intake"] = IntakeState(
        settings=settings,
        recipients=recipients,
        fingerprints=[recipient_fingerprint(r) for r in recipients],
        demo=demo,
        store=store,
        pepper=load_or_create_secret_key(settings.server.receipt_pepper_file),
        signing_key=signing_key,
    )

    from intake.i18n_web import init_i18n

    init_i18n(app)  # Flask-Babel; the language from ?lang=, the cookie or Accept-Language
    from intake.views import register_views

    register_views(app)
    from intake.limits import init_limits

    init_limits(app, settings)
    from intake.cli import register_cli

    register_cli(app)
    logging.getLogger("werkzeug").addFilter(_NoAccessLog())
    return app
