"""Peak memory and throughput of one large upload, beside the age CLI and raw primitives.

What it measures
----------------
The spec says: "a 1 GiB attachment must not grow the server process by more
than 64 MiB". This script builds a throw-away site (config, fresh key pair,
database migrated with ``flask db upgrade``), starts a real gunicorn server
(``wsgi:app``, one sync worker) on a free port of 127.0.0.1, and submits the
form once with an attachment of ``--size-mib`` MiB. The attachment is
generated chunk by chunk while it is sent, so the client never holds it.

Memory is read from ``/proc/<worker>/status`` of the gunicorn *worker* (the
process that parses, spools and seals): ``VmRSS`` just before the upload and
``VmHWM`` (the peak) just after. The peak is reset first by writing ``5`` to
``/proc/<worker>/clear_refs``; if the kernel refuses, the peak since the
worker started is used, which can only overstate the growth. One small
warm-up submission goes first, so one-off costs (imports, template
compilation, the first database connection) are not counted as growth.

Reference rows, in this same process, on the same number of bytes:

* ``age CLI``: ``/usr/bin/age -r <recipient>`` reading a pipe, writing a file;
  peak is the child's ``ru_maxrss``, growth is that minus ``ru_maxrss`` of
  the same command on empty input.
* ``pyrage.encrypt_io``: the age primitive alone, source stream → file.
* ``spool write+read``: ``EncryptedSpool``, written then read back whole.
* ``spool+seal_envelope``: what the server does after parsing, without HTTP.

How to read the table
---------------------
``MiB/s`` is plaintext MiB over wall seconds. For the server the seconds run
from the first byte sent to the receipt page, so they include spooling the
upload *and* sealing it (the request returns after the envelope is durable);
the note under the table splits the two. ``peak MiB`` is the absolute peak
RSS; ``growth MiB`` is the peak minus the RSS before the run. Only the server
growth is held against the 64 MiB limit; the final line says OK or OVER.

The script exits 0 whatever the figures are (benchmarks report, they do not
gate) and 1 if the upload itself failed (no receipt page, no envelope, wrong size).
``tests/test_memory_bound.py`` imports the helpers here (one implementation)
and asserts the limit on a 256 MiB upload.

Linux only (``/proc``). Run from the project root::

    .venv/bin/python bench/upload_memory.py --size-mib 1024
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import io
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import pyrage

from intake.crypto.envelope import AttachmentSource, padded_size, read_report, seal_envelope
from intake.crypto.keys import generate_identity, load_identities, load_recipients
from intake.crypto.spool import EncryptedSpool

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "LIMIT_MIB",
    "MIB",
    "Server",
    "Site",
    "UploadResult",
    "check_envelope",
    "make_site",
    "measure_upload",
    "payload_chunks",
]

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
LIMIT_MIB = 64
CHUNK = 1 << 16
AGE_CLI = shutil.which("age") or "/usr/bin/age"
ATTACHMENT_NAME = "evidence.bin"

#: The smallest complete submission (the same answers as tests/webapp.py valid_form).
FORM_FIELDS: dict[str, str | list[str]] = {
    "relationship": "relative",
    "person_name": "Aigul Tashieva",
    "facility_type": "sizo",
    "facility_name": "SIZO-1 Bishkek",
    "what_happened": "She was threatened by a fellow prisoner.",
    "acts": ["death_threats_person"],
    "incident_date": "2024-05",
    "date_precision": "month",
    "danger_now": "yes",
    "danger_kinds": ["threat_to_life"],
    "consent_store": "y",
    "consent_share": "this_org",
    "detainee_consent": "impossible",
    "action_wanted": "nothing_until_we_talk",
    "use_reporter_name": "no",
    "publicity_risk": "dont_know",
    "officials_warned": "no",
    "no_contact": "y",
    "preferred_language": "ru",
}


# --------------------------------------------------------------------------
# The payload: generated, never held whole
# --------------------------------------------------------------------------

_BLOCK = random.Random(20240501).randbytes(MIB)  # noqa: S311 - filler bytes, not a secret


def payload_chunks(size: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """``size`` bytes of incompressible filler, ``chunk`` bytes at a time."""
    view = memoryview(_BLOCK)
    offset = 0
    while offset < size:
        start = offset % MIB
        step = min(chunk, size - offset, MIB - start)
        yield bytes(view[start : start + step])
        offset += step


def payload_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for piece in payload_chunks(size, MIB):
        digest.update(piece)
    return digest.hexdigest()


class _PayloadReader(io.RawIOBase):
    """A readable stream over :func:`payload_chunks` (what ``encrypt_io`` pulls from)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._chunks = payload_chunks(size)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if not self._pending:
            self._pending = memoryview(next(self._chunks, b""))
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


