"""Envelopes: one report (or follow-up) sealed into one age file.

An envelope is an age v1 encryption, to every configured recipient, of a POSIX
tar stream::

    report.json                    the structured report, always first
    attachments/01-<sanitised>     each upload, byte for byte
    padding                        zeros, so the plaintext lands on a size bucket

so that ``age -d -i identity.age envelope.age | tar -x`` always works. Sealing
streams the tar into ``pyrage.encrypt_io`` chunk by chunk, so memory stays flat
whatever the attachments weigh.

Opening is the reverse, and it handles *hostile* input: anyone can seal an
envelope to a public key. The tar reader here is a strict push parser fed by
``pyrage.decrypt_io``: it accepts only the members this module writes, bounds
every buffer, never trusts a declared size, and turns any fault into an
:class:`EnvelopeError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import pyrage

from intake.strictjson import loads_strict

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

__all__ = [
    "MAX_ATTACHMENTS",
    "MAX_REPORT_BYTES",
    "REPORT_MEMBER",
    "AttachmentSource",
    "EnvelopeError",
    "MemberInfo",
    "OpenedEnvelope",
    "SealResult",
    "attachment_member_name",
    "decrypt_stream",
    "open_envelope",
    "padded_size",
    "read_report",
    "sanitise_filename",
    "seal_envelope",
]

REPORT_MEMBER = "report.json"
PADDING_MEMBER = "padding"
ATTACHMENT_DIR = "attachments/"
#: A report.json larger than this is refused when opening (the form caps far below).
MAX_REPORT_BYTES = 1 << 20
#: More attachments than this in one envelope is refused when opening.
MAX_ATTACHMENTS = 1000
#: The smallest padding bucket: every envelope is at least this much plaintext,
#: so a short report and a shorter one look the same.
MIN_PADDED_SIZE = 16 * 1024

_BLOCK = 512
_CHUNK = 1 << 16
_MAX_PAX_BYTES = 64 * 1024
_MAX_NAME_BYTES = 255
_ATTACHMENT_NAME = re.compile(r"attachments/([0-9]{2,4})-([^/\x00-\x1f\x7f]{1,240})")
# Extended-header keys that only describe a plain file. Anything else (links,
# sparse maps, charsets, vendor extensions) could make ``tar -x`` see a different
# archive from the one this module checked, so it is refused.
_PAX_KEYS = frozenset({"path", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname"})


class Recipient(Protocol):
    """What pyrage accepts as a recipient (an X25519 or SSH public key)."""


class Identity(Protocol):
    """What pyrage accepts as an identity (an X25519 or SSH private key)."""


class EnvelopeError(Exception):
    """An envelope that cannot be opened; ``str()`` is one line, safe to print."""


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True)
class AttachmentSource:
    """One upload, ready to be sealed.

    ``open`` returns a fresh plaintext stream positioned at the start; it must
    yield exactly ``size`` bytes.
    """

    name: str
    size: int
    sha256: str
    open: Callable[[], BinaryIO]


@dataclass(frozen=True)
class SealResult:
    """What sealing produced: plaintext (padded) size, envelope size and SHA-256."""

    plaintext_size: int
    envelope_size: int
    envelope_sha256: str


@dataclass(frozen=True)
class MemberInfo:
    """An attachment found in an envelope: its tar member name and actual size."""

    member: str
    size: int


@dataclass
class OpenedEnvelope:
    """The result of reading an envelope: its report and the attachments it carried."""

    report: dict[str, Any]
    attachments: list[MemberInfo] = field(default_factory=list)


# --------------------------------------------------------------------------
# Names and padding
# --------------------------------------------------------------------------


def sanitise_filename(name: str, *, max_bytes: int = 200) -> str:
    """A file name safe on any file system and in a tar member, keeping its meaning.

    Keeps letters and digits of every script (Cyrillic included), ``.``, ``-``
    and ``_``; anything else becomes ``_``. No leading dots, never empty.
    """
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    cleaned = "".join(ch if ch.isalnum() or ch in ".-_" else "_" for ch in name)
    cleaned = re.sub(r"_+", "_", cleaned).lstrip(".")
    stem, dot, suffix = cleaned.rpartition(".")
    if not dot or not stem or len(suffix.encode()) > 16:
        stem, suffix = cleaned, ""
    limit = max_bytes - (len(suffix.encode()) + 1 if suffix else 0)
    while len(stem.encode("utf-8")) > limit:
        stem = stem[:-1]
    result = f"{stem}.{suffix}" if suffix else stem
    return result if result.strip("._-") else "file"


def attachment_member_name(index: int, name: str) -> str:
    """The tar member name of the ``index``-th attachment (from 1): ``attachments/01-name``."""
    return f"{ATTACHMENT_DIR}{index:02d}-{sanitise_filename(name)}"


def padded_size(length: int) -> int:
    """The padding bucket for ``length`` bytes of plaintext.

    PADMÉ (Nikitin et al., PETS 2019): at most about 12% overhead, and an
    observer learns only O(log log n) bits of the size. Rounded up to whole tar
    blocks, and never below :data:`MIN_PADDED_SIZE`.
    """
    length = max(length, MIN_PADDED_SIZE)
    exponent = length.bit_length() - 1
    significant = exponent.bit_length()
    mask = (1 << max(exponent - significant, 0)) - 1
    bucket = (length + mask) & ~mask
    return -(-bucket // _BLOCK) * _BLOCK


# --------------------------------------------------------------------------
# Sealing
# --------------------------------------------------------------------------


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = 0  # the server knows the hour; the envelope need not say more
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


def _block_padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def _tar_stream(report_json: bytes, attachments: Sequence[AttachmentSource]) -> Iterator[bytes]:
    """The plaintext tar, chunk by chunk, padded to its bucket."""
    headers = [_tar_header(REPORT_MEMBER, len(report_json))]
    headers += [
        _tar_header(attachment_member_name(index, item.name), item.size)
        for index, item in enumerate(attachments, start=1)
    ]
    sizes = [len(report_json)] + [item.size for item in attachments]
    body = sum(len(h) + s + (-s % _BLOCK) for h, s in zip(headers, sizes, strict=True))
    padding_header_size = len(_tar_header(PADDING_MEMBER, 0))
    unpadded = body + padding_header_size + 2 * _BLOCK
    padding = padded_size(unpadded) - unpadded

    yield headers[0]
    yield report_json
    yield _block_padding(len(report_json))
    for header, item in zip(headers[1:], attachments, strict=True):
        yield header
        remaining = item.size
        with item.open() as stream:
            while remaining:
                chunk = stream.read(min(_CHUNK, remaining))
                if not chunk:
                    raise ValueError("an attachment ended before its recorded size")
                remaining -= len(chunk)
                yield chunk
            if stream.read(1):
                raise ValueError("an attachment is longer than its recorded size")
        yield _block_padding(item.size)
    yield _tar_header(PADDING_MEMBER, padding)
    zeros = b"\0" * _CHUNK
    while padding:
        step = min(padding, _CHUNK)
        yield zeros[:step]
        padding -= step
    yield b"\0" * (2 * _BLOCK)


class _ChunkReader(io.RawIOBase):
    """A readable stream over an iterator of byte chunks (what ``encrypt_io`` pulls from)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        # A view, so handing out a chunk in pyrage's 8 KiB reads copies nothing.
        self._pending = memoryview(b"")
        self.total = 0
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self.error is not None:
            raise self.error
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
            except BaseException as exc:
                self.error = exc
                raise
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self.total += count
        return count


