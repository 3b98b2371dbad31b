"""Hostile input against the running app: hundreds of malformed, oversized and odd requests.

The "Proof" of issue 3: every request below goes through the Flask test client
with raw bytes, arbitrary headers and environ overrides, and for each one the
suite asserts that

* the status is below 500: a clear 4xx page, or the success answer (a 303 to
  ``/submitted``, or the 200 receipt page) where the input is acceptable (a
  sanitised file name, a repeated checkbox, ...);
* no traceback or exception text reaches the body;
* the response carries the Content-Security-Policy header;
* a rejected request stored nothing (no envelope file, no temp file, no
  ``Report`` row); an accepted one stored exactly one envelope, which opens
  with the private key and whose member names are safe.

One app serves the whole table (per database kind), so the counts are taken
before and after every request to attribute anything stored to the request
that stored it. Rate limits are raised out of the way; a separate test checks
that ``X-Forwarded-For`` is not trusted when the app is not behind a proxy.

After the table, a valid submission with attachments still succeeds and
decrypts to what was typed; a last test captures every log record of a full
submission and of hostile ones and checks that none names the client, its
user agent, the query string, a form value, a file name or the report id.

Requests that currently make the app misbehave are kept, marked
``xfail(strict=True)`` with the bug as the reason: remove the mark once fixed.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from intake.models import Report, db
from intake.schema import MAX_TEXT, parse_report

from conftest import DATABASE_KINDS, temporary_database
from webapp import WebApp, make_app, open_stored, valid_form

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

#: Limits for the suite's app: rate limits out of the way, sizes small enough to
#: exceed cheaply (the defaults are 500 MiB).
MAX_REQUEST_MIB = 8
MAX_FILE_MIB = 1
MAX_FILES = 20
MAX_FIELD_CHARS = 20000
#: Werkzeug's in-memory cap per form field, as ``create_app`` sets it: the
#: longest answer any form takes (schema.MAX_TEXT characters) in UTF-8, whatever
#: ``max_field_chars`` is.
MAX_FORM_MEMORY_SIZE = MAX_TEXT * 4 + 1024
MAX_FORM_PARTS = MAX_FILES + 200
SUITE_SETTINGS: dict[str, dict[str, Any]] = {
    "limits": {
        "submit_rate": "100000 per hour",
        "global_submit_rate": "100000 per hour",
        "max_request_mib": MAX_REQUEST_MIB,
        "max_file_mib": MAX_FILE_MIB,
        "max_files": MAX_FILES,
        "max_field_chars": MAX_FIELD_CHARS,
    }
}

BOUNDARY = "hostileBoundary7Q"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
URLENCODED = "application/x-www-form-urlencoded"

#: Text that must never reach a response body: stack traces and exception names.
TRACE_RE = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|Werkzeug Debugger"
    r"|\b\w+(?:Error|Exception)\b|site-packages|sqlalchemy|psycopg",
    re.IGNORECASE,
)
#: A tar member name the review tool can extract without surprises.
SAFE_MEMBER_RE = re.compile(r"attachments/\d{2}-[^/\\\x00-\x1f\x7f]{1,200}")

Expect = Literal["accept", "reject", "decoy", "page"]

#: How the app answers a stored report: a 303 to the confirmation page, or the
#: receipt page itself (200). A decoy (honeypot) must answer the same way.
SUCCESS_STATUSES = (200, 303)
SUCCESS = -1  # a marker in tables: "the success answer"


# --- building raw requests -------------------------------------------------------


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def part(
    name: str | bytes | None,
    value: str | bytes = b"",
    *,
    filename: str | bytes | None = None,
    extra: bytes = b"",
    disposition: bytes = b"form-data",
) -> tuple[bytes, bytes]:
    """One multipart part: (header block, body), every byte as given."""
    header = b"Content-Disposition: " + disposition
    if name is not None:
        header += b'; name="' + _b(name) + b'"'
    if filename is not None:
        header += b'; filename="' + _b(filename) + b'"'
        header += b"\r\nContent-Type: application/octet-stream"
    return header + extra, _b(value)


def multipart(
    parts: Sequence[tuple[bytes, bytes]],
    *,
    boundary: str | bytes = BOUNDARY,
    newline: bytes = b"\r\n",
    close: bool = True,
) -> bytes:
    """A multipart body from ``parts``; ``newline`` replaces every CRLF of the framing."""
    delimiter = b"--" + _b(boundary)
    out = bytearray()
    for header, body in parts:
        out += delimiter + newline + header.replace(b"\r\n", newline) + newline + newline
        out += body + newline
    if close:
        out += delimiter + b"--" + newline
    return bytes(out)


def form_parts(**overrides: Any) -> list[tuple[bytes, bytes]]:
    """The parts of :func:`valid_form` (with overrides; ``None`` drops a field)."""
    data = valid_form()
    data.update(overrides)
    parts = []
    for name, value in data.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            parts.append(part(name, item))
    return parts


def file_part(filename: str | bytes, content: bytes = b"file body") -> tuple[bytes, bytes]:
    return part("attachments", content, filename=filename)


def valid_body(**overrides: Any) -> bytes:
    return multipart(form_parts(**overrides))


def with_files(*names: str | bytes, **overrides: Any) -> bytes:
    return multipart(form_parts(**overrides) + [file_part(n) for n in names])


class EndlessStream(io.RawIOBase):
    """A request body that would go on far past every limit (bounded, to never hang)."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.remaining = total
        self.served = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        # The test client measures the body by seeking to the end and back;
        # the WSGI environ then says "no length, terminated input".
        self._position = self.remaining if whence == 2 else offset
        return self._position

    def tell(self) -> int:
        return getattr(self, "_position", 0)

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.remaining)
        buffer[:n] = b"\0" * n
        self.remaining -= n
        self.served += n
        return n


# --- the case table --------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One hostile request and what the app must answer."""

    id: str
    expect: Expect
    status: int | None = None  # the exact status, where it is known
    method: str = "POST"
    path: str = "/"
    body: bytes | None = None
    content_type: str | None = MULTIPART
    headers: tuple[tuple[str, str], ...] = ()
    environ: dict[str, Any] = field(default_factory=dict)
    stream: Callable[[], io.RawIOBase] | None = None
    bug: str | None = None  # a known app bug: the case is xfail(strict) until fixed
    check_response: Callable[[TestResponse], None] | None = None
    check_report: Callable[[dict[str, Any]], None] | None = None


def _reject(id_: str, body: bytes, status: int | None = 400, **kw: Any) -> Case:
    return Case(id_, "reject", status, body=body, **kw)


def _accept(id_: str, body: bytes, **kw: Any) -> Case:
    return Case(id_, "accept", None, body=body, **kw)


def _text_is(key: str, section: str, expected: str) -> Callable[[dict[str, Any]], None]:
    def check(report: dict[str, Any]) -> None:
        assert report[section][key] == expected

    return check


def _text_contains(key: str, section: str, needle: str) -> Callable[[dict[str, Any]], None]:
    def check(report: dict[str, Any]) -> None:
        assert needle in report[section][key]

    return check


def _attachment_names(*expected: str) -> Callable[[dict[str, Any]], None]:
    def check(report: dict[str, Any]) -> None:
        assert [a["name"] for a in report["attachments"]] == list(expected)

    return check


def _location_is_local(response: TestResponse) -> None:
    """A spoofed host or prefix leads nowhere: not in the redirect, not in a link."""
    location = response.headers.get("Location")
    if location is not None:
        assert location.startswith(("/", "http://localhost/")), location
        assert "evil" not in location and "\r" not in location and "\n" not in location
    assert "evil.example" not in response.get_data(as_text=True)


def _no_open_redirect(response: TestResponse) -> None:
    location = response.headers.get("Location")
    if location is not None:
        local = location.removeprefix("http://localhost")
        assert local.startswith("/") and not local.startswith(("//", "/\\")), location


def _no_injected_header(response: TestResponse) -> None:
    assert "X-Injected" not in response.headers
    for _name, value in response.headers.items():
        assert "\r" not in value and "\n" not in value


