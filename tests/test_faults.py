"""Fault tests: a submission meets a broken database, a full or read-only disk, or SIGKILL.

What an auditor checks after each fault (issue 3, "Proof"):

* the person submitting gets a clear page saying nothing was kept (503, or
  413 for "too large"), never a 500, a stack trace or a reset connection,
  wherever the server process survives the fault;
* nothing half-stored stays visible: no report row, no ``*.age`` envelope,
  no temp file in ``<data_dir>/envelopes`` (a crash may leave a dot-named
  temp file, which is never listed, holds only ciphertext and is removed by
  ``flask --app intake sweep``);
* no plaintext is left: the upload carries a marker, and every file the site
  wrote is searched for it (UTF-8 and UTF-16);
* once the fault is gone the next submission succeeds and its envelope opens
  with the private key.

Faults are real, not mocked: a TCP proxy in front of PostgreSQL that is
switched off (an outage), ``default_transaction_read_only`` in the connection
options, ``chattr +i`` on files and directories, a 2 MiB tmpfs as the data
directory, and SIGKILL sent to a real gunicorn server (the harness of
``bench/upload_memory.py``, loaded by path as ``tests/test_memory_bound.py``
does, so there is one implementation of it). Needs root for ``mount`` and
``chattr``; without them those tests skip and say why.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, select
from werkzeug.test import TestResponse

from intake.app import create_app
from intake.models import Report
from intake.store import FilesystemStore

from conftest import load_bench, upgrade_database, write_toml
from webapp import WebApp, make_app, open_stored, valid_form

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MIB = 1 << 20
AGE_HEADER = b"age-encryption.org/v1\n"
MARKER = "Fq3-FAULT-MARKER-Жұқ-Lw8"
#: What "accepted" looks like: the receipt page. The tests also demand a new
#: row whose envelope decrypts, so an error page can't pass for a success.
ACCEPTED = (200,)

#: Unexpected errors become the 500 page a person would see, not a test-client exception.
APP_CONFIG: dict[str, Any] = {"PROPAGATE_EXCEPTIONS": False}
MARKER_FORMS = [MARKER.encode(enc) for enc in ("utf-8", "utf-16-le", "utf-16-be")]


# --- what every test checks -------------------------------------------------------


def marked_bytes(size: int) -> bytes:
    """``size`` bytes of an attachment made of the marker, repeated."""
    unit = f"{MARKER} page ".encode()
    return (unit * (size // len(unit) + 1))[:size]


def marked_chunks(size: int, chunk: int = 1 << 16) -> Iterator[bytes]:
    """The same bytes as :func:`marked_bytes`, generated ``chunk`` at a time."""
    unit = f"{MARKER} page ".encode()
    block = unit * (MIB // len(unit) + 2)
    period = len(unit)
    offset = 0
    while offset < size:
        start = offset % period
        step = min(chunk, size - offset)
        yield block[start : start + step]
        offset += step


def files_holding_marker(*roots: Path) -> list[str]:
    """Every file under ``roots`` whose bytes contain the marker in any encoding."""
    found = []
    for root in roots:
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in paths:
            data = path.read_bytes()
            if any(form in data for form in MARKER_FORMS):
                found.append(str(path))
    return found


def envelope_dir_entries(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "envelopes").iterdir())


def report_ids(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return sorted(conn.scalars(select(Report.id)))
    finally:
        engine.dispose()


def describe(response: TestResponse) -> str:
    """Status and page title, for assertion messages (the whole page is too long)."""
    title = re.search(r"<title>(.*?)</title>", response.get_data(as_text=True), re.S)
    return f"{response.status} {title.group(1).strip() if title else ''}"


def assert_nothing_kept_page(response: TestResponse, codes: tuple[int, ...] = (503,)) -> None:
    """The page a person sees: the right status, "not saved / nothing kept", no internals."""
    page = response.get_data(as_text=True)
    assert response.status_code in codes, describe(response)
    assert response.mimetype == "text/html"
    lowered = page.lower()
    assert "nothing was kept" in lowered or "nothing was saved" in lowered, describe(response)
    for internal in ("Traceback", "sqlalchemy", "psycopg", "OSError", "Errno", "/work/"):
        assert internal not in page, f"the page shows {internal!r}"


def submit(web: WebApp, attachment: bytes | None = None, name: str = "scan.pdf") -> TestResponse:
    data = valid_form(what_happened=f"Beaten in cell 4. {MARKER}")
    if attachment is not None:
        data["attachments"] = [(io.BytesIO(attachment), name)]
    return web.client.post("/", data=data, content_type="multipart/form-data")


def assert_submission_works(web: WebApp) -> str:
    """Submit once more: accepted, exactly one new row, and its envelope decrypts."""
    url = web.database_url
    before = set(report_ids(url))
    attachment = marked_bytes(100_000)
    response = submit(web, attachment)
    assert response.status_code in ACCEPTED, describe(response)
    new = sorted(set(report_ids(url)) - before)
    assert len(new) == 1, new
    sinks: dict[str, io.BytesIO] = {}
    opened = open_stored(web, new[0], sinks)
    assert MARKER in opened.report["incident"]["what_happened"]
    assert [s.getvalue() for s in sinks.values()] == [attachment]
    return new[0]


def sibling_app(web: WebApp, database_url: str, name: str) -> WebApp:
    """A second app on the same site (keys, data dir, secret) but another database URL."""
    sections = tomllib.loads(web.config_file.read_text(encoding="utf-8"))
    sections["database"]["url"] = database_url
    config = write_toml(web.config_file.with_name(f"{name}.toml"), sections)
    app = create_app(str(config), TESTING=True, WTF_CSRF_ENABLED=False, **APP_CONFIG)
    return WebApp(
        app=app,
        client=app.test_client(),
        data_dir=web.data_dir,
        identity_file=web.identity_file,
        database_url=database_url,
        fingerprints=web.fingerprints,
        config_file=config,
    )


def database_kind(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


def sqlite_path(database_url: str) -> Path:
    database = make_url(database_url).database
    assert database
    return Path(database)


# --- filesystem faults: chattr and tmpfs -------------------------------------------


def _run_quiet(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """``chattr +i`` on ``paths`` for the block (undone in any case); skip if impossible."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    done: list[Path] = []
    try:
        for path in paths:
            result = _run_quiet("chattr", "+i", str(path))
            if result.returncode != 0:
                pytest.skip(f"chattr +i {path} failed (needs root on ext4/xfs): {result.stderr}")
            done.append(path)
        yield
    finally:
        for path in reversed(done):
            _run_quiet("chattr", "-i", str(path))