class _HashingWriter(io.RawIOBase):
    """Passes writes through to ``out`` while counting and hashing them."""

    def __init__(self, out: BinaryIO) -> None:
        super().__init__()
        self._out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        chunk = bytes(data)
        self._out.write(chunk)
        self.hash.update(chunk)
        self.size += len(chunk)
        return len(chunk)


def seal_envelope(
    report_json: bytes,
    attachments: Sequence[AttachmentSource],
    recipients: Sequence[Any],
    out: BinaryIO,
) -> SealResult:
    """Seal a report and its attachments into one age envelope written to ``out``.

    Memory use does not depend on the attachments' sizes.
    """
    if not recipients:
        raise ValueError("cannot seal to no recipient")
    # Refuse what open_envelope would refuse: a sealed envelope always opens.
    if len(report_json) > MAX_REPORT_BYTES:
        raise ValueError(f"report.json is larger than {MAX_REPORT_BYTES} bytes")
    try:
        _parse_report_json(report_json)
    except EnvelopeError as exc:
        raise ValueError(str(exc)) from None
    if len(attachments) > MAX_ATTACHMENTS:
        raise ValueError(f"more than {MAX_ATTACHMENTS} attachments")
    reader = _ChunkReader(_tar_stream(report_json, attachments))
    writer = _HashingWriter(out)
    try:
        pyrage.encrypt_io(reader, writer, list(recipients))
    except pyrage.EncryptError:
        # pyrage wraps what the tar stream raised (an attachment shorter or
        # longer than recorded, an unreadable spool): re-raise the original.
        if reader.error is not None:
            raise reader.error from None
        raise
    if reader.error is not None:  # pragma: no cover - pyrage always fails then
        raise reader.error
    return SealResult(reader.total, writer.size, writer.hash.hexdigest())