def _multipart_cases() -> list[Case]:
    body = valid_body()
    cases = [
        _accept("multipart-control-valid", body),
        _accept("multipart-quoted-boundary", body, content_type=f'{MULTIPART[:-17]}"{BOUNDARY}"'),
        _accept(
            "multipart-uppercase-type",
            body,
            content_type=f"MULTIPART/FORM-DATA; BOUNDARY={BOUNDARY}",
        ),
        _accept("multipart-charset-param", body, content_type=f"{MULTIPART}; charset=utf-8"),
        _reject("multipart-missing-boundary", body, content_type="multipart/form-data"),
        _reject("multipart-empty-boundary", body, content_type="multipart/form-data; boundary="),
        _reject("multipart-wrong-boundary", body, content_type="multipart/form-data; boundary=x"),
        _reject(
            "multipart-boundary-prefix-only",
            body,
            content_type="multipart/form-data; boundary=hostile",
        ),
        _reject(
            "multipart-boundary-with-nul",
            body,
            content_type='multipart/form-data; boundary="a\x00b"',
        ),
        _accept(
            "multipart-boundary-300-chars",
            multipart(form_parts(), boundary="b" * 300),
            content_type="multipart/form-data; boundary=" + "b" * 300,
        ),
        _reject("multipart-unterminated-body", body[:-30]),
        _reject("multipart-no-closing-delimiter", multipart(form_parts(), close=False)),
        _reject(
            "multipart-unterminated-part-header",
            b"--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="x"',
        ),
        _reject("multipart-only-preamble", b"just some text, no delimiter at all"),
        _reject("multipart-only-closing-delimiter", f"--{BOUNDARY}--\r\n".encode()),
        _reject("multipart-empty-body", b""),
        _accept("multipart-preamble-and-epilogue", b"preamble\r\n" + body + b"epilogue junk"),
        _accept("multipart-lf-only", multipart(form_parts(), newline=b"\n")),
        _accept("multipart-cr-only", multipart(form_parts(), newline=b"\r")),
        _accept(
            "multipart-part-without-name",
            multipart([part(None, "orphan value"), *form_parts()]),
        ),
        _accept("multipart-part-empty-name", multipart([part("", "v"), *form_parts()])),
        _reject(
            "multipart-part-without-disposition",
            multipart([(b"Content-Type: text/plain", b"v"), *form_parts()]),
        ),
        _accept(
            "multipart-disposition-attachment",
            multipart([part("x", "v", disposition=b"attachment"), *form_parts()]),
        ),
        _accept(
            "multipart-part-header-70k",
            multipart([part("x", "v", extra=b"\r\nX-Pad: " + b"a" * 70_000), *form_parts()]),
        ),
        _reject(
            "multipart-part-header-200k",
            multipart([part("x", "v", extra=b"\r\nX-Pad: " + b"a" * 200_000), *form_parts()]),
            status=413,
        ),
        _reject(
            "multipart-part-header-10000-lines",
            multipart([part("x", "v", extra=b"\r\nX-A: b" * 10_000), *form_parts()]),
            status=413,
        ),
        _accept(
            "multipart-nested-in-file",
            multipart(
                [
                    *form_parts(),
                    part(
                        "attachments",
                        b'--inner\r\nContent-Disposition: form-data; name="person_name"'
                        b"\r\n\r\nMallory\r\n--inner--",
                        filename="nested.txt",
                        extra=b"\r\nContent-Type: multipart/mixed; boundary=inner",
                    ),
                ]
            ),
            check_report=_text_is("name", "person", "Aigul Tashieva"),
        ),
        _accept(
            "multipart-nested-in-field",
            multipart(
                [
                    *form_parts(what_happened=None),
                    part(
                        "what_happened",
                        b'--inner\r\nContent-Disposition: form-data; name="person_name"'
                        b"\r\n\r\nMallory\r\n--inner--",
                        extra=b"\r\nContent-Type: multipart/mixed; boundary=inner",
                    ),
                ]
            ),
            check_report=_text_is("name", "person", "Aigul Tashieva"),
        ),
        _accept(
            "multipart-boundary-inside-field",
            valid_body(what_happened=f"before --{BOUNDARY} after --{BOUNDARY}-- end"),
            check_report=_text_is(
                "what_happened", "incident", f"before --{BOUNDARY} after --{BOUNDARY}-- end"
            ),
        ),
        _accept(
            "multipart-boundary-inside-file",
            multipart(
                [
                    *form_parts(),
                    file_part("b.bin", f"x--{BOUNDARY}\n--{BOUNDARY}-y".encode()),
                ]
            ),
        ),
        _accept(
            "multipart-boundary-on-its-own-line-in-field",
            # The field ends at the delimiter (a browser picks a boundary not in the data).
            valid_body(what_happened=f"a\r\n--{BOUNDARY}\r\nnot a header line"),
            check_report=_text_is("what_happened", "incident", "a"),
        ),
        _accept(
            "multipart-duplicate-disposition",
            multipart(
                [
                    (
                        b'Content-Disposition: form-data; name="x"\r\n'
                        b'Content-Disposition: form-data; name="person_name"',
                        b"v",
                    ),
                    *form_parts(),
                ]
            ),
        ),
        _accept(
            "multipart-rfc2231-filename",
            multipart(
                [
                    *form_parts(),
                    part(
                        "attachments",
                        b"data",
                        extra=b"; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd",
                    ),
                ]
            ),
        ),
        _accept(
            "multipart-field-charset-utf16",
            multipart(
                [
                    *form_parts(reporter_name=None),
                    part(
                        "reporter_name",
                        "Имя".encode("utf-16"),
                        extra=b"\r\nContent-Type: text/plain; charset=utf-16",
                    ),
                ]
            ),
        ),
        _reject(
            "multipart-mixed-type-with-boundary",
            body,
            content_type=f"multipart/mixed; boundary={BOUNDARY}",
            status=415,
        ),
        _reject("multipart-garbage-binary", bytes(range(256)) * 64),
    ]
    # Content-Length that lies about the body (set in the environ: the test client
    # would otherwise compute the right one).
    lies: list[tuple[str, str, int | None]] = [
        ("larger-than-body", str(len(body) + 1000), 400),
        ("smaller-than-body", str(len(body) - 100), 400),
        ("one-byte", "1", 400),
        ("zero", "0", 400),
        ("absurd", "9" * 30, 413),
        ("just-over-limit", str(MAX_REQUEST_MIB * 1024 * 1024 + 1), 413),
        ("negative", "-5", 400),
        ("not-a-number", "abc", 400),
        ("hex", "0x100", 400),
        ("exponent", "1e3", 400),
        ("plus-sign", f"+{len(body)}", None),
        ("spaces", f" {len(body)} ", SUCCESS),
        ("empty", "", 400),
    ]
    for name, value, status in lies:
        cases.append(
            Case(
                f"content-length-{name}",
                "accept" if status == SUCCESS else "reject",
                None if status == SUCCESS else status,
                body=body,
                environ={"CONTENT_LENGTH": value},
            )
        )
    cases += [
        Case(
            "content-length-missing-input-terminated",
            "accept",
            None,
            body=body,
            environ={"CONTENT_LENGTH": "", "wsgi.input_terminated": True},
        ),
        Case(
            "body-endless-terminated-stream",
            "reject",
            413,
            stream=lambda: EndlessStream(64 * MAX_REQUEST_MIB * 1024 * 1024),
            environ={"CONTENT_LENGTH": "", "wsgi.input_terminated": True},
        ),
        Case(
            "body-endless-with-small-content-length",
            "reject",
            400,
            stream=lambda: EndlessStream(64 * MAX_REQUEST_MIB * 1024 * 1024),
            environ={"CONTENT_LENGTH": "1000"},
        ),
        _reject(
            "body-over-max-request",
            multipart(
                [*form_parts(), file_part("big.bin", b"\0" * (MAX_REQUEST_MIB * 1024 * 1024))]
            ),
            status=413,
        ),
        _reject(
            "file-over-max-file",
            multipart(
                [*form_parts(), file_part("big.bin", b"\0" * (MAX_FILE_MIB * 1024 * 1024 + 1))]
            ),
            status=413,
        ),
        _accept(
            "file-exactly-max-file",
            multipart([*form_parts(), file_part("max.bin", b"\0" * (MAX_FILE_MIB * 1024 * 1024))]),
        ),
    ]
    return cases


def _many_files_cases() -> list[Case]:
    def files(n: int, *, filename: str = "f{}.txt") -> list[tuple[bytes, bytes]]:
        return [file_part(filename.format(i), b"x") for i in range(n)]

    return [
        _accept("files-exactly-max", multipart(form_parts() + files(MAX_FILES))),
        _reject("files-max-plus-one", multipart(form_parts() + files(MAX_FILES + 1))),
        _reject("files-100", multipart(form_parts() + files(100))),
        _reject(
            "parts-over-max-form-parts",
            multipart(form_parts() + files(MAX_FORM_PARTS + 1)),
            status=413,
        ),
        _reject("files-3000", multipart(form_parts() + files(3000)), status=413),
        _reject("files-10000-empty", multipart(form_parts() + files(10_000)), status=413),
        _reject(
            "files-3000-without-filename",
            multipart(form_parts() + [part("attachments", b"x") for _ in range(3000)]),
            status=413,
        ),
        _reject(
            "fields-5000",
            multipart(form_parts() + [part(f"f{i}", "1") for i in range(5000)]),
            status=413,
        ),
        _reject(
            "same-field-5000-times",
            multipart(form_parts() + [part("acts", "beaten") for _ in range(5000)]),
            status=413,
        ),
        _accept(
            "files-30-with-empty-filenames",
            # Empty file inputs are skipped: they are not files.
            multipart(form_parts() + files(30, filename="")),
            check_report=_attachment_names(),
        ),
        _accept(
            "attachments-as-text-field",
            multipart([*form_parts(), part("attachments", "not a file")]),
            check_report=_attachment_names(),
        ),
        _accept("file-empty-content", multipart([*form_parts(), file_part("empty.txt", b"")])),
        _accept(
            "files-same-name-twice",
            with_files("same.txt", "same.txt"),
            check_report=_attachment_names("same.txt", "same.txt"),
        ),
    ]


