"""The hash chain over every envelope the server stores.

Each stored envelope (report or follow-up) gets the next sequence number and
``chain_hash = SHA-256(previous chain_hash ‖ envelope SHA-256 ‖ metadata)``,
where metadata is ``seq|kind|envelope id|case id|received hour``. Export
bundles carry the chain and a signature over it, so the offline tool can say
when envelopes are missing, reordered, duplicated or altered.

Appending first writes the single :class:`~intake.models.ChainHead` row (an
UPDATE that changes nothing), and only then reads it. The write is what makes
concurrent writers (several gunicorn workers, or hosts) append one after
another on both databases: on PostgreSQL it takes the row lock, and the read
that follows, a new statement, sees the head the previous writer committed;
on SQLite it takes the database's write lock, which ``SELECT ... FOR UPDATE``
would not (SQLite ignores FOR UPDATE, and Python's sqlite3 begins a
transaction only at the first write). Other writers wait for the caller's
commit, so the caller commits soon after appending (sealing happens before).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
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
    # Migration 0003 creates the head row, so there is always one to claim.
    session.execute(update(ChainHead).where(ChainHead.id == 1).values(seq=ChainHead.seq))
    head = session.scalars(select(ChainHead).where(ChainHead.id == 1)).one()
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
