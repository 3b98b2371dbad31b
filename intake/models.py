"""The database models: metadata about reports, never their content.

What a row may hold is fixed by the architecture brief ("What the server may
know"): a random id, the hour it arrived, the padded size, a status and, only
if the operator enables ``[privacy] record_danger_flag``, the "danger now"
flag. Never a report field, file name, IP address or user agent.

:class:`EnvelopeChunk` holds sealed envelopes (ciphertext) for the database
envelope store (:class:`intake.store.DatabaseStore`).

The schema is made only by the Alembic revisions in ``migrations/``; a test
checks that they match these models.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ColumnElement,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, QueryableAttribute, mapped_column, validates

__all__ = [
    "CHUNK_SIZE",
    "AlertState",
    "AuditEvent",
    "Base",
    "ChainEntry",
    "ChainHead",
    "EnvelopeChunk",
    "FollowUp",
    "Reply",
    "Report",
    "ReportStatus",
    "ReporterSession",
    "ReviewStatus",
    "StaffSession",
    "StaffUser",
    "ceil_hour",
    "db",
    "hour_now",
    "new_report_id",
    "to_hour",
]

#: Size of one EnvelopeChunk row's data (the last chunk may be shorter).
CHUNK_SIZE = 1024 * 1024

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


class ReportStatus(StrEnum):
    NEW = "new"
    EXPORTED = "exported"
    PURGED = "purged"


class ReviewStatus(StrEnum):
    """What staff said about a case, in a reply (the reporter sees it)."""

    REVIEWED = "reviewed"
    CLOSED = "closed"


def new_report_id() -> str:
    """A fresh random report id: 20 hex characters (80 bits)."""
    return secrets.token_hex(10)


def to_hour(moment: datetime) -> datetime:
    """``moment`` in UTC, rounded down to the hour (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    """``moment`` in UTC, rounded UP to the hour (naive means UTC); a whole hour stays."""
    hour = to_hour(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return hour if hour == moment else hour + timedelta(hours=1)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def hour_now() -> datetime:
    """The current hour in UTC: the only time the server records."""
    return to_hour(datetime.now(UTC))


class UTCHour(TypeDecorator[datetime]):
    """A timestamp stored rounded down to the hour, always read back as aware UTC.

    Rounding here, not only in the callers, means no code path can store a
    finer time. SQLite keeps no zone, so values are stored as naive UTC there.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        hour = to_hour(value)
        return hour.replace(tzinfo=None) if dialect.name == "sqlite" else hour

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else to_hour(value)


class UTCHourCeiling(TypeDecorator[datetime]):
    """A session's outer expiry, stored rounded UP to the hour, read back as aware UTC.

    Sessions keep their precise idle expiry in the signed cookie only; the
    database holds an upper bound that says no more than the hour, so a seized
    database does not tell when a reporter was last active. Rounding here means
    no code path can store a finer time. A time compared with the column would
    be rounded up too: compare with :meth:`before`, which binds it exactly.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        hour = ceil_hour(value)
        return hour.replace(tzinfo=None) if dialect.name == "sqlite" else hour

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @staticmethod
    def before(column: QueryableAttribute[datetime], moment: datetime) -> ColumnElement[bool]:
        """``column < moment``, with ``moment`` bound exactly (not rounded up)."""
        return column < bindparam(None, moment, type_=DateTime(timezone=True))


class StatusType(TypeDecorator[ReportStatus]):
    """A ``String(16)`` column read back as :class:`ReportStatus`."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else ReportStatus(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> ReportStatus | None:
        return None if value is None else ReportStatus(value)


class Report(Base):
    __tablename__ = "reports"
    __table_args__ = (
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s.value}'" for s in ReportStatus)),
            name="status",
        ),
        CheckConstraint("padded_size >= 0", name="padded_size"),
        CheckConstraint(
            "review_status IS NULL OR review_status IN ({})".format(
                ", ".join(f"'{s.value}'" for s in ReviewStatus)
            ),
            name="review_status",
        ),
        Index("ix_reports_status_received_hour", "status", "received_hour"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_report_id)
    received_hour: Mapped[datetime] = mapped_column(UTCHour(), default=hour_now)
    padded_size: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[ReportStatus] = mapped_column(StatusType(), default=ReportStatus.NEW)
    #: Only set when [privacy] record_danger_flag is on; otherwise always NULL.
    danger_now: Mapped[bool | None] = mapped_column(Boolean)
    #: Argon2id of the receipt under the server's pepper (hex), to find the
    #: case at sign-in; see :mod:`intake.crypto.receipts`.
    lookup_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: The public half of the reply key the receipt derives (``age1…``).
    reply_recipient: Mapped[str | None] = mapped_column(String(100))
    #: What staff last said of the case in a reply; None until then.
    review_status: Mapped[str | None] = mapped_column(String(16))

    @validates("status")
    def _check_status(self, key: str, value: str) -> ReportStatus:
        return ReportStatus(value)

    def __repr__(self) -> str:
        return f"<Report {self.id} {self.status}>"


class EnvelopeChunk(Base):
    """One slice (at most :data:`CHUNK_SIZE` bytes) of a sealed envelope."""

    __tablename__ = "envelope_chunks"
    __table_args__ = (CheckConstraint("seq >= 0", name="seq"),)

    envelope_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)

    def __repr__(self) -> str:
        return f"<EnvelopeChunk {self.envelope_id}#{self.seq}>"


class FollowUp(Base):
    """Information a reporter added to a case later: its own sealed envelope."""

    __tablename__ = "followups"
    __table_args__ = (
        UniqueConstraint("case_id", "seq", name="uq_followups_case_seq"),
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s.value}'" for s in ReportStatus)),
            name="status",
        ),
        CheckConstraint("padded_size >= 0", name="padded_size"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_report_id)
    case_id: Mapped[str] = mapped_column(String(32), ForeignKey("reports.id"), index=True)
    #: 1, 2, … in the order they arrived (the hour alone cannot order them).
    seq: Mapped[int] = mapped_column(Integer)
    received_hour: Mapped[datetime] = mapped_column(UTCHour(), default=hour_now)
    padded_size: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[ReportStatus] = mapped_column(StatusType(), default=ReportStatus.NEW)

    def __repr__(self) -> str:
        return f"<FollowUp {self.case_id}#{self.seq} {self.status}>"


class Reply(Base):
    """A reply staff wrote offline, sealed to the case's reply key and to staff."""

    __tablename__ = "replies"
    __table_args__ = (
        UniqueConstraint("case_id", "seq", name="uq_replies_case_seq"),
        CheckConstraint(
            "status_change IS NULL OR status_change IN ({})".format(
                ", ".join(f"'{s.value}'" for s in ReviewStatus)
            ),
            name="status_change",
        ),
    )

    #: Chosen by the review tool, so that importing a bundle twice is harmless.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(32), ForeignKey("reports.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    imported_hour: Mapped[datetime] = mapped_column(UTCHour(), default=hour_now)
    sha256: Mapped[str] = mapped_column(String(64))
    #: The age envelope of the reply: ciphertext only.
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    status_change: Mapped[str | None] = mapped_column(String(16))

    def __repr__(self) -> str:
        return f"<Reply {self.case_id}#{self.seq}>"


class ReporterSession(Base):
    """A signed-in reporter: a hash of the random token in their cookie, and the case.

    Nothing here, nor in the cookie, lets anyone read the receipt or the reply
    key. ``expires_at`` is only an upper bound rounded up to the hour (the
    precise idle expiry is in the signed cookie); rows go at sign-out, once
    expired (at every sign-in and page) and in ``flask --app intake sweep``.
    """

    __tablename__ = "reporter_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(32), ForeignKey("reports.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCHourCeiling(), index=True)

    def __repr__(self) -> str:
        return f"<ReporterSession {self.case_id}>"


# --- staff side ----------------------------------------------------------------------


class StaffUser(Base):
    """A staff account: made only from the command line, signs in with passphrase + TOTP."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    #: Argon2id hash (PyNaCl's ``$argon2id$…`` string) of the generated passphrase.
    passphrase_hash: Mapped[str] = mapped_column(String(255))
    #: The TOTP secret (base32); the server must read it to check codes.
    totp_secret: Mapped[str] = mapped_column(String(64))
    #: The last TOTP time step accepted, so each code works once.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utc_now)

    def __repr__(self) -> str:
        return f"<StaffUser {self.name}>"


class StaffSession(Base):
    """A signed-in staff member: the SHA-256 of the random token in their cookie.

    As for reporters, ``expires_at`` is an upper bound rounded up to the hour;
    the precise idle and absolute expiries are in the signed cookie.
    """

    __tablename__ = "staff_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[int] = mapped_column(Integer, ForeignKey("staff_users.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCHourCeiling(), index=True)


class AuditEvent(Base):
    """One staff action: who, what, when, how many envelopes. Never content, never an IP."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_utc_now, index=True)
    #: The staff name, kept as text so the log outlives the account ("cli" for commands).
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    envelopes: Mapped[int | None] = mapped_column(Integer)
    #: Short, content-free detail ("wrong TOTP code", "account disabled").
    detail: Mapped[str] = mapped_column(String(200), default="")


class ChainEntry(Base):
    """The hash chain over every envelope the server stored, in order.

    ``chain_hash`` = SHA-256(previous chain hash ‖ envelope SHA-256 ‖ metadata);
    export bundles carry the chain so staff can tell when envelopes are
    missing, reordered, duplicated or altered. Entries stay after a purge.
    """

    __tablename__ = "chain_entries"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    envelope_id: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    case_id: Mapped[str] = mapped_column(String(32))
    received_hour: Mapped[datetime] = mapped_column(UTCHour())
    envelope_sha256: Mapped[str] = mapped_column(String(64), index=True)
    chain_hash: Mapped[str] = mapped_column(String(64))


class ChainHead(Base):
    """The newest chain entry, in one row that writers lock to append in order."""

    __tablename__ = "chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    chain_hash: Mapped[str] = mapped_column(String(64))


class AlertState(Base):
    """Whether something arrived since the last alert, and the slots of the last alert and run.

    Slots are ``[alerts] interval_minutes`` long, counted from the epoch; only
    their start times are stored (see :mod:`intake.alerts`).
    """

    __tablename__ = "alert_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    pending: Mapped[bool] = mapped_column(Boolean, default=False)
    pending_danger: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The start of the slot the last alert went out in (never a finer time).
    last_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The start of the slot of the last ``send-alerts`` run: only a slot's first run sends.
    last_run_slot: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