# --------------------------------------------------------------------------
# Opening
# --------------------------------------------------------------------------


class _StopReading(Exception):
    """Raised inside the decrypt loop once the caller has what it needs."""


AttachmentSink = Callable[[str, int], BinaryIO | None]


class _TarReader:
    """A strict, bounded push parser for the tar stream inside an envelope."""

    def __init__(self, on_attachment: AttachmentSink | None, stop_after_report: bool) -> None:
        self._on_attachment = on_attachment
        self._stop_after_report = stop_after_report
        self._buffer = bytearray()
        self._pax: dict[str, str] = {}
        self._state = "header"
        self._member = ""
        self._remaining = 0
        self._skip = 0
        self._report = bytearray()
        self._sink: BinaryIO | None = None
        self._current_size = 0
        self._seen_padding = False
        self.report: dict[str, Any] | None = None
        self.attachments: list[MemberInfo] = []
        self.ended = False
        self._failure: BaseException | None = None

    # The decrypt loop calls write(); all parsing happens here.
    def write(self, data: bytes) -> int:
        # pyrage calls write() again with the same bytes after it raised (its
        # buffered writer retries on drop): once the parser has failed or
        # stopped, it must not parse, nor feed a sink, ever again.
        if self._failure is not None:
            raise self._failure
        view = memoryview(data)
        try:
            while view:
                view = self._step(view)
        except BaseException as exc:
            self._failure = exc
            raise
        return len(data)

    def _step(self, view: memoryview) -> memoryview:
        if self._skip:
            count = min(self._skip, len(view))
            self._skip -= count
            return view[count:]
        if self._state == "header" or self._state == "end":
            need = _BLOCK - len(self._buffer)
            self._buffer += view[:need]
            if len(self._buffer) == _BLOCK:
                block = bytes(self._buffer)
                self._buffer.clear()
                self._header(block)
            return view[need:]
        # A member's data.
        count = min(self._remaining, len(view))
        self._data(view[:count])
        self._remaining -= count
        if self._remaining == 0:
            self._member_done()
        return view[count:]

    def _header(self, block: bytes) -> None:
        if self._state == "end":
            if block.strip(b"\0"):
                raise EnvelopeError("data after the end of the tar archive")
            return
        if not block.strip(b"\0"):
            if self.report is None:
                raise EnvelopeError("the tar archive has no report.json")
            if self._pax:
                raise EnvelopeError("bad tar extended header (no member follows it)")
            self._state = "end"
            self.ended = True
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
        except (tarfile.HeaderError, UnicodeDecodeError, ValueError) as exc:
            raise EnvelopeError(f"bad tar header ({_one_line(exc)})") from None
        if info.size < 0:
            raise EnvelopeError("bad tar header (negative size)")
        if info.type == tarfile.XHDTYPE:
            if self._pax or info.size > _MAX_PAX_BYTES:
                raise EnvelopeError("bad tar extended header")
            self._begin("\0pax", info.size)
            return
        if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            raise EnvelopeError(f"unexpected tar member type {info.type!r} (only files allowed)")
        name = self._pax.pop("path", info.name)
        size_text = self._pax.pop("size", None)
        self._pax.clear()
        size = info.size
        if size_text is not None:
            if not size_text.isdigit() or len(size_text) > 15:
                raise EnvelopeError("bad tar extended header (size)")
            size = int(size_text)
        self._begin(self._check_name(name), size)

    def _check_name(self, name: str) -> str:
        if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
            raise EnvelopeError("a tar member name is too long")
        if self._seen_padding:
            raise EnvelopeError(f"unexpected member after padding: {_printable(name)}")
        if self.report is None and not self._report and name != REPORT_MEMBER:
            raise EnvelopeError(f"the first member must be report.json, not {_printable(name)}")
        if name == REPORT_MEMBER:
            if self.report is not None:
                raise EnvelopeError("report.json appears twice")
            return name
        if name == PADDING_MEMBER:
            self._seen_padding = True
            return name
        if len(self.attachments) >= MAX_ATTACHMENTS:
            raise EnvelopeError("too many attachments")
        # Exactly what seal_envelope writes: the next number, and a name that
        # sanitise_filename leaves unchanged (so no "..", no control or bidi
        # characters, no two members with the same name).
        match = _ATTACHMENT_NAME.fullmatch(name)
        expected = f"{len(self.attachments) + 1:02d}"
        if (
            not match
            or match.group(1) != expected
            or sanitise_filename(match.group(2)) != match.group(2)
        ):
            raise EnvelopeError(f"unexpected tar member {_printable(name)}")
        return name

    def _begin(self, name: str, size: int) -> None:
        self._member = name
        self._remaining = size
        self._current_size = size
        self._skip = 0
        if name == REPORT_MEMBER and size > MAX_REPORT_BYTES:
            raise EnvelopeError("report.json is too large")
        if name.startswith(ATTACHMENT_DIR):
            self._sink = self._on_attachment(name, size) if self._on_attachment else None
        self._state = "data"
        if size == 0:
            self._member_done()

    def _data(self, chunk: memoryview) -> None:
        if self._member in (REPORT_MEMBER, "\0pax"):
            self._report += chunk
        elif self._member == PADDING_MEMBER:
            if bytes(chunk).strip(b"\0"):
                raise EnvelopeError("the padding holds data (it must be zeros)")
        elif self._sink is not None:
            self._sink.write(bytes(chunk))

    def _member_done(self) -> None:
        name, size = self._member, self._current_size
        self._state = "header"
        self._skip = -size % _BLOCK
        if name == "\0pax":
            self._pax = _parse_pax(bytes(self._report))
            self._report.clear()
        elif name == REPORT_MEMBER:
            self.report = _parse_report_json(bytes(self._report))
            self._report.clear()
            if self._stop_after_report:
                raise _StopReading
        elif name.startswith(ATTACHMENT_DIR):
            self.attachments.append(MemberInfo(name, size))
            self._sink = None

    def close(self) -> None:
        if self._state == "data" or self._buffer:
            raise EnvelopeError("the tar stream is truncated")
        if self.report is None:
            raise EnvelopeError("the tar archive has no report.json")
        if not self.ended:
            raise EnvelopeError("the tar stream is truncated (no end-of-archive marker)")


