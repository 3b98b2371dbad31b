"""The blueprints, one per audience, and what every response shares.

Every response carries the security headers; every error has its own page in
the site's look, with no stack trace and no version.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, abort, current_app, render_template, request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import HTTPException
from werkzeug.wsgi import LimitedStream

from intake.app import intake_state
from intake.crypto.envelope import AttachmentSource
from intake.crypto.spool import EncryptedSpool
from intake.i18n_web import lazy_gettext, ngettext
from intake.limits import retry_after_seconds
from intake.schema import MAX_FILE_NAME

__all__ = ["register_views", "render_error", "spooled_uploads"]

#: Exactly what the pages need: our own stylesheet and images, forms posting to us.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

#: Title and message of each error page; lazy, so each page is in the request's language.
ERROR_TEXT: dict[int, tuple[str, str]] = {
    400: (
        lazy_gettext("The request could not be read"),
        lazy_gettext("Please go back and try again."),
    ),
    403: (lazy_gettext("Not allowed"), lazy_gettext("This page is not available to you.")),
    404: (lazy_gettext("Page not found"), lazy_gettext("There is no page at this address.")),
    405: (lazy_gettext("Not allowed"), lazy_gettext("This page cannot be used this way.")),
    413: (
        lazy_gettext("Too large"),
        lazy_gettext(
            "What you sent is larger than this site accepts. Nothing was saved. "
            "Please send fewer or smaller files."
        ),
    ),
    429: (lazy_gettext("Too many attempts"), lazy_gettext("Please wait a while and try again.")),
    500: (
        lazy_gettext("Something went wrong"),
        lazy_gettext("Nothing was saved. Please try again later."),
    ),
    503: (
        lazy_gettext("Not saved"),
        lazy_gettext(
            "Your report could not be saved just now, and nothing was kept. Please try again later."
        ),
    ),
}


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), interest-cohort=()"
    if response.mimetype == "text/html" or "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"
    if intake_state().settings.server.https:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    headers.pop("Server", None)
    return response


def spooled_uploads(files: list[FileStorage]) -> list[AttachmentSource]:
    """The chosen files as seal-ready sources (empty file inputs are skipped)."""
    sources = []
    for item in files:
        if not item.filename:
            continue
        spool = item.stream
        if not isinstance(spool, EncryptedSpool):  # pragma: no cover - request class guarantees it
            raise TypeError("uploads must be spooled encrypted")
        spool.seek(0)
        name = item.filename[:MAX_FILE_NAME]  # the report keeps at most this much of it
        sources.append(AttachmentSource(name, spool.size, spool.sha256, spool.reader))
    return sources


def render_error(code: int, message: str | None = None) -> tuple[str, int]:
    """The error page for ``code``, in the site's look (any other 4xx reads like a 400)."""
    fallback = ERROR_TEXT[400] if 400 <= code < 500 else ERROR_TEXT[500]
    title, default_message = ERROR_TEXT.get(code, fallback)
    page = render_template("error.html", code=code, title=title, message=message or default_message)
    return page, code


#: The endpoints whose limits count failed sign-ins (see :func:`intake.limits.init_limits`):
#: the reporter's receipt sign-in and the staff sign-in. Their 429 page speaks of
#: signing in; the others (a new report, a follow-up) of reports.
SIGN_IN_ENDPOINTS = frozenset({"followup.sign_in_view", "staff.sign_in_post"})


def _wait_message(seconds: int | None) -> str | None:
    """What the 429 page says, for the limit the current request's endpoint hit."""
    if seconds is None:
        return None
    minutes = max(1, round(seconds / 60))
    if request.endpoint in SIGN_IN_ENDPOINTS:
        return ngettext(
            "Too many tries to sign in. To protect the codes, please wait and try again "
            "in about %(num)d minute.",
            "Too many tries to sign in. To protect the codes, please wait and try again "
            "in about %(num)d minutes.",
            minutes,
        )
    return ngettext(
        "To protect this service, it accepts only a few reports at a time. Nothing was saved. "
        "Please try again in about %(num)d minute.",
        "To protect this service, it accepts only a few reports at a time. Nothing was saved. "
        "Please try again in about %(num)d minutes.",
        minutes,
    )


