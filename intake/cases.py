"""A reporter's way back: receipts, sign-in, follow-ups, replies, status.

Plain functions over a SQLAlchemy session; the follow-up views only call them.

- At submission a receipt is made and only what it derives is stored
  (:mod:`intake.crypto.receipts`): a lookup key and a reply recipient.
- Sign-in derives the lookup key from the typed receipt and finds the case.
  A wrong receipt costs the same time as a right one and gets the same answer
  as a missing one.
- The reporter's session is a random token in their cookie; the database
  keeps only its SHA-256, the case and an expiry rounded up to the hour. The
  precise idle expiry is in the signed cookie only, so a seized database does
  not tell when a reporter was last active.
- Replies are opened with the reply key derived from the receipt, in the
  sign-in request only; the key is never stored.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake import alerts, chain
from intake.crypto.envelope import AttachmentSource, seal_envelope
from intake.crypto.receipts import lookup_key, normalise_receipt, reply_identity
from intake.models import (
    FollowUp,
    Reply,
    Report,
    ReporterSession,
    ReportStatus,
    UTCHourCeiling,
    ceil_hour,
    new_report_id,
    to_hour,
)
from intake.review.replies import (
    RepliesBundleError,
    ReplyFormatError,
    open_reply,
    read_replies_bundle,
)
from intake.schema import build_followup, received_hour_now
from intake.sessions import deadline_passed, token_hash
from intake.store import EnvelopeStore
from intake.submission import attachment_metas, report_json_bytes

__all__ = [
    "CaseReply",
    "RepliesImportError",
    "RepliesImported",
    "SignIn",
    "add_followup",
    "end_session",
    "import_replies",
    "open_replies",
    "reporter_status",
    "resume_session",
    "sign_in",
    "start_session",
]

log = logging.getLogger(__name__)

#: What the reporter sees, in order: received → collected → reviewed → closed.
REPORTER_STATUSES = ("received", "collected", "reviewed", "closed")
_DUMMY_DIGITS = "00000000000000000000"


@dataclass(frozen=True)
class SignIn:
    """A successful sign-in: the case, and its replies opened for this request only."""

    case_id: str
    replies: list[CaseReply]


@dataclass(frozen=True)
class CaseReply:
    """One staff reply as the reporter reads it."""

    seq: int
    language: str
    text: str
    status_change: str | None


def reporter_status(report: Report) -> str:
    """The status in the reporter's words (one of :data:`REPORTER_STATUSES`)."""
    if report.review_status:
        return report.review_status
    if report.status == ReportStatus.NEW:
        return "received"
    return "collected"


def sign_in(typed_receipt: str, *, pepper: bytes, session: Session, language: str) -> SignIn | None:
    """Find the case of a typed receipt and open its replies; None for any wrong receipt.

    Both Argon2id derivations run whether or not the case exists, so a
    missing case takes as long as a found one.
    """
    digits = normalise_receipt(typed_receipt)
    if digits is None:
        # Not even the shape of a receipt: reveals nothing about any case.
        return None
    key = lookup_key(digits, pepper)
    case = session.scalar(select(Report).where(Report.lookup_key == key))
    identity = reply_identity(digits if case is not None else _DUMMY_DIGITS, pepper)
    if case is None:
        return None
    return SignIn(case.id, open_replies(case.id, identity, session=session, language=language))


def open_replies(
    case_id: str, identity: Any, *, session: Session, language: str
) -> list[CaseReply]:
    """Decrypt a case's replies with the reporter's reply key, newest first."""
    replies = session.scalars(
        select(Reply).where(Reply.case_id == case_id).order_by(Reply.seq.desc())
    )
    opened = []
    for reply in replies:
        try:
            parsed = open_reply(reply.sealed, [identity], case_id=case_id)
        except ReplyFormatError as exc:
            log.warning("a reply could not be opened (%s)", type(exc).__name__)
            continue
        chosen = language if language in parsed.messages else next(iter(parsed.messages))
        opened.append(CaseReply(reply.seq, chosen, parsed.messages[chosen], reply.status_change))
    return opened


def _forget_expired_sessions(session: Session, now: datetime) -> None:
    """Delete every reporter session past its hour-rounded bound (the caller commits)."""
    session.execute(
        delete(ReporterSession).where(UTCHourCeiling.before(ReporterSession.expires_at, now))
    )


def start_session(case_id: str, *, minutes: int, session: Session, now: datetime) -> str:
    """A new signed-in session for ``case_id``; returns the token for the cookie.

    The row's expiry is ``now`` plus ``minutes`` rounded UP to the hour: an
    upper bound for clean-up. The caller keeps the precise idle expiry
    (:func:`idle_deadline`) in the signed cookie.
    """
    _forget_expired_sessions(session, now)
    token = secrets.token_urlsafe(32)
    session.add(
        ReporterSession(
            token_hash=token_hash(token),
            case_id=case_id,
            expires_at=ceil_hour(now + timedelta(minutes=minutes)),
        )
    )
    session.commit()
    return token


