"""Property-based fuzzing of the envelope reader (Hypothesis, about 20 s in all).

Whatever a sender seals to our public key, opening it may only succeed or
raise :class:`EnvelopeError`: never another exception, never an attachment
name outside ``attachments/``, and never memory that grows with the input
(the reader streams; only ``report.json``, at most 1 MiB, is held).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tarfile
import tracemalloc
from typing import Any

import pyrage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrage import x25519

from intake.crypto.envelope import (
    MAX_REPORT_BYTES,
    AttachmentSource,
    EnvelopeError,
    open_envelope,
    read_report,
    seal_envelope,
)

IDENTITY = x25519.Identity.generate()
RECIPIENT = IDENTITY.to_public()
SAFE_MEMBER = re.compile(r"attachments/[0-9]{2,4}-[^/\\\x00-\x1f\x7f-\x9f]+")


def fuzz(examples: int) -> settings:
    """Hypothesis settings for one fuzz test: ``examples`` runs, no deadline."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


class CountingSink:
    """A sink that checks every offered name and keeps only byte counts."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.written = 0

    def __call__(self, name: str, size: int) -> CountingSink:
        assert SAFE_MEMBER.fullmatch(name), f"unsafe name offered: {name!r}"
        assert ".." not in name
        assert name not in self.names, f"{name!r} offered twice"
        assert size >= 0
        self.names.append(name)
        return self

    def write(self, data: bytes) -> int:
        self.written += len(data)
        return len(data)


def check_open(envelope: bytes) -> Any:
    """Open ``envelope`` both ways; only EnvelopeError may escape."""
    sink = CountingSink()
    try:
        opened = open_envelope(io.BytesIO(envelope), [IDENTITY], sink)  # type: ignore[arg-type]
    except EnvelopeError as exc:
        assert str(exc) and str(exc).isprintable() and len(str(exc)) <= 300
        opened = None
    else:
        assert isinstance(opened.report, dict)
        assert [m.member for m in opened.attachments] == sink.names
        assert sum(m.size for m in opened.attachments) == sink.written
    try:
        report = read_report(io.BytesIO(envelope), [IDENTITY])
    except EnvelopeError:
        assert opened is None, "read_report failed where open_envelope succeeded"
    else:
        assert isinstance(report, dict)
        if opened is not None:
            assert report == opened.report
    return opened


def _source(name: str, data: bytes) -> AttachmentSource:
    return AttachmentSource(name, len(data), "", lambda: io.BytesIO(data))


def _sealed_plaintext() -> bytes:
    out = io.BytesIO()
    seal_envelope(
        json.dumps({"schema": 1, "text": "Арестован"}).encode(),
        [_source("a.txt", b"first file"), _source("Фото.jpg", bytes(range(256)) * 3)],
        [RECIPIENT],
        out,
    )
    plaintext: bytes = pyrage.decrypt(out.getvalue(), [IDENTITY])
    return plaintext


# A valid plaintext as seal_envelope makes it (16 KiB, mostly padding), and a
# compact hand-made one whose every byte is structure, for denser mutations.
SEALED_PLAINTEXT = _sealed_plaintext()


def _member(name: str, data: bytes, fmt: int = tarfile.PAX_FORMAT, **attrs: Any) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info.tobuf(fmt, "utf-8", "surrogateescape") + data + b"\0" * (-len(data) % 512)


COMPACT_PLAINTEXT = (
    _member("report.json", b'{"schema": 1, "k": [1, 2, {"x": null}]}')
    + _member("attachments/01-a.txt", b"hello")
    + _member("attachments/02-Фото.jpg", b"\xff\xd8" * 300)
    + _member("padding", b"\0" * 100)
    + b"\0" * 1024
)


def test_bases_open() -> None:
    for base in (SEALED_PLAINTEXT, COMPACT_PLAINTEXT):
        opened = check_open(pyrage.encrypt(base, [RECIPIENT]))
        assert opened is not None and len(opened.attachments) == 2


# --- random bytes as an envelope --------------------------------------------------------


@fuzz(150)
@given(
    prefix=st.sampled_from(
        [b"", b"age-encryption.org/v1\n", b"-----BEGIN AGE ENCRYPTED FILE-----\n"]
    ),
    body=st.binary(max_size=2048),
)
def test_random_bytes_as_envelope(prefix: bytes, body: bytes) -> None:
    assert check_open(prefix + body) is None


@fuzz(60)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_ciphertext_bit_flips(position: int, flip: int) -> None:
    envelope = bytearray(pyrage.encrypt(COMPACT_PLAINTEXT, [RECIPIENT]))
    envelope[position % len(envelope)] ^= flip
    assert check_open(bytes(envelope)) is None


# --- mutations of a valid plaintext tar, re-sealed ------------------------------------------

_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
    st.tuples(st.just("truncate"), st.integers(min_value=0), st.just(0)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.binary(min_size=1, max_size=600)),
    st.tuples(st.just("delete"), st.integers(min_value=0), st.integers(min_value=1, max_value=700)),
    st.tuples(st.just("zero-block"), st.integers(min_value=0), st.just(0)),
    st.tuples(st.just("append"), st.just(0), st.binary(min_size=1, max_size=1100)),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, Any]]) -> bytes:
    buffer = bytearray(data)
    for kind, raw_position, argument in mutations:
        position = raw_position % (len(buffer) + 1)
        if kind == "flip" and position < len(buffer):
            buffer[position] ^= argument
        elif kind == "truncate":
            del buffer[position:]
        elif kind == "insert":
            buffer[position:position] = argument
        elif kind == "delete":
            del buffer[position : position + argument]
        elif kind == "zero-block":
            start = position - position % 512
            buffer[start : start + 512] = b"\0" * 512
        elif kind == "append":
            buffer += argument
    return bytes(buffer)


@fuzz(250)
@given(
    base=st.sampled_from([COMPACT_PLAINTEXT, SEALED_PLAINTEXT]),
    mutations=st.lists(_mutation, min_size=1, max_size=4),
)
def test_mutated_plaintext_tar(base: bytes, mutations: list[tuple[str, int, Any]]) -> None:
    check_open(pyrage.encrypt(_mutate(base, mutations), [RECIPIENT]))


@fuzz(150)
@given(offset=st.integers(min_value=0, max_value=len(COMPACT_PLAINTEXT) - 1), data=st.data())
def test_header_field_mutations(offset: int, data: st.DataObject) -> None:
    """Rewrite one header field with a plausible-but-wrong value, fixing the checksum."""
    buffer = bytearray(COMPACT_PLAINTEXT)
    header_start = offset - offset % 512
    field_start, field_length = data.draw(
        st.sampled_from([(0, 100), (100, 8), (124, 12), (156, 1), (157, 100), (257, 8), (345, 155)])
    )
    value = data.draw(
        st.one_of(
            st.binary(max_size=field_length),
            st.sampled_from(
                [
                    b"../evil",
                    b"/etc/x",
                    b"attachments/09-x",
                    b"report.json",
                    b"padding",
                    b"77777777777",
                    b"\x80" + b"\xff" * 11,
                    b"1",
                    b"2",
                    b"5",
                    b"L",
                    b"x",
                    b"g",
                ]
            ),
        )
    )
    value = value[:field_length].ljust(field_length, b"\0")
    block = buffer[header_start : header_start + 512]
    block[field_start : field_start + field_length] = value
    block[148:156] = b"        "
    block[148:156] = b"%06o\0 " % sum(block)
    buffer[header_start : header_start + 512] = block
    check_open(pyrage.encrypt(bytes(buffer), [RECIPIENT]))


# --- arbitrary member lists ------------------------------------------------------------------

_names = st.one_of(
    st.sampled_from(
        [
            "report.json",
            "padding",
            "attachments/01-a",
            "attachments/02-b",
            "attachments/01-a",
            "attachments/03-..",
            "attachments/01-a/../../x",
            "../evil",
            "/etc/x",
            "./report.json",
            "attachments/",
            "attachments/01-\x1b[2J",
            "attachments/01-" + "n" * 120,
        ]
    ),
    st.text(max_size=30),
    st.text(max_size=20).map(lambda t: "attachments/01-" + t),
)
_types = st.sampled_from(
    [
        tarfile.REGTYPE,
        tarfile.REGTYPE,
        tarfile.REGTYPE,
        tarfile.AREGTYPE,
        tarfile.SYMTYPE,
        tarfile.LNKTYPE,
        tarfile.DIRTYPE,
        tarfile.FIFOTYPE,
        tarfile.CHRTYPE,
        tarfile.CONTTYPE,
    ]
)
_contents = st.one_of(
    st.binary(max_size=700),
    st.sampled_from([b"{}", b'{"a": 1}', b"[]", b'{"a": 1, "a": 2}', b"[" * 5000, b"\xff", b"{"]),
)


@fuzz(300)
@given(
    members=st.lists(
        st.tuples(
            _names,
            _types,
            _contents,
            st.dictionaries(
                st.sampled_from(["path", "size", "linkpath", "mtime", "comment"]),
                st.text(max_size=12),
                max_size=2,
            ),
        ),
        max_size=6,
    ),
    fmt=st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]),
    end=st.sampled_from([b"\0" * 1024, b"\0" * 512, b"", b"\0" * 10240, b"junk"]),
    valid_start=st.booleans(),
)
def test_arbitrary_member_lists(
    members: list[tuple[str, bytes, bytes, dict[str, str]]],
    fmt: int,
    end: bytes,
    valid_start: bool,
) -> None:
    # Half the time the archive starts well (report.json, then attachment 01),
    # so the fuzzer spends its effort past the first checks.
    parts = [COMPACT_PLAINTEXT[:1536]] if valid_start else []
    for name, kind, content, pax in members:
        try:
            parts.append(
                _member(
                    name,
                    content if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else b"",
                    fmt,
                    type=kind,
                    linkname="target" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else "",
                    pax_headers=pax if fmt == tarfile.PAX_FORMAT else {},
                )
            )
        except (ValueError, tarfile.HeaderError):
            continue  # the stdlib cannot write it (e.g. a name too long for ustar)
    check_open(pyrage.encrypt(b"".join(parts) + end, [RECIPIENT]))


# --- memory stays bounded --------------------------------------------------------------------


def _peak_while_opening(envelope: bytes) -> int:
    source = io.BytesIO(envelope)
    tracemalloc.start()
    try:
        with contextlib.suppress(EnvelopeError):
            open_envelope(source, [IDENTITY], CountingSink())  # type: ignore[arg-type]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


MIB = 1 << 20
PEAK_LIMIT = 6 * MIB


@fuzz(8)
@given(
    kind=st.sampled_from(["attachment", "garbage", "declared-huge", "padding", "report"]),
    size=st.integers(min_value=MIB // 2, max_value=MIB),
)
def test_memory_is_bounded(kind: str, size: int) -> None:
    if kind == "attachment":
        plaintext = (
            _member("report.json", b"{}")
            + _member("attachments/01-big", b"\x00\x01" * (size // 2))
            + b"\0" * 1024
        )
    elif kind == "garbage":
        plaintext = _member("report.json", b"{}") + bytes(range(256)) * (size // 256)
    elif kind == "declared-huge":
        info = tarfile.TarInfo("attachments/01-x")
        info.size = 10**12
        plaintext = _member("report.json", b"{}") + info.tobuf(tarfile.PAX_FORMAT) + b"x" * size
    elif kind == "padding":
        plaintext = _member("report.json", b"{}") + _member("padding", b"\0" * size) + b"\0" * 1024
    else:  # the largest report.json the reader accepts, a worst case by design
        text = b'{"a": "' + b"x" * (min(size, MAX_REPORT_BYTES) - 10) + b'"}'
        plaintext = _member("report.json", text) + b"\0" * 1024
    peak = _peak_while_opening(pyrage.encrypt(plaintext, [RECIPIENT]))
    assert peak < PEAK_LIMIT, f"{kind}: peak {peak / MIB:.1f} MiB for {size / MIB:.1f} MiB"
    if kind != "report":  # streaming cases stay far lower
        assert peak < MIB, f"{kind}: peak {peak / MIB:.2f} MiB"


def test_memory_does_not_grow_with_input() -> None:
    small = (
        _member("report.json", b"{}") + _member("attachments/01-a", b"a" * 100_000) + b"\0" * 1024
    )
    big = _member("report.json", b"{}") + _member("attachments/01-a", b"a" * 8 * MIB) + b"\0" * 1024
    peak_small = _peak_while_opening(pyrage.encrypt(small, [RECIPIENT]))
    peak_big = _peak_while_opening(pyrage.encrypt(big, [RECIPIENT]))
    assert peak_big < peak_small + 256 * 1024, (peak_small, peak_big)