@contextlib.contextmanager
def small_tmpfs(mountpoint: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``mountpoint`` (always unmounted); skip if impossible."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    result = _run_quiet(
        "mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mountpoint)
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        if _run_quiet("umount", str(mountpoint)).returncode != 0:
            _run_quiet("umount", "-l", str(mountpoint))


def tmpfs_used_bytes(mountpoint: Path) -> int:
    stats = os.statvfs(mountpoint)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


# --- a database outage: a TCP proxy that can be switched off ------------------------


class TcpProxy:
    """Forwards a local port to a database server; :meth:`stop` is an outage.

    Stopping closes the listener and every forwarded connection, so the app's
    pooled connections die and new ones are refused, as when the database
    server goes down. :meth:`start` listens on the same port again.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._running = False
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._running = True
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while self._running:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


# --- 1. the database is unavailable --------------------------------------------------


def test_database_unavailable_keeps_nothing_and_recovers(tmp_path: Path, database_url: str) -> None:
    """The database goes away between two submissions: 503, no envelope, then it works again.

    PostgreSQL: the app reaches the server through :class:`TcpProxy`, which
    is switched off (pooled connections are cut, new ones refused), then on.
    SQLite: the database file is overwritten with bytes that are not a
    database (a disk error, a botched restore), then restored.
    """
    proxy: TcpProxy | None = None
    app_url = database_url
    if database_kind(database_url) == "postgresql":
        real = make_url(database_url)
        proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
        proxy.start()
        app_url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        web = make_app(tmp_path / "site", database_url=app_url, **APP_CONFIG)
        assert_submission_works(web)  # the app is up and holds pooled connections
        rows_before = report_ids(database_url)

        saved: bytes | None = None
        if proxy is not None:
            proxy.stop()
        else:
            db_file = sqlite_path(database_url)
            saved = db_file.read_bytes()
            db_file.write_bytes(b"\x00 not a database \x00" * 4096)
        try:
            response = submit(web, marked_bytes(300_000))
            assert_nothing_kept_page(response)
            assert envelope_dir_entries(web.data_dir) == [f"{rows_before[0]}.age"], (
                "an envelope or temp file of the failed submission stayed behind"
            )
            # The server process survived and still answers.
            assert web.client.get("/").status_code == 200
        finally:
            if proxy is not None:
                proxy.start()
            elif saved is not None:
                sqlite_path(database_url).write_bytes(saved)

        assert report_ids(database_url) == rows_before
        assert files_holding_marker(web.data_dir) == []
        assert_submission_works(web)
    finally:
        if proxy is not None:
            proxy.stop()


# --- 2. the database is read-only ------------------------------------------------------


def _read_only_postgres_url(database_url: str) -> str:
    url = make_url(database_url)
    options = url.query.get("options", "")
    if isinstance(options, tuple):
        options = " ".join(options)
    options = f"{options} -cdefault_transaction_read_only=on".strip()
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


def test_database_read_only_keeps_nothing_and_recovers(tmp_path: Path, database_url: str) -> None:
    """A read-only database: 503, no row, no envelope; writable again, the next one works.

    PostgreSQL: an app whose connections set ``default_transaction_read_only``
    (the state of a hot standby, or a database an operator locked); "back"
    is the same site served with the normal URL. SQLite: ``chattr +i`` on the
    database file and its directory (no journal can be made), then undone,
    with the same app.
    """
    if database_kind(database_url) == "postgresql":
        upgrade_database(database_url)
        writable = make_app(tmp_path / "site", database_url=database_url, **APP_CONFIG)
        web = sibling_app(writable, _read_only_postgres_url(database_url), "read-only")
        response = submit(web, marked_bytes(300_000))
        assert_nothing_kept_page(response)
        assert envelope_dir_entries(web.data_dir) == []
        assert web.client.get("/").status_code == 200
        assert report_ids(database_url) == []
        assert files_holding_marker(web.data_dir) == []
        assert_submission_works(writable)
        return

    web = make_app(tmp_path / "site", database_url=database_url, **APP_CONFIG)
    first = assert_submission_works(web)  # a pooled connection, opened writable
    db_file = sqlite_path(database_url)
    with immutable(db_file, db_file.parent):
        response = submit(web, marked_bytes(300_000))
        assert_nothing_kept_page(response)
        assert envelope_dir_entries(web.data_dir) == [f"{first}.age"]
        assert web.client.get("/").status_code == 200
    assert report_ids(database_url) == [first]
    assert files_holding_marker(web.data_dir) == []
    assert_submission_works(web)


def test_sqlite_read_only_before_the_first_connection_recovers(tmp_path: Path) -> None:
    """The app's first SQLite connection is made while the file is read-only.

    As after a restart on a disk remounted read-only: the first submission
    gets the 503 page and keeps nothing; once the operator makes the file
    writable again, the next submission must work without restarting.
    """
    web = make_app(tmp_path / "site", **APP_CONFIG)
    db_file = sqlite_path(web.database_url)
    with immutable(db_file, db_file.parent):
        response = submit(web, marked_bytes(300_000))
        assert_nothing_kept_page(response)
        assert envelope_dir_entries(web.data_dir) == []
    assert report_ids(web.database_url) == []
    assert_submission_works(web)


# --- 3. the data directory is full ------------------------------------------------------


@pytest.mark.parametrize(
    "mounted",
    [
        "data_dir",
        "envelopes",
    ],
)
def test_full_data_directory_keeps_nothing_and_recovers(tmp_path: Path, mounted: str) -> None:
    """A 4 MiB attachment on a 2 MiB disk: a clear page, nothing kept, space given back.

    ``data_dir``: the whole data directory (encrypted upload spool included)
    is the small tmpfs, so the disk fills while the upload is being received.
    ``envelopes``: only the envelope directory is, so it fills while sealing.
    Afterwards the tmpfs is empty again (no leaked file descriptor holds the
    space), a small submission fits, and after growing the tmpfs to 32 MiB
    the same 4 MiB attachment goes through.
    """
    site = tmp_path / "site"
    data_dir = site / "data"
    mountpoint = data_dir if mounted == "data_dir" else data_dir / "envelopes"
    with small_tmpfs(mountpoint, "2m"):
        web = make_app(site, **APP_CONFIG)
        assert web.data_dir == data_dir
        used_before = tmpfs_used_bytes(mountpoint)
        big = marked_bytes(4 * MIB)

        response = submit(web, big)
        assert_nothing_kept_page(response, codes=(503, 413, 507))
        assert envelope_dir_entries(data_dir) == []
        assert report_ids(web.database_url) == []
        assert files_holding_marker(mountpoint, site) == []
        assert tmpfs_used_bytes(mountpoint) <= used_before + 64 * 1024, (
            "the disk stays full after the failed upload: a spool or temp file is still held"
        )
        assert web.client.get("/").status_code == 200

        assert_submission_works(web)  # a small report fits in the space given back
        result = _run_quiet("mount", "-o", "remount,size=32m", str(mountpoint))
        assert result.returncode == 0, result.stderr
        response = submit(web, big)
        assert response.status_code in ACCEPTED, describe(response)
        assert len(report_ids(web.database_url)) == 2


# --- 4. the data directory is read-only --------------------------------------------------


@pytest.mark.parametrize(
    "read_only",
    [
        "envelopes",
        "whole data dir",
    ],
)
def test_read_only_data_directory_keeps_nothing_and_recovers(
    tmp_path: Path, read_only: str
) -> None:
    """``chattr +i`` on the data directory: 503, no row; undone, the next one works.

    ``envelopes``: only ``<data_dir>/envelopes`` is read-only, so sealing
    fails. ``whole data dir``: the data directory, its envelope directory and
    its upload spool directory are, so receiving the upload fails too (a
    read-only remount after disk errors looks like this).
    """
    web = make_app(tmp_path / "site", **APP_CONFIG)
    first = assert_submission_works(web)  # the spool directory exists now
    data_dir = web.data_dir
    paths = [data_dir / "envelopes"]
    if read_only == "whole data dir":
        paths += [data_dir / "spool", data_dir]
    with immutable(*paths):
        response = submit(web, marked_bytes(300_000))
        assert_nothing_kept_page(response)
        assert envelope_dir_entries(data_dir) == [f"{first}.age"]
        assert web.client.get("/").status_code == 200
    assert report_ids(web.database_url) == [first]
    assert files_holding_marker(tmp_path) == []
    assert_submission_works(web)


# --- 5. the server is killed --------------------------------------------------------------


def _start_marked_upload(
    bench: ModuleType, port: int, size: int
) -> tuple[Any, Iterator[bytes], bytes]:
    """Open a POST of the form with a ``size``-byte marked attachment; send only the headers.

    Returns the connection, the attachment's body chunks (the form fields and
    the part header come first) and the closing boundary.
    """
    cookie, token = bench.fetch_form(port)
    boundary = f"----intake-fault-{secrets.token_hex(16)}"
    head, _filler, tail, length = bench._multipart(
        boundary, {**bench.FORM_FIELDS, "csrf_token": token}, size
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.putrequest("POST", "/")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(length))
    conn.putheader("Cookie", cookie)
    conn.endheaders()

    def body() -> Iterator[bytes]:
        yield head
        yield from marked_chunks(size)

    return conn, body(), tail


def _spooling(pid: int, site: Any) -> bool:
    """Whether process ``pid`` has a file open in the site's upload spool directory."""
    spool = str(site.data_dir / "spool")
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(fd).startswith(spool + "/"):
                return True
    return False


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _wait_gone(pid: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
        except OSError:
            return
        if state == "Z":
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} survived SIGKILL")