def _drain_request_body() -> None:
    """Read and discard what the client is still sending.

    Answering 413 while the browser is still uploading, and closing, makes most
    browsers show "connection reset" instead of our page. Reading the rest
    first costs no more than accepting an upload of that size would; past
    four times the request limit we give up and let the connection close.
    """
    cap = 4 * intake_state().settings.max_request_bytes
    stream: Any = request.__dict__.get("stream")  # set once Werkzeug opened the body
    if stream is None:
        length = request.content_length
        raw = request.environ.get("wsgi.input")
        if raw is None:
            return
        if length is not None:
            if length > cap:
                return
            stream = LimitedStream(raw, length)
        elif "wsgi.input_terminated" in request.environ:
            stream = raw
        else:
            return
    drained = 0
    try:
        while drained <= cap:
            chunk = stream.read(1 << 16)
            if not chunk:
                break
            drained += len(chunk)
    except (OSError, HTTPException):
        # The client went away, or the body passed the limit we wrapped it in.
        return


def _handle_http_error(error: HTTPException) -> Any:
    code = error.code or 500
    if code < 400:
        return error
    if code in (413, 415, 503):
        _drain_request_body()
    # Keep what the error says about itself (Allow on a 405), not its body type.
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    if code == 429:
        seconds = retry_after_seconds(current_app)
        page, status = render_error(429, _wait_message(seconds))
        if seconds:
            headers["Retry-After"] = str(seconds)
        return page, status, headers
    page, status = render_error(code if code < 600 else 500)
    return page, status, headers


#: What a form may be posted as; anything else (JSON, say) is refused unread.
FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})


#: Said when a multipart body could not be read at all (see :func:`_only_forms`).
UNREADABLE_FORM = lazy_gettext(
    "This site could not read what your browser sent. Nothing was saved, and the form "
    "could not keep your answers. If you attached a file, its name may have unusual "
    "characters: rename the file and try again."
)


def _only_forms() -> tuple[str, int] | None:
    """Refuse bodies that are not forms, and url-encoded ones larger than a form needs.

    Flask-WTF would read a JSON body as form data; and Werkzeug reads a
    url-encoded body whole into memory, without the per-field cap it applies
    to multipart. The site's own large form is multipart; its url-encoded
    forms (sign-in, confirmations) are tiny.

    A multipart body Werkzeug cannot parse (a part header that is not UTF-8,
    such as a file name in a legacy encoding) comes out as an empty form,
    which would read as "every answer missing". Every form of the site carries
    at least its token, so an empty one gets a page that says what happened.
    """
    if request.method not in ("POST", "PUT", "PATCH") or request.routing_exception is not None:
        return None  # a 404 or 405 says more than a 415
    if request.mimetype not in FORM_TYPES:
        abort(415)
    if request.mimetype == "application/x-www-form-urlencoded":
        limit = current_app.config["MAX_FORM_MEMORY_SIZE"]
        if request.content_length is None or request.content_length > limit:
            abort(413)
        return None
    try:
        unreadable = not request.form and not request.files
    except HTTPException:
        raise
    except Exception as exc:
        # The body broke on the wire (a malformed chunk, say) and the WSGI
        # server's reader raised while the form was read: an OSError, or
        # gunicorn's own ParseException types. Spool failures never get here
        # (intake.app._UploadSpool turns them into pages); anything else is
        # ours, and stays a logged 500.
        if isinstance(exc, OSError) or type(exc).__module__.startswith("gunicorn."):
            abort(400)
        raise
    if unreadable:
        return render_error(400, str(UNREADABLE_FORM))
    return None


def register_views(app: Flask) -> None:
    """Attach the blueprints, error pages and response headers to ``app``."""
    from intake.views.followup import followup
    from intake.views.meta import meta
    from intake.views.staff import staff
    from intake.views.submit import submit

    app.register_blueprint(submit)
    app.register_blueprint(followup)
    app.register_blueprint(meta)
    app.register_blueprint(staff)
    app.before_request(_only_forms)
    app.after_request(_security_headers)
    app.register_error_handler(HTTPException, _handle_http_error)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        state = intake_state()
        return {"demo_mode": state.demo, "leave_url": state.settings.server.leave_url}