# --------------------------------------------------------------------------
# Memory readings
# --------------------------------------------------------------------------


def status_kib(pid: int | str, field: str) -> int:
    """A ``kB`` field (``VmRSS``, ``VmHWM``) of ``/proc/<pid>/status``."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {field} in /proc/{pid}/status")
    return int(match.group(1))


def reset_peak(pid: int | str) -> bool:
    """Reset ``VmHWM`` to the current RSS; False if the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Row:
    """One line of the result table."""

    path: str
    mib: float
    seconds: float
    peak_mib: float | None
    growth_mib: float | None

    def format(self) -> str:
        rate = self.mib / self.seconds if self.seconds > 0 else float("inf")
        peak = "-" if self.peak_mib is None else f"{self.peak_mib:.1f}"
        growth = "-" if self.growth_mib is None else f"{self.growth_mib:.1f}"
        return (
            f"{self.path:<22} {self.mib:>7.0f} {self.seconds:>8.2f} {rate:>8.1f} "
            f"{peak:>9} {growth:>10}"
        )


TABLE_HEADER = (
    f"{'path':<22} {'MiB':>7} {'seconds':>8} {'MiB/s':>8} {'peak MiB':>9} {'growth MiB':>10}"
)


# --------------------------------------------------------------------------
# The site and the server
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """A throw-away deployment: config, keys, migrated database, data dir."""

    directory: Path
    config_file: Path
    identity_text: str
    recipient: str
    data_dir: Path

    @property
    def envelopes(self) -> Path:
        return self.data_dir / "envelopes"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["INTAKE_CONFIG"] = str(self.config_file)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        return env


def _toml(sections: dict[str, dict[str, str | int]]) -> str:
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        # JSON strings and integers are valid TOML basic strings and integers.
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


