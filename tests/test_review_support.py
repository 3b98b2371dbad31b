"""Helpers for the intake-review tests: keys, reports, sealed envelopes, bundles.

Imported by the other ``test_review_*`` modules; it holds no tests itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
from pyrage import x25519

from intake.crypto.envelope import AttachmentSource, attachment_member_name, seal_envelope
from intake.crypto.keys import generate_identity
from intake.review.bundle import ManifestEntry, envelope_member_name, manifest_bytes
from intake.schema import AttachmentMeta, build_followup, build_report


@dataclass(frozen=True)
class Key:
    """A test identity: its file text, the pyrage objects, and where it was written."""

    text: str
    recipient: str
    path: Path

    @property
    def identity(self) -> x25519.Identity:
        line = next(x for x in self.text.splitlines() if x.startswith("AGE-SECRET-KEY-"))
        return x25519.Identity.from_str(line)

    @property
    def recipient_obj(self) -> x25519.Recipient:
        return x25519.Recipient.from_str(self.recipient)


def make_key(directory: Path, name: str = "identity.txt") -> Key:
    text, recipient = generate_identity()
    path = directory / name
    path.write_text(text)
    return Key(text, recipient, path)


BASE_FIELDS: dict[str, Any] = {
    "danger_now": "no",
    "relationship": "relative",
    "person_name": "Aigul Test",
    "facility_type": "sizo",
    "facility_name": "SIZO-1 Bishkek",
    "what_happened": "Beaten by guards.\nNo doctor since.",
    "acts": ["beaten"],
    "incident_date": "2024-03",
    "date_precision": "month",
    "consent_store": "yes",
    "consent_share": "this_org",
    "detainee_consent": "yes",
    "action_wanted": "quiet_advocacy",
    "publicity_risk": "dont_know",
    "officials_warned": "no",
    "preferred_language": "ru",
}


def report_dict(
    attachments: Sequence[tuple[str, bytes]] = (),
    received_hour: str = "2024-05-01T13:00Z",
    **fields: Any,
) -> dict[str, Any]:
    metas = [
        AttachmentMeta(
            name=name,
            member=attachment_member_name(i, name),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        for i, (name, data) in enumerate(attachments, start=1)
    ]
    return build_report(
        {**BASE_FIELDS, **fields}, metas, received_hour=received_hour, language="ru"
    )


def _metas(attachments: Sequence[tuple[str, bytes]]) -> list[AttachmentMeta]:
    return [
        AttachmentMeta(
            name=name,
            member=attachment_member_name(i, name),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        for i, (name, data) in enumerate(attachments, start=1)
    ]


def followup_dict(
    case_id: str,
    seq: int,
    attachments: Sequence[tuple[str, bytes]] = (),
    received_hour: str = "2024-05-04T10:00Z",
    text: str = "Moved to colony 47.",
    danger_now: str = "no",
    **fields: Any,
) -> dict[str, Any]:
    return build_followup(
        {"text": text, "danger_now": danger_now, **fields},
        _metas(attachments),
        case_id=case_id,
        seq=seq,
        received_hour=received_hour,
        language="ru",
    )


def sealed_followup(
    key: Key,
    case_id: str,
    seq: int,
    attachments: Sequence[tuple[str, bytes]] = (),
    **fields: Any,
) -> bytes:
    """A valid follow-up envelope to ``case_id``, sealed to ``key``."""
    return seal(
        followup_dict(case_id, seq, attachments, **fields), [key.recipient_obj], attachments
    )


def seal(
    report: Mapping[str, Any] | bytes,
    recipients: Sequence[Any],
    attachments: Sequence[tuple[str, bytes]] = (),
) -> bytes:
    report_json = report if isinstance(report, bytes) else json.dumps(report).encode()
    sources = [
        AttachmentSource(
            name=name,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            open=lambda data=data: io.BytesIO(data),  # type: ignore[misc]
        )
        for name, data in attachments
    ]
    out = io.BytesIO()
    seal_envelope(report_json, sources, list(recipients), out)
    return out.getvalue()


def seal_tar(members: Sequence[tuple[str, bytes]], recipients: Sequence[Any]) -> bytes:
    """Any tar, sealed with age: for envelopes seal_envelope would refuse to make."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            add_member(archive, name, data)
    encrypted: bytes = pyrage.encrypt(buffer.getvalue(), list(recipients))
    return encrypted


def sealed_report(key: Key, attachments: Sequence[tuple[str, bytes]] = (), **fields: Any) -> bytes:
    """A valid envelope with its report and attachments, sealed to ``key``."""
    return seal(report_dict(attachments, **fields), [key.recipient_obj], attachments)


def manifest_entry(
    envelope_id: str, data: bytes, hour: str = "2024-05-01T13:00Z", **case_fields: Any
) -> ManifestEntry:
    """``case_fields``: kind, case_id, seq, reply_recipient (as the exporter fills them)."""
    return ManifestEntry(
        envelope_id, hour, len(data), hashlib.sha256(data).hexdigest(), **case_fields
    )


def add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    archive.addfile(info, io.BytesIO(data))


def make_bundle(
    path: Path,
    envelopes: Mapping[str, bytes],
    *,
    manifest: bytes | None = None,
    extra: Sequence[tarfile.TarInfo | tuple[str, bytes]] = (),
    case_fields: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """A bundle as the exporter writes it, plus ``extra`` members an attacker adds.

    ``case_fields`` maps envelope ids to the manifest's case fields for them.
    """
    if manifest is None:
        fields = case_fields or {}
        entries = [manifest_entry(i, d, **fields.get(i, {})) for i, d in envelopes.items()]
        manifest = manifest_bytes("2024-05-02T09:00Z", entries)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        add_member(archive, "manifest.json", manifest)
        for envelope_id, data in envelopes.items():
            add_member(archive, envelope_member_name(envelope_id), data)
        for item in extra:
            if isinstance(item, tarfile.TarInfo):
                archive.addfile(item)
            else:
                add_member(archive, item[0], item[1])
    return path


def make_folder(directory: Path, envelopes: Mapping[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for envelope_id, data in envelopes.items():
        (directory / f"{envelope_id}.age").write_bytes(data)
    return directory