def _file_name_cases() -> list[Case]:
    names: list[tuple[str, str | bytes, str | None]] = [
        ("traversal-unix", "../../etc/passwd", None),
        ("traversal-deep", "../" * 40 + "root/.ssh/authorized_keys", None),
        ("traversal-windows", "..\\..\\x", None),
        ("traversal-mixed", "..\\../..\\/x.txt", None),
        ("traversal-encoded", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", None),
        ("traversal-double-dots-only", "..", None),
        ("single-dot", ".", None),
        ("dots-only", "....", None),
        ("absolute-unix", "/abs", None),
        ("absolute-windows-drive", "C:\\Windows\\system32\\evil.dll", None),
        ("unc-path", "\\\\server\\share\\x.doc", None),
        ("home-tilde", "~/.bashrc", None),
        ("hidden-file", ".htaccess", None),
        ("terminal-escape", "a\x1b[2Jb", None),
        ("terminal-osc-title", "x\x1b]0;pwned\x07y.txt", None),
        ("bell-and-backspace", "a\x07\x08\x08b.txt", None),
        ("nul-byte", "a\x00b.txt", None),
        ("nul-then-extension", "report.pdf\x00.exe", None),
        ("del-char", "a\x7fb", None),
        ("tab", "a\tb.txt", None),
        ("c1-controls", "a\x85\x9bb.txt", None),
        ("rtl-override", "\u202egnp.exe", None),
        ("rtl-override-mid", "photo\u202egpj.exe", None),
        ("zero-width", "a\u200b\u200d\ufeffb.txt", None),
        ("combining-marks", "e" + "\u0301" * 300 + ".txt", None),
        ("nfd-cyrillic", unicodedata.normalize("NFD", "Йога.jpg"), None),
        ("emoji", "😀📷.jpg", None),
        ("long-255", "a" * 251 + ".txt", None),
        ("long-256", "a" * 252 + ".txt", None),
        ("long-1000", "n" * 996 + ".txt", None),
        ("long-10000", "n" * 10_000, None),
        ("long-multibyte-255-chars", "Ж" * 251 + ".jpg", None),
        ("long-extension", "a." + "x" * 200, None),
        ("only-spaces", "   ", None),
        ("only-underscores", "___", None),
        ("reserved-windows-con", "CON", None),
        ("reserved-windows-aux", "aux.txt", None),
        ("semicolon-and-equals", "a;name=person_name;b.txt", None),
        ("html", "<script>alert(1)</script>.html", None),
        ("shell", "$(rm -rf ~);`id`|x&.sh", None),
        ("sql", "x'); DROP TABLE reports;--.txt", None),
        ("json-breaker", '"},{"name":"evil', None),
        ("percent", "100%.txt", None),
        ("newline-escaped", "line\\nbreak.txt", None),
    ]
    # A part header that is not UTF-8 makes Werkzeug drop the whole form (its
    # parser is silent): the answer is a 400 page saying the form could not be
    # read (test_submit.py checks its words), and nothing stored.
    not_utf8: list[tuple[str, bytes]] = [
        ("invalid-utf8-lone-byte", b"\xff.txt"),
        ("invalid-utf8-overlong-slash", b"\xc0\xaf\xc0\xae.txt"),
        ("invalid-utf8-surrogate", b"\xed\xa0\x80.txt"),
        ("invalid-utf8-truncated", b"abc\xe2\x82"),
        ("latin1-bytes", "résumé.pdf".encode("latin-1")),
    ]
    cases = [
        _reject(f"filename-{name}", multipart([*form_parts(), file_part(filename)]))
        for name, filename in not_utf8
    ]
    for name, filename, bug in names:
        cases.append(
            Case(
                f"filename-{name}",
                "accept",
                None,
                body=multipart([*form_parts(), file_part(filename)]),
                bug=bug,
            )
        )
    cases += [
        _accept(
            "filename-empty-with-content",
            multipart([*form_parts(), file_part("", b"content without a name")]),
            check_report=_attachment_names(),
        ),
        _accept(
            "filename-crlf-in-quotes",
            multipart([*form_parts(), file_part(b"a\r\nX-Injected: 1\r\n.txt")]),
        ),
        _accept(
            "filename-unquoted",
            multipart(
                [
                    *form_parts(),
                    (
                        b"Content-Disposition: form-data; name=attachments; filename=../x.txt",
                        b"d",
                    ),
                ]
            ),
        ),
        _accept(
            "filename-escaped-quote",
            multipart([*form_parts(), file_part(b'a\\"b.txt')]),
        ),
    ]
    return cases


def _encoding_cases() -> list[Case]:
    fffd = "\ufffd"
    bad: list[tuple[str, bytes]] = [
        ("lone-ff", b"\xff"),
        ("lone-continuation", b"a\x80b"),
        ("overlong-slash", b"\xc0\xaf"),
        ("overlong-nul", b"x\xc0\x80y"),
        ("surrogate", b"\xed\xa0\x80"),
        ("truncated-sequence", b"ab\xe2\x82"),
        ("five-byte-form", b"\xf8\x88\x80\x80\x80"),
        ("above-unicode-max", b"\xf4\x90\x80\x80"),
    ]
    cases = []
    for name, raw in bad:
        cases.append(
            _accept(
                f"utf8-{name}-in-what-happened",
                multipart([*form_parts(what_happened=None), part("what_happened", b"ok " + raw)]),
                check_report=_text_contains("what_happened", "incident", "ok"),
            )
        )
    for field_name, section, key in [
        ("person_name", "person", "name"),
        ("facility_name", "detention", "facility_name"),
        ("reporter_name", "reporter", "name"),
        ("charges", "detention", "charges"),
    ]:
        cases.append(
            _accept(
                f"utf8-invalid-in-{field_name}",
                multipart([*form_parts(**{field_name: None}), part(field_name, b"X\xff\xfeY")]),
                check_report=_text_contains(key, section, fffd),
            )
        )
    cases += [
        _reject(
            "utf8-invalid-in-choice",
            multipart([*form_parts(relationship=None), part("relationship", b"relativ\xe9")]),
        ),
        _reject(
            "utf8-invalid-in-field-name",
            multipart([*form_parts(), part(b"\xff\xfe", "x")]),
            status=None,
        ),
        _accept("utf8-bom-in-field", valid_body(what_happened="\ufeffWith a BOM")),
        _reject(
            "body-utf16-encoded",
            valid_body().decode().encode("utf-16"),
        ),
        _accept(
            "charset-field-latin1",
            multipart([*form_parts(), part("_charset_", "iso-8859-1")]),
        ),
        # NUL bytes: dropped from text by the report builder.
        _accept(
            "nul-inside-what-happened",
            valid_body(what_happened="before\x00after"),
            check_report=_text_is("what_happened", "incident", "beforeafter"),
        ),
        _accept(
            "nul-inside-person-name",
            valid_body(person_name="Ai\x00gul"),
            check_report=_text_is("name", "person", "Aigul"),
        ),
        _accept("nul-in-unknown-field-name", multipart([*form_parts(), part("a\x00b", "x")])),
        _reject("nul-in-choice", valid_body(relationship="relative\x00")),
        # Control characters are dropped like everywhere else: the date is then valid.
        _accept("nul-in-date", valid_body(incident_date="2024-05\x00")),
        Case(
            "nul-only-person-name",
            "reject",
            400,
            body=valid_body(person_name="\x00"),
        ),
        Case(
            "controls-only-person-name",
            "reject",
            400,
            body=valid_body(person_name="\x01\x02\x1b"),
        ),
        Case(
            "controls-only-what-happened",
            "reject",
            400,
            body=valid_body(what_happened="\x07\x08"),
        ),
        _accept(
            "escape-sequences-in-what-happened",
            valid_body(what_happened="a\x1b[2J\x1b]0;x\x07b"),
            check_report=_text_is("what_happened", "incident", "a[2J]0;xb"),
        ),
        _accept(
            "zero-width-only-person-name",
            valid_body(person_name="\u200b"),
        ),
        _accept(
            "bidi-override-in-person-name",
            valid_body(person_name="\u202eevil\u202c"),
        ),
        _accept(
            "crlf-in-what-happened",
            valid_body(what_happened="line1\r\nline2\rline3"),
            check_report=_text_is("what_happened", "incident", "line1\nline2\nline3"),
        ),
    ]
    return cases


def _size_cases() -> list[Case]:
    limit = MAX_FIELD_CHARS
    return [
        _accept("field-at-limit", valid_body(what_happened="a" * limit)),
        _reject("field-limit-plus-one", valid_body(what_happened="a" * (limit + 1))),
        _accept("field-at-limit-cyrillic", valid_body(what_happened="Ж" * limit)),
        _accept("field-at-limit-4-byte-chars", valid_body(what_happened="😀" * limit)),
        _reject("field-limit-plus-one-4-byte", valid_body(what_happened="😀" * (limit + 1))),
        _reject(
            "field-over-form-memory-size",
            valid_body(what_happened="a" * (MAX_FORM_MEMORY_SIZE + 1)),
            status=413,
        ),
        _reject("field-2-mib", valid_body(what_happened="a" * (2 << 20)), status=413),
        _reject("unknown-field-200k", multipart([*form_parts(), part("x", "a" * 200_000)]), 413),
        _reject("short-field-over-200", valid_body(person_name="n" * 201)),
        _reject("line-field-over-1000", valid_body(charges="c" * 1001)),
        _reject("date-over-200", valid_body(incident_date="2" * 201, date_precision="unknown")),
        _accept("spaces-padding-stripped", valid_body(person_name=" " * 190 + "Aigul")),
        _reject(
            "urlencoded-field-over-limit",
            urlencode(valid_form(what_happened="a" * (limit + 1)), doseq=True).encode(),
            content_type=URLENCODED,
        ),
        Case(
            "urlencoded-field-over-form-memory-size",
            "reject",
            413,
            body=urlencode(
                valid_form(what_happened="a" * (MAX_FORM_MEMORY_SIZE * 4)), doseq=True
            ).encode(),
            content_type=URLENCODED,
        ),
    ]


def _content_type_cases() -> list[Case]:
    form = valid_form()
    as_json = json.dumps(form).encode()
    return [
        Case(
            "json-with-the-same-fields",
            "reject",
            415,
            body=as_json,
            content_type="application/json",
        ),
        Case(
            "json-number-for-text",
            "reject",
            415,
            body=json.dumps({**form, "person_name": 5}).encode(),
            content_type="application/json",
        ),
        Case(
            "json-top-level-list",
            "reject",
            415,
            body=b"[1, 2]",
            content_type="application/json",
        ),
        Case(
            "json-top-level-string",
            "reject",
            415,
            body=b'"person_name"',
            content_type="application/json",
        ),
        _reject("json-null", b"null", content_type="application/json", status=415),
        _reject(
            "json-object-for-text",
            json.dumps({"person_name": {"a": 1}}).encode(),
            content_type="application/json",
            status=415,
        ),
        _reject("json-malformed", b"{not json", content_type="application/json", status=415),
        _reject("json-invalid-utf8", b'{"a": "\xff"}', content_type="application/json", status=415),
        _reject("json-empty-body", b"", content_type="application/json", status=415),
        _reject("json-body-as-text-plain", as_json, content_type="text/plain", status=415),
        _reject(
            "multipart-body-as-text-plain", valid_body(), content_type="text/plain", status=415
        ),
        _reject("multipart-body-no-content-type", valid_body(), content_type=None, status=415),
        _reject(
            "multipart-body-as-octet-stream",
            valid_body(),
            content_type="application/octet-stream",
            status=415,
        ),
        _reject("multipart-body-as-xml", valid_body(), content_type="application/xml", status=415),
        _reject("multipart-body-as-image", valid_body(), content_type="image/png", status=415),
        _reject("content-type-garbage", valid_body(), content_type=";;;==,,", status=415),
        _reject(
            "content-type-two-types",
            valid_body(),
            content_type=f"text/html, {MULTIPART}",
            status=415,
        ),
        _accept(
            "urlencoded-with-the-same-fields",
            urlencode(form, doseq=True).encode(),
            content_type=URLENCODED,
        ),
        _reject("urlencoded-empty", b"", content_type=URLENCODED),
        _reject("urlencoded-garbage", b"&&&===%%%&a", content_type=URLENCODED),
        _reject("urlencoded-raw-invalid-utf8", b"person_name=\xff\xfe", content_type=URLENCODED),
        _reject("urlencoded-percent-invalid-utf8", b"person_name=%ff%fe", content_type=URLENCODED),
        _reject(
            "urlencoded-body-as-multipart",
            urlencode(form, doseq=True).encode(),
            content_type=MULTIPART,
        ),
    ]


def _method_cases() -> list[Case]:
    routes = {
        "/": {"GET", "HEAD", "OPTIONS", "POST"},
        "/submitted": {"GET", "HEAD", "OPTIONS"},
        "/metadata": {"GET", "HEAD", "OPTIONS"},
        "/robots.txt": {"GET", "HEAD", "OPTIONS"},
        "/static/style.css": {"GET", "HEAD", "OPTIONS"},
    }
    methods = ["PUT", "DELETE", "PATCH", "TRACE", "CONNECT", "PROPFIND", "FOO", "HEAD", "OPTIONS"]
    cases = []
    for route, allowed in routes.items():
        slug = route.strip("/").replace("/", "-").replace(".", "-") or "root"
        for method in methods:
            if method in allowed:
                cases.append(
                    Case(
                        f"method-{method}-{slug}",
                        "page",
                        200,
                        method=method,
                        path=route,
                        content_type=None,
                    )
                )
            else:
                cases.append(
                    Case(
                        f"method-{method}-{slug}",
                        "reject",
                        405,
                        method=method,
                        path=route,
                        body=valid_body() if method in ("PUT", "PATCH") else None,
                    )
                )
        if "POST" not in allowed:
            cases.append(
                Case(
                    f"method-POST-{slug}",
                    "reject",
                    None,  # 405, or 400 where a later version takes a form there
                    path=route,
                    body=valid_body(),
                )
            )
    cases += [
        # Werkzeug upper-cases the method: a lower-case POST is a POST.
        _accept("method-lowercase-post", valid_body(), environ={"REQUEST_METHOD": "post"}),
        Case(
            "method-lowercase-put",
            "reject",
            405,
            body=valid_body(),
            environ={"REQUEST_METHOD": "put"},
        ),
        Case(
            "method-override-header",
            "reject",
            405,
            method="PUT",
            body=valid_body(),
            headers=(("X-HTTP-Method-Override", "POST"),),
        ),
        Case("method-GET-with-body", "page", 200, method="GET", body=valid_body()),
        Case(
            "method-DELETE-unknown-path",
            "reject",
            404,
            method="DELETE",
            path="/nowhere",
            content_type=None,
        ),
    ]
    return cases


def _path_cases() -> list[Case]:
    paths: list[tuple[str, str, int]] = [
        ("dotdot-encoded-slash", "/..%2f..%2fetc%2fpasswd", 404),
        ("dotdot-encoded-dots", "/%2e%2e/%2e%2e/etc/passwd", 404),
        ("static-dotdot", "/static/../app.py", 404),
        ("static-dotdot-deep", "/static/../../intake/app.py", 404),
        ("static-encoded-dots", "/static/%2e%2e/app.py", 404),
        ("static-encoded-slash", "/static/..%2fapp.py", 404),
        ("static-fully-encoded", "/static/%2e%2e%2f%2e%2e%2fintake%2fapp.py", 404),
        ("static-double-encoded", "/static/%252e%252e/app.py", 404),
        ("static-backslash", "/static/..\\app.py", 404),
        ("static-four-dots", "/static/....//app.py", 404),
        ("static-absolute", "/static//etc/passwd", 308),
        ("static-nul", "/static/style.css%00.png", 404),
        ("static-dir", "/static/", 404),
        ("static-templates", "/static/../templates/base.html", 404),
        ("static-secret-key", "/static/../../instance/secret_key", 404),
        ("nul", "/%00", 404),
        ("invalid-utf8", "/%ff%fe", 404),
        ("overlong-utf8", "/%c0%ae%c0%ae/", 404),
        ("git-config", "/.git/config", 404),
        ("dotenv", "/.env", 404),
        ("php", "/index.php", 404),
        ("wp-admin", "/wp-admin/", 404),
        ("metadata-json", "/metadata.json", 404),
        ("submitted-trailing-slash", "/submitted/", 404),
        ("uppercase", "/SUBMITTED", 404),
        ("unicode", "/отчёт", 404),
        ("long-path", "/" + "a" * 100_000, 404),
        ("many-segments", "/a" * 10_000, 404),
    ]
    cases = [
        Case(
            f"path-{n}",
            "page",
            s,
            method="GET",
            path=p,
            content_type=None,
            check_response=_no_open_redirect,
        )
        for n, p, s in paths
    ]
    cases += [
        # Set in the environ: the test client would read "//host/" as a URL.
        Case(
            f"path-{n}",
            "page",
            None,
            method="GET",
            content_type=None,
            environ={"PATH_INFO": p},
            check_response=_no_open_redirect,
        )
        for n, p in [
            ("double-slash-host", "//evil.example/"),
            ("double-slash-host-static", "//evil.example/static/style.css"),
            ("backslash-host", "/\\evil.example/"),
        ]
    ]
    queries: list[tuple[str, str]] = [
        ("nul-and-invalid-utf8", "a=%00%ff"),
        ("long", "q=" + "a" * 80_000),
        ("many-params", "&".join(f"p{i}=1" for i in range(10_000))),
        ("script", "x=<script>alert(1)</script>"),
        ("csrf-token", "csrf_token=forged"),
        ("crlf", "a=%0d%0aSet-Cookie:%20x=1"),
        ("bare-percent", "a=%&b=%zz"),
    ]
    for name, query in queries:
        cases.append(
            Case(
                f"query-get-{name}",
                "page",
                200,
                method="GET",
                path=f"/?{query}",
                content_type=None,
                check_response=_no_injected_header,
            )
        )
    cases += [
        _accept("query-post-valid-form-odd-query", valid_body(), path="/?a=%00%ff&b=" + "x" * 5000),
        _reject(
            "query-fields-instead-of-body",
            multipart([part("x", "y")]),
            path="/?" + urlencode(valid_form(), doseq=True),
        ),
        Case(
            "query-honeypot-does-not-count-and-query-is-not-form",
            "reject",
            400,
            body=multipart([part("x", "y")]),
            path="/?website=spam&person_name=q",
        ),
        _reject("post-to-unknown-path", valid_body(), status=404, path="/report"),
        _reject("post-to-static-dir", valid_body(), status=404, path="/static/"),
    ]
    return cases


def _header_cases() -> list[Case]:
    crlf_host = "evil.example\r\nX-Injected: 1"
    return [
        Case(
            "host-crlf-get",
            "page",
            None,
            method="GET",
            content_type=None,
            environ={"HTTP_HOST": crlf_host},
            check_response=_no_injected_header,
        ),
        _accept(
            "host-crlf-post",
            valid_body(),
            environ={"HTTP_HOST": crlf_host},
            check_response=_location_is_local,
        ),
        Case(
            "host-with-spaces-get",
            "page",
            None,
            method="GET",
            content_type=None,
            environ={"HTTP_HOST": "a b c"},
        ),
        _accept(
            "host-with-spaces-post",
            valid_body(),
            environ={"HTTP_HOST": "a b c"},
            check_response=_location_is_local,
        ),
        _accept(
            "host-foreign-post",
            valid_body(),
            environ={"HTTP_HOST": "evil.example"},
            check_response=_location_is_local,
        ),
        Case(
            "host-empty-get",
            "page",
            None,
            method="GET",
            content_type=None,
            environ={"HTTP_HOST": ""},
        ),
        *(
            Case(
                f"host-{name}-get",
                "page",
                None,
                method="GET",
                content_type=None,
                environ={"HTTP_HOST": host},
            )
            for name, host in [
                ("long", "h" * 10_000),
                ("label-over-63", "h" * 64 + ".example"),
                ("empty-label", "a..b"),
                ("just-a-dot", "."),
            ]
        ),
        Case(
            "host-label-over-63-post",
            "reject",
            400,
            body=valid_body(),
            environ={"HTTP_HOST": "h" * 64},
        ),
        Case(
            "host-odd-port-get",
            "page",
            None,
            method="GET",
            content_type=None,
            environ={"HTTP_HOST": "a:b:c:99999"},
        ),
        Case(
            "host-nul-get",
            "page",
            None,
            method="GET",
            content_type=None,
            environ={"HTTP_HOST": "a\x00b"},
        ),
        Case(
            "host-at-sign-get",
            "page",
            None,
            method="GET",
            content_type=None,
            environ={"HTTP_HOST": "user@evil.example"},
        ),
        _accept(
            "x-forwarded-host-post",
            valid_body(),
            headers=(("X-Forwarded-Host", "evil.example"),),
            check_response=_location_is_local,
        ),
        _accept(
            "x-forwarded-for-spoof-post",
            valid_body(),
            headers=(("X-Forwarded-For", "127.0.0.1, 10.0.0.1"),),
        ),
        _accept(
            "x-forwarded-for-garbage-post",
            valid_body(),
            headers=(("X-Forwarded-For", "not-an-ip, ;;; , \x7f"),),
        ),
        _accept("x-real-ip-spoof-post", valid_body(), headers=(("X-Real-IP", "127.0.0.1"),)),
        _accept(
            "x-forwarded-proto-https-post",
            valid_body(),
            headers=(("X-Forwarded-Proto", "https"), ("X-Forwarded-Port", "99999")),
        ),
        _accept(
            "forwarded-rfc7239-post",
            valid_body(),
            headers=(("Forwarded", 'for="[::1]";host=evil.example;proto=https'),),
        ),
        _accept(
            "referer-origin-foreign-post",
            valid_body(),
            headers=(("Origin", "https://evil.example"), ("Referer", "https://evil.example/phish")),
        ),
        _accept("origin-null-post", valid_body(), headers=(("Origin", "null"),)),
        _accept("remote-addr-missing-post", valid_body(), environ={"REMOTE_ADDR": ""}),
        _accept("remote-addr-garbage-post", valid_body(), environ={"REMOTE_ADDR": "x\r\ny"}),
        _accept("user-agent-huge-post", valid_body(), headers=(("User-Agent", "U" * 20_000),)),
        _accept(
            "accept-language-garbage-post",
            valid_body(),
            headers=(("Accept-Language", "*;q=x, ;;, zz-ZZ-x-" + "a" * 5000),),
        ),
        _accept(
            "cookie-garbage-post",
            valid_body(),
            headers=(("Cookie", 'intake_session=garbage; =; ;;; a="b'),),
        ),
        _accept("cookie-huge-post", valid_body(), headers=(("Cookie", "x=" + "c" * 50_000),)),
        _accept(
            "cookie-forged-session-post",
            valid_body(),
            headers=(("Cookie", "intake_session=eyJybCI6ImZvcmdlZCJ9.AAAA.BBBB"),),
        ),
        _accept(
            "content-encoding-gzip-claimed", valid_body(), headers=(("Content-Encoding", "gzip"),)
        ),
        _accept("expect-100-continue", valid_body(), headers=(("Expect", "100-continue"),)),
        _reject(
            "transfer-encoding-chunked-with-length",
            valid_body(),
            headers=(("Transfer-Encoding", "chunked"),),
        ),
        _accept("authorization-garbage", valid_body(), headers=(("Authorization", "Basic !!!"),)),
        _accept(
            "header-invalid-utf8-via-environ",
            valid_body(),
            environ={"HTTP_X_CUSTOM": "\xff\xfe".encode().decode("latin-1")},
        ),
        _accept("header-nul-via-environ", valid_body(), environ={"HTTP_USER_AGENT": "a\x00b"}),
        *(
            Case(
                f"range-header-static-{name}",
                "page",
                None,
                method="GET",
                path="/static/style.css",
                content_type=None,
                headers=(("Range", value),),
            )
            for name, value in [
                ("unsatisfiable", "bytes=999999999-"),
                ("multi", "bytes=999999999-,0-0,-1"),
                ("reversed", "bytes=5-1"),
                ("garbage", "bytes=abc"),
            ]
        ),
        Case(
            "range-header-static-valid",
            "page",
            206,
            method="GET",
            path="/static/style.css",
            content_type=None,
            headers=(("Range", "bytes=0-9"),),
        ),
        Case(
            "if-none-match-garbage-static",
            "page",
            None,
            method="GET",
            path="/static/style.css",
            content_type=None,
            headers=(("If-None-Match", '"' * 1000),),
        ),
        Case(
            "if-modified-since-garbage-static",
            "page",
            None,
            method="GET",
            path="/static/style.css",
            content_type=None,
            headers=(("If-Modified-Since", "yesterday at noon"),),
        ),
        Case(
            "script-name-crlf-get",
            "page",
            None,
            method="GET",
            content_type=None,
            environ={"SCRIPT_NAME": "/x\r\nX-Injected: 1"},
            check_response=_no_injected_header,
        ),
        _accept(
            "x-forwarded-prefix-foreign-post",
            valid_body(),
            headers=(("X-Forwarded-Prefix", "//evil.example"),),
            check_response=_location_is_local,
        ),
        Case(
            "url-scheme-garbage-get",
            "page",
            None,
            method="GET",
            content_type=None,
            environ={"wsgi.url_scheme": "javascript"},
        ),
    ]


def _form_cases() -> list[Case]:
    radios = {
        "relationship": "admin",
        "facility_type": "embassy",
        "date_precision": "week",
        "danger_now": "maybe",
        "consent_share": "everyone",
        "detainee_consent": "sure",
        "action_wanted": "attack",
        "use_reporter_name": "perhaps",
        "publicity_risk": "2",
        "officials_warned": "-1",
        "preferred_language": "xx",
        "person_sex": "robot",
        "lawyer_access": "YES",
        "family_visits": "yes ",
    }
    cases = [
        _reject(f"choice-outside-vocabulary-{k}", valid_body(**{k: v})) for k, v in radios.items()
    ]
    checkboxes = {
        "acts": "tea_party",
        "danger_kinds": "none_really",
        "perpetrator_types": "aliens",
        "already_told": "everybody",
        "phone_risk": "<b>",
        "help_needed": "money';--",
    }
    cases += [
        _reject(f"checkbox-outside-vocabulary-{k}", valid_body(**{k: v}))
        for k, v in checkboxes.items()
    ]
    cases += [
        _reject("choice-sql-injection", valid_body(relationship="relative' OR '1'='1")),
        _reject("choice-empty-required", valid_body(relationship="")),
        _reject("choice-whitespace-required", valid_body(danger_now=" ")),
        _accept(
            "checkbox-repeated",
            valid_body(acts=["beaten", "beaten", "beaten"]),
            check_report=lambda r: _assert_acts(r, ["beaten"]),
        ),
        _accept(
            "checkbox-many-valid",
            valid_body(acts=["beaten", "death_threats_person"] * 20),
        ),
        _reject("checkbox-one-good-one-bad", valid_body(acts=["beaten", "nope"])),
        _accept("radio-repeated-same", valid_body(relationship=["relative", "relative"])),
        _accept(
            "radio-repeated-different",
            valid_body(relationship=["relative", "lawyer"]),
            check_report=lambda r: _assert_relationship(r, "relative"),
        ),
        _accept("consent-store-repeated", valid_body(consent_store=["y", "y"])),
        _reject("consent-store-missing", valid_body(consent_store=None)),
        _reject("consent-store-false", valid_body(consent_store="false")),
        _reject("contact-both", valid_body(contact_channel="Signal +1 555")),
        _reject("contact-neither", valid_body(no_contact=None)),
        _reject("everything-missing", multipart([part("x", "y")])),
        _reject("required-text-whitespace", valid_body(person_name="   ")),
        _reject("facility-name-missing", valid_body(facility_name=None)),
        _accept(
            "facility-unknown-no-name", valid_body(facility_type="unknown", facility_name=None)
        ),
        _accept(
            "unknown-extra-fields",
            multipart(
                [
                    *form_parts(),
                    part("is_admin", "1"),
                    part("status", "deleted"),
                    part("id", "../../x"),
                ]
            ),
        ),
        _accept(
            "csrf-token-field-when-disabled", multipart([*form_parts(), part("csrf_token", "x")])
        ),
        _accept(
            "html-in-what-happened",
            valid_body(what_happened="<script>alert(1)</script><img src=x onerror=y>"),
        ),
        Case(
            "html-echoed-on-error-is-escaped",
            "reject",
            400,
            body=valid_body(person_name=None, what_happened="<script>alert(1)</script>"),
            check_response=_no_raw_script,
        ),
        Case("honeypot-filled", "decoy", None, body=valid_body(website="http://spam.example")),
        Case(
            "honeypot-filled-with-files",
            "decoy",
            None,
            body=with_files("a.txt", "b.txt", website="x"),
        ),
        Case("honeypot-filled-invalid-form", "decoy", None, body=multipart([part("website", "x")])),
        Case(
            "honeypot-filled-twice-second-empty",
            "decoy",
            None,
            body=multipart([*form_parts(), part("website", "x"), part("website", "")]),
        ),
        Case(
            "honeypot-filled-urlencoded",
            "decoy",
            None,
            body=urlencode(valid_form(website="spam"), doseq=True).encode(),
            content_type=URLENCODED,
        ),
        _accept("honeypot-whitespace-only", valid_body(website="  ")),
        _accept("honeypot-empty", valid_body(website="")),
    ]
    dates: list[tuple[str, str, str, bool]] = [
        ("day-feb-30", "2024-02-30", "day", False),
        ("day-feb-29-non-leap", "2023-02-29", "day", False),
        ("day-feb-29-leap", "2024-02-29", "day", True),
        ("day-month-13", "2024-13-01", "day", False),
        ("day-year-zero", "0000-01-01", "day", False),
        ("day-short-form", "2024-5-1", "day", False),
        ("day-slashes", "01/05/2024", "day", False),
        ("day-with-time", "2024-05-01T00:00", "day", False),
        ("day-for-month-precision", "2024-05-01", "month", False),
        ("month-zero", "2024-00", "month", False),
        ("month-13", "2024-13", "month", False),
        ("month-negative", "2024--1", "month", False),
        ("month-for-day-precision", "2024-05", "day", False),
        ("year-two-digits", "24", "year", False),
        ("year-five-digits", "20245", "year", False),
        ("year-negative", "-001", "year", False),
        ("year-ok", "1999", "year", True),
        ("year-with-spaces", " 1999 ", "year", True),
        ("empty-for-day", "", "day", False),
        ("text-for-unknown", "spring, before the trial", "unknown", True),
        ("empty-for-unknown", "", "unknown", True),
        ("date-with-precision-missing", "2024-05", "", False),
        ("fullwidth-digits-day", "２０２４-０５-０１", "day", False),
    ]
    for name, value, precision, ok in dates:
        body = valid_body(incident_date=value, date_precision=precision or None)
        cases.append(_accept(f"date-{name}", body) if ok else _reject(f"date-{name}", body))
    cases += [
        Case(
            f"date-{name}",
            "reject",
            400,
            body=valid_body(incident_date=value, date_precision=precision),
        )
        for name, value, precision in [
            ("arabic-indic-digits-month", "٢٠٢٤-٠٥", "month"),
            ("devanagari-digits-year", "२०२४", "year"),
        ]
    ]
    return cases


def _assert_acts(report: dict[str, Any], expected: list[str]) -> None:
    assert [a["code"] for a in report["incident"]["acts"]] == expected


def _assert_relationship(report: dict[str, Any], expected: str) -> None:
    assert report["reporter"]["relationship"] == expected


def _no_raw_script(response: TestResponse) -> None:
    assert "<script>alert(1)</script>" not in response.get_data(as_text=True)


CASES: list[Case] = [
    *_multipart_cases(),
    *_many_files_cases(),
    *_file_name_cases(),
    *_encoding_cases(),
    *_size_cases(),
    *_content_type_cases(),
    *_method_cases(),
    *_path_cases(),
    *_header_cases(),
    *_form_cases(),
]


def _params(cases: Sequence[Case]) -> list[Any]:
    out = []
    for case in cases:
        marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


# --- what the app stored ---------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """Everything a request could leave behind."""

    envelope_files: frozenset[str]
    rows: int

    def new_since(self, before: Stored) -> frozenset[str]:
        return self.envelope_files - before.envelope_files


def stored(web: WebApp) -> Stored:
    """Every file under ``envelopes/`` (temp files too) and the number of Report rows."""
    directory = web.data_dir / "envelopes"
    files = frozenset(p.name for p in directory.iterdir()) if directory.exists() else frozenset()
    with web.app.app_context():
        rows = int(db.session.scalar(select(func.count()).select_from(Report)) or 0)
        db.session.remove()
    return Stored(files, rows)


def spool_files(web: WebApp) -> list[Path]:
    directory = web.data_dir / "spool"
    return list(directory.iterdir()) if directory.exists() else []


def open_report(web: WebApp, envelope_file: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The report.json and attachments of a stored envelope."""
    sinks: dict[str, io.BytesIO] = {}
    opened = open_stored(web, envelope_file.removesuffix(".age"), sinks)
    return dict(opened.report), {k: v.getvalue() for k, v in sinks.items()}


# --- fixtures --------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _cheap_receipt_kdf() -> Iterator[None]:
    """Receipts cost two Argon2id runs (~0.2 s) per stored report by design; the
    table stores ~160 reports per database, so here the KDF runs at its minimum cost.
    Nothing in this module tests the KDF's strength."""
    try:
        import nacl.pwhash.argon2id as argon2id

        from intake.crypto import receipts
    except ImportError:  # pragma: no cover - an app without receipts
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(receipts, "ARGON2_OPSLIMIT", argon2id.OPSLIMIT_MIN, raising=False)
        patch.setattr(receipts, "ARGON2_MEMLIMIT", argon2id.MEMLIMIT_MIN, raising=False)
        yield


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def web(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebApp]:
    """One app for the whole table, per database kind (PostgreSQL when configured)."""
    tmp = tmp_path_factory.mktemp(f"hostile-{request.param}")
    with temporary_database(request.param, tmp) as url:
        app = make_app(
            tmp,
            database_url=url,
            settings=SUITE_SETTINGS,
            PROPAGATE_EXCEPTIONS=False,  # a bug must show as the 500 a user would see
        )
        yield app
        with app.app.app_context():
            db.engine.dispose()


# --- the table -------------------------------------------------------------------


def send(web: WebApp, case: Case) -> TestResponse:
    environ: dict[str, Any] = {"REMOTE_ADDR": "198.51.100.7"}
    environ.update(case.environ)
    kwargs: dict[str, Any] = {
        "method": case.method,
        "headers": list(case.headers),
        "environ_overrides": environ,
    }
    if case.stream is not None:
        kwargs["input_stream"] = case.stream()
    elif case.body is not None:
        kwargs["input_stream"] = io.BytesIO(case.body)
        environ.setdefault("CONTENT_LENGTH", str(len(case.body)))
    if case.content_type is not None and (case.body is not None or case.stream is not None):
        environ["CONTENT_TYPE"] = case.content_type
    if "?" in case.path:
        path, query = case.path.split("?", 1)
        kwargs["query_string"] = query
    else:
        path = case.path
    try:
        return web.client.open(path, **kwargs)
    except Exception as exc:  # an exception that escaped wsgi_app: the server's bare 500
        pytest.fail(f"{case.id}: {type(exc).__name__} escaped the app: {exc}")


def assert_clean_response(case: Case, response: TestResponse) -> str:
    """Status below 500, the CSP, no trace text; returns the body."""
    body = response.get_data(as_text=True)
    assert response.status_code < 500, f"{case.id}: {response.status_code}\n{body[:2000]}"
    assert "Content-Security-Policy" in response.headers, case.id
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "Server" not in response.headers
    trace = TRACE_RE.search(body) if response.mimetype == "text/html" else None
    assert trace is None, f"{case.id}: trace text {trace.group(0)!r} in the body"
    if case.status is not None:
        assert response.status_code == case.status, f"{case.id}: {response.status_code}"
    return body


def assert_success_answer(case_id: str, response: TestResponse) -> None:
    """The answer to a stored (or decoy) report: 303 to /submitted, or the receipt page."""
    assert response.status_code in SUCCESS_STATUSES, f"{case_id}: {response.status_code}"
    if response.status_code == 303:
        assert response.headers["Location"].endswith("/submitted"), case_id
    else:
        assert response.mimetype == "text/html", case_id


def assert_safe_envelope(web: WebApp, case: Case, envelope_file: str) -> None:
    report, files = open_report(web, envelope_file)
    parse_report(report)
    for member in files:
        assert SAFE_MEMBER_RE.fullmatch(member), member
        assert ".." not in member.split("/"), member
    assert set(files) == {a["member"] for a in report["attachments"]}
    if case.check_report is not None:
        case.check_report(report)


@pytest.mark.parametrize("case", _params(CASES))
def test_hostile_request_is_answered_cleanly_and_stores_nothing(web: WebApp, case: Case) -> None:
    before = stored(web)
    started = time.monotonic()
    response = send(web, case)
    elapsed = time.monotonic() - started
    after = stored(web)
    body = assert_clean_response(case, response)
    assert elapsed < 10, f"{case.id} took {elapsed:.1f}s"
    assert spool_files(web) == []  # spools are anonymous, never a visible file
    new = after.new_since(before)

    if case.expect == "accept":
        assert_success_answer(case.id, response)
        assert len(new) == 1 and after.rows == before.rows + 1, (case.id, new)
        [envelope] = new
        assert envelope.endswith(".age"), envelope
        assert_safe_envelope(web, case, envelope)
    else:
        assert new == frozenset() and after == before, f"{case.id} stored {sorted(new)}"
        if case.expect == "decoy":
            assert_success_answer(case.id, response)
        elif case.expect == "reject":
            assert 400 <= response.status_code < 500, case.id
            if case.method != "HEAD":
                assert response.mimetype == "text/html" and "</html>" in body, case.id
    if case.check_response is not None:
        case.check_response(response)


@pytest.mark.parametrize(
    ("method", "path"), [("DELETE", "/"), ("PUT", "/submitted"), ("POST", "/metadata")]
)
def test_a_405_says_which_methods_are_allowed(web: WebApp, method: str, path: str) -> None:
    response = web.client.open(path, method=method)
    assert response.status_code == 405
    assert "GET" in response.headers.get("Allow", "")


def test_the_table_is_big_and_distinct() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    requests = {
        (c.method, c.path, c.body, c.content_type, c.headers, tuple(sorted(c.environ.items())))
        for c in CASES
        if c.stream is None
    }
    assert len(requests) + sum(c.stream is not None for c in CASES) >= 200


def test_a_valid_submission_after_the_table_still_succeeds_and_decrypts(web: WebApp) -> None:
    photo = b"\x89PNG after the storm " * 500
    letter = "письмо".encode() * 100
    typed = "After all that noise: he was moved to SIZO-2 on 4 June."
    body = multipart(
        [
            *form_parts(what_happened=typed, person_name="Азамат Уулу", acts=["beaten"]),
            file_part("../фото.png", photo),
            file_part("letter.txt", letter),
        ]
    )
    case = Case("after-the-table", "accept", None, body=body)
    before = stored(web)
    response = send(web, case)
    assert_success_answer(case.id, response)
    [envelope] = stored(web).new_since(before)
    report, files = open_report(web, envelope)
    assert report["incident"]["what_happened"] == typed
    assert report["person"]["name"] == "Азамат Уулу"
    assert [a["code"] for a in report["incident"]["acts"]] == ["beaten"]
    assert [a["name"] for a in report["attachments"]] == ["../фото.png", "letter.txt"]
    assert files["attachments/01-фото.png"] == photo
    assert files["attachments/02-letter.txt"] == letter


# --- CSRF ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def csrf_web(tmp_path_factory: pytest.TempPathFactory) -> WebApp:
    return make_app(
        tmp_path_factory.mktemp("hostile-csrf"),
        csrf=True,
        settings=SUITE_SETTINGS,
        PROPAGATE_EXCEPTIONS=False,
    )


RECEIPT_RE = re.compile(r"\b\d{4}(?:-\d{4}){4}\b")
TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def _token(client: Any) -> str:
    match = TOKEN_RE.search(client.get("/").get_data(as_text=True))
    assert match is not None
    return match.group(1)


@dataclass(frozen=True)
class CsrfCase:
    id: str
    expect: Expect
    build: Callable[[WebApp], tuple[bytes, dict[str, Any]]]  # body, extra open() kwargs


def _csrf_body(token: str | list[str] | None, **overrides: Any) -> bytes:
    extra = [] if token is None else [part("csrf_token", t) for t in _listify(token)]
    return multipart([*form_parts(**overrides), *extra])


def _listify(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


#: A token issued by another app (another secret key), made once by the CSRF test.
_OTHER_TOKEN: list[str] = []


def _other_app_token() -> str:
    return _OTHER_TOKEN[0]


CSRF_CASES: list[CsrfCase] = [
    CsrfCase("csrf-missing", "reject", lambda w: (_csrf_body(None), {})),
    CsrfCase("csrf-empty", "reject", lambda w: (_csrf_body(""), {})),
    CsrfCase("csrf-garbage", "reject", lambda w: (_csrf_body("garbage"), {})),
    CsrfCase("csrf-huge", "reject", lambda w: (_csrf_body("A" * 10_000), {})),
    CsrfCase("csrf-nul", "reject", lambda w: (_csrf_body("\x00" * 10), {})),
    CsrfCase(
        "csrf-invalid-utf8",
        "reject",
        lambda w: (multipart([*form_parts(), part("csrf_token", b"\xff\xfe.\xff")]), {}),
    ),
    CsrfCase("csrf-tampered", "reject", lambda w: (_csrf_body(_token(w.client)[:-2] + "xx"), {})),
    CsrfCase(
        "csrf-signature-stripped",
        "reject",
        lambda w: (_csrf_body(_token(w.client).split(".")[0]), {}),
    ),
    CsrfCase(
        "csrf-from-another-session",
        "reject",
        lambda w: (_csrf_body(_token(w.app.test_client())), {}),
    ),
    CsrfCase(
        "csrf-valid-without-session-cookie",
        "reject",
        lambda w: (_csrf_body(_token(w.client)), {"headers": [("Cookie", "")], "_fresh": True}),
    ),
    CsrfCase("csrf-from-another-app", "reject", lambda w: (_csrf_body(_other_app_token()), {})),
    CsrfCase(
        "csrf-in-header-only",
        "reject",
        lambda w: (_csrf_body(None), {"headers": [("X-CSRFToken", _token(w.client))]}),
    ),
    CsrfCase(
        "csrf-in-query-only",
        "reject",
        lambda w: (_csrf_body(None), {"query_string": {"csrf_token": _token(w.client)}}),
    ),
    CsrfCase(
        "csrf-garbage-then-valid",
        "reject",
        lambda w: (_csrf_body(["garbage", _token(w.client)]), {}),
    ),
    CsrfCase(
        "csrf-missing-foreign-origin",
        "reject",
        lambda w: (
            _csrf_body(None),
            {"headers": [("Origin", "https://evil.example"), ("Referer", "https://evil.example/")]},
        ),
    ),
    CsrfCase(
        "csrf-missing-urlencoded",
        "reject",
        lambda w: (urlencode(valid_form(), doseq=True).encode(), {"content_type": URLENCODED}),
    ),
    CsrfCase(
        "csrf-missing-json",
        "reject",
        lambda w: (json.dumps(valid_form()).encode(), {"content_type": "application/json"}),
    ),
    CsrfCase(
        "csrf-missing-honeypot-filled",
        "decoy",
        lambda w: (_csrf_body(None, website="spam"), {}),
    ),
    CsrfCase(
        "csrf-valid-honeypot-filled",
        "decoy",
        lambda w: (_csrf_body(_token(w.client), website="spam"), {}),
    ),
    # Over plain HTTP Flask-WTF checks only the token; a cross-site browser would not
    # send the SameSite=Strict session cookie, so the token could not match.
    CsrfCase(
        "csrf-valid-foreign-origin",
        "accept",
        lambda w: (
            _csrf_body(_token(w.client)),
            {"headers": [("Origin", "https://evil.example"), ("Referer", "https://evil.example/")]},
        ),
    ),
    CsrfCase("csrf-valid", "accept", lambda w: (_csrf_body(_token(w.client)), {})),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CSRF_CASES])
def test_csrf_is_required_and_a_refused_post_stores_nothing(
    csrf_web: WebApp, case: CsrfCase, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if not _OTHER_TOKEN:
        other = make_app(tmp_path_factory.mktemp("hostile-csrf-other"), csrf=True)
        _OTHER_TOKEN.append(_token(other.client))
    body, kwargs = case.build(csrf_web)
    content_type = kwargs.pop("content_type", MULTIPART)
    client = csrf_web.app.test_client() if kwargs.pop("_fresh", False) else csrf_web.client
    before = stored(csrf_web)
    response = client.open(
        "/",
        method="POST",
        input_stream=io.BytesIO(body),
        environ_overrides={"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))},
        **kwargs,
    )
    after = stored(csrf_web)
    plain = Case(case.id, case.expect)
    text = assert_clean_response(plain, response)
    if case.expect == "accept":
        assert_success_answer(case.id, response)
        assert len(after.new_since(before)) == 1
    else:
        assert after == before, f"{case.id} stored something"
        if case.expect == "decoy":
            assert_success_answer(case.id, response)
        else:
            # A JSON body is refused as what it is (not a form) before any token check.
            expected = 415 if content_type == "application/json" else 400
            assert response.status_code == expected, case.id
            assert "</html>" in text


# --- X-Forwarded-For is not trusted ----------------------------------------------


def test_x_forwarded_for_does_not_escape_the_rate_limit(tmp_path: Path) -> None:
    """Not behind a proxy, a client cannot pick its own rate-limit key."""
    web = make_app(
        tmp_path,
        settings={"limits": {"submit_rate": "2 per hour", "global_submit_rate": "1000 per hour"}},
    )
    statuses = []
    for i in range(4):
        response = web.client.post(
            "/",
            data={"x": "y"},
            content_type="multipart/form-data",
            headers={"X-Forwarded-For": f"192.0.2.{i}", "X-Real-IP": f"192.0.2.{i}"},
            environ_base={"REMOTE_ADDR": "198.51.100.20"},
        )
        statuses.append(response.status_code)
        assert "Content-Security-Policy" in response.headers
    assert statuses == [400, 400, 429, 429]
    # Another real address still gets through: the key is the address, not a constant.
    other = web.client.post(
        "/",
        data={"x": "y"},
        content_type="multipart/form-data",
        environ_base={"REMOTE_ADDR": "198.51.100.21"},
    )
    assert other.status_code == 400
    with web.app.test_request_context(
        "/",
        headers={"X-Forwarded-For": "192.0.2.99"},
        environ_base={"REMOTE_ADDR": "198.51.100.20"},
    ):
        from flask import request

        assert request.remote_addr == "198.51.100.20"


# --- logs ------------------------------------------------------------------------


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _record_text(record: logging.LogRecord) -> str:
    """Everything a formatter or a structured handler could write for ``record``."""
    parts = [record.getMessage(), repr(record.args), repr(record.__dict__)]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


def test_no_log_record_names_the_client_what_it_sent_or_the_report(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    web = make_app(tmp_path, settings=SUITE_SETTINGS, PROPAGATE_EXCEPTIONS=False)
    address = "203.0.113.199"
    agent = "HostileProbe/7.3 (zq-agent-5521)"
    query = "secret-query-token"
    values = {
        "person_name": "Qxenia Lognova",
        "facility_name": "Facility-Logtrace-8841",
        "what_happened": "unique-typed-words-7716 about the night shift",
        "person_other_names": "alias-Logcheck-3390",
        "reporter_name": "Reporter-Logname-6620",
        "charges": "charge-text-4417",
    }
    file_names = ["evidence-logprobe-1193.jpg", "../secret-name-2288.pdf"]
    root = logging.getLogger()
    handler = _Everything()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        env = {"REMOTE_ADDR": address}
        headers = {"User-Agent": agent, "X-Forwarded-For": address}
        before = stored(web)
        body = multipart(
            [*form_parts(**values), *(file_part(n, b"bytes of " + n.encode()) for n in file_names)]
        )
        response = web.client.open(
            f"/?{query}",
            method="POST",
            input_stream=io.BytesIO(body),
            headers=headers,
            environ_overrides={**env, "CONTENT_TYPE": MULTIPART, "CONTENT_LENGTH": str(len(body))},
        )
        assert_success_answer("logged submission", response)
        [envelope] = stored(web).new_since(before)
        report_id = envelope.removesuffix(".age")
        # A receipt shown on the page (if the app gives one) must not be logged either.
        receipts = RECEIPT_RE.findall(response.get_data(as_text=True))
        report, _files = open_report(web, envelope)
        assert report["person"]["name"] == values["person_name"]

        hostile = [
            # invalid form, JSON, honeypot, oversize, NUL, a long file name, the 500s
            valid_body(person_name=None, what_happened=values["what_happened"]),
            valid_body(website=values["person_name"]),
            valid_body(what_happened=values["what_happened"] * 20_000),
            valid_body(person_name="\x00", what_happened=values["what_happened"]),
            multipart(
                [*form_parts(what_happened=values["what_happened"]), file_part(file_names[0] * 20)]
            ),
            multipart([*form_parts(), *(file_part(file_names[1]) for _ in range(500))]),
        ]
        for hostile_body in hostile:
            web.client.open(
                f"/?{query}",
                method="POST",
                input_stream=io.BytesIO(hostile_body),
                headers=headers,
                environ_overrides={
                    **env,
                    "CONTENT_TYPE": MULTIPART,
                    "CONTENT_LENGTH": str(len(hostile_body)),
                },
            )
        web.client.open(
            f"/?{query}",
            method="POST",
            json={"person_name": 5, "charges": values["charges"]},
            headers=headers,
            environ_overrides=env,
        )
        web.client.get(f"/nowhere?{query}", headers=headers, environ_overrides=env)
        web.client.open(f"/?{query}", method="DELETE", headers=headers, environ_overrides=env)
        # The app logs nothing about a submission that went well; this record
        # proves the capture itself works.
        logging.getLogger("intake.capture-check").warning("capture check")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)

    records = handler.records + [r for r in caplog.records if r not in handler.records]
    assert any(r.getMessage() == "capture check" for r in records), "the capture is not working"
    secrets = [
        *receipts,
        *(r.replace("-", "") for r in receipts),
        address,
        agent,
        "zq-agent-5521",
        query,
        report_id,
        *values.values(),
        *file_names,
        "secret-name-2288",
        "evidence-logprobe-1193",
        "nowhere",
    ]
    for record in records:
        text = _record_text(record)
        for secret in secrets:
            assert secret not in text, f"{secret!r} in log record {record.name}: {text[:500]}"