def make_site(
    directory: Path, *, max_file_mib: int, limits: dict[str, str | int] | None = None
) -> Site:
    """Write a config with a fresh recipient into ``directory`` and migrate its database.

    ``limits`` adds keys to the ``[limits]`` section (e.g. ``submit_rate``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    identity, recipient = generate_identity()
    (directory / "identity.txt").write_text(identity)
    recipients = directory / "recipients.txt"
    recipients.write_text(f"{recipient}\n")
    data_dir = directory / "data"
    config = directory / "config.toml"
    config.write_text(
        _toml(
            {
                "server": {"secret_key_file": str(directory / "secret_key")},
                "keys": {"recipients_file": str(recipients)},
                "storage": {"data_dir": str(data_dir)},
                "database": {"url": f"sqlite:///{directory / 'intake.db'}"},
                "limits": {
                    "max_file_mib": max_file_mib,
                    "max_request_mib": max_file_mib + 16,
                    **(limits or {}),
                },
            }
        )
    )
    site = Site(directory, config, identity, recipient, data_dir)
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "intake", "db", "upgrade"],
        cwd=directory,
        env=site.env(),
        check=True,
        capture_output=True,
    )
    return site


class Server:
    """``gunicorn wsgi:app`` with one sync worker, on a free port of 127.0.0.1.

    The listening socket is made here and handed over as ``fd://``, so there is
    no window in which another process could take the port. ``app`` and
    ``workers`` serve another WSGI app (looked up from the site directory too)
    or start more sync workers; ``config`` is a gunicorn config file to start from.
    """

    def __init__(
        self,
        site: Site,
        *,
        timeout_s: int = 900,
        app: str = "wsgi:app",
        workers: int = 1,
        config: Path | None = None,
    ) -> None:
        self.site = site
        self.config = config
        self.timeout_s = timeout_s
        self.app = app
        self.workers = workers
        self.log_file = site.directory / "server.log"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        fd = listener.fileno()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            # A gunicorn config file (the shipped gunicorn.conf.py, say); the
            # options below override what it sets.
            *(["--config", str(self.config)] if self.config else []),
            f"--workers={self.workers}",
            "--worker-class=sync",
            f"--bind=fd://{fd}",
            # A sync worker is killed when one request outlasts --timeout; a
            # large upload is one long request.
            f"--timeout={self.timeout_s}",
            f"--pythonpath={ROOT}",
            self.app,
        ]
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.site.directory,
                env=self.site.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(fd,),
            )
        listener.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def master_pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process.pid

    def worker_pids(self) -> list[int]:
        """The pids of the workers, the children of the gunicorn master."""
        pid = self.master_pid
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]

    def worker_pid(self) -> int:
        """The pid of the (only) worker, a child of the gunicorn master."""
        children = self.worker_pids()
        if len(children) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {children!r}")
        return children[0]

    def _wait_ready(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log()}")
            try:
                status, _, _ = request(self.port, "GET", "/")
                if status == 200 and len(self.worker_pids()) == self.workers:
                    return
            except (OSError, RuntimeError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not answer within {seconds:.0f} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


# --------------------------------------------------------------------------
# HTTP, stdlib only
# --------------------------------------------------------------------------


def request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response, response.read()
    finally:
        conn.close()


_CSRF = re.compile(rb'<input[^>]*name="csrf_token"[^>]*>')
_VALUE = re.compile(rb'value="([^"]*)"')


def fetch_form(port: int) -> tuple[str, str]:
    """GET the form: ``(Cookie header value, csrf_token)``."""
    status, response, body = request(port, "GET", "/")
    if status != 200:
        raise RuntimeError(f"GET / answered {status}")
    cookies: SimpleCookie = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        cookies.load(header)
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in cookies.items())
    tag = _CSRF.search(body)
    value = _VALUE.search(tag.group(0)) if tag else None
    if value is None:
        raise RuntimeError("no csrf_token input in the form")
    return cookie, value.group(1).decode()


def _multipart(
    boundary: str, fields: dict[str, str | list[str]], size: int
) -> tuple[bytes, Iterator[bytes], bytes, int]:
    """The body around the file data: ``(head, file chunks, tail, total length)``."""
    parts: list[bytes] = []
    for name, value in fields.items():
        for item in [value] if isinstance(value, str) else value:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{item}\r\n".encode()
            )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="attachments"; '
        f'filename="{ATTACHMENT_NAME}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
    )
    head = b"".join(parts)
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head, payload_chunks(size), tail, len(head) + size + len(tail)


@dataclass
class Posted:
    status: int
    location: str
    sent_s: float
    total_s: float
    body: bytes


def post_form(port: int, size: int) -> Posted:
    """Submit the form with a generated ``size``-byte attachment, streamed."""
    cookie, token = fetch_form(port)
    boundary = f"----intake-bench-{secrets.token_hex(16)}"
    head, chunks, tail, length = _multipart(boundary, {**FORM_FIELDS, "csrf_token": token}, size)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    try:
        started = time.perf_counter()
        conn.putrequest("POST", "/")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Content-Length", str(length))
        conn.putheader("Cookie", cookie)
        conn.endheaders()
        try:
            conn.send(head)
            for chunk in chunks:
                conn.send(chunk)
            conn.send(tail)
        except OSError:
            pass  # the server answered early (e.g. 413); read its answer
        sent = time.perf_counter()
        response = conn.getresponse()
        body = response.read()
        done = time.perf_counter()
        return Posted(
            response.status,
            response.getheader("Location", ""),
            sent - started,
            done - started,
            body,
        )
    finally:
        conn.close()


# --------------------------------------------------------------------------
# The server measurement
# --------------------------------------------------------------------------


@dataclass
class UploadResult:
    """One measured upload."""

    size: int
    status: int
    location: str
    sent_s: float
    total_s: float
    baseline_kib: int
    peak_kib: int
    peak_was_reset: bool
    envelope: Path | None
    worker_restarted: bool
    #: Peak growth of a 1 KiB submission right before: what every submission
    #: costs whatever it carries (the receipt's Argon2id alone takes 64 MiB).
    reference_growth_kib: int = 0

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.baseline_kib) / 1024

    @property
    def attachment_growth_mib(self) -> float:
        """Growth beyond a tiny submission's: what the attachment's size costs."""
        return self.growth_mib - self.reference_growth_kib / 1024

    @property
    def ok(self) -> bool:
        return (
            self.status == 200  # the receipt page
            and self.envelope is not None
            and not self.worker_restarted
        )


def _envelopes(site: Site) -> set[Path]:
    return set(site.envelopes.glob("*.age")) if site.envelopes.is_dir() else set()


def measure_upload(server: Server, size: int, *, warm_up: bool = True) -> UploadResult:
    """Submit with a ``size``-byte attachment; the worker's RSS before and peak during.

    A 1 KiB submission is measured the same way just before, as the reference:
    the difference is what the attachment's size costs in memory.
    """
    if warm_up:
        warm = post_form(server.port, 1024)
        if warm.status != 200:
            raise RuntimeError(f"the warm-up submission answered {warm.status}:\n{server.log()}")
    reference = _measure_one(server, 1024)
    result = _measure_one(server, size)
    result.reference_growth_kib = reference.peak_kib - reference.baseline_kib
    return result


def _measure_one(server: Server, size: int) -> UploadResult:
    before = _envelopes(server.site)
    worker = server.worker_pid()
    reset = reset_peak(worker)
    baseline = status_kib(worker, "VmRSS")
    posted = post_form(server.port, size)
    restarted = True
    peak = baseline
    try:
        restarted = server.worker_pid() != worker
        peak = status_kib(worker, "VmHWM")
    except (OSError, RuntimeError):
        pass
    new = sorted(_envelopes(server.site) - before)
    return UploadResult(
        size=size,
        status=posted.status,
        location=posted.location,
        sent_s=posted.sent_s,
        total_s=posted.total_s,
        baseline_kib=baseline,
        peak_kib=peak,
        peak_was_reset=reset,
        envelope=new[0] if len(new) == 1 else None,
        worker_restarted=restarted,
    )


def _age_header_length(path: Path) -> int:
    """Bytes of the age header: up to and including the ``--- <mac>`` line."""
    with path.open("rb") as stream:
        head = stream.read(64 * 1024)
    mac = head.find(b"\n--- ")
    end = head.find(b"\n", mac + 1) if mac >= 0 else -1
    if not head.startswith(b"age-encryption.org/v1\n") or end < 0:
        raise ValueError(f"{path.name} is not an age v1 file")
    return end + 1


def envelope_plaintext_size(path: Path) -> int:
    """The plaintext size of an age file, from its length (64 KiB chunks, 16-byte tags)."""
    payload = path.stat().st_size - _age_header_length(path) - 16  # minus the payload nonce
    chunks = -(-payload // (CHUNK + 16))
    return payload - 16 * chunks


def check_envelope(site: Site, path: Path, size: int, sha256: str | None = None) -> str:
    """Problems with a sealed envelope ("" if none): padding bucket, report.json, attachment.

    The plaintext must sit exactly on a padding bucket that can hold the
    attachment, and report.json (decrypted with the site's identity, which
    stops right after it) must list one attachment of ``size`` bytes (and
    ``sha256`` when given).
    """
    plaintext = envelope_plaintext_size(path)
    if padded_size(plaintext) != plaintext:
        return f"plaintext of {plaintext} bytes is not on a padding bucket"
    if not size < plaintext <= padded_size(size + 64 * 1024):
        return f"plaintext of {plaintext} bytes does not fit a {size}-byte attachment"
    identities = load_identities(site.identity_text.encode(), "identity.txt", None)
    with path.open("rb") as stream:
        report = read_report(stream, identities)
    attachments = report.get("attachments", [])
    if len(attachments) != 1 or attachments[0].get("size") != size:
        return f"report.json lists {attachments!r}, not one attachment of {size} bytes"
    if sha256 is not None and attachments[0].get("sha256") != sha256:
        return "the attachment's SHA-256 in report.json differs from what was sent"
    return ""


# --------------------------------------------------------------------------
# Reference runs
# --------------------------------------------------------------------------


def _self_reset() -> tuple[bool, int]:
    """Reset this process's peak; return (reset worked, RSS now in KiB)."""
    return reset_peak("self"), status_kib("self", "VmRSS")


