"""Staff accounts: generated passphrases, TOTP, sign-in and server-side sessions.

Plain functions over a SQLAlchemy session; the CLI (``flask --app intake
staff …``) and the staff pages (:mod:`intake.views.staff`) only call them.

- Accounts are made only from the command line. The passphrase is generated:
  :data:`PASSPHRASE_WORDS` words drawn with :mod:`secrets` from the EFF large
  wordlist shipped in ``intake/data/wordlist.txt`` (7,776 words, ≈ 12.9 bits
  each: 7 words ≈ 90 bits). Only its Argon2id hash is stored.
- Argon2id runs with libsodium's INTERACTIVE limits (64 MiB, 2 passes). The
  passphrase is generated with 90 bits of entropy, so offline guessing is out
  of reach whatever the cost parameters; INTERACTIVE keeps a sign-in quick and
  keeps a burst of sign-in attempts from exhausting a small server's memory.
- TOTP (RFC 6238, via pyotp): 30-second steps, 6 digits, SHA-1 (what every
  authenticator app accepts), the step before and after accepted. Each code
  works once: the accepted step is stored in ``StaffUser.totp_last_step`` and a
  step at or before it is refused. The store is a conditional UPDATE, so two
  concurrent sign-ins with one code cannot both pass.
- Sign-in checks the passphrase against a dummy hash when the name is unknown,
  so an unknown name costs the same time as a known one; every failure gives
  the caller the same ``None``.
- A session is a random token in the staff member's cookie; the database
  keeps only its SHA-256, the account and an upper bound on its expiry rounded
  up to the hour. The precise idle expiry and the absolute end
  (:data:`MAX_SESSION_HOURS` after sign-in, however active) are in the signed
  cookie. Sign-out deletes it;
  disabling an account or resetting its 2FA deletes all of its sessions.
- Every action is audited (:func:`intake.audit.record`): who, what, when, how
  many envelopes. Never a passphrase, a code, a secret or an address.
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import cast

import nacl.exceptions
import nacl.pwhash
import pyotp
from sqlalchemy import delete, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from intake import audit
from intake.audit import CLI_ACTOR
from intake.models import StaffSession, StaffUser, UTCHourCeiling, ceil_hour
from intake.sessions import deadline_passed, token_hash

__all__ = [
    "CLI_ACTOR",
    "MAX_SESSION_HOURS",
    "NAME_PATTERN",
    "PASSPHRASE_WORDS",
    "TOTP_ISSUER",
    "TOTP_STEP_SECONDS",
    "StaffError",
    "add_staff",
    "disable_staff",
    "end_staff_session",
    "generate_passphrase",
    "hash_passphrase",
    "list_staff",
    "normalise_name",
    "reset_2fa",
    "resume_staff_session",
    "session_limit",
    "start_staff_session",
    "totp_step",
    "verify_sign_in",
    "wordlist",
]

#: Words in a generated passphrase (7 × log2(7776) ≈ 90.5 bits).
PASSPHRASE_WORDS = 7
#: Seconds per TOTP step; codes from the step before and after are accepted too.
TOTP_STEP_SECONDS = 30
TOTP_VALID_WINDOW = 1
#: The issuer shown in authenticator apps.
TOTP_ISSUER = "intake"
#: The audit actor for account changes made from the command line.
#: Account names: lowercase letters, digits, dot, dash, underscore; 1–64 characters.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
_MAX_PASSPHRASE_CHARS = 400
_CODE = re.compile(r"[0-9]{6}")


class StaffError(ValueError):
    """An account command that cannot be done; the message is one line for the operator."""


@cache
def wordlist() -> tuple[str, ...]:
    """The passphrase words (the EFF large wordlist; see intake/data/README.md)."""
    text = resources.files("intake").joinpath("data/wordlist.txt").read_text(encoding="ascii")
    words = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(set(words)) < 7000:  # pragma: no cover - guards a damaged install
        raise RuntimeError("intake/data/wordlist.txt holds fewer than 7,000 unique words")
    return words


def generate_passphrase(words: int = PASSPHRASE_WORDS) -> str:
    """A fresh passphrase: ``words`` words from :func:`wordlist`, joined by spaces."""
    choices = wordlist()
    return " ".join(secrets.choice(choices) for _ in range(words))


def hash_passphrase(passphrase: str) -> str:
    """The Argon2id hash string (``$argon2id$…``) of ``passphrase``."""
    digest: bytes = nacl.pwhash.argon2id.str(
        passphrase.encode("utf-8"), opslimit=_OPSLIMIT, memlimit=_MEMLIMIT
    )
    return digest.decode("ascii")


@cache
def _dummy_hash() -> bytes:
    """A hash to check against when the name is unknown, so that costs the same."""
    return hash_passphrase(secrets.token_urlsafe(32)).encode("ascii")


def _passphrase_matches(stored: bytes, passphrase: str) -> bool:
    try:
        return bool(nacl.pwhash.verify(stored, passphrase.encode("utf-8")))
    except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError, ValueError):
        return False


def normalise_name(typed: str) -> str:
    """A typed account name as stored: trimmed and lowercased."""
    return typed.strip().lower()


def _check_name(name: str) -> str:
    name = normalise_name(name)
    if not NAME_PATTERN.fullmatch(name):
        raise StaffError(
            "a name is 1-64 characters: lowercase letters, digits, '.', '-' and '_',"
            " starting with a letter or digit"
        )
    return name


def _otpauth_uri(name: str, secret: str) -> str:
    totp = pyotp.TOTP(secret, interval=TOTP_STEP_SECONDS)
    return totp.provisioning_uri(name=name, issuer_name=TOTP_ISSUER)


def _user(session: Session, name: str) -> StaffUser:
    user = session.scalar(select(StaffUser).where(StaffUser.name == normalise_name(name)))
    if user is None:
        raise StaffError(f"no staff account named {normalise_name(name)!r}")
    return user


def add_staff(session: Session, name: str, *, actor: str = CLI_ACTOR) -> tuple[str, str]:
    """Make an account; return (passphrase, otpauth URI). Shown once, never stored in clear."""
    name = _check_name(name)
    if session.scalar(select(StaffUser.id).where(StaffUser.name == name)) is not None:
        raise StaffError(f"a staff account named {name!r} exists already")
    passphrase = generate_passphrase()
    secret = pyotp.random_base32(32)
    session.add(
        StaffUser(name=name, passphrase_hash=hash_passphrase(passphrase), totp_secret=secret)
    )
    audit.record(session, actor, "account_add", detail=f"account {name}")
    session.commit()
    return passphrase, _otpauth_uri(name, secret)


def list_staff(session: Session) -> list[StaffUser]:
    """Every account, by name."""
    return list(session.scalars(select(StaffUser).order_by(StaffUser.name)))


def disable_staff(session: Session, name: str, *, actor: str = CLI_ACTOR) -> None:
    """Disable an account and end its sessions (there is no re-enable: add a new one)."""
    user = _user(session, name)
    user.disabled = True
    session.execute(delete(StaffSession).where(StaffSession.staff_id == user.id))
    audit.record(session, actor, "account_disable", detail=f"account {user.name}")
    session.commit()


def reset_2fa(session: Session, name: str, *, actor: str = CLI_ACTOR) -> str:
    """Give an account a new TOTP secret (a lost phone); return the new otpauth URI.

    The old codes stop working at once and the account's sessions end.
    """
    user = _user(session, name)
    user.totp_secret = pyotp.random_base32(32)
    user.totp_last_step = None
    session.execute(delete(StaffSession).where(StaffSession.staff_id == user.id))
    audit.record(session, actor, "account_reset_2fa", detail=f"account {user.name}")
    session.commit()
    return _otpauth_uri(user.name, user.totp_secret)


def totp_step(moment: datetime) -> int:
    """The TOTP time step of ``moment`` (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) // TOTP_STEP_SECONDS


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The step in the window whose code is ``code`` (all steps compared), else None."""
    totp = pyotp.TOTP(secret, interval=TOTP_STEP_SECONDS)
    current = totp_step(now)
    found = None
    for step in range(current - TOTP_VALID_WINDOW, current + TOTP_VALID_WINDOW + 1):
        if hmac.compare_digest(totp.at(step * TOTP_STEP_SECONDS), code):
            found = step
    return found


def _fail(session: Session, actor: str, detail: str) -> None:
    audit.record(session, actor, "sign_in_failed", detail=detail)
    session.commit()


def verify_sign_in(
    session: Session, name: str, passphrase: str, code: str, now: datetime
) -> StaffUser | None:
    """The account if passphrase and TOTP code are right and the code is fresh, else None.

    Audits the outcome. A failure names the reason only in the audit log; an
    unknown name is logged as such without the typed text (it may be a
    passphrase typed in the wrong field).
    """
    name = normalise_name(name)[:100]
    code = re.sub(r"\s", "", code)
    passphrase = passphrase.strip()[:_MAX_PASSPHRASE_CHARS]
    user = session.scalar(select(StaffUser).where(StaffUser.name == name)) if name else None
    stored = user.passphrase_hash.encode("ascii") if user is not None else _dummy_hash()
    passphrase_ok = _passphrase_matches(stored, passphrase)
    step = None
    if user is not None and _CODE.fullmatch(code):
        step = _matching_step(user.totp_secret, code, now)
    if user is None:
        _fail(session, "unknown", "unknown name")
        return None
    if user.disabled:
        _fail(session, user.name, "account disabled")
        return None
    if not passphrase_ok:
        _fail(session, user.name, "wrong passphrase")
        return None
    if step is None:
        _fail(session, user.name, "wrong TOTP code")
        return None
    # Claim the step: only one sign-in can move totp_last_step past it.
    claimed: CursorResult[tuple[()]] = session.execute(  # type: ignore[assignment]
        update(StaffUser)
        .where(
            StaffUser.id == user.id,
            or_(StaffUser.totp_last_step.is_(None), StaffUser.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        session.rollback()
        _fail(session, user.name, "TOTP code already used")
        return None
    audit.record(session, user.name, "sign_in")
    session.commit()
    session.refresh(user)
    return user


#: A staff session ends this long after sign-in however active it is.
MAX_SESSION_HOURS = 12


def session_limit(now: datetime) -> int:
    """The absolute end of a session signed in at ``now`` (Unix seconds, for the cookie)."""
    return math.floor(now.timestamp()) + MAX_SESSION_HOURS * 3600


def _bound(now: datetime, minutes: int, limit: int) -> datetime:
    """The row's upper bound: the idle expiry or the absolute end, rounded UP to the hour."""
    idle = now + timedelta(minutes=minutes)
    return ceil_hour(min(idle, datetime.fromtimestamp(limit, UTC)))