def resume_session(
    token: str, *, deadline: object, minutes: int, session: Session, now: datetime
) -> str | None:
    """The case of a live session, or None (and the session forgotten).

    ``deadline`` is the idle expiry from the signed cookie; the session is
    live while it and the row's hour-rounded bound are both ahead of ``now``.
    The bound moves on only when the hour of ``now`` plus ``minutes`` does, so
    the database never learns more than the hour of a reporter's activity.
    Expired rows of every case are deleted on the way. The caller refreshes the
    cookie's deadline with :func:`idle_deadline`.
    """
    _forget_expired_sessions(session, now)
    row = session.get(ReporterSession, token_hash(token)) if 0 < len(token) <= 100 else None
    if row is None:
        session.commit()
        return None
    if deadline_passed(deadline, now) or row.expires_at <= now:
        session.delete(row)
        session.commit()
        return None
    bound = ceil_hour(now + timedelta(minutes=minutes))
    if row.expires_at < bound:
        row.expires_at = bound
    session.commit()
    return row.case_id


def end_session(token: str, *, session: Session) -> None:
    """Sign out: forget the session."""
    if token:
        session.execute(
            delete(ReporterSession).where(ReporterSession.token_hash == token_hash(token))
        )
        session.commit()


#: How often :func:`add_followup` tries to store a follow-up whose number was
#: taken meanwhile. Each loss means another follow-up of the same case was stored,
#: so this many follow-ups of one case sent at the same moment all get stored.
_FOLLOWUP_ATTEMPTS = 5


def add_followup(
    case_id: str,
    fields: Mapping[str, Any],
    uploads: Sequence[AttachmentSource],
    *,
    language: str,
    recipients: Sequence[Any],
    store: EnvelopeStore,
    session: Session,
    received: datetime,
) -> str:
    """Seal a follow-up into its own envelope linked to the case; return its id.

    Like :func:`intake.submission.accept_submission`: durable envelope first,
    row last, nothing left behind on failure.

    The follow-up's number in its case is sealed into the envelope, so it is
    chosen before sealing, without a lock (holding one while a large upload is
    sealed would stall every other writer). When another follow-up of the same
    case took that number meanwhile (the reporter sent twice at once), the
    unique (case, seq) constraint refuses the row: the envelope is deleted and
    sealed again with the next number.
    """
    hour = to_hour(received)
    attachments = attachment_metas(uploads)
    attempt = 1
    while True:
        seq = (
            session.scalar(select(func.max(FollowUp.seq)).where(FollowUp.case_id == case_id)) or 0
        ) + 1
        followup = FollowUp(
            id=new_report_id(), case_id=case_id, seq=seq, received_hour=hour, padded_size=0
        )
        followup_json = build_followup(
            fields,
            attachments,
            case_id=case_id,
            seq=seq,
            received_hour=received_hour_now(hour),
            language=language,
        )
        with store.writer(followup.id) as out:
            sealed = seal_envelope(report_json_bytes(followup_json), uploads, recipients, out)
        try:
            followup.padded_size = sealed.envelope_size
            chain.append(
                session,
                envelope_id=followup.id,
                kind="followup",
                case_id=case_id,
                received_hour=hour,
                envelope_sha256=sealed.envelope_sha256,
            )
            alerts.note_arrival(session, danger=None)
            session.add(followup)
            session.commit()
        except IntegrityError:
            session.rollback()
            store.delete(followup.id)
            if attempt == _FOLLOWUP_ATTEMPTS:
                raise
            attempt += 1
            continue
        except BaseException:
            session.rollback()
            store.delete(followup.id)
            raise
        return followup.id


def now_utc() -> datetime:
    """The current time (the cookie's idle expiry is by the second; the database's by the hour)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class RepliesImported:
    """What ``import-replies`` did."""

    added: int
    already_there: int
    status_changes: int


class RepliesImportError(ValueError):
    """A replies bundle refused whole; the message names the entry."""


def import_replies(path: Path, *, session: Session) -> RepliesImported:
    """Store the sealed replies of a bundle from ``intake-review reply`` and apply status changes.

    All or nothing: a bundle with any bad entry (unreadable, unknown case, an
    id already stored with other content) is refused whole, naming the entry.
    Importing the same bundle twice changes nothing the second time.
    """
    try:
        entries = read_replies_bundle(path)
    except RepliesBundleError as exc:
        raise RepliesImportError(str(exc)) from None
    added = already = changes = 0
    next_seq: dict[str, int] = {}
    try:
        for entry, sealed in entries:
            case = session.get(Report, entry.case_id)
            if case is None:
                raise RepliesImportError(
                    f"reply {entry.id}: no case {entry.case_id} on this server"
                )
            existing = session.get(Reply, entry.id)
            if existing is not None:
                if existing.sha256 != entry.sha256 or existing.case_id != entry.case_id:
                    raise RepliesImportError(
                        f"reply {entry.id}: already imported with different content"
                    )
                already += 1
                continue
            if entry.case_id not in next_seq:
                last = session.scalar(
                    select(func.max(Reply.seq)).where(Reply.case_id == entry.case_id)
                )
                next_seq[entry.case_id] = (last or 0) + 1
            session.add(
                Reply(
                    id=entry.id,
                    case_id=entry.case_id,
                    seq=next_seq[entry.case_id],
                    sha256=entry.sha256,
                    sealed=sealed,
                    status_change=entry.status,
                )
            )
            next_seq[entry.case_id] += 1
            added += 1
            if entry.status is not None:
                case.review_status = entry.status
                changes += 1
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return RepliesImported(added, already, changes)