def _self_row(path: str, size: int, seconds: float, baseline_kib: int, reset: bool) -> Row:
    if reset:
        peak = status_kib("self", "VmHWM")
    else:  # ru_maxrss is the peak since start; the delta is only a lower bound
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return Row(path, size / MIB, seconds, peak / 1024, (peak - baseline_kib) / 1024)


def _exec_done(pid: int, binary: str) -> bool:
    try:
        return Path(f"/proc/{pid}/exe").resolve() == Path(binary).resolve()
    except OSError:
        return False


def run_age_cli(recipient: str, size: int, workdir: Path) -> Row:
    """Seal ``size`` generated bytes with the age CLI, reading a pipe.

    The child's ``ru_maxrss`` is useless here: Linux carries the pre-exec
    high-water mark over ``exec``, so it reports this (larger) Python process.
    Instead the child's own ``VmHWM`` is sampled while it runs (it is a
    high-water mark, so the last sample is the peak up to then), and growth is
    measured from its ``VmRSS`` once it has started and waits for input.
    """
    out = workdir / "age-cli.age"
    process = subprocess.Popen([AGE_CLI, "-r", recipient, "-o", str(out)], stdin=subprocess.PIPE)
    assert process.stdin is not None  # noqa: S101 - stdin=PIPE
    while not _exec_done(process.pid, AGE_CLI) and process.poll() is None:
        time.sleep(0.001)
    # Let the Go runtime start and block on its first read before the baseline.
    baseline = -1
    for _ in range(100):
        time.sleep(0.01)
        settled, baseline = baseline, status_kib(process.pid, "VmRSS")
        if settled == baseline:
            break
    peak = baseline
    started = time.perf_counter()  # from the first byte, as for the other rows
    for index, chunk in enumerate(payload_chunks(size)):
        process.stdin.write(chunk)
        if index % 64 == 0:
            peak = max(peak, status_kib(process.pid, "VmHWM"))
    process.stdin.flush()
    with contextlib.suppress(OSError, RuntimeError):
        peak = max(peak, status_kib(process.pid, "VmHWM"))
    process.stdin.close()
    if process.wait() != 0:
        raise RuntimeError(f"age exited with {process.returncode}")
    seconds = time.perf_counter() - started
    out.unlink()
    return Row("age CLI", size / MIB, seconds, peak / 1024, (peak - baseline) / 1024)


