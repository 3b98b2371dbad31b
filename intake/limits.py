"""Rate limits that never store an IP address.

A client is keyed by an HMAC of its address under a secret that changes every
day (derived from the app's secret key and the UTC date, so every worker and
host computes the same key for the same client on the same day). Behind Tor
every client shares one address, so there the key is a random token kept in
the session cookie, and a global limit over everyone is the backstop.

Limits live in ``memory://`` for one process, or in Redis when several
workers or hosts must share them (``[limits] storage_url``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, request, session
from flask_limiter import Limiter

from intake.config import Settings
from intake.models import ReporterSession, db
from intake.sessions import token_hash

__all__ = ["client_key", "init_limits", "retry_after_seconds", "staff_account_key"]

_SESSION_TOKEN = "rl"  # noqa: S105 - a session key name, not a secret  # nosec B105


def _daily_secret(day: str) -> bytes:
    key = current_app.config["SECRET_KEY"]
    key_bytes = key if isinstance(key, bytes) else str(key).encode()
    return hmac.new(key_bytes, f"client-key:{day}".encode(), hashlib.sha256).digest()


def utc_day() -> str:
    """Today's UTC date: the secret of client and case keys changes with it."""
    return datetime.now(UTC).strftime("%Y-%m-%d")


def client_key() -> str:
    """The rate-limit key of the current client: never the address itself."""
    settings: Settings = current_app.extensions["intake"].settings
    if settings.limits.behind_tor:
        token = session.get(_SESSION_TOKEN)
        if not isinstance(token, str):
            token = secrets.token_urlsafe(16)
            session[_SESSION_TOKEN] = token
        return f"s:{token}"
    address = (request.remote_addr or "").encode()
    return "a:" + hmac.new(_daily_secret(utc_day()), address, hashlib.sha256).hexdigest()[:32]


def _everyone() -> str:
    return "everyone"


def staff_account_key() -> str:
    """The rate-limit key of the staff account a sign-in names: a keyed hash, never the name.

    Any typed name gets a key, so hitting this limit tells nothing about
    whether the account exists.
    """
    name = str(request.form.get("name", "")).strip().lower()[:100]
    return (
        "staff:"
        + hmac.new(_daily_secret("staff-account"), name.encode(), "sha256").hexdigest()[:32]
    )


def case_key() -> str:
    """The rate-limit key of a signed-in reporter's case (else the client's key).

    A keyed hash of the case id, so the limiter's storage names no case.
    """
    token = session.get("reporter")
    if isinstance(token, str) and len(token) <= 100:
        row = db.session.get(ReporterSession, token_hash(token))
        if row is not None:
            case = row.case_id.encode("ascii")
            return "c:" + hmac.new(_daily_secret(utc_day()), case, hashlib.sha256).hexdigest()[:32]
    return client_key()


def init_limits(app: Flask, settings: Settings) -> Limiter:
    """Attach a limiter to ``app`` and limit every state-changing public endpoint."""
    limiter = Limiter(
        client_key,
        app=app,
        storage_uri=settings.limits.storage_url,
        strategy="moving-window",
        key_prefix="intake",
        headers_enabled=False,
    )
    app.extensions["intake_limiter"] = limiter
    submit: Any = app.view_functions["submit.take"]
    submit = limiter.limit(settings.limits.submit_rate)(submit)
    submit = limiter.shared_limit(
        settings.limits.global_submit_rate, scope="submit-everyone", key_func=_everyone
    )(submit)
    app.view_functions["submit.take"] = submit

    def failed(response: Any) -> bool:
        return bool(response.status_code != 200)

    sign_in: Any = app.view_functions["followup.sign_in_view"]
    sign_in = limiter.limit(settings.limits.signin_failure_rate, deduct_when=failed)(sign_in)
    sign_in = limiter.shared_limit(
        settings.limits.global_signin_failure_rate,
        scope="signin-everyone",
        key_func=_everyone,
        deduct_when=failed,
    )(sign_in)
    app.view_functions["followup.sign_in_view"] = sign_in
    # Follow-ups count per case (signing in again or dropping cookies does not
    # reset it) and against the same global budget as new reports.
    add: Any = app.view_functions["followup.add"]
    add = limiter.limit(settings.limits.submit_rate, key_func=case_key)(add)
    add = limiter.shared_limit(
        settings.limits.global_submit_rate, scope="submit-everyone", key_func=_everyone
    )(add)
    app.view_functions["followup.add"] = add

    def staff_failed(response: Any) -> bool:
        return bool(response.status_code != 303)  # success redirects to the case list

    staff_sign_in: Any = app.view_functions["staff.sign_in_post"]
    staff_sign_in = limiter.shared_limit(
        settings.staff.signin_failure_rate_per_account,
        scope="staff-signin-account",
        key_func=staff_account_key,
        deduct_when=staff_failed,
    )(staff_sign_in)
    staff_sign_in = limiter.shared_limit(
        settings.staff.signin_failure_rate_per_client,
        scope="staff-signin-client",
        deduct_when=staff_failed,
    )(staff_sign_in)
    app.view_functions["staff.sign_in_post"] = staff_sign_in
    return limiter


def retry_after_seconds(app: Flask) -> int | None:
    """Seconds until the limit that was just hit lets the client in again."""
    limiter: Limiter | None = app.extensions.get("intake_limiter")
    current = limiter.current_limit if limiter is not None else None
    if current is None:
        return None
    return max(1, math.ceil(current.reset_at - time.time()))