def _wait_for(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _site_rows(site: Any) -> list[str]:
    return report_ids(f"sqlite:///{site.directory / 'intake.db'}")


def _new_submission_decrypts(bench: ModuleType, server: Any) -> Path:
    """A fresh 1 MiB marked submission to ``server``: accepted, its envelope decrypts."""
    site = server.site
    before = set(site.envelopes.glob("*.age"))
    size = MIB
    conn, chunks, tail = _start_marked_upload(bench, server.port, size)
    try:
        for chunk in chunks:
            conn.send(chunk)
        conn.send(tail)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status in ACCEPTED, (response.status, body[:300], server.log())
    new: list[Path] = sorted(set(site.envelopes.glob("*.age")) - before)
    assert len(new) == 1, new
    sha = hashlib.sha256(b"".join(marked_chunks(size))).hexdigest()
    assert bench.check_envelope(site, new[0], size, sha) == ""
    return new[0]


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["worker", "master and worker"])
def test_kill_mid_upload_leaves_nothing(tmp_path: Path, bench: ModuleType, victim: str) -> None:
    """SIGKILL halfway through a streamed 64 MiB upload: no row, no envelope, no plaintext.

    ``worker``: gunicorn's master starts a new worker, which takes the next
    submission. ``master and worker``: the whole server dies and is started
    again on the same site.
    """
    size = 64 * MIB
    site = bench.make_site(tmp_path / "site", max_file_mib=128)
    server = bench.Server(site, timeout_s=120)
    with server:
        worker = server.worker_pid()
        master = server.master_pid
        conn, chunks, _tail = _start_marked_upload(bench, server.port, size)
        sent = 0
        try:
            for chunk in chunks:
                conn.send(chunk)
                sent += len(chunk)
                if sent >= size // 2:
                    break
            # The worker is receiving it: its encrypted spool file is open.
            _wait_for(lambda: _spooling(worker, site), 10, "the worker to open a spool file")
            victims = [worker] if victim == "worker" else [master, worker]
            for pid in victims:
                _kill(pid)
            for pid in victims:
                _wait_gone(pid)
            with contextlib.suppress(OSError, http.client.HTTPException):
                for chunk in chunks:
                    conn.send(chunk)
        finally:
            conn.close()

        assert _site_rows(site) == []
        assert sorted(p.name for p in site.envelopes.iterdir()) == []
        assert files_holding_marker(site.directory) == []

        if victim == "worker":
            _wait_for(lambda: _worker_replaced(server, worker), 30, "a new gunicorn worker")
            _new_submission_decrypts(bench, server)
            assert len(_site_rows(site)) == 1
            return

    with bench.Server(site, timeout_s=120) as restarted:
        _new_submission_decrypts(bench, restarted)
    assert len(_site_rows(site)) == 1
    assert files_holding_marker(site.directory) == []


