"""Content-free alerts against a real SMTP server process and a real HTTP receiver.

The SMTP server is aiosmtpd run as a subprocess on loopback, offering STARTTLS
with a throw-away self-signed certificate made here (trusted through the SSL
context handed to :func:`intake.alerts.send_due_alerts`) and requiring a
login; it writes every message it takes to a directory. The webhook receiver
is :mod:`http.server` in a thread, recording each POST. Reports and follow-ups
go in through the web app, so the pending mark is the one the real code sets.

What is checked: one e-mail and one POST per batch; neither holds an id, a
receipt, a name, typed text, a file name or a count; danger-now is said only
with ``[privacy] record_danger_flag``; batching holds; failures keep the alert
pending.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import io
import ipaddress
import json
import logging
import re
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from intake.alerts import send_due_alerts, slot_start
from intake.i18n import LANGUAGES, translator
from intake.models import AlertState, FollowUp, Report, db

from webapp import WebApp, make_app, receipt_of, valid_form

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.slow]

MARKER = "ZQXMARKER"
PERSON = f"Aigul {MARKER}ova"
FILE_NAME = f"scan-{MARKER}.jpg"
SMTP_USER = "intake"
SMTP_PASSWORD = "correct horse battery staple"
WEBHOOK_TOKEN = "s3cr3t-TOKEN-in-url"
INTERVAL = 60


# --- a throw-away certificate ------------------------------------------------------


@dataclass(frozen=True)
class Cert:
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        """Trusts this certificate only (hostname and expiry are checked as usual)."""
        return ssl.create_default_context(cafile=str(self.cert_file))


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    directory = tmp_path_factory.mktemp("cert")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intake test SMTP")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Cert(cert_file, key_file)


# --- the SMTP server process --------------------------------------------------------

SMTP_SERVER = textwrap.dedent(
    """
    import json, ssl, sys, time, uuid
    from pathlib import Path
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    port, out, cert, key, user, password = sys.argv[1:7]
    out = Path(out)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            name = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
            (out / f"{name}.json").write_text(json.dumps({
                "tls": session.ssl is not None,
                "authenticated": bool(session.authenticated),
                "helo": session.host_name,
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
            }))
            (out / f"{name}.eml").write_bytes(envelope.original_content or envelope.content)
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok)

    kwargs = {}
    if cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        kwargs.update(tls_context=context, require_starttls=True)
    if user:
        kwargs.update(authenticator=authenticator, auth_required=True)
    controller = Controller(Handler(), hostname="127.0.0.1", port=int(port), **kwargs)
    controller.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpServer:
    port: int
    out: Path
    process: subprocess.Popen[str] | None = None

    def messages(self) -> list[tuple[dict[str, Any], bytes]]:
        return [
            (json.loads(meta.read_text()), meta.with_suffix(".eml").read_bytes())
            for meta in sorted(self.out.glob("*.json"))
        ]

    def clear(self) -> None:
        for path in self.out.iterdir():
            path.unlink()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def start_smtp(
    directory: Path, *, cert: Cert | None, auth: bool, port: int | None = None
) -> SmtpServer:
    """Run aiosmtpd in a subprocess on 127.0.0.1; returns once it listens."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "smtp_server.py"
    script.write_text(SMTP_SERVER)
    out = directory / "mail"
    out.mkdir(exist_ok=True)
    server = SmtpServer(port or free_port(), out)
    args = [
        str(server.port),
        str(out),
        str(cert.cert_file) if cert else "",
        str(cert.key_file) if cert else "",
        SMTP_USER if auth else "",
        SMTP_PASSWORD if auth else "",
    ]
    process = subprocess.Popen(
        [sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True
    )
    server.process = process
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "ready":
        server.stop()
        raise RuntimeError("the SMTP server did not start")
    return server


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory, cert: Cert) -> Iterator[SmtpServer]:
    """STARTTLS required, login required."""
    server = start_smtp(tmp_path_factory.mktemp("smtp"), cert=cert, auth=True)
    yield server
    server.stop()


# --- the webhook receiver -------------------------------------------------------------


@dataclass
class Receiver:
    port: int
    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{WEBHOOK_TOKEN}"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    posts: list[tuple[str, dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            posts.append((self.path, dict(self.headers.items()), self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    rec = Receiver(int(httpd.server_address[1]), posts)
    yield rec
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture
def clean(smtp: SmtpServer, receiver: Receiver) -> None:
    smtp.clear()
    receiver.posts.clear()


# --- the app ----------------------------------------------------------------------------


def alert_settings(
    tmp_path: Path, smtp: SmtpServer, receiver: Receiver | None, **extra: Any
) -> dict[str, Any]:
    password_file = tmp_path / "smtp-password"
    password_file.write_text(SMTP_PASSWORD + "\n")
    values: dict[str, Any] = {
        "interval_minutes": INTERVAL,
        "email_to": ["duty@example.org", "lawyer@example.org"],
        "email_from": "intake@example.org",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_user": SMTP_USER,
        "smtp_password_file": str(password_file),
    }
    if receiver is not None:
        values["webhook_url"] = receiver.url
    values.update(extra)
    return values


def app_with_alerts(
    tmp_path: Path,
    database_url: str,
    alerts: dict[str, Any],
    *,
    record_danger_flag: bool = False,
) -> WebApp:
    return make_app(
        tmp_path / "app",
        database_url=database_url,
        settings={"alerts": alerts, "privacy": {"record_danger_flag": record_danger_flag}},
    )


def submit(web: WebApp, **overrides: Any) -> str:
    """A report through the form, with typed text and a file name carrying the marker."""
    data = valid_form(
        person_name=PERSON,
        what_happened=f"Beaten in cell 4. {MARKER} details.",
        facility_name=f"SIZO-1 {MARKER}",
        **overrides,
    )
    data["attachments"] = [(io.BytesIO(b"scan " * 50), FILE_NAME)]
    response = web.client.post("/", data=data, content_type="multipart/form-data")
    assert response.status_code == 200
    receipt = receipt_of(response)
    assert receipt
    return receipt


def send(web: WebApp, cert: Cert, now: dt.datetime) -> bool:
    settings = web.app.extensions["intake"].settings
    with web.app.app_context():
        return send_due_alerts(db.session(), settings, now=now, ssl_context=cert.client_context())


def state(web: WebApp) -> tuple[bool, bool]:
    with web.app.app_context():
        row = db.session.get(AlertState, 1)
        assert row is not None
        return row.pending, row.pending_danger


def secrets_of(web: WebApp, receipts: list[str]) -> list[str]:
    """Everything an alert must never hold: ids, receipts, names, typed text, file names."""
    with web.app.app_context():
        ids = list(db.session.scalars(select(Report.id)))
        ids += list(db.session.scalars(select(FollowUp.id)))
    assert ids
    receipts_plain = [r.replace("-", "") for r in receipts]
    return [*ids, *receipts, *receipts_plain, PERSON, "Aigul", MARKER, FILE_NAME, "scan", "SIZO"]


def email_text(raw: bytes) -> tuple[str, str, str]:
    """(every header decoded, the body decoded, the subject) of one e-mail."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    headers = "\n".join(f"{k}: {v}" for k, v in message.items())
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return headers, body.get_content(), str(message["Subject"])