def run_pyrage(recipient: str, size: int, workdir: Path) -> Row:
    recipients = load_recipients(workdir / "recipients.txt")
    assert recipients and str(recipients[0]) == recipient  # noqa: S101
    reset, baseline = _self_reset()
    started = time.perf_counter()
    with (workdir / "pyrage.age").open("wb") as out:
        pyrage.encrypt_io(_PayloadReader(size), out, recipients)
    seconds = time.perf_counter() - started
    row = _self_row("pyrage.encrypt_io", size, seconds, baseline, reset)
    (workdir / "pyrage.age").unlink()
    return row


def _fill_spool(size: int, workdir: Path) -> EncryptedSpool:
    spool = EncryptedSpool(workdir)
    for chunk in payload_chunks(size):
        spool.write(chunk)
    spool.seek(0)
    return spool


def run_spool(size: int, workdir: Path) -> Row:
    reset, baseline = _self_reset()
    started = time.perf_counter()
    with _fill_spool(size, workdir) as spool, spool.reader() as reader:
        while reader.read(CHUNK):
            pass
    seconds = time.perf_counter() - started
    return _self_row("spool write+read", size, seconds, baseline, reset)


def run_seal(recipient: str, size: int, workdir: Path) -> Row:
    recipients = load_recipients(workdir / "recipients.txt")
    report = json.dumps({"format": "bench"}).encode()
    reset, baseline = _self_reset()
    started = time.perf_counter()
    with _fill_spool(size, workdir) as spool, (workdir / "sealed.age").open("wb") as out:
        source = AttachmentSource(ATTACHMENT_NAME, spool.size, spool.sha256, spool.reader)
        seal_envelope(report, [source], recipients, out)
    seconds = time.perf_counter() - started
    row = _self_row("spool+seal_envelope", size, seconds, baseline, reset)
    (workdir / "sealed.age").unlink()
    return row


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def _server_row(result: UploadResult) -> Row:
    return Row(
        "server (gunicorn)",
        result.size / MIB,
        result.total_s,
        result.peak_kib / 1024,
        result.growth_mib,
    )