def _worker_replaced(server: Any, old: int) -> bool:
    try:
        pid = server.worker_pid()
    except (OSError, RuntimeError):
        return False
    if pid == old:
        return False
    try:
        status, _, _ = load_bench().request(server.port, "GET", "/")
    except (OSError, http.client.HTTPException):
        return False
    return bool(status == 200)


def _flask(site: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "intake", *args],
        cwd=site.directory,
        env=site.env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.slow
def test_kill_while_sealing_leaves_only_a_hidden_ciphertext_temp_file(
    tmp_path: Path, bench: ModuleType
) -> None:
    """SIGKILL once the body is in and the envelope's temp file exists (sealing).

    The one leftover is a dot-named ``*.tmp``: not an envelope to
    ``store.ids()`` or an export bundle, holding ciphertext only; ``flask
    sweep --older-than-hours 1`` leaves it while it is young and removes it
    once older. No row was written, and a restarted server takes the next
    submission.
    """
    size = 64 * MIB
    site = bench.make_site(tmp_path / "site", max_file_mib=128)
    envelopes = site.envelopes

    def temp_files() -> list[Path]:
        return [p for p in envelopes.iterdir() if p.name.endswith(".tmp")]

    def header_written() -> bool:
        for path in temp_files():
            with contextlib.suppress(FileNotFoundError):  # renamed meanwhile: sealing is over
                if path.stat().st_size >= len(AGE_HEADER):
                    return True
        return False

    with bench.Server(site, timeout_s=120) as server:
        worker = server.worker_pid()
        conn, chunks, tail = _start_marked_upload(bench, server.port, size)
        try:
            for chunk in chunks:
                conn.send(chunk)
            conn.send(tail)
            deadline = time.monotonic() + 60
            # Freeze the worker the moment the age header is in the temp file
            # (a fixed sleep instead could outlast the sealing on a loaded machine).
            while not header_written():
                assert not list(envelopes.glob("*.age")), "sealing finished before the kill"
                assert time.monotonic() < deadline, "no envelope temp file appeared"
                time.sleep(0.001)
            os.kill(worker, signal.SIGSTOP)
            _kill(server.master_pid)
            _kill(worker)
            _wait_gone(worker)
        finally:
            conn.close()

    leftovers = sorted(p.name for p in envelopes.iterdir())
    assert len(leftovers) == 1, leftovers
    assert leftovers[0].startswith(".") and leftovers[0].endswith(".tmp"), leftovers
    assert _site_rows(site) == []
    assert list(FilesystemStore(site.data_dir).ids()) == []
    assert files_holding_marker(site.directory) == []
    with (envelopes / leftovers[0]).open("rb") as stream:
        head = stream.read(64)
    assert head.startswith(AGE_HEADER), head  # ciphertext, already on disk

    with bench.Server(site, timeout_s=120) as restarted:
        envelope = _new_submission_decrypts(bench, restarted)
    assert list(FilesystemStore(site.data_dir).ids()) == [envelope.name.removesuffix(".age")]

    bundle = tmp_path / "bundle.tar"
    exported = _flask(site, "export", "--all", "--out", str(bundle))
    assert exported.returncode == 0, exported.stderr
    with tarfile.open(bundle) as tar:
        members = sorted(tar.getnames())
    assert [m for m in members if m.endswith(".age")] == [f"envelopes/{envelope.name}"], members
    assert not [m for m in members if ".tmp" in m]

    young = _flask(site, "sweep", "--older-than-hours", "1")
    assert young.returncode == 0, young.stderr
    assert sorted(p.name for p in envelopes.iterdir()) == sorted([*leftovers, envelope.name])
    two_hours_ago = time.time() - 2 * 3600
    for name in leftovers:
        os.utime(envelopes / name, (two_hours_ago, two_hours_ago))
    swept = _flask(site, "sweep", "--older-than-hours", "1")
    assert swept.returncode == 0, swept.stderr
    assert f"removed {len(leftovers)} temp file(s)" in swept.stdout, swept.stdout
    assert sorted(p.name for p in envelopes.iterdir()) == [envelope.name]
    assert len(_site_rows(site)) == 1
