"""The shipped gunicorn.conf.py, run for real: no access log, no server banner,
and malformed requests on the wire answered with a 4xx (or dropped) and storing nothing.

A real gunicorn (started from the shipped config, with only the listening
socket and the worker count overridden) serves a throw-away site; a page, a
missing page and a submission go through it with a distinctive address-like
header, user agent and query string, and then its whole output is read.
"""

from __future__ import annotations

import contextlib
import re
import socket
from pathlib import Path
from types import ModuleType

from webapp import valid_form

ROOT = Path(__file__).resolve().parent.parent
QUERY_MARKER = "query-MARKER-7Yd"
AGENT_MARKER = "agent-MARKER-p3K"
FORWARDED_FOR = "203.0.113.99"


def test_the_shipped_gunicorn_config_logs_no_request_and_names_no_server(
    tmp_path: Path, bench: ModuleType
) -> None:
    site = bench.make_site(tmp_path / "site", max_file_mib=4)
    headers = {"User-Agent": AGENT_MARKER, "X-Forwarded-For": FORWARDED_FOR}
    with bench.Server(site, timeout_s=60, config=ROOT / "gunicorn.conf.py") as server:
        status, response, _ = bench.request(server.port, "GET", f"/?q={QUERY_MARKER}", headers)
        missing, missing_response, _ = bench.request(
            server.port, "GET", f"/no-such-page?q={QUERY_MARKER}", headers
        )
        submitted = bench.measure_upload(server, 1024)
        log = server.log_file.read_text(errors="replace")

    assert (status, missing) == (200, 404)
    assert submitted.ok, submitted
    for answer in (response, missing_response):
        banner = answer.getheader("Server") or ""
        assert "gunicorn" not in banner.lower() and not any(ch.isdigit() for ch in banner)
    # The server did log (start-up lines), but no request: no path, query,
    # agent or forwarded address (the client here is loopback, as is the server).
    assert "Booting worker" in log
    for secret in (QUERY_MARKER, AGENT_MARKER, FORWARDED_FOR, "GET /", "POST /"):
        assert secret not in log, secret


# --- hostile requests at the transport level ------------------------------------------

WIRE_MARKER = b"wire-MARKER-Qz4"


def _raw(port: int, data: bytes, *, half_close: bool = True) -> int | None:
    """Send ``data`` as-is on a fresh connection; the status answered, None if none."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        conn.sendall(data)
        if half_close:
            conn.shutdown(socket.SHUT_WR)
        received = b""
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                received += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", received)
    return int(match.group(1)) if match else None


def _form_body(boundary: bytes, token: bytes) -> bytes:
    fields = {**valid_form(what_happened=WIRE_MARKER.decode()), "csrf_token": token.decode()}
    parts = [
        b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (boundary, name.encode(), str(item).encode())
        for name, value in fields.items()
        for item in (value if isinstance(value, list) else [value])
    ]
    return b"".join(parts) + b"--%s--\r\n" % boundary


def _post(
    port: int, cookie: str, body: bytes, *headers: bytes, length: bytes | None = None
) -> bytes:
    head = [
        b"POST / HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Content-Type: multipart/form-data; boundary=B",
        b"Cookie: " + cookie.encode(),
        b"Connection: close",
    ]
    if length is not None:
        head.append(b"Content-Length: " + length)
    return b"\r\n".join([*head, *headers]) + b"\r\n\r\n" + body


def test_hostile_requests_on_the_wire_store_nothing_and_break_nothing(
    tmp_path: Path, bench: ModuleType
) -> None:
    site = bench.make_site(tmp_path / "site", max_file_mib=1)
    with bench.Server(site, timeout_s=60, config=ROOT / "gunicorn.conf.py") as server:
        port = server.port
        cookie, token = bench.fetch_form(port)
        body = _form_body(b"B", token.encode())
        size = str(len(body)).encode()
        cases: dict[str, tuple[bytes, bool]] = {
            # (request, may the server answer nothing at all)
            "truncated body, client gone": (_post(port, cookie, body[:200], length=size), True),
            # Every part but the closing boundary, then the client goes.
            "cut before the last boundary": (
                _post(port, cookie, body[: body.rindex(b"--B--")], length=size),
                True,
            ),
            "two different lengths": (
                _post(port, cookie, body, b"Content-Length: 7", length=size),
                False,
            ),
            "length and chunked at once": (
                _post(port, cookie, body, b"Transfer-Encoding: chunked", length=size),
                False,
            ),
            "length not a number": (_post(port, cookie, body, length=b"12a"), False),
            "negative length": (_post(port, cookie, body, length=b"-1"), False),
            "chunked, malformed chunk": (
                _post(
                    port, cookie, b"zz\r\n" + body + b"\r\n0\r\n\r\n", b"Transfer-Encoding: chunked"
                ),
                False,
            ),
            "header folded over lines": (
                _post(port, cookie, body, b"X-Folded: a\r\n b", length=size),
                False,
            ),
            "header name with a space": (
                _post(port, cookie, body, b"Bad Name: x", length=size),
                False,
            ),
            "request line too long": (
                b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                False,
            ),
            "too many headers": (
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + b"".join(b"X-%d: y\r\n" % n for n in range(200))
                + b"\r\n",
                False,
            ),
            "NUL in the path": (b"GET /\x00/etc HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", False),
            "not HTTP at all": (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
                True,
            ),
            "over the size limit": (
                _post(port, cookie, body, length=str(64 * 1024 * 1024).encode()),
                True,
            ),
            "no CSRF token": (
                _post(port, cookie, body.replace(token.encode(), b"forged"), length=size),
                False,
            ),
            "no cookie": (_post(port, "", body, length=size), False),
        }
        answers = {name: _raw(port, data) for name, (data, _silent_ok) in cases.items()}
        for name, (_data, silent_ok) in cases.items():
            status = answers[name]
            assert status is not None or silent_ok, f"{name}: no answer"
            assert status is None or 400 <= status < 500, f"{name}: {status}"
        # Nothing of all that was stored, and the server still takes a real report.
        assert list(site.envelopes.glob("*.age")) == []
        accepted = bench.measure_upload(server, 1024)
        log = server.log_file.read_text(errors="replace")

    assert accepted.ok and accepted.envelope is not None
    assert bench.check_envelope(site, accepted.envelope, 1024, bench.payload_sha256(1024)) == ""
    assert "Traceback" not in log, log[-3000:]
    leaked = [
        str(path)
        for path in site.directory.rglob("*")
        if path.is_file() and WIRE_MARKER in path.read_bytes()
    ]
    assert leaked == []
