"""Open envelopes from a source and turn them into checked reports and follow-ups.

Every failure (age, tar, JSON, schema, source integrity) ends up as a
:class:`ReviewError` whose message is one line naming what failed, so the
caller can report it against the envelope id and go on with the next one.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from intake.crypto.envelope import EnvelopeError, open_envelope, read_report
from intake.review.lang import _
from intake.review.sources import EnvelopeRef
from intake.schema import (
    AttachmentMeta,
    FollowUpReport,
    Report,
    ReportFormatError,
    parse_envelope_json,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "AttachmentCheck",
    "Content",
    "FullReport",
    "HashingSink",
    "ReviewError",
    "match_attachments",
    "read_full",
    "read_summary",
]


#: What an envelope holds: a report, or a follow-up to a case.
Content = Report | FollowUpReport


class ReviewError(Exception):
    """One envelope could not be read; ``str()`` is one line (neutralise before printing)."""


class HashingSink(io.RawIOBase):
    """Counts and hashes attachment bytes, passing them on to ``out`` when given.

    A write error on ``out`` is kept in :attr:`error`: it surfaces through
    pyrage as a decrypt failure, and the caller reports the real cause.
    """

    def __init__(self, member: str, out: BinaryIO | None = None) -> None:
        super().__init__()
        self.member = member
        self.out = out
        self.size = 0
        self.error: OSError | None = None
        self._hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        chunk = bytes(data)
        if self.out is not None:
            try:
                self.out.write(chunk)
            except OSError as exc:
                self.error = exc
                raise
        self._hash.update(chunk)
        self.size += len(chunk)
        return len(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
        super().close()


@dataclass(frozen=True)
class AttachmentCheck:
    """One attachment: what report.json lists and what the envelope held."""

    member: str
    meta: AttachmentMeta | None  # None: in the envelope but not listed in report.json
    size: int | None  # None: listed in report.json but absent from the envelope
    sha256: str | None

    @property
    def ok(self) -> bool:
        return self.status == "verified"

    @property
    def status(self) -> str:
        if self.meta is None:
            return "NOT LISTED in report.json"
        if self.size is None:
            return "MISSING from the envelope"
        if self.size != self.meta.size:
            return f"SIZE MISMATCH ({self.size} bytes, report says {self.meta.size})"
        if self.sha256 != self.meta.sha256:
            return "SHA-256 MISMATCH"
        return "verified"


@dataclass
class FullReport:
    """A whole envelope read to its end: the report (or follow-up) and its checked attachments."""

    report: Content
    attachments: list[AttachmentCheck] = field(default_factory=list)


def _parse(raw: dict[str, Any]) -> Content:
    try:
        return parse_envelope_json(raw)
    except ReportFormatError as exc:
        raise ReviewError(
            _("report.json does not follow the schema: %(problem)s") % {"problem": exc}
        ) from None


def read_summary(ref: EnvelopeRef, identities: Sequence[Any]) -> Content:
    """Decrypt only up to report.json (fast) and check it against the schema.

    The result is a :class:`Report`, or a :class:`FollowUpReport` when the
    envelope's ``kind`` says it is a follow-up.
    """
    try:
        with ref.open() as stream:
            raw = read_report(stream, identities)
    except EnvelopeError as exc:
        raise ReviewError(str(exc)) from None
    except OSError as exc:
        raise ReviewError(_cannot_read(exc)) from None
    return _parse(raw)


def _cannot_read(exc: OSError) -> str:
    return _("cannot be read (%(reason)s)") % {"reason": exc.strerror or type(exc).__name__}


SinkFactory = Callable[[str, int], BinaryIO | None]


def read_raw_full(
    ref: EnvelopeRef, identities: Sequence[Any], out_for: SinkFactory | None = None
) -> tuple[dict[str, Any], list[HashingSink]]:
    """Decrypt a whole envelope, hashing each attachment (and writing it where asked).

    ``out_for(member, declared_size)`` gives the stream an attachment's bytes go
    to, or None to only hash them. Sinks are closed before returning or raising.
    """
    sinks: list[HashingSink] = []

    def on_attachment(member: str, size: int) -> BinaryIO:
        sink = HashingSink(member, out_for(member, size) if out_for else None)
        sinks.append(sink)
        return sink  # type: ignore[return-value]  # a RawIOBase is a binary stream

    try:
        with ref.open() as stream:
            opened = open_envelope(stream, identities, on_attachment)
    except EnvelopeError as exc:
        failed = next((s for s in sinks if s.error is not None), None)
        if failed is not None and failed.error is not None:
            reason = failed.error.strerror or type(failed.error).__name__
            raise ReviewError(
                _("cannot write an attachment (%(reason)s)") % {"reason": reason}
            ) from None
        raise ReviewError(str(exc)) from None
    except OSError as exc:
        raise ReviewError(_cannot_read(exc)) from None
    finally:
        for sink in sinks:
            sink.close()
    return opened.report, sinks


def match_attachments(report: Content, sinks: Sequence[HashingSink]) -> list[AttachmentCheck]:
    """Pair what report.json lists with what the envelope held, in report order."""
    found = {sink.member: sink for sink in sinks}
    checks: list[AttachmentCheck] = []
    for meta in report.attachments:
        sink = found.pop(meta.member, None)
        if sink is None:
            checks.append(AttachmentCheck(meta.member, meta, None, None))
        else:
            checks.append(AttachmentCheck(meta.member, meta, sink.size, sink.sha256))
    for member, sink in found.items():
        checks.append(AttachmentCheck(member, None, sink.size, sink.sha256))
    return checks


def read_full(ref: EnvelopeRef, identities: Sequence[Any]) -> FullReport:
    """Decrypt a whole envelope (nothing written), check report and attachments."""
    raw, sinks = read_raw_full(ref, identities)
    report = _parse(raw)
    return FullReport(report, match_attachments(report, sinks))
