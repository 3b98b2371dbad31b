"""Accepting a submission: seal it, store it durably, then record it.

The one function here is what the submit view calls, and what tests and
benchmarks call without a request. The order matters: the envelope is sealed
straight into the store's temp file and made durable (fsync, rename) before
the database row is committed, so a crash never leaves a row without its
envelope; if the row cannot be written the envelope is deleted again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from intake import alerts, chain
from intake.crypto.envelope import AttachmentSource, attachment_member_name, seal_envelope
from intake.crypto.receipts import derive_receipt_keys, new_receipt
from intake.models import Report, ReportStatus, new_report_id, to_hour
from intake.schema import AttachmentMeta, build_report, received_hour_now
from intake.store import EnvelopeStore

__all__ = ["Submitted", "accept_submission", "attachment_metas", "report_json_bytes"]


def report_json_bytes(report: Mapping[str, Any]) -> bytes:
    """The exact bytes of ``report.json``: UTF-8, no ASCII escaping, stable key order."""
    return json.dumps(report, ensure_ascii=False, indent=1).encode("utf-8")


@dataclass(frozen=True)
class Submitted:
    """An accepted report: its id (for the server) and its receipt (for the reporter only)."""

    report_id: str
    receipt: str


def attachment_metas(uploads: Sequence[AttachmentSource]) -> list[AttachmentMeta]:
    """What report.json says of each upload: its name, tar member, size and SHA-256."""
    return [
        AttachmentMeta(
            name=upload.name,
            member=attachment_member_name(index, upload.name),
            size=upload.size,
            sha256=upload.sha256,
        )
        for index, upload in enumerate(uploads, start=1)
    ]


def accept_submission(
    fields: Mapping[str, Any],
    uploads: Sequence[AttachmentSource],
    *,
    language: str,
    recipients: Sequence[Any],
    store: EnvelopeStore,
    session: Session,
    received: datetime,
    pepper: bytes,
    record_danger_flag: bool = False,
) -> Submitted:
    """Seal one report with its attachments, store it, record it.

    Returns the report id and the receipt. The receipt itself is kept nowhere:
    the row holds only the lookup key and reply recipient it derives. On any
    failure nothing stays behind: no row, no envelope, no temp file.
    """
    report_id = new_report_id()
    receipt = new_receipt()
    receipt_keys = derive_receipt_keys(receipt.replace("-", ""), pepper)
    hour = to_hour(received)
    attachments = attachment_metas(uploads)
    report = build_report(
        fields,
        attachments,
        received_hour=received_hour_now(hour),
        language=language,
    )
    with store.writer(report_id) as out:
        sealed = seal_envelope(report_json_bytes(report), uploads, recipients, out)
    try:
        danger = report["danger_now"]["answer"] == "yes" if record_danger_flag else None
        chain.append(
            session,
            envelope_id=report_id,
            kind="report",
            case_id=report_id,
            received_hour=hour,
            envelope_sha256=sealed.envelope_sha256,
        )
        alerts.note_arrival(session, danger=danger)
        session.add(
            Report(
                id=report_id,
                received_hour=hour,
                padded_size=sealed.envelope_size,
                status=ReportStatus.NEW,
                danger_now=danger,
                lookup_key=receipt_keys.lookup_key,
                reply_recipient=receipt_keys.reply_recipient,
            )
        )
        session.commit()
    except BaseException:
        session.rollback()
        store.delete(report_id)
        raise
    return Submitted(report_id, receipt)