def _parse_pax(data: bytes) -> dict[str, str]:
    """Parse pax extended-header records (``"<len> <key>=<value>\\n"``), strictly."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        if not data[position:].strip(b"\0"):
            break
        space = data.find(b" ", position, position + 12)
        length_text = data[position:space] if space > 0 else b""
        if not length_text.isdigit():
            raise EnvelopeError("bad tar extended header")
        length = int(length_text)
        record = data[position : position + length]
        if length <= space - position or len(record) != length or not record.endswith(b"\n"):
            raise EnvelopeError("bad tar extended header")
        raw_key, equals, value = record[space - position + 1 : -1].partition(b"=")
        if not equals:
            raise EnvelopeError("bad tar extended header")
        try:
            key = raw_key.decode("ascii")
            records[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise EnvelopeError("bad tar extended header (encoding)") from None
        if key not in _PAX_KEYS:
            raise EnvelopeError(f"unsupported tar extended header key {_printable(key)[:40]!r}")
        position += length
    return records


def _parse_report_json(data: bytes) -> dict[str, Any]:
    value = loads_strict(data, error=EnvelopeError, what=REPORT_MEMBER)
    if not isinstance(value, dict):
        raise EnvelopeError("report.json is not a JSON object")
    return value


def _one_line(exc: BaseException) -> str:
    return _printable(str(exc))[:200] or type(exc).__name__


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:120]


def decrypt_stream(src: BinaryIO, identities: Sequence[Any], out: _Writable) -> None:
    """Decrypt the age file ``src`` into ``out``, streaming; any failure is an EnvelopeError.

    This is the one decrypt path of the review side (:func:`open_envelope` and
    :func:`read_report` use it). Plaintext reaches ``out`` as each 64 KiB age
    chunk is authenticated, so on error ``out`` may hold a prefix of it: the
    caller must discard what it got. An :class:`EnvelopeError` raised by
    ``out.write`` passes through unchanged.
    """
    if not identities:
        raise EnvelopeError("cannot decrypt (no identity given)")
    try:
        pyrage.decrypt_io(src, out, list(identities))
    except (EnvelopeError, _StopReading):
        raise
    except pyrage.DecryptError as exc:
        raise EnvelopeError(f"cannot decrypt ({_one_line(exc)})") from None
    except (OSError, ValueError, TypeError, OverflowError) as exc:
        # pyrage surfaces a failure in the middle of the stream as OSError.
        raise EnvelopeError(f"cannot decrypt ({_one_line(exc)})") from None


def _decrypt_into(src: BinaryIO, identities: Sequence[Any], reader: _TarReader) -> None:
    try:
        decrypt_stream(src, identities, reader)
    except _StopReading:
        return
    reader.close()


def read_report(src: BinaryIO, identities: Sequence[Any]) -> dict[str, Any]:
    """Decrypt just far enough to read ``report.json`` (the raw, unvalidated object)."""
    reader = _TarReader(None, stop_after_report=True)
    _decrypt_into(src, identities, reader)
    if reader.report is None:
        raise EnvelopeError("the tar archive has no report.json")
    return reader.report


def open_envelope(
    src: BinaryIO, identities: Sequence[Any], on_attachment: AttachmentSink | None = None
) -> OpenedEnvelope:
    """Decrypt a whole envelope, checking its structure to the end.

    ``on_attachment(member, size)`` is called at the start of each attachment
    and returns a writable stream for its bytes, or None to skip them. On
    :class:`EnvelopeError` the caller must discard whatever those streams got.
    """
    reader = _TarReader(on_attachment, stop_after_report=False)
    _decrypt_into(src, identities, reader)
    if reader.report is None:  # close() already refuses this; kept for the type
        raise EnvelopeError("the tar archive has no report.json")
    return OpenedEnvelope(reader.report, reader.attachments)