def run(size_mib: int, directory: Path) -> int:
    size = size_mib * MIB
    site = make_site(directory / "site", max_file_mib=size_mib + 1)
    workdir = directory / "reference"
    workdir.mkdir()
    (workdir / "recipients.txt").write_text(f"{site.recipient}\n")
    print(f"intake upload memory bench: {size_mib} MiB attachment, {os.cpu_count()} CPUs")
    print(f"site in {site.directory}")

    with Server(site) as server:
        result = measure_upload(server, size)
    problem = "" if result.ok else f"status {result.status}, location {result.location!r}"
    if result.worker_restarted:
        problem = "the gunicorn worker was replaced during the upload"
    if not problem and result.envelope is not None:
        problem = check_envelope(site, result.envelope, size, payload_sha256(size))
    if problem:
        print(f"UPLOAD FAILED: {problem}\n{server.log()}", file=sys.stderr)
        return 1

    rows: list[Row] = [_server_row(result)]
    if Path(AGE_CLI).exists():
        rows.append(run_age_cli(site.recipient, size, workdir))
    rows.append(run_pyrage(site.recipient, size, workdir))
    rows.append(run_spool(size, workdir))
    rows.append(run_seal(site.recipient, size, workdir))

    print()
    print(TABLE_HEADER)
    for row in rows:
        print(row.format())
    print()
    assert result.envelope is not None  # noqa: S101 - result.ok
    plaintext = envelope_plaintext_size(result.envelope)
    print(
        f"server: body sent in {result.sent_s:.2f} s (parse + encrypted spool), "
        f"then {result.total_s - result.sent_s:.2f} s to the receipt page (seal + fsync); "
        f"worker RSS {result.baseline_kib / 1024:.1f} MiB before, "
        f"peak {result.peak_kib / 1024:.1f} MiB"
        + ("" if result.peak_was_reset else " (peak not reset: since worker start)")
    )
    print(
        f"envelope {result.envelope.name}: {result.envelope.stat().st_size} bytes, "
        f"padded plaintext {plaintext} bytes; report.json and SHA-256 checked"
    )
    if not Path(AGE_CLI).exists():
        print(f"age CLI not found at {AGE_CLI}: its reference row is missing")
    verdict = "OK" if result.attachment_growth_mib <= LIMIT_MIB else "OVER"
    print(
        f"server growth {result.growth_mib:.1f} MiB, of which a 1 KiB submission takes "
        f"{result.reference_growth_kib / 1024:.1f} MiB (the receipt's Argon2id)"
    )
    print(
        f"growth due to the attachment {result.attachment_growth_mib:.1f} MiB "
        f"(limit {LIMIT_MIB} MiB): {verdict}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--size-mib", type=int, default=1024, help="attachment size in MiB (default 1024)"
    )
    parser.add_argument(
        "--keep-dir",
        type=Path,
        default=None,
        help="work in this directory and keep it (site, database, envelope, server log)",
    )
    args = parser.parse_args(argv)
    if args.size_mib < 1:
        parser.error("--size-mib must be at least 1")
    if not Path("/proc/self/status").exists():
        parser.error("this benchmark reads /proc: Linux only")
    if args.keep_dir is not None:
        args.keep_dir.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="upload-memory-", dir=args.keep_dir))
        return run(args.size_mib, directory)
    with tempfile.TemporaryDirectory(prefix="upload-memory-") as name:
        return run(args.size_mib, Path(name))


if __name__ == "__main__":
    sys.exit(main())
