"""Envelopes: sealing keeps every byte, opening refuses every hostile archive.

Anyone holding the public key can seal an envelope, so the opening side is
tested against hand-made tar streams sealed with ``pyrage.encrypt``: each one
must fail with an :class:`EnvelopeError` whose message is one printable line,
never another exception, and the attachment sink must never be offered a name
outside ``attachments/``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyrage
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrage import x25519

from intake.crypto.envelope import (
    MAX_ATTACHMENTS,
    MAX_REPORT_BYTES,
    MIN_PADDED_SIZE,
    AttachmentSource,
    EnvelopeError,
    SealResult,
    attachment_member_name,
    decrypt_stream,
    open_envelope,
    padded_size,
    read_report,
    sanitise_filename,
    seal_envelope,
)

IDENTITY = x25519.Identity.generate()
RECIPIENT = IDENTITY.to_public()
OTHER_IDENTITY = x25519.Identity.generate()

#: What a sink may ever be offered: one level below attachments/, numbered, no
#: path separator, no control character, no dot-dot.
SAFE_MEMBER = re.compile(r"attachments/[0-9]{2,4}-[^/\\\x00-\x1f\x7f-\x9f]+")


# --- helpers ---------------------------------------------------------------------


def source(name: str, data: bytes) -> AttachmentSource:
    return AttachmentSource(
        name=name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        open=lambda: io.BytesIO(data),
    )


def seal(
    report: bytes | dict[str, Any] = b'{"schema": 1}',
    attachments: list[AttachmentSource] | None = None,
    recipients: list[Any] | None = None,
) -> tuple[bytes, SealResult]:
    report_json = report if isinstance(report, bytes) else json.dumps(report).encode()
    out = io.BytesIO()
    result = seal_envelope(report_json, attachments or [], recipients or [RECIPIENT], out)
    return out.getvalue(), result


def plaintext_of(envelope: bytes, identity: Any = IDENTITY) -> bytes:
    data: bytes = pyrage.decrypt(envelope, [identity])
    return data


@dataclass
class Sink:
    """Records what open_envelope hands out, and checks every name it offers."""

    files: dict[str, io.BytesIO] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)

    def __call__(self, name: str, size: int) -> BinaryIO:
        assert SAFE_MEMBER.fullmatch(name), f"sink offered an unsafe name {name!r}"
        assert ".." not in name
        assert name not in self.files, f"sink offered {name!r} twice"
        self.calls.append((name, size))
        self.files[name] = io.BytesIO()
        return self.files[name]


def open_bytes(envelope: bytes, sink: Sink | None = None) -> Any:
    return open_envelope(io.BytesIO(envelope), [IDENTITY], sink)


def assert_one_line(error: BaseException) -> None:
    message = str(error)
    assert message, "empty message"
    assert message.isprintable(), repr(message)
    assert len(message) <= 300, message


# --- round trip ------------------------------------------------------------------

HOSTILE_NAMES = [
    "",
    "empty.txt",
    "Протокол допроса №5.pdf",
    "../../x",
    "/etc/passwd",
    "..\\..\\windows\\system32",
    "a\x1b[31mb",
    "evil\u202etxt.exe",
    "...",
    ".hidden",
    "x" * 400 + ".jpeg",
    "ж" * 300,
    "name\x00with-nul.txt",
    "report.json",
    "padding",
    "con",
]


def test_round_trip_keeps_every_byte_and_order() -> None:
    payloads = [
        b"",
        os.urandom(200_003),
        "Доклад".encode() * 1000,
        b"\0" * 513,
        os.urandom(1),
    ]
    names = [HOSTILE_NAMES[i % len(HOSTILE_NAMES)] for i in range(len(payloads))]
    names += HOSTILE_NAMES[len(payloads) :]
    payloads += [os.urandom(i * 97) for i in range(len(names) - len(payloads))]
    sources = [source(n, p) for n, p in zip(names, payloads, strict=True)]
    report = {"schema": 1, "text": "Избит в СИЗО №1", "nested": {"a": [1, 2, None]}}
    envelope, result = seal(report, sources)

    sink = Sink()
    opened = open_bytes(envelope, sink)
    assert opened.report == report
    expected = [attachment_member_name(i, n) for i, n in enumerate(names, start=1)]
    assert [m.member for m in opened.attachments] == expected
    assert [m.size for m in opened.attachments] == [len(p) for p in payloads]
    assert list(sink.files) == expected
    for member, payload in zip(expected, payloads, strict=True):
        got = sink.files[member].getvalue()
        assert got == payload
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()

    # The tar layout, as standard tar sees it.
    plaintext = plaintext_of(envelope)
    assert len(plaintext) == result.plaintext_size
    assert result.plaintext_size == padded_size(result.plaintext_size)
    with tarfile.open(fileobj=io.BytesIO(plaintext)) as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == ["report.json", *expected, "padding"]
    assert all(m.isreg() and m.mode == 0o600 and m.mtime == 0 for m in members)
    for i, member in enumerate(expected, start=1):
        assert member.startswith(f"attachments/{i:02d}-")
        assert SAFE_MEMBER.fullmatch(member)
        assert len(member.encode()) <= 255


def test_member_names_are_sanitised() -> None:
    assert attachment_member_name(1, "../../x") == "attachments/01-x"
    assert attachment_member_name(2, "a\x1b[31mb") == "attachments/02-a_31mb"
    assert attachment_member_name(3, "Отчёт.PDF") == "attachments/03-Отчёт.PDF"
    assert attachment_member_name(4, "") == "attachments/04-file"
    assert attachment_member_name(1000, "x") == "attachments/1000-x"
    long = attachment_member_name(5, "ж" * 300 + ".jpeg")
    assert long.endswith(".jpeg") and len(long.encode()) <= len("attachments/05-") + 200


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_sanitise_filename_is_safe_and_idempotent(name: str) -> None:
    clean = sanitise_filename(name)
    assert clean
    assert sanitise_filename(clean) == clean
    assert "/" not in clean and "\\" not in clean
    assert not clean.startswith(".")
    assert clean.isprintable()
    assert len(clean.encode()) <= 200


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=1, max_size=4))
def test_any_upload_name_seals_into_an_envelope_that_opens(names: list[str]) -> None:
    sources = [source(n, n.encode("utf-8", "surrogatepass")) for n in names]
    envelope, _ = seal({"schema": 1}, sources)
    sink = Sink()
    opened = open_bytes(envelope, sink)
    assert [m.member for m in opened.attachments] == [
        attachment_member_name(i, n) for i, n in enumerate(names, start=1)
    ]


def test_several_recipients_each_open() -> None:
    envelope, _ = seal({"a": 1}, [], [RECIPIENT, OTHER_IDENTITY.to_public()])
    for identity in (IDENTITY, OTHER_IDENTITY):
        assert open_envelope(io.BytesIO(envelope), [identity]).report == {"a": 1}


def test_skipping_attachments() -> None:
    envelope, _ = seal({"a": 1}, [source("x", b"data")])
    opened = open_envelope(io.BytesIO(envelope), [IDENTITY], lambda name, size: None)
    assert [(m.member, m.size) for m in opened.attachments] == [("attachments/01-x", 4)]
    assert open_envelope(io.BytesIO(envelope), [IDENTITY]).report == {"a": 1}


# --- sizes -------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=0, max_value=1 << 40), st.integers(min_value=0, max_value=1 << 20))
def test_padded_size_properties(n: int, delta: int) -> None:
    bucket = padded_size(n)
    assert bucket >= n
    assert bucket >= MIN_PADDED_SIZE
    assert bucket % 512 == 0
    assert padded_size(n + delta) >= bucket  # monotonic
    assert padded_size(bucket) == bucket  # a bucket is its own bucket
    if n <= MIN_PADDED_SIZE:
        assert bucket == MIN_PADDED_SIZE
    else:
        assert bucket <= n * 1.12, (n, bucket)


def payload_size(envelope: bytes) -> int:
    """Bytes after the age header (nonce and STREAM chunks).

    The header itself varies in length between any two encryptions: rage adds
    a "grease" stanza of random length. That noise does not depend on the
    content, so it leaks nothing; the part that does depend on it is this.
    """
    mac_line = envelope.index(b"\n--- ") + 1
    return len(envelope) - (envelope.index(b"\n", mac_line) + 1)


def test_padding_hides_small_size_differences() -> None:
    (short, r1), (longer, r2) = seal({"text": "x" * 10}), seal({"text": "x" * 5000})
    assert r1.plaintext_size == r2.plaintext_size == MIN_PADDED_SIZE
    assert payload_size(short) == payload_size(longer)
    a, r3 = seal({"t": "a"}, [source("photo.jpg", os.urandom(1_000_000))])
    b, r4 = seal({"t": "ab"}, [source("scan.jpg", os.urandom(1_000_000 + 3_000))])
    assert r3.plaintext_size == r4.plaintext_size
    assert payload_size(a) == payload_size(b)
    # and the header's own variation is bounded and content-independent
    assert abs(len(a) - len(b)) < 400
    # buckets are few: 1 MB .. 2 MB of uploads fall into a handful of sizes
    sizes = {padded_size(n) for n in range(1_000_000, 2_000_000, 1000)}
    assert len(sizes) <= 40


def test_seal_result_matches_the_bytes_written() -> None:
    envelope, result = seal({"a": "b"}, [source("f", os.urandom(70_000))])
    assert result.envelope_size == len(envelope)
    assert result.envelope_sha256 == hashlib.sha256(envelope).hexdigest()
    assert result.plaintext_size == len(plaintext_of(envelope))
    assert result.plaintext_size >= MIN_PADDED_SIZE


# --- opening: normal failures --------------------------------------------------------


def test_wrong_or_no_identity() -> None:
    envelope, _ = seal()
    for identities in ([OTHER_IDENTITY], []):
        with pytest.raises(EnvelopeError) as caught:
            open_envelope(io.BytesIO(envelope), identities)
        assert_one_line(caught.value)
        with pytest.raises(EnvelopeError):
            read_report(io.BytesIO(envelope), identities)


def test_read_report_stops_early() -> None:
    report = {"schema": 1, "text": "only this is needed"}
    envelope, _ = seal(report, [source("big.bin", os.urandom(1 << 20))])
    corrupted = bytearray(envelope)
    for i in range(len(corrupted) - 5000, len(corrupted)):
        corrupted[i] ^= 0x5A
    assert read_report(io.BytesIO(bytes(corrupted)), [IDENTITY]) == report
    truncated = envelope[: len(envelope) // 2]
    assert read_report(io.BytesIO(truncated), [IDENTITY]) == report
    for broken in (bytes(corrupted), truncated):
        with pytest.raises(EnvelopeError) as caught:
            open_bytes(broken, Sink())
        assert_one_line(caught.value)


def test_corrupted_or_truncated_anywhere() -> None:
    envelope, _ = seal({"a": 1}, [source("f", os.urandom(150_000))])
    for position in (0, 30, 100, 200, len(envelope) // 2, len(envelope) - 1):
        broken = bytearray(envelope)
        broken[position] ^= 1
        with pytest.raises(EnvelopeError) as caught:
            open_bytes(bytes(broken), Sink())
        assert_one_line(caught.value)
    for cut in (0, 10, 200, len(envelope) - 17, len(envelope) - 1):
        with pytest.raises(EnvelopeError):
            open_bytes(envelope[:cut], Sink())
    with pytest.raises(EnvelopeError):
        open_bytes(envelope + b"\0", Sink())


# --- sealing refuses what could not be opened ----------------------------------------


def test_seal_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="no recipient"):
        seal_envelope(b"{}", [], [], io.BytesIO())
    with pytest.raises(ValueError, match="JSON object"):
        seal(b"[1, 2]")
    with pytest.raises(ValueError, match="JSON"):
        seal(b"{bad")
    with pytest.raises(ValueError, match="larger"):
        seal(b'{"a": "' + b"x" * MAX_REPORT_BYTES + b'"}')
    with pytest.raises(ValueError, match="attachments"):
        seal({}, [source("x", b"")] * (MAX_ATTACHMENTS + 1))


def test_seal_reports_an_attachment_of_the_wrong_length() -> None:
    short = AttachmentSource("a", 10, "", lambda: io.BytesIO(b"12345"))
    with pytest.raises(ValueError, match="ended before"):
        seal({}, [short])
    long = AttachmentSource("a", 3, "", lambda: io.BytesIO(b"12345"))
    with pytest.raises(ValueError, match="longer"):
        seal({}, [long])

    def broken() -> BinaryIO:
        raise OSError("spool gone")

    with pytest.raises(OSError, match="spool gone"):
        seal({}, [AttachmentSource("a", 3, "", broken)])


# --- hostile archives ---------------------------------------------------------------

END = b"\0" * 1024


def member(
    name: str,
    data: bytes = b"",
    *,
    size: int | None = None,
    fmt: int = tarfile.PAX_FORMAT,
    **attributes: Any,
) -> bytes:
    """One tar member (header(s), data, block padding), built by the stdlib."""
    info = tarfile.TarInfo(name)
    info.size = len(data) if size is None else size
    for key, value in attributes.items():
        setattr(info, key, value)
    return info.tobuf(fmt, "utf-8", "surrogateescape") + data + b"\0" * (-len(data) % 512)


REPORT = member("report.json", b'{"schema": 1}')
ATTACHMENT = member("attachments/01-x", b"hello")
PADDING = member("padding", b"\0" * 700)
VALID = REPORT + ATTACHMENT + PADDING + END


def test_hand_made_baseline_opens() -> None:
    """The control case: the hostile cases below differ from this in one way."""
    sink = Sink()
    opened = open_bytes(pyrage.encrypt(VALID, [RECIPIENT]), sink)
    assert opened.report == {"schema": 1}
    assert sink.files["attachments/01-x"].getvalue() == b"hello"
    # also as written by tarfile itself, with its 10 KiB record padding
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in [("report.json", b"{}"), ("attachments/01-y", b"z" * 600)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    assert open_bytes(pyrage.encrypt(buffer.getvalue(), [RECIPIENT]), Sink()).report == {}


def _many_attachments(count: int) -> bytes:
    return REPORT + b"".join(member(f"attachments/{i:02d}-f") for i in range(1, count + 1)) + END


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n"
    length = len(body) + 1
    length = len(body) + len(str(length + len(body)))
    for _ in range(3):
        length = len(body) + len(str(length))
    return f"{length}{body}".encode()


def _raw_pax(records: bytes, then: bytes) -> bytes:
    info = tarfile.TarInfo("PaxHeaders/x")
    info.type = tarfile.XHDTYPE
    info.size = len(records)
    header = info.tobuf(tarfile.USTAR_FORMAT)
    return header + records + b"\0" * (-len(records) % 512) + then


def _bad_checksum() -> bytes:
    header = bytearray(member("attachments/01-x", b"hello", fmt=tarfile.USTAR_FORMAT))
    header[0] ^= 1
    return REPORT + bytes(header) + END


def _negative_size() -> bytes:
    header = bytearray(member("attachments/01-x", b"", fmt=tarfile.GNU_FORMAT))
    header[124:136] = b"\xff" * 12  # base-256, negative
    header[148:156] = b"        "
    checksum = sum(header[:512])
    header[148:156] = b"%06o\0 " % checksum
    return REPORT + bytes(header) + END


HOSTILE: dict[str, Callable[[], bytes]] = {
    "empty plaintext": lambda: b"",
    "not a tar": lambda: b"hello, this is not a tar archive\n" * 100,
    "only end blocks": lambda: END,
    "attachment before report.json": lambda: ATTACHMENT + REPORT + END,
    "padding before report.json": lambda: PADDING + REPORT + END,
    "dot-dot member": lambda: REPORT + member("../evil", b"x") + END,
    "dot-dot under attachments": lambda: REPORT + member("attachments/01-x/../../evil") + END,
    "attachment named dot-dot": lambda: REPORT + member("attachments/01-..") + END,
    "absolute path": lambda: REPORT + member("/etc/x", b"x") + END,
    "absolute path first": lambda: member("/report.json", b"{}") + END,
    "dot-slash report": lambda: member("./report.json", b"{}") + END,
    "subdirectory attachment": lambda: REPORT + member("attachments/01-a/b", b"x") + END,
    "member outside attachments": lambda: REPORT + member("notes.txt", b"x") + END,
    "unnumbered attachment": lambda: REPORT + member("attachments/x", b"x") + END,
    "attachment numbered out of order": lambda: REPORT + member("attachments/02-x") + END,
    "attachment number repeated": lambda: REPORT + ATTACHMENT + ATTACHMENT + END,
    "attachment number one digit": lambda: REPORT + member("attachments/1-x") + END,
    "attachment name with escape": lambda: REPORT + member("attachments/01-a\x1b[31mb") + END,
    "attachment name with bidi override": lambda: REPORT + member("attachments/01-a\u202eb") + END,
    "attachment name with C1 control": lambda: REPORT + member("attachments/01-a\x9bb") + END,
    "attachment name with backslash": lambda: REPORT + member("attachments/01-..\\..\\x") + END,
    "attachment name too long": lambda: REPORT + member("attachments/01-" + "a" * 300) + END,
    "symlink": lambda: (
        REPORT + member("attachments/01-x", type=tarfile.SYMTYPE, linkname="/etc/passwd") + END
    ),
    "hardlink": lambda: (
        REPORT + member("attachments/01-x", type=tarfile.LNKTYPE, linkname="report.json") + END
    ),
    "character device": lambda: (
        REPORT + member("attachments/01-x", type=tarfile.CHRTYPE, devmajor=1, devminor=3) + END
    ),
    "block device": lambda: REPORT + member("attachments/01-x", type=tarfile.BLKTYPE) + END,
    "directory": lambda: REPORT + member("attachments/", type=tarfile.DIRTYPE) + END,
    "directory named like a file": lambda: (
        REPORT + member("attachments/01-x", type=tarfile.DIRTYPE) + END
    ),
    "fifo": lambda: REPORT + member("attachments/01-x", type=tarfile.FIFOTYPE) + END,
    "contiguous file type": lambda: (
        REPORT + member("attachments/01-x", type=tarfile.CONTTYPE) + END
    ),
    "gnu sparse": lambda: REPORT + member("attachments/01-x", type=tarfile.GNUTYPE_SPARSE) + END,
    "gnu longname": lambda: (
        REPORT + member("attachments/01-" + "a" * 150, b"x", fmt=tarfile.GNU_FORMAT) + END
    ),
    "gnu longlink": lambda: (
        REPORT
        + member(
            "attachments/01-x", type=tarfile.SYMTYPE, linkname="l" * 200, fmt=tarfile.GNU_FORMAT
        )
        + END
    ),
    "pax global header": lambda: (
        REPORT + member("g", b"", type=tarfile.XGLTYPE, pax_headers={"path": "x"}) + END
    ),
    "pax path escapes": lambda: (
        REPORT + member("attachments/01-x", b"x", pax_headers={"path": "../../evil"}) + END
    ),
    "pax linkpath": lambda: (
        REPORT + _raw_pax(_pax_record("linkpath", "/etc/passwd"), ATTACHMENT + END)
    ),
    "pax sparse map": lambda: (
        REPORT + _raw_pax(_pax_record("GNU.sparse.map", "0,1"), ATTACHMENT + END)
    ),
    "pax charset": lambda: REPORT + _raw_pax(_pax_record("hdrcharset", "BINARY"), ATTACHMENT + END),
    "pax huge size on attachment": lambda: (
        REPORT + _raw_pax(_pax_record("size", "99999999999999"), ATTACHMENT + END)
    ),
    "pax huge size on report": lambda: _raw_pax(
        _pax_record("size", "99999999999999"), REPORT + END
    ),
    "pax size too many digits": lambda: (
        REPORT + _raw_pax(_pax_record("size", "9" * 40), ATTACHMENT + END)
    ),
    "pax size negative": lambda: REPORT + _raw_pax(_pax_record("size", "-1"), ATTACHMENT + END),
    "pax record length lies": lambda: REPORT + _raw_pax(b"99 path=x\n", ATTACHMENT + END),
    "pax record without equals": lambda: REPORT + _raw_pax(b"9 pathx\n\n", ATTACHMENT + END),
    "pax invalid utf-8": lambda: REPORT + _raw_pax(b"11 path=\xff\xfe\n", ATTACHMENT + END),
    "pax header too large": lambda: (
        REPORT + _raw_pax(_pax_record("comment", "x" * 70_000), ATTACHMENT + END)
    ),
    "two pax headers": lambda: (
        REPORT
        + _raw_pax(_pax_record("mtime", "1"), _raw_pax(_pax_record("mtime", "2"), ATTACHMENT + END))
    ),
    "pax header then end": lambda: REPORT + _raw_pax(_pax_record("path", "attachments/01-x"), END),
    "declared size larger than data": lambda: (
        REPORT + member("attachments/01-x", b"0123456789", size=5000) + END
    ),
    "report size larger than data": lambda: member("report.json", b"{}", size=4000) + END,
    "truncated in a header": lambda: VALID[:1200],
    "truncated in data": lambda: (REPORT + member("attachments/01-x", b"y" * 5000) + END)[:3000],
    "truncated in block padding": lambda: (REPORT + member("attachments/01-x", b"y" * 10))[:1600],
    "missing end blocks": lambda: REPORT + ATTACHMENT + PADDING,
    "report only, no end": lambda: REPORT,
    "two report.json": lambda: REPORT + REPORT + END,
    "report.json after attachment": lambda: REPORT + ATTACHMENT + REPORT + END,
    "report.json of 2 MiB": lambda: (
        member("report.json", b'{"a": "' + b"x" * (2 << 20) + b'"}') + END
    ),
    "report.json is a list": lambda: member("report.json", b"[1, 2, 3]") + END,
    "report.json is a string": lambda: member("report.json", b'"hello"') + END,
    "report.json is null": lambda: member("report.json", b"null") + END,
    "report.json is empty": lambda: member("report.json", b"") + END,
    "report.json nested 100000 deep": lambda: (
        member("report.json", b"[" * 100_000 + b"]" * 100_000) + END
    ),
    "report.json objects nested deep": lambda: (
        member("report.json", b'{"a":' * 50_000 + b"1" + b"}" * 50_000) + END
    ),
    "report.json duplicate keys": lambda: member("report.json", b'{"a": 1, "a": 2}') + END,
    "report.json nested duplicate keys": lambda: (
        member("report.json", b'{"x": {"a": 1, "a": 2}}') + END
    ),
    "report.json invalid utf-8": lambda: member("report.json", b'{"a": "\xff\xfe"}') + END,
    "report.json lone surrogate": lambda: member("report.json", b'{"a": "\xed\xa0\x80"}') + END,
    "report.json NaN": lambda: member("report.json", b'{"a": NaN}') + END,
    "report.json Infinity": lambda: member("report.json", b'{"a": -Infinity}') + END,
    "report.json huge integer": lambda: member("report.json", b'{"a": ' + b"9" * 5000 + b"}") + END,
    "report.json trailing garbage": lambda: member("report.json", b'{"a": 1} x') + END,
    "1001 attachments": lambda: _many_attachments(MAX_ATTACHMENTS + 1),
    "member after padding": lambda: REPORT + PADDING + ATTACHMENT + END,
    "padding twice": lambda: REPORT + PADDING + PADDING + END,
    "data in padding": lambda: REPORT + member("padding", b"\0" * 600 + b"secret") + END,
    "data after end blocks": lambda: VALID + b"hidden data".ljust(512, b"\0"),
    "partial block after end": lambda: VALID + b"x",
    "zero block then member": lambda: REPORT + b"\0" * 512 + ATTACHMENT + END,
    "bad checksum": _bad_checksum,
    "negative size": _negative_size,
    "header of random bytes": lambda: REPORT + os.urandom(512) + END,
    "non-utf-8 member name": lambda: (
        REPORT + member("attachments/01-\udcff", fmt=tarfile.USTAR_FORMAT) + END
    ),
}


def test_hostile_cases_cover_the_brief() -> None:
    assert len(HOSTILE) >= 60


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused(case: str) -> None:
    envelope = pyrage.encrypt(HOSTILE[case](), [RECIPIENT])
    sink = Sink()
    with pytest.raises(EnvelopeError) as caught:
        open_bytes(envelope, sink)
    assert type(caught.value) is EnvelopeError
    assert_one_line(caught.value)
    # read_report may legitimately stop before a fault that follows report.json,
    # but it, too, only ever raises EnvelopeError.
    try:
        report = read_report(io.BytesIO(envelope), [IDENTITY])
    except EnvelopeError as exc:
        assert_one_line(exc)
    else:
        assert isinstance(report, dict)


def test_errors_do_not_echo_hostile_bytes() -> None:
    envelope = pyrage.encrypt(REPORT + member("\x1b]0;pwned\x07" + "x" * 500) + END, [RECIPIENT])
    with pytest.raises(EnvelopeError) as caught:
        open_bytes(envelope, Sink())
    assert "\x1b" not in str(caught.value) and "\x07" not in str(caught.value)


def test_no_sink_call_after_an_error() -> None:
    """Regression: pyrage calls write() again with the same bytes after it raised.

    Here the second 8 KiB chunk starts, inside attachment 01's data, with a
    well-formed header for ``attachments/02-x``, and a bad member follows in the
    same chunk. The re-fed chunk used to be parsed again, offering 02-x to the
    sink after open_envelope had already failed.
    """
    decoy = member("attachments/02-x", b"smuggled")
    prefix = REPORT + member("attachments/01-a", b"", size=0)[:512]
    filler = b"A" * (8192 - len(prefix))
    body = filler + decoy + b"B" * (7168 - len(filler) - len(decoy))
    archive = REPORT + member("attachments/01-a", body) + member("../evil") + END
    assert archive[8192 : 8192 + 512] == decoy[:512]
    sink = Sink()
    with pytest.raises(EnvelopeError, match="unexpected tar member"):
        open_bytes(pyrage.encrypt(archive, [RECIPIENT]), sink)
    assert sink.calls == [("attachments/01-a", len(body))]
    assert sink.files["attachments/01-a"].getvalue() == body


def test_tail_after_report_is_not_read_by_read_report() -> None:
    envelope = pyrage.encrypt(REPORT + member("../evil") + END, [RECIPIENT])
    assert read_report(io.BytesIO(envelope), [IDENTITY]) == {"schema": 1}


# --- decrypt_stream ---------------------------------------------------------------


def test_decrypt_stream() -> None:
    data = os.urandom(300_000)
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(pyrage.encrypt(data, [RECIPIENT])), [IDENTITY], out)
    assert out.getvalue() == data
    for bad, identities in [
        (pyrage.encrypt(data, [RECIPIENT]), [OTHER_IDENTITY]),
        (pyrage.encrypt(data, [RECIPIENT])[:-1], [IDENTITY]),
        (b"age-encryption.org/v1\n", [IDENTITY]),
        (b"", [IDENTITY]),
        (pyrage.encrypt(data, [RECIPIENT]), []),
    ]:
        with pytest.raises(EnvelopeError) as caught:
            decrypt_stream(io.BytesIO(bad), identities, io.BytesIO())
        assert_one_line(caught.value)
