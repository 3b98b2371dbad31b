"""Retention: purge envelopes staff acknowledged, and those nobody collected.

* :func:`purge_acknowledged` takes the acknowledgement file ``intake-review
  import`` writes (``{"format": "intake.ack", "version": 1, "envelopes":
  [sha256, …]}``) and deletes each envelope it names from the store once it is
  older than ``[retention] purge_after_ack_days`` (default 0: at once).
* :func:`purge_expired` deletes envelopes never collected (status NEW) older
  than ``[retention] max_age_days``.
* :func:`expiring_soon` lists those within ``[retention] warn_days`` of that.
* :func:`forget_old_cases` deletes what is left of a case (rows, replies,
  sessions) once all its envelopes are purged and it is older than
  ``[retention] case_max_age_days``.

A purge removes the sealed envelope (file or chunks) and marks the row
:attr:`~intake.models.ReportStatus.PURGED`. The row itself stays: a report
keeps its id, reply recipient and review status, so the reporter can still
sign in, add follow-ups and read replies. Chain entries stay too, so later
bundles can prove what was purged. Every purge is audited.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from intake import audit
from intake.config import Settings
from intake.models import ChainEntry, FollowUp, Reply, Report, ReporterSession, ReportStatus
from intake.store import EnvelopeStore
from intake.strictjson import loads_strict

__all__ = [
    "ACK_FORMAT",
    "ACK_VERSION",
    "MAX_ACK_BYTES",
    "AckError",
    "PurgeResult",
    "expiring_soon",
    "forget_old_cases",
    "parse_ack",
    "purge_acknowledged",
    "purge_expired",
]

ACK_FORMAT: Final = "intake.ack"
ACK_VERSION: Final = 1
#: 64 hex digits, quotes and a comma per envelope: room for a million envelopes.
MAX_ACK_BYTES: Final = 80 * 1024 * 1024
MAX_ACK_ENTRIES: Final = 1_000_000
_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
_ACK_KEYS: Final = frozenset({"format", "version", "envelopes"})


class AckError(ValueError):
    """An acknowledgement file that cannot be used; the message is one line."""


@dataclass(frozen=True)
class PurgeResult:
    """What a purge removed."""

    #: Ids of the envelopes (reports and follow-ups) removed, in chain order.
    purged: list[str] = field(default_factory=list)
    #: Acknowledged envelopes kept because they are younger than the retention.
    kept_for_retention: int = 0
    #: Acknowledged hashes the server has no envelope for (never an error).
    unknown: int = 0
    #: Acknowledged envelopes that an earlier purge already removed.
    already_purged: int = 0

    def summary(self) -> str:
        """One line for people: what was removed and what was not."""
        count = len(self.purged)
        parts = [f"purged {count} envelope{'' if count == 1 else 's'}"]
        if self.kept_for_retention:
            parts.append(
                f"{self.kept_for_retention} kept until the retention period ends"
                " (upload the acknowledgement again later)"
            )
        if self.already_purged:
            parts.append(f"{self.already_purged} already purged")
        if self.unknown:
            parts.append(f"{self.unknown} not known to this server")
        return "; ".join(parts)


def parse_ack(data: bytes) -> list[str]:
    """The envelope SHA-256s of an acknowledgement; raises only :class:`AckError`.

    Strict: the three keys and nothing else, format ``intake.ack``, version 1,
    each hash 64 lowercase hex digits and listed once.
    """
    if not isinstance(data, bytes | bytearray):
        raise AckError("acknowledgement: expected bytes")
    document = loads_strict(data, error=AckError, what="acknowledgement", max_bytes=MAX_ACK_BYTES)
    if not isinstance(document, dict):
        raise AckError("acknowledgement: expected a JSON object")
    if document.get("format") != ACK_FORMAT:
        raise AckError(f"acknowledgement: format: expected {ACK_FORMAT!r}")
    version = document.get("version")
    if type(version) is not int or version != ACK_VERSION:
        raise AckError(f"acknowledgement: version: expected {ACK_VERSION}")
    extra = set(document) - _ACK_KEYS
    if extra:
        raise AckError("acknowledgement: unexpected keys")
    hashes = document.get("envelopes")
    if not isinstance(hashes, list):
        raise AckError("acknowledgement: envelopes: expected a list")
    if len(hashes) > MAX_ACK_ENTRIES:
        raise AckError("acknowledgement: envelopes: too many entries")
    seen: set[str] = set()
    for index, value in enumerate(hashes):
        if not isinstance(value, str) or not _SHA256_RE.fullmatch(value):
            raise AckError(f"acknowledgement: envelopes[{index}]: expected 64 lowercase hex digits")
        if value in seen:
            raise AckError(f"acknowledgement: envelopes[{index}]: listed twice")
        seen.add(value)
    return list(hashes)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _row_of(session: Session, entry: ChainEntry) -> Report | FollowUp | None:
    if entry.kind == "followup":
        return session.get(FollowUp, entry.envelope_id)
    return session.get(Report, entry.envelope_id)


def _purge_rows(
    rows: Iterable[Report | FollowUp],
    *,
    session: Session,
    store: EnvelopeStore,
    actor: str,
    detail: str,
    always_audit: bool,
) -> list[str]:
    """Mark ``rows`` purged and commit, then delete their envelopes.

    Rows first: a row never says "held" for an envelope that is gone, and a
    crash between the two leaves only ciphertext that the next purge (which
    deletes the envelopes of purged rows again) removes.
    """
    targets = list(rows)
    for row in targets:
        row.status = ReportStatus.PURGED
        # Keep only what follow-ups and replies still need (the ids, the case,
        # the follow-up's number, the reply key, the status; the hour stays for
        # forgetting old cases, as the chain keeps it anyway): not the size, nor
        # the "danger now" flag, of a report staff now hold offline.
        row.padded_size = 0
        if isinstance(row, Report):
            row.danger_now = None
    if targets or always_audit:
        audit.record(session, actor, "purge", envelopes=len(targets), detail=detail)
    session.commit()
    ids = [row.id for row in targets]
    for envelope_id in ids:
        store.delete(envelope_id)
    return ids


def purge_acknowledged(
    ack_bytes: bytes,
    *,
    session: Session,
    store: EnvelopeStore,
    settings: Settings,
    now: datetime,
    actor: str,
) -> PurgeResult:
    """Purge the envelopes an acknowledgement names; commits the session.

    Raises :class:`AckError` (nothing changed) when the acknowledgement is
    malformed. Each hash is looked up in the chain; a hash the server does not
    know is counted, never an error (the archive also holds envelopes already
    purged). An envelope younger than ``purge_after_ack_days`` is kept and
    counted; uploading the same acknowledgement later purges it then. The
    envelope of an already purged row is deleted again (a no-op unless an
    earlier purge was interrupted).
    """
    hashes = parse_ack(ack_bytes)
    cutoff = _aware(now) - timedelta(days=settings.retention.purge_after_ack_days)
    entries: list[ChainEntry] = []
    unknown = 0
    # Look the hashes up in slices: one query per 500, not one per hash.
    for start in range(0, len(hashes), 500):
        wanted = hashes[start : start + 500]
        found = list(
            session.scalars(select(ChainEntry).where(ChainEntry.envelope_sha256.in_(wanted)))
        )
        unknown += len(set(wanted) - {entry.envelope_sha256 for entry in found})
        entries.extend(found)
    entries.sort(key=lambda entry: entry.seq)
    to_purge: list[Report | FollowUp] = []
    already: list[str] = []
    kept = 0
    for entry in entries:
        row = _row_of(session, entry)
        if row is None:
            unknown += 1
        elif row.status == ReportStatus.PURGED:
            already.append(row.id)
        elif _aware(row.received_hour) > cutoff:
            kept += 1
        else:
            to_purge.append(row)
    detail = f"acknowledgement: {len(hashes)} listed, {kept} kept for retention, {unknown} unknown"
    purged = _purge_rows(
        to_purge, session=session, store=store, actor=actor, detail=detail, always_audit=True
    )
    for envelope_id in already:
        store.delete(envelope_id)
    return PurgeResult(
        purged=purged, kept_for_retention=kept, unknown=unknown, already_purged=len(already)
    )


def purge_expired(
    *,
    session: Session,
    store: EnvelopeStore,
    settings: Settings,
    now: datetime,
    actor: str,
) -> PurgeResult:
    """Purge envelopes nobody collected (status NEW) older than ``max_age_days``; commits."""
    cutoff = _aware(now) - timedelta(days=settings.retention.max_age_days)
    reports = session.scalars(
        select(Report)
        .where(Report.status == ReportStatus.NEW, Report.received_hour <= cutoff)
        .order_by(Report.received_hour, Report.id)
    )
    followups = session.scalars(
        select(FollowUp)
        .where(FollowUp.status == ReportStatus.NEW, FollowUp.received_hour <= cutoff)
        .order_by(FollowUp.received_hour, FollowUp.case_id, FollowUp.seq)
    )
    rows: list[Report | FollowUp] = [*reports, *followups]
    detail = f"never collected, older than {settings.retention.max_age_days} days"
    purged = _purge_rows(
        rows, session=session, store=store, actor=actor, detail=detail, always_audit=False
    )
    return PurgeResult(purged=purged)


def forget_old_cases(
    *, session: Session, settings: Settings, now: datetime, actor: str
) -> list[str]:
    """Delete cases whose envelopes are all purged and that are older than ``case_max_age_days``.

    The report row (with its lookup key and reply recipient), its follow-up
    rows, sealed replies and sessions go; chain entries stay. Returns the case
    ids forgotten; commits.
    """
    days = settings.retention.case_max_age_days
    if days == 0:
        return []
    cutoff = _aware(now) - timedelta(days=days)
    forgotten: list[str] = []
    candidates = session.scalars(
        select(Report).where(Report.status == ReportStatus.PURGED, Report.received_hour <= cutoff)
    ).all()
    for report in candidates:
        followups = session.scalars(select(FollowUp).where(FollowUp.case_id == report.id)).all()
        if any(
            f.status != ReportStatus.PURGED or _aware(f.received_hour) > cutoff for f in followups
        ):
            continue
        session.execute(delete(Reply).where(Reply.case_id == report.id))
        session.execute(delete(ReporterSession).where(ReporterSession.case_id == report.id))
        session.execute(delete(FollowUp).where(FollowUp.case_id == report.id))
        session.delete(report)
        forgotten.append(report.id)
    if forgotten:
        audit.record(
            session, actor, "purge", envelopes=0, detail=f"forgot {len(forgotten)} case(s)"
        )
    session.commit()
    return forgotten


def expiring_soon(session: Session, settings: Settings, now: datetime) -> list[tuple[str, int]]:
    """Cases with an uncollected envelope within ``warn_days`` of its purge.

    Returns (case id, whole days left, 0 meaning the next purge takes it),
    soonest first. A case is listed when its report or any of its follow-ups
    is still NEW and due for :func:`purge_expired` within ``warn_days``.
    """
    retention = settings.retention
    moment = _aware(now)
    horizon = moment - timedelta(days=retention.max_age_days - retention.warn_days)
    rows: list[tuple[str, datetime]] = [
        (report.id, report.received_hour)
        for report in session.scalars(
            select(Report).where(Report.status == ReportStatus.NEW, Report.received_hour <= horizon)
        )
    ]
    rows += [
        (followup.case_id, followup.received_hour)
        for followup in session.scalars(
            select(FollowUp).where(
                FollowUp.status == ReportStatus.NEW, FollowUp.received_hour <= horizon
            )
        )
    ]
    soonest: dict[str, int] = {}
    for case_id, received in rows:
        due = _aware(received) + timedelta(days=retention.max_age_days)
        days_left = max(0, (due - moment) // timedelta(days=1))
        soonest[case_id] = min(days_left, soonest.get(case_id, days_left))
    return sorted(soonest.items(), key=lambda item: (item[1], item[0]))
