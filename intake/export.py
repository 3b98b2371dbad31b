"""Export bundles: every envelope staff have not collected yet, in one tar.

``flask --app intake export --out bundle.tar [--all]`` writes a
``manifest.json`` (id, received hour, size, SHA-256; for follow-ups their case
and order; for reports the reply recipient staff seal answers to; each
envelope's place and hash in the server's chain, and the chain stretch the
bundle covers with the entries it leaves out) first, in the format
:mod:`intake.review.bundle` defines, then ``manifest.sig`` (the server's
Ed25519 signature of those exact bytes, see :mod:`intake.signing`), then
``envelopes/<id>.age`` for each envelope (reports and follow-ups) in chain
order, and marks them exported. The bundle is written to a temp file and
renamed into place only when complete; the rows change only after that.

The chain head is read before the rows: an envelope stored while the export
runs is left for the next bundle, so every entry is inside the signed stretch.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.models import ChainEntry, ChainHead, FollowUp, Report, ReportStatus
from intake.review.bundle import (
    GENESIS,
    KIND_FOLLOWUP,
    ChainInfo,
    ManifestEntry,
    OmittedEntry,
    envelope_member_name,
    manifest_bytes,
)
from intake.review.signature import SIGNATURE_NAME, format_signature
from intake.schema import received_hour_now
from intake.signing import public_key_text, sign
from intake.store import EnvelopeStore

__all__ = ["ExportResult", "export_bundle"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    envelope_ids: list[str]
    #: The server's chain head the bundle's signed stretch ends at.
    head_seq: int = 0
    #: Chain entries in the stretch whose envelopes are not in the bundle.
    omitted: int = 0
    #: Rows that should have gone in, whose envelope the store no longer holds
    #: (left out, listed as omitted, their status unchanged).
    missing: tuple[str, ...] = ()


def _sha256(store: EnvelopeStore, envelope_id: str) -> str:
    digest = hashlib.sha256()
    with store.open(envelope_id) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = 0
    return info


def _chain_entries(session: Session, ids: Sequence[str]) -> dict[str, ChainEntry]:
    found: dict[str, ChainEntry] = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        for entry in session.scalars(select(ChainEntry).where(ChainEntry.envelope_id.in_(part))):
            found[entry.envelope_id] = entry
    return found


def _omitted(entry: ChainEntry) -> OmittedEntry:
    return OmittedEntry(
        seq=entry.seq,
        envelope_id=entry.envelope_id,
        envelope_sha256=entry.envelope_sha256,
        kind=entry.kind,
        case_id=entry.case_id,
        received_hour=received_hour_now(entry.received_hour),
    )


def _hash_at(session: Session, seq: int) -> str:
    if seq == 0:
        return GENESIS
    entry = session.get(ChainEntry, seq)
    if entry is None:
        raise ValueError(f"the chain has no entry {seq}")
    return entry.chain_hash


def _signing_key(signing_key: Ed25519PrivateKey | None) -> Ed25519PrivateKey:
    if signing_key is not None:
        return signing_key
    from intake.app import intake_state  # the running app's key

    return intake_state().signing_key


def export_bundle(
    out: Path,
    *,
    session: Session,
    store: EnvelopeStore,
    include_all: bool = False,
    signing_key: Ed25519PrivateKey | None = None,
    chain_from: int | None = None,
) -> ExportResult:
    """Write a signed bundle of new envelopes (or every one still held) to ``out``.

    ``signing_key`` defaults to the running app's (:class:`intake.app.IntakeState`).
    The bundle's chain stretch starts just before its first envelope, or after
    ``chain_from`` (0: the genesis) when given, so an archive whose head is
    further back can be continued exactly (envelopes at or before
    ``chain_from`` are left out); every chain entry in the stretch whose
    envelope is not in the bundle is listed as omitted.
    """
    key = _signing_key(signing_key)
    head = session.scalars(select(ChainHead).where(ChainHead.id == 1)).one()
    head_seq, head_hash = head.seq, head.chain_hash
    wanted = [ReportStatus.NEW, ReportStatus.EXPORTED] if include_all else [ReportStatus.NEW]
    reports = list(
        session.scalars(
            select(Report)
            .where(Report.status.in_(wanted))
            .order_by(Report.received_hour, Report.id)
        )
    )
    followups = list(
        session.scalars(
            select(FollowUp)
            .where(FollowUp.status.in_(wanted))
            .order_by(FollowUp.case_id, FollowUp.seq)
        )
    )
    # A row whose envelope is gone (lost on disk, or removed by hand) must not
    # stop every later export: it is left out, and the chain lists it as omitted.
    held = set(store.ids())
    missing = tuple(
        row_id
        for row_id in [r.id for r in reports] + [f.id for f in followups]
        if row_id not in held
    )
    reports = [row for row in reports if row.id in held]
    followups = [row for row in followups if row.id in held]
    entries = [
        ManifestEntry(
            id=report.id,
            received_hour=received_hour_now(report.received_hour),
            size=store.size(report.id),
            sha256=_sha256(store, report.id),
            reply_recipient=report.reply_recipient,
        )
        for report in reports
    ] + [
        ManifestEntry(
            id=followup.id,
            received_hour=received_hour_now(followup.received_hour),
            size=store.size(followup.id),
            sha256=_sha256(store, followup.id),
            kind=KIND_FOLLOWUP,
            case_id=followup.case_id,
            seq=followup.seq,
        )
        for followup in followups
    ]
    chained = _chain_entries(session, [entry.id for entry in entries])
    # Stored after the head was read: left, unexported, for the next bundle.
    late = {envelope_id for envelope_id, c in chained.items() if c.seq > head_seq}
    reports = [row for row in reports if row.id not in late]
    followups = [row for row in followups if row.id not in late]
    entries = [
        replace(entry, chain_seq=chained[entry.id].seq, chain_hash=chained[entry.id].chain_hash)
        if entry.id in chained
        else entry
        for entry in entries
        if entry.id not in late
    ]
    # Chain order; an envelope stored before the chain existed (none since
    # migration 0003) goes last, without chain fields.
    entries.sort(key=lambda e: (e.chain_seq is None, e.chain_seq or 0, e.id))
    if chain_from is not None:
        if not 0 <= chain_from <= head_seq:
            raise ValueError(f"--chain-from {chain_from} is beyond the chain's head {head_seq}")
        # The archive already holds what comes before: leave it out (rows unchanged).
        skipped = {e.id for e in entries if e.chain_seq is not None and e.chain_seq <= chain_from}
        entries = [entry for entry in entries if entry.id not in skipped]
        reports = [row for row in reports if row.id not in skipped]
        followups = [row for row in followups if row.id not in skipped]
    seqs = [entry.chain_seq for entry in entries if entry.chain_seq is not None]
    from_seq = min(seqs) - 1 if seqs else head_seq
    if chain_from is not None:
        from_seq = chain_from
    included = {entry.id for entry in entries}
    omitted = [
        _omitted(entry)
        for entry in session.scalars(
            select(ChainEntry)
            .where(ChainEntry.seq > from_seq, ChainEntry.seq <= head_seq)
            .order_by(ChainEntry.seq)
        )
        if entry.envelope_id not in included
    ]
    chain = ChainInfo(
        from_seq=from_seq,
        from_hash=_hash_at(session, from_seq),
        head_seq=head_seq,
        head_hash=head_hash,
        omitted=tuple(omitted),
    )
    manifest = manifest_bytes(
        received_hour_now(), entries, chain=chain, signing_key=public_key_text(key)
    )
    signature = format_signature(sign(key, manifest))

    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as bundle:
                bundle.addfile(_tar_info("manifest.json", len(manifest)), io.BytesIO(manifest))
                bundle.addfile(_tar_info(SIGNATURE_NAME, len(signature)), io.BytesIO(signature))
                for entry in entries:
                    info = _tar_info(envelope_member_name(entry.id), entry.size)
                    with store.open(entry.id) as stream:
                        bundle.addfile(info, stream)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    rows: list[Report | FollowUp] = [*reports, *followups]
    for row in rows:
        if row.status == ReportStatus.NEW:
            row.status = ReportStatus.EXPORTED
    session.commit()
    return ExportResult(out, [entry.id for entry in entries], head_seq, len(omitted), missing)