def assert_content_free(text: str, forbidden: list[str]) -> None:
    for secret in forbidden:
        assert secret.lower() not in text.lower(), secret


NOW = dt.datetime.now(dt.UTC)
#: The start of NOW's alert slot: slots are INTERVAL minutes from the epoch.
SLOT = slot_start(NOW, INTERVAL)


def slot_times(web: WebApp) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(last_sent_at, last_run_slot), as aware UTC."""
    with web.app.app_context():
        row = db.session.get(AlertState, 1)
        assert row is not None
        values = (row.last_sent_at, row.last_run_slot)
    return tuple(  # type: ignore[return-value]
        None if v is None else v if v.tzinfo else v.replace(tzinfo=dt.UTC) for v in values
    )


# --- tests ---------------------------------------------------------------------------------


def test_one_content_free_email_and_post_per_batch(
    tmp_path: Path, database_url: str, smtp: SmtpServer, receiver: Receiver, cert: Cert, clean: None
) -> None:
    web = app_with_alerts(tmp_path, database_url, alert_settings(tmp_path, smtp, receiver))
    assert not send(web, cert, SLOT + dt.timedelta(minutes=10))  # nothing pending: nothing sent
    assert smtp.messages() == [] and receiver.posts == []

    receipts = [submit(web), submit(web, danger_now="no", danger_kinds=[]), submit(web)]
    assert state(web) == (True, False)  # the flag is not recorded, so never pending_danger

    # This slot had its run: what arrived waits for the next slot boundary.
    assert not send(web, cert, SLOT + dt.timedelta(minutes=20))
    assert smtp.messages() == [] and receiver.posts == []
    assert send(web, cert, SLOT + dt.timedelta(minutes=INTERVAL, seconds=97))
    assert state(web) == (False, False)
    assert slot_times(web) == (SLOT + dt.timedelta(minutes=INTERVAL),) * 2
    messages = smtp.messages()
    assert len(messages) == 1 and len(receiver.posts) == 1
    meta, raw = messages[0]
    assert meta["tls"] and meta["authenticated"]
    assert meta["helo"] == "intake.invalid"
    assert sorted(meta["rcpt_tos"]) == ["duty@example.org", "lawyer@example.org"]

    forbidden = secrets_of(web, receipts)
    headers, body, subject = email_text(raw)
    assert_content_free(headers + "\n" + body, forbidden)
    assert_content_free(raw.decode("ascii", "replace"), forbidden)
    assert not re.search(r"\d", body + subject), "no count, no time"
    assert "danger" not in (body + subject).lower()
    message_id = re.search(r"^Message-ID: <([^>]*)>$", headers, re.M | re.I)
    assert message_id and re.fullmatch(r"[0-9a-f]{32}@intake\.invalid", message_id.group(1))
    assert socket.gethostname() not in headers
    assert subject == "Something new has arrived"
    assert "since the last alert" in body

    path, post_headers, post_body = receiver.posts[0]
    assert path == f"/hook/{WEBHOOK_TOKEN}"
    assert post_headers["Content-Type"] == "application/json"
    assert json.loads(post_body) == {"event": "new"}  # no danger_now without the flag
    assert_content_free(post_body.decode(), forbidden)

    # Inside the slot: nothing more, however much arrives.
    receipts.append(submit(web))
    assert not send(web, cert, SLOT + dt.timedelta(minutes=2 * INTERVAL - 1))
    assert len(smtp.messages()) == 1 and len(receiver.posts) == 1
    assert state(web) == (True, False)

    # The first run of the next slot: one more alert, word for word the same.
    assert send(web, cert, SLOT + dt.timedelta(minutes=2 * INTERVAL, seconds=3))
    assert slot_times(web) == (SLOT + dt.timedelta(minutes=2 * INTERVAL),) * 2
    messages = smtp.messages()
    assert len(messages) == 2 and len(receiver.posts) == 2
    later = [email_text(raw)[1:] for _meta, raw in messages]
    assert later[0] == later[1]
    assert receiver.posts[0][2] == receiver.posts[1][2]
    assert_content_free(messages[1][1].decode("ascii", "replace"), secrets_of(web, receipts))

    # Nothing new since: nothing sent, however late.
    assert not send(web, cert, NOW + dt.timedelta(days=2))
    assert len(smtp.messages()) == 2 and len(receiver.posts) == 2


def test_danger_now_is_said_only_with_the_operators_flag(
    tmp_path: Path, database_url: str, smtp: SmtpServer, receiver: Receiver, cert: Cert, clean: None
) -> None:
    web = app_with_alerts(
        tmp_path, database_url, alert_settings(tmp_path, smtp, receiver), record_danger_flag=True
    )
    submit(web, danger_now="no", danger_kinds=[])
    assert state(web) == (True, False)
    assert send(web, cert, NOW)
    _headers, calm_body, calm_subject = email_text(smtp.messages()[0][1])
    assert "danger" not in calm_body.lower()
    assert json.loads(receiver.posts[0][2]) == {"event": "new", "danger_now": False}

    receipts = [submit(web), submit(web, danger_now="dont_know", danger_kinds=[])]
    assert state(web) == (True, True)
    assert send(web, cert, NOW + dt.timedelta(minutes=INTERVAL))
    assert state(web) == (False, False)
    headers, body, subject = email_text(smtp.messages()[-1][1])
    assert "danger right now" in body
    assert subject == calm_subject  # the subject never changes
    assert json.loads(receiver.posts[-1][2]) == {"event": "new", "danger_now": True}
    assert_content_free(headers + body, secrets_of(web, receipts))
    assert not re.search(r"\d", body)


def test_without_the_flag_danger_now_reports_are_never_mentioned(
    tmp_path: Path, database_url: str, smtp: SmtpServer, receiver: Receiver, cert: Cert, clean: None
) -> None:
    web = app_with_alerts(tmp_path, database_url, alert_settings(tmp_path, smtp, receiver))
    submit(web, danger_now="yes")
    assert state(web) == (True, False)
    assert send(web, cert, NOW)
    _headers, body, subject = email_text(smtp.messages()[0][1])
    assert "danger" not in (body + subject).lower()
    assert json.loads(receiver.posts[0][2]) == {"event": "new"}


def test_a_follow_up_raises_an_alert_too(
    tmp_path: Path, database_url: str, smtp: SmtpServer, receiver: Receiver, cert: Cert, clean: None
) -> None:
    web = app_with_alerts(tmp_path, database_url, alert_settings(tmp_path, smtp, None))
    receipt = submit(web)
    assert send(web, cert, NOW)
    assert state(web) == (False, False)
    client = web.client
    assert client.post("/submitted", data={"written_down": "y"}).status_code == 303
    assert client.post("/case/sign-in", data={"receipt": receipt}).status_code == 200
    added = client.post(
        "/case/add",
        data={
            "text": f"More: {MARKER}",
            "danger_now": "yes",
            "danger_kinds": ["threat_to_life"],
            "attachments": [(io.BytesIO(b"second scan"), FILE_NAME)],
        },
        content_type="multipart/form-data",
    )
    assert added.status_code in (200, 303)
    assert state(web) == (True, False)
    assert send(web, cert, NOW + dt.timedelta(minutes=INTERVAL))
    messages = smtp.messages()
    assert len(messages) == 2
    assert email_text(messages[0][1])[1:] == email_text(messages[1][1])[1:]
    assert_content_free(messages[1][1].decode("ascii", "replace"), secrets_of(web, [receipt]))


def test_smtp_down_keeps_the_alert_for_a_later_run(
    tmp_path: Path, database_url: str, cert: Cert, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens here yet
    down = SmtpServer(port, tmp_path / "unused")
    web = app_with_alerts(tmp_path, database_url, alert_settings(tmp_path, down, None))
    submit(web)
    with caplog.at_level(logging.WARNING, logger="intake.alerts"):
        assert not send(web, cert, NOW)
    assert state(web) == (True, False)
    assert "alert e-mail not sent: ConnectionRefusedError" in caplog.text

    server = start_smtp(tmp_path / "later", cert=cert, auth=True, port=port)
    try:
        # Nothing went out, so the next run (minutes later) tries again at once.
        assert send(web, cert, NOW + dt.timedelta(minutes=5))
        assert len(server.messages()) == 1
        assert state(web) == (False, False)
    finally:
        server.stop()


def test_no_starttls_offered_means_not_sent(
    tmp_path: Path, database_url: str, cert: Cert, caplog: pytest.LogCaptureFixture
) -> None:
    plain = start_smtp(tmp_path / "plain", cert=None, auth=False)
    try:
        web = app_with_alerts(tmp_path, database_url, alert_settings(tmp_path, plain, None))
        submit(web)
        with caplog.at_level(logging.WARNING, logger="intake.alerts"):
            assert not send(web, cert, NOW)
        assert plain.messages() == []
        assert state(web) == (True, False)
        assert "alert e-mail not sent: AlertError" in caplog.text
    finally:
        plain.stop()


def test_an_untrusted_certificate_means_not_sent(
    tmp_path: Path, database_url: str, smtp: SmtpServer, cert: Cert, clean: None
) -> None:
    web = app_with_alerts(tmp_path, database_url, alert_settings(tmp_path, smtp, None))
    submit(web)
    settings = web.app.extensions["intake"].settings
    with web.app.app_context():
        # The system's trust store does not know the throw-away certificate.
        assert not send_due_alerts(db.session(), settings, now=NOW)
    assert smtp.messages() == []
    assert state(web) == (True, False)


def test_a_failed_webhook_keeps_the_alert_and_never_logs_the_url(
    tmp_path: Path,
    database_url: str,
    smtp: SmtpServer,
    cert: Cert,
    clean: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook/{WEBHOOK_TOKEN}"
    alerts = alert_settings(tmp_path, smtp, None, webhook_url=dead)
    web = app_with_alerts(tmp_path, database_url, alerts)
    submit(web)
    with caplog.at_level(logging.DEBUG):
        assert not send(web, cert, SLOT + dt.timedelta(minutes=1))
    assert "alert webhook not sent: URLError" in caplog.text
    assert WEBHOOK_TOKEN not in caplog.text and "127.0.0.1" not in caplog.text
    # The e-mail went out: still pending, but the retry waits for the next slot.
    assert len(smtp.messages()) == 1
    assert state(web) == (True, False)
    assert not send(web, cert, SLOT + dt.timedelta(minutes=6))
    assert len(smtp.messages()) == 1
    assert not send(web, cert, SLOT + dt.timedelta(minutes=INTERVAL + 1))  # webhook still dead
    assert len(smtp.messages()) == 2


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != "en"])
def test_the_alert_is_in_the_configured_language(
    tmp_path: Path,
    language: str,
    smtp: SmtpServer,
    receiver: Receiver,
    cert: Cert,
    clean: None,
) -> None:
    alerts = alert_settings(tmp_path, smtp, receiver, language=language)
    web = app_with_alerts(tmp_path, f"sqlite:///{tmp_path / 'lang.db'}", alerts)
    submit(web)
    assert send(web, cert, NOW)
    _headers, body, subject = email_text(smtp.messages()[0][1])
    t = translator(language)
    assert subject == t.gettext("Something new has arrived") != "Something new has arrived"
    assert "Something" not in body
    assert json.loads(receiver.posts[0][2]) == {"event": "new"}  # the webhook is for machines


def test_send_alerts_command(
    tmp_path: Path,
    database_url: str,
    smtp: SmtpServer,
    receiver: Receiver,
    clean: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Mid-slot on the command's clock: a real clock could cross a slot boundary
    # between two runs and turn "not yet" into the next slot's first run.
    monkeypatch.setattr("intake.cases.now_utc", lambda: SLOT + dt.timedelta(minutes=INTERVAL // 2))
    # The command trusts only the system's store: use the (plain HTTP) webhook here.
    web = make_app(
        tmp_path / "app",
        database_url=database_url,
        settings={"alerts": {"interval_minutes": INTERVAL, "webhook_url": receiver.url}},
    )
    runner = web.app.test_cli_runner()
    result = runner.invoke(args=["send-alerts"])
    assert result.exit_code == 0 and result.output == "nothing to send\n"
    submit(web)
    # This slot had its run: the arrival waits for the next boundary.
    result = runner.invoke(args=["send-alerts"])
    assert result.exit_code == 0
    waiting = re.fullmatch(r"not yet: next in (\d+) min\n", result.output)
    assert waiting and 1 <= int(waiting.group(1)) <= INTERVAL
    assert receiver.posts == []
    # The next slot's first run (the last run moved back a slot stands in for waiting).
    with web.app.app_context():
        row = db.session.get(AlertState, 1)
        assert row is not None and row.last_run_slot is not None
        row.last_run_slot = row.last_run_slot - dt.timedelta(minutes=INTERVAL)
        db.session.commit()
    result = runner.invoke(args=["send-alerts"])
    assert result.exit_code == 0 and result.output == "sent\n"
    assert len(receiver.posts) == 1


def test_send_alerts_command_without_a_channel(tmp_path: Path) -> None:
    web = make_app(tmp_path / "app")
    result = web.app.test_cli_runner().invoke(args=["send-alerts"])
    assert result.exit_code == 1
    assert "no alert channel configured" in result.output


def test_concurrent_runs_send_once(
    tmp_path: Path, database_url: str, receiver: Receiver, clean: None
) -> None:
    web = make_app(
        tmp_path / "app",
        database_url=database_url,
        settings={"alerts": {"webhook_url": receiver.url}},
    )
    submit(web)
    settings = web.app.extensions["intake"].settings
    results: list[bool] = []

    def run() -> None:
        with web.app.app_context():
            results.append(send_due_alerts(db.session(), settings, now=NOW))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    time.sleep(0.1)
    assert sorted(results) == [False, False, False, True]
    assert len(receiver.posts) == 1


def test_slots_are_counted_from_the_epoch() -> None:
    moment = dt.datetime(2026, 3, 4, 13, 47, 31, 123456, tzinfo=dt.UTC)
    assert slot_start(moment, 60) == dt.datetime(2026, 3, 4, 13, 0, tzinfo=dt.UTC)
    assert slot_start(moment, 15) == dt.datetime(2026, 3, 4, 13, 45, tzinfo=dt.UTC)
    assert slot_start(moment, 24 * 60) == dt.datetime(2026, 3, 4, tzinfo=dt.UTC)
    boundary = dt.datetime(2026, 3, 4, 14, 0, tzinfo=dt.UTC)
    assert slot_start(boundary, 60) == boundary
    assert slot_start(boundary.replace(tzinfo=None), 60) == boundary  # naive means UTC


def test_an_arrival_waits_for_the_next_slot_and_times_are_slot_starts(
    tmp_path: Path, database_url: str, receiver: Receiver, clean: None
) -> None:
    web = make_app(
        tmp_path / "app",
        database_url=database_url,
        settings={"alerts": {"interval_minutes": 15, "webhook_url": receiver.url}},
    )
    settings = web.app.extensions["intake"].settings
    start = dt.datetime(2030, 1, 1, 9, 0, tzinfo=dt.UTC)

    def run(at: dt.timedelta) -> bool:
        with web.app.app_context():
            return send_due_alerts(db.session(), settings, now=start + at)

    assert not run(dt.timedelta(minutes=1, seconds=13))  # 09:01:13, the slot's first run
    submit(web)  # arrives "at 09:04"
    for minutes in (5, 9, 14):  # later runs in the slot keep it waiting
        assert not run(dt.timedelta(minutes=minutes, seconds=7))
    assert receiver.posts == []
    assert run(dt.timedelta(minutes=15, seconds=41))  # 09:15:41: the next slot's first run
    assert len(receiver.posts) == 1
    boundary = start + dt.timedelta(minutes=15)
    assert slot_times(web) == (boundary, boundary)