def _forget_expired_sessions(session: Session, now: datetime) -> None:
    """Delete every staff session past its hour-rounded bound (the caller commits)."""
    session.execute(delete(StaffSession).where(UTCHourCeiling.before(StaffSession.expires_at, now)))


def start_staff_session(user: StaffUser, *, minutes: int, session: Session, now: datetime) -> str:
    """A new session for ``user``; returns the token for the cookie.

    The caller keeps the precise idle expiry (:func:`intake.sessions.idle_deadline`)
    and the absolute end (:func:`session_limit`) in the signed cookie; the row
    holds only an upper bound rounded up to the hour.
    """
    _forget_expired_sessions(session, now)
    token = secrets.token_urlsafe(32)
    session.add(
        StaffSession(
            token_hash=token_hash(token),
            staff_id=user.id,
            expires_at=_bound(now, minutes, session_limit(now)),
        )
    )
    session.commit()
    return token


def resume_staff_session(
    token: str,
    *,
    deadline: object,
    limit: object,
    minutes: int,
    session: Session,
    now: datetime,
) -> StaffUser | None:
    """The account of a live session, or None (and the session forgotten).

    ``deadline`` (idle) and ``limit`` (absolute, :data:`MAX_SESSION_HOURS`
    after sign-in) come from the signed cookie; both and the row's bound must
    be ahead of ``now``. Expired rows of every account are deleted on the way.
    """
    _forget_expired_sessions(session, now)
    row = session.get(StaffSession, token_hash(token)) if 0 < len(token) <= 100 else None
    if row is None:
        session.commit()
        return None
    user = session.get(StaffUser, row.staff_id)
    if (
        deadline_passed(deadline, now)
        or deadline_passed(limit, now)
        or row.expires_at <= now
        or user is None
        or user.disabled
    ):
        session.delete(row)
        session.commit()
        return None
    bound = _bound(now, minutes, cast(int, limit))
    if row.expires_at < bound:
        row.expires_at = bound
    session.commit()
    return user


def end_staff_session(token: str, *, session: Session, actor: str | None = None) -> None:
    """Sign out: forget the session (and audit it when ``actor`` is given)."""
    if not token:
        return
    session.execute(delete(StaffSession).where(StaffSession.token_hash == token_hash(token)))
    if actor is not None:
        audit.record(session, actor, "sign_out")
    session.commit()
