"""The hash chain over every envelope the server stores.

Each stored envelope (report or follow-up) gets the next sequence number and
``chain_hash = SHA-256(previous chain_hash ‖ envelope SHA-256 ‖ metadata)``,
where metadata is ``seq|kind|envelope id|case id|received hour``. Export
bundles carry the chain and a signature over it, so the offline tool can say
when envelopes are missing, reordered, duplicated or altered.

Appending locks the single :class:`~intake.models.ChainHead` row, so
concurrent writers (several gunicorn workers or hosts on PostgreSQL) append
one after another; on SQLite the write lock already serialises them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.models import ChainEntry, ChainHead
from intake.review.bundle import chain_hash
from intake.schema import received_hour_now

__all__ = ["GENESIS", "append", "chain_hash"]  # chain_hash: the one the offline tool checks

#: The "previous hash" of the first entry.
GENESIS = "0" * 64


def append(
    session: Session,
    *,
    envelope_id: str,
    kind: str,
    case_id: str,
    received_hour: datetime,
    envelope_sha256: str,
) -> ChainEntry:
    """Add the next chain entry to ``session`` (the caller commits it with the row)."""
    # Migration 0003 creates the head row, so there is always one to lock.
    head = session.scalars(select(ChainHead).where(ChainHead.id == 1).with_for_update()).one()
    seq = head.seq + 1
    entry = ChainEntry(
        seq=seq,
        envelope_id=envelope_id,
        kind=kind,
        case_id=case_id,
        received_hour=received_hour,
        envelope_sha256=envelope_sha256,
        chain_hash=chain_hash(
            head.chain_hash,
            envelope_sha256,
            seq=seq,
            kind=kind,
            envelope_id=envelope_id,
            case_id=case_id,
            received_hour=received_hour_now(received_hour),
        ),
    )
    session.add(entry)
    head.seq = seq
    head.chain_hash = entry.chain_hash
    return entry
