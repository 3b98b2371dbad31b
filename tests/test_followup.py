"""Follow-ups end to end (issue 4): receipt → sign-in → follow-up → export → reply → reporter.

Everything here is the real thing: the Flask test client for the reporter's
pages, ``flask --app intake export`` and ``import-replies`` through the app's
CLI runner, and the real ``intake-review`` console script (a subprocess) on
the "offline machine". Receipts are derived with the production Argon2id cost.

The flow, the leak scan, sessions, import refusals and the age CLI check run
on SQLite and PostgreSQL (the ``database_url`` fixture); rate limits and CSRF
do not touch the database differently, and run on SQLite only.

Files that belong to the offline machine (the staff's reply texts, the
extracted follow-up) live in a directory apart from the server's, so the
leak scan can cover everything the server side holds.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, inspect, select, text
from werkzeug.test import TestResponse

from intake.cases import REPORTER_STATUSES
from intake.crypto.keys import generate_identity
from intake.crypto.receipts import lookup_key, reply_identity
from intake.i18n import translator
from intake.models import FollowUp, Reply, Report, ReporterSession, db
from intake.review.replies import (
    build_reply,
    parse_reply,
    reply_entry,
    reply_json_bytes,
    seal_reply,
    write_replies_bundle,
)

from webapp import WebApp, make_app, receipt_of, valid_form

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT = Path(__file__).resolve().parent.parent
INTAKE_REVIEW = ROOT / ".venv" / "bin" / "intake-review"
AGE = shutil.which("age")
TAR = shutil.which("tar")

REPORT_TEXT = "Report-MARKER-c4: she was threatened in the exercise yard."
FOLLOWUP_TEXT = "Followup-MARKER-9Wz: a new letter came; she was moved to colony 47."
FOLLOWUP_FILE = b"%PDF-1.4 second handwritten letter, scanned " * 300
REPLY_RU = "Ответ-МАРКЕР-7Qk: в какой колонии она сейчас? Видел ли её врач?"
REPLY_EN = "Reply-MARKER-7Qk: which colony is she in now? Did a doctor see her?"
CLOSING_RU = "Второй-ответ-МАРКЕР-5Rt: мы передали дело адвокату."
CLOSING_EN = "Second-reply-MARKER-5Rt: we handed the case to a lawyer."
WRONG_CODE = "This code did not work. Check each digit and try again."


# --- helpers ---------------------------------------------------------------------


def review(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the installed ``intake-review`` console script, as staff would offline."""
    env = {k: v for k, v in os.environ.items() if k != "INTAKE_REVIEW_IDENTITY"}
    return subprocess.run(
        [str(INTAKE_REVIEW), *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def submit(client: FlaskClient, **overrides: Any) -> str:
    """Submit a report with one attachment; return the receipt shown on the 200 page."""
    data = valid_form(what_happened=REPORT_TEXT, **overrides)
    data["attachments"] = [(io.BytesIO(b"first letter scan " * 100), "letter-1.jpg")]
    response = client.post("/", data=data, content_type="multipart/form-data")
    assert response.status_code == 200
    receipt = receipt_of(response)
    assert re.fullmatch(r"\d{4}(-\d{4}){4}", receipt), receipt
    return receipt


def sign_in(client: FlaskClient, typed: str, **kwargs: Any) -> TestResponse:
    return client.post("/case/sign-in", data={"receipt": typed}, **kwargs)


def sign_out(client: FlaskClient) -> TestResponse:
    """Press "Sign out": a browser posts the (here empty) form url-encoded."""
    return client.post("/case/sign-out", data=b"", content_type="application/x-www-form-urlencoded")


def status_on(page: str) -> str:
    """The status the case page marks as current (language independent)."""
    steps = re.search(r'<ol class="status-steps">(.*?)</ol>', page, re.S)
    assert steps is not None, "no status on this page"
    items = re.findall(r"<li(.*?)</li>", steps.group(1), re.S)
    assert len(items) == len(REPORTER_STATUSES)
    current = [i for i, item in enumerate(items) if 'aria-current="step"' in item]
    assert len(current) == 1
    return REPORTER_STATUSES[current[0]]


def replies_on(page: str) -> list[str]:
    """The reply texts shown on a case page, in page order."""
    return [
        html.unescape(t.strip()) for t in re.findall(r'<p class="reply-text">(.*?)</p>', page, re.S)
    ]


def is_sign_in_form(response: TestResponse) -> bool:
    page = response.get_data(as_text=True)
    return 'name="receipt"' in page and "status-steps" not in page


def error_message(page: str) -> str:
    page = re.sub(r'<span class="error-prefix">.*?</span>', "", page)
    found = re.search(r'<p class="error-message"[^>]*>(.*?)</p>', page, re.S)
    assert found is not None, "no error message on the page"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def server_engine(web: WebApp) -> Engine:
    return create_engine(web.database_url)


def query(web: WebApp, sql: str, **params: Any) -> list[Any]:
    engine = server_engine(web)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def session_expiry(web: WebApp) -> datetime:
    """The expiry of the one reporter session in the database (UTC)."""
    with web.app.app_context():
        [expires] = db.session.scalars(select(ReporterSession.expires_at)).all()
    return expires if expires.tzinfo else expires.replace(tzinfo=UTC)


def the_case_id(web: WebApp) -> str:
    with web.app.app_context():
        ids = list(db.session.scalars(select(Report.id)))
    assert len(ids) == 1
    return ids[0]


def replies_snapshot(web: WebApp) -> list[tuple[Any, ...]]:
    with web.app.app_context():
        rows = db.session.execute(
            select(Reply.id, Reply.case_id, Reply.seq, Reply.sha256, Reply.status_change).order_by(
                Reply.seq
            )
        ).all()
        statuses = db.session.execute(select(Report.id, Report.review_status)).all()
    return [tuple(r) for r in rows] + [tuple(s) for s in statuses]


def add_followup(client: FlaskClient) -> TestResponse:
    data: dict[str, Any] = {
        "text": FOLLOWUP_TEXT,
        "danger_now": "yes",
        "danger_kinds": ["threat_to_life"],
        "attachments": [(io.BytesIO(FOLLOWUP_FILE), "letter-2.pdf")],
    }
    return client.post("/case/add", data=data, content_type="multipart/form-data")


# --- the whole flow ----------------------------------------------------------------


@dataclass
class Flow:
    """What a run of the whole flow leaves for later checks."""

    web: WebApp
    server_dir: Path
    offline_dir: Path
    receipt: str
    case_id: str
    server_output: list[str] = field(default_factory=list)


def run_whole_flow(server_dir: Path, offline_dir: Path, database_url: str) -> Flow:
    """Submit → sign in → follow-up → export → review → reply → import → read, asserting."""
    web = make_app(server_dir, database_url=database_url)
    client = web.client
    runner = web.app.test_cli_runner()
    flow = Flow(web, server_dir, offline_dir, "", "")

    # The report, and its receipt page: left only by confirming.
    receipt = submit(client, danger_now="no", danger_kinds=[])
    flow.receipt = receipt
    assert client.post("/submitted", data={"written_down": "y"}).status_code == 303
    case_id = flow.case_id = the_case_id(web)

    # Signing in with the receipt typed with spaces.
    signed = sign_in(client, receipt.replace("-", " "))
    assert signed.status_code == 200
    page = signed.get_data(as_text=True)
    assert status_on(page) == "received"
    assert replies_on(page) == [] and "No answer yet." in page

    # A follow-up with text, danger now and a file.
    added = add_followup(client)
    assert added.status_code == 303
    assert added.headers["Location"].endswith("/case/?added=1")
    confirmation = client.get(added.headers["Location"])
    assert confirmation.status_code == 200
    assert "Your new information was sent" in confirmation.get_data(as_text=True)
    with web.app.app_context():
        followups = list(db.session.scalars(select(FollowUp)))
    assert [(f.case_id, f.seq) for f in followups] == [(case_id, 1)]

    # Export, carried to the offline machine.
    bundle = server_dir / "bundle.tar"
    exported = runner.invoke(args=["export", "--out", str(bundle)])
    assert exported.exit_code == 0, exported.output
    assert "wrote 2 envelope(s)" in exported.output
    flow.server_output.append(exported.output)

    listed = review("list", "--identity", web.identity_file, bundle)
    assert listed.returncode == 0, listed.stderr
    [line] = [row for row in listed.stdout.splitlines() if row.startswith(case_id)]
    cells = line.split()
    assert "YES" in cells and "+1" in cells, line  # the follow-up said "danger now"

    shown = review("show", "--identity", web.identity_file, bundle, case_id)
    assert shown.returncode == 0, shown.stderr
    assert REPORT_TEXT in shown.stdout and FOLLOWUP_TEXT in shown.stdout
    assert shown.stdout.index(REPORT_TEXT) < shown.stdout.index(FOLLOWUP_TEXT)
    assert "Follow-up #1" in shown.stdout

    extracted_dir = offline_dir / "extracted"
    extracted = review(
        "extract", "--identity", web.identity_file, bundle, case_id, "--to", extracted_dir
    )
    assert extracted.returncode == 0, extracted.stderr
    followup_dir = extracted_dir / case_id / "followup-1"
    matches = [
        p for p in followup_dir.rglob("*") if p.is_file() and p.read_bytes() == FOLLOWUP_FILE
    ]
    assert len(matches) == 1, sorted(followup_dir.rglob("*"))
    assert matches[0].name.endswith("letter-2.pdf")

    # The reporter now sees "collected".
    assert status_on(client.get("/case/").get_data(as_text=True)) == "collected"

    # Staff write a reply offline, in two languages, with a status change.
    (offline_dir / "reply-ru.txt").write_text(REPLY_RU, encoding="utf-8")
    (offline_dir / "reply-en.txt").write_text(REPLY_EN, encoding="utf-8")
    replies_tar = server_dir / "replies.tar"
    staff = server_dir / "recipients.txt"  # the app's own recipients file
    replied = review(
        "reply",
        case_id,
        "--message-file",
        f"ru:{offline_dir / 'reply-ru.txt'}",
        "--message-file",
        f"en:{offline_dir / 'reply-en.txt'}",
        "--status",
        "reviewed",
        "--staff-recipients",
        staff,
        "--out",
        replies_tar,
        bundle,
    )
    assert replied.returncode == 0, replied.stderr
    imported = runner.invoke(args=["import-replies", str(replies_tar)])
    assert imported.exit_code == 0, imported.output
    assert "imported 1 reply (0 already there, 1 status change(s))" in imported.output
    flow.server_output.append(imported.output)

    # The reporter signs in again: the reply in their language, and the status.
    assert sign_out(client).status_code == 303
    russian = sign_in(client, receipt, headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert russian.status_code == 200
    page = russian.get_data(as_text=True)
    assert replies_on(page) == [REPLY_RU]
    assert status_on(page) == "reviewed"
    client.set_cookie("lang", "en")
    english = sign_in(client, receipt, headers={"Accept-Language": "ru"})  # the cookie wins
    page = english.get_data(as_text=True)
    assert replies_on(page) == [REPLY_EN] and status_on(page) == "reviewed"
    client.delete_cookie("lang")

    # A second reply closes the case; the first stays in the same bundle.
    (offline_dir / "closing-ru.txt").write_text(CLOSING_RU, encoding="utf-8")
    (offline_dir / "closing-en.txt").write_text(CLOSING_EN, encoding="utf-8")
    closed = review(
        "reply",
        case_id,
        "--message-file",
        f"ru:{offline_dir / 'closing-ru.txt'}",
        "--message-file",
        f"en:{offline_dir / 'closing-en.txt'}",
        "--status",
        "closed",
        "--staff-recipients",
        staff,
        "--out",
        replies_tar,
        bundle,
    )
    assert closed.returncode == 0, closed.stderr
    imported = runner.invoke(args=["import-replies", str(replies_tar)])
    assert imported.exit_code == 0, imported.output
    assert "imported 1 reply (1 already there, 1 status change(s))" in imported.output
    flow.server_output.append(imported.output)

    russian = sign_in(client, receipt, headers={"Accept-Language": "ru"})
    page = russian.get_data(as_text=True)
    assert status_on(page) == "closed"
    assert replies_on(page) == [CLOSING_RU, REPLY_RU]  # newest first
    english = sign_in(client, receipt, headers={"Accept-Language": "en"})
    page = english.get_data(as_text=True)
    assert replies_on(page) == [CLOSING_EN, REPLY_EN]
    assert "Staff closed your report." in page

    # The same bundle again changes nothing.
    before = replies_snapshot(web)
    again = runner.invoke(args=["import-replies", str(replies_tar)])
    assert again.exit_code == 0, again.output
    assert "imported 0 replies (2 already there, 0 status change(s))" in again.output
    flow.server_output.append(again.output)
    assert replies_snapshot(web) == before
    assert status_on(sign_in(client, receipt).get_data(as_text=True)) == "closed"
    return flow


@pytest.fixture
def offline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline machine: outside everything the leak scan covers."""
    return tmp_path_factory.mktemp("offline")


def test_whole_flow_report_followup_export_reply_status(
    tmp_path: Path, database_url: str, offline_dir: Path
) -> None:
    run_whole_flow(tmp_path / "server", offline_dir, database_url)


# --- nothing readable left behind ---------------------------------------------------------


def _encodings(secret: str) -> list[bytes]:
    raw = secret.encode("utf-8")
    forms = [raw, secret.encode("utf-16-le"), secret.encode("utf-16-be")]
    for shift in range(3):  # base64 of a text holding the secret, at each alignment
        forms.append(base64.b64encode(b"\0" * shift + raw)[4:-4])
        forms.append(base64.urlsafe_b64encode(b"\0" * shift + raw)[4:-4])
    forms.append(raw.hex().encode("ascii"))
    return forms


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8")


def _found(needles: dict[bytes, str], haystack: bytes) -> list[str]:
    return sorted({name for needle, name in needles.items() if needle in haystack})


def test_nothing_readable_is_left_behind(
    tmp_path: Path,
    database_url: str,
    offline_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    flow = run_whole_flow(tmp_path / "server", offline_dir, database_url)
    digits = flow.receipt.replace("-", "")
    secrets_ = {
        "receipt": flow.receipt,
        "receipt digits": digits,
        "receipt with spaces": flow.receipt.replace("-", " "),
        "follow-up text": FOLLOWUP_TEXT,
        "reply ru": REPLY_RU,
        "reply en": REPLY_EN,
        "closing ru": CLOSING_RU,
        "closing en": CLOSING_EN,
    }
    needles = {form: name for name, value in secrets_.items() for form in _encodings(value)}
    leaks: list[str] = []

    # Every file on the server side: data dir, database file, spool, both bundles.
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert flow.server_dir / "bundle.tar" in files and flow.server_dir / "replies.tar" in files
    assert any(p.suffix == ".age" for p in files)
    for path in files:
        leaks += [f"{path}: {name}" for name in _found(needles, path.read_bytes())]

    # Every row of every table.
    engine = create_engine(flow.web.database_url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            assert {"reports", "followups", "replies", "reporter_sessions"} <= set(tables)
            for table in tables:
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                    for value in row:
                        leaks += [f"{table}: {name}" for name in _found(needles, _as_bytes(value))]
    finally:
        engine.dispose()

    # Every log record, and what the server commands printed.
    for record in caplog.records:
        message = record.getMessage() + repr(record.args) + (record.exc_text or "")
        leaks += [f"log {record.name}: {n}" for n in _found(needles, message.encode("utf-8"))]
    for output in flow.server_output:
        leaks += [f"CLI output: {n}" for n in _found(needles, output.encode("utf-8"))]

    # The reporter's cookie jar.
    cookies = flow.web.client._cookies
    assert cookies is not None and any(c.key == "intake_session" for c in cookies.values())
    for cookie in cookies.values():
        jar = f"{cookie.key}={cookie.value}".encode()
        leaks += [f"cookie {cookie.key}: {n}" for n in _found(needles, jar)]

    assert leaks == []
    # Not vacuous: the offline machine does hold the plaintext, so the scan could see it.
    staff_files = b"".join(p.read_bytes() for p in offline_dir.rglob("*") if p.is_file())
    assert "follow-up text" in _found(needles, staff_files)
    assert "reply ru" in _found(needles, staff_files)


# --- wrong receipts and rate limits ---------------------------------------------------


def _wrong_receipt(receipt: str) -> str:
    digits = receipt.replace("-", "")
    return receipt[:-1] + str((int(digits[-1]) + 1) % 10)


def test_wrong_and_malformed_receipts_get_the_same_answer_and_see_nothing(
    tmp_path: Path, database_url: str
) -> None:
    web = make_app(tmp_path, database_url=database_url)
    receipt = submit(web.client)
    case_id = the_case_id(web)
    other = web.app.test_client()
    wrong = sign_in(other, _wrong_receipt(receipt))
    malformed = sign_in(other, "1234-5678-abcd")
    short = sign_in(other, "1234 5678 9012")
    pages = [r.get_data(as_text=True) for r in (wrong, malformed, short)]
    assert [r.status_code for r in (wrong, malformed, short)] == [400, 400, 400]
    assert {error_message(p) for p in pages} == {WRONG_CODE}
    # The pages differ in nothing but the echoed input.
    stripped = {re.sub(r'value="[^"]*"', "", p) for p in pages}
    assert len(stripped) == 1
    for page in pages:
        assert case_id not in page and "status-steps" not in page and REPORT_TEXT not in page
    assert is_sign_in_form(other.get("/case/"))  # not signed in
    assert other.post("/case/add", data={"text": "x", "danger_now": "no"}).status_code == 303
    with web.app.app_context():
        assert db.session.scalar(select(FollowUp.id)) is None
        assert db.session.scalar(select(ReporterSession.token_hash)) is None


def test_a_wrong_receipt_costs_the_same_derivations_as_a_right_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Constant time: both Argon2id derivations run for a receipt that opens no case."""
    import intake.crypto.receipts as receipts

    web = make_app(tmp_path)
    receipt = submit(web.client)
    calls: list[bytes] = []
    real = receipts._argon2

    def counted(digits: str, pepper: bytes, context: bytes) -> bytes:
        calls.append(context)
        return real(digits, pepper, context)  # the real cost, only counted

    monkeypatch.setattr(receipts, "_argon2", counted)
    assert sign_in(web.app.test_client(), receipt).status_code == 200
    right = list(calls)
    calls.clear()
    assert sign_in(web.app.test_client(), _wrong_receipt(receipt)).status_code == 400
    assert calls == right and len(right) == 2


def _limited_app(tmp_path: Path, per_client: str, everyone: str) -> WebApp:
    return make_app(
        tmp_path,
        settings={
            "limits": {"signin_failure_rate": per_client, "global_signin_failure_rate": everyone}
        },
    )


def _from(address: str) -> dict[str, Any]:
    return {"environ_base": {"REMOTE_ADDR": address}}


def test_failed_sign_ins_are_limited_per_client(tmp_path: Path) -> None:
    web = _limited_app(tmp_path, "3 per hour", "100 per hour")
    receipt = submit(web.client)
    client = web.app.test_client()
    a = _from("203.0.113.7")
    # Successful sign-ins do not count towards the limit.
    for _ in range(4):
        assert sign_in(client, receipt, **a).status_code == 200
    wrong = _wrong_receipt(receipt)
    assert [sign_in(client, typed, **a).status_code for typed in (wrong, "12", "abc")] == [
        400,
        400,
        400,
    ]
    # Now even the right receipt is turned away, from a fresh browser at that address too.
    fresh = web.app.test_client()
    blocked = sign_in(fresh, receipt, **a)
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    page = blocked.get_data(as_text=True)
    assert "status-steps" not in page and REPORT_TEXT not in page
    assert is_sign_in_form(fresh.get("/case/", **a))  # the blocked attempt signed nobody in
    assert sign_in(client, receipt, **a).status_code == 429
    # Another client still gets in.
    assert sign_in(web.app.test_client(), receipt, **_from("198.51.100.20")).status_code == 200


def test_failed_sign_ins_are_limited_for_everyone_together(tmp_path: Path) -> None:
    web = _limited_app(tmp_path, "100 per hour", "3 per hour")
    receipt = submit(web.client)
    wrong = _wrong_receipt(receipt)
    for number in range(3):
        client = web.app.test_client()
        assert sign_in(client, wrong, **_from(f"192.0.2.{number + 1}")).status_code == 400
        if number < 2:  # successes in between do not count (else the third failure is 429)
            assert sign_in(client, receipt, **_from("192.0.2.100")).status_code == 200
    newcomer = sign_in(web.app.test_client(), receipt, **_from("192.0.2.200"))
    assert newcomer.status_code == 429


SIGN_IN_WAIT = (
    "Too many tries to sign in. To protect the codes, please wait and try again "
    "in about %(num)d minute.",
    "Too many tries to sign in. To protect the codes, please wait and try again "
    "in about %(num)d minutes.",
)
REPORTS_WAIT = (
    "To protect this service, it accepts only a few reports at a time. Nothing was saved. "
    "Please try again in about %(num)d minute.",
    "To protect this service, it accepts only a few reports at a time. Nothing was saved. "
    "Please try again in about %(num)d minutes.",
)


def _wait_text(code: str, wording: tuple[str, str], response: TestResponse) -> str:
    """``wording`` in ``code`` for the wait the response's Retry-After announces."""
    minutes = max(1, round(int(response.headers["Retry-After"]) / 60))
    return translator(code).ngettext(*wording, minutes) % {"num": minutes}


def test_the_sign_in_limit_page_speaks_of_signing_in_not_of_reports(tmp_path: Path) -> None:
    # A relative who mistyped the receipt is told about signing in, in their language,
    # not that "only a few reports" are accepted and "nothing was saved".
    web = _limited_app(tmp_path, "1 per hour", "100 per hour")
    receipt = submit(web.client)
    a = _from("203.0.113.7")
    assert sign_in(web.app.test_client(), _wrong_receipt(receipt), **a).status_code == 400
    for code, header in (("en", "en"), ("ru", "ru-RU,ru;q=0.9")):
        blocked = sign_in(web.app.test_client(), receipt, headers={"Accept-Language": header}, **a)
        assert blocked.status_code == 429
        page = html.unescape(blocked.get_data(as_text=True))
        assert _wait_text(code, SIGN_IN_WAIT, blocked) in page
        assert _wait_text(code, REPORTS_WAIT, blocked) not in page
    assert "Слишком много попыток войти" in page and "сообщений за раз" not in page
    assert "Ничего не сохранено" not in page
    assert "accepts only a few reports" not in page


# --- sessions ---------------------------------------------------------------------------


def _cookie_payload(value: str) -> bytes:
    """The payload of Flask's signed session cookie, decoded by hand (base64, maybe zlib)."""
    compressed = value.startswith(".")
    payload = value.lstrip(".").split(".", 1)[0]
    data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return zlib.decompress(data) if compressed else data


def test_sessions_sign_out_expiry_and_cookie(tmp_path: Path, database_url: str) -> None:
    web = make_app(tmp_path, database_url=database_url)
    client = web.client
    assert is_sign_in_form(client.get("/case/"))
    receipt = submit(client)
    case_id = the_case_id(web)

    # Typed on an Arabic-script keyboard: Arabic-Indic digits, spaces.
    arabic = receipt.replace("-", " ").translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    signed = sign_in(client, arabic)
    assert signed.status_code == 200
    assert signed.headers["Cache-Control"] == "no-store"
    header = signed.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header
    cookie = client.get_cookie("intake_session")
    assert cookie is not None
    assert cookie.http_only and cookie.same_site == "Strict"
    assert status_on(client.get("/case/").get_data(as_text=True)) == "received"

    # What a copied cookie gives away: a random token, nothing more.
    payload = _cookie_payload(cookie.value)
    session_data = json.loads(payload)
    assert session_data == web.app.session_interface.get_signing_serializer(web.app).loads(  # type: ignore[attr-defined]
        cookie.value
    )
    digits = receipt.replace("-", "")
    pepper = web.app.extensions["intake"].pepper
    identity = str(reply_identity(digits, pepper))
    for forbidden in (
        digits,
        receipt,
        digits[:10],
        digits[10:],
        case_id,
        identity,
        identity.lower(),
        lookup_key(digits, pepper),
    ):
        assert forbidden.encode() not in payload
        assert forbidden not in cookie.value
    token = session_data["reporter"]
    rows = query(web, "SELECT token_hash, case_id FROM reporter_sessions")
    assert [tuple(r) for r in rows] == [(hashlib.sha256(token.encode()).hexdigest(), case_id)]

    # The idle expiry: 30 minutes by default, pushed on by each page. Precise only in
    # the signed cookie; the row keeps an upper bound rounded up to the hour.
    assert abs(session_data["reporter_exp"] - (time.time() + 30 * 60)) < 60
    expires = session_expiry(web)
    assert (expires.minute, expires.second, expires.microsecond) == (0, 0, 0)
    ahead = expires - datetime.now(UTC)
    assert timedelta(minutes=29) < ahead <= timedelta(minutes=91)
    soon = datetime.now(UTC) + timedelta(minutes=2)
    query(web, "UPDATE reporter_sessions SET expires_at = :soon", soon=soon)
    assert status_on(client.get("/case/").get_data(as_text=True)) == "received"
    expires = session_expiry(web)
    assert expires > datetime.now(UTC) + timedelta(minutes=25)

    # Sign out: the form again, and the row is gone.
    out = sign_out(client)
    assert out.status_code == 303
    assert is_sign_in_form(client.get("/case/"))
    assert query(web, "SELECT count(*) FROM reporter_sessions")[0][0] == 0

    # An idle session past its expiry is gone too.
    assert sign_in(client, receipt).status_code == 200
    past = datetime.now(UTC) - timedelta(minutes=1)
    query(web, "UPDATE reporter_sessions SET expires_at = :past", past=past)
    assert is_sign_in_form(client.get("/case/"))
    assert query(web, "SELECT count(*) FROM reporter_sessions")[0][0] == 0
    assert add_followup(client).status_code == 303  # to the sign-in form, nothing stored
    with web.app.app_context():
        assert db.session.scalar(select(FollowUp.id)) is None


def test_signing_in_again_ends_the_earlier_session(tmp_path: Path) -> None:
    web = make_app(tmp_path)
    receipt = submit(web.client)
    assert sign_in(web.client, receipt).status_code == 200
    earlier = web.client.get_cookie("intake_session")
    assert earlier is not None
    assert sign_in(web.client, receipt).status_code == 200  # same browser, again
    assert sign_out(web.client).status_code == 303
    copy = web.app.test_client()
    copy.set_cookie("intake_session", earlier.value)
    assert is_sign_in_form(copy.get("/case/"))


# --- import refusals -----------------------------------------------------------------------


@pytest.fixture
def exported(tmp_path: Path, database_url: str) -> Iterator[tuple[WebApp, Path, str]]:
    """An app with one case, exported to ``bundle.tar``."""
    web = make_app(tmp_path / "server", database_url=database_url)
    submit(web.client)
    bundle = tmp_path / "bundle.tar"
    result = web.app.test_cli_runner().invoke(args=["export", "--out", str(bundle)])
    assert result.exit_code == 0, result.output
    yield web, bundle, the_case_id(web)


def _reply_to(web: WebApp, bundle: Path, case_id: str, out: Path, message: Path) -> None:
    message.write_text("Which colony?", encoding="utf-8")
    result = review(
        "reply",
        case_id,
        "--message-file",
        f"en:{message}",
        "--status",
        "reviewed",
        "--staff-recipients",
        web.config_file.parent / "recipients.txt",
        "--out",
        out,
        bundle,
    )
    assert result.returncode == 0, result.stderr


def test_import_of_a_reply_to_an_unknown_case_is_refused_whole(
    tmp_path: Path, exported: tuple[WebApp, Path, str]
) -> None:
    web, bundle, case_id = exported
    replies_tar = tmp_path / "replies.tar"
    _reply_to(web, bundle, case_id, replies_tar, tmp_path / "msg.txt")
    # A second entry, sealed properly, for a case this server never had.
    staff = (web.config_file.parent / "recipients.txt").read_text().split()[0]
    unknown_case = "0123456789abcdef0123"
    data = reply_json_bytes(build_reply(unknown_case, {"en": "Hello"}, "closed"))
    reply = parse_reply(data)
    _, stranger = generate_identity()  # some reporter's key on another server
    sealed = seal_reply(data, stranger, [staff])
    write_replies_bundle(replies_tar, [(reply_entry(reply, sealed), sealed)])

    result = web.app.test_cli_runner().invoke(args=["import-replies", str(replies_tar)])
    assert result.exit_code != 0
    assert "refused, nothing imported" in result.output
    assert reply.id in result.output and unknown_case in result.output
    with web.app.app_context():
        assert db.session.scalar(select(Reply.id)) is None  # not even the valid entry
        assert db.session.scalar(select(Report.review_status)) is None


def test_import_of_a_corrupted_bundle_is_refused_naming_the_entry(
    tmp_path: Path, exported: tuple[WebApp, Path, str]
) -> None:
    web, bundle, case_id = exported
    replies_tar = tmp_path / "replies.tar"
    _reply_to(web, bundle, case_id, replies_tar, tmp_path / "msg.txt")
    with tarfile.open(replies_tar) as archive:
        [member] = [m for m in archive.getmembers() if m.name.startswith("replies/")]
    reply_id = member.name.removeprefix("replies/").removesuffix(".age")
    damaged = tmp_path / "damaged.tar"
    data = bytearray(replies_tar.read_bytes())
    data[member.offset_data + member.size // 2] ^= 0x01
    damaged.write_bytes(bytes(data))

    runner = web.app.test_cli_runner()
    result = runner.invoke(args=["import-replies", str(damaged)])
    assert result.exit_code != 0
    assert "refused, nothing imported" in result.output and reply_id in result.output
    with web.app.app_context():
        assert db.session.scalar(select(Reply.id)) is None
    # The intact bundle goes in.
    assert runner.invoke(args=["import-replies", str(replies_tar)]).exit_code == 0
    with web.app.app_context():
        assert list(db.session.scalars(select(Reply.id))) == [reply_id]
        assert db.session.scalar(select(Report.review_status)) == "reviewed"


# --- the follow-up envelope with standard tools ----------------------------------------------


@pytest.mark.skipif(AGE is None or TAR is None, reason="the age CLI or tar is not installed")
def test_followup_envelope_opens_with_the_age_cli_and_tar(
    tmp_path: Path, database_url: str
) -> None:
    web = make_app(tmp_path / "server", database_url=database_url)
    receipt = submit(web.client)
    case_id = the_case_id(web)
    assert sign_in(web.client, receipt).status_code == 200
    assert add_followup(web.client).status_code == 303
    with web.app.app_context():
        followup_id = db.session.scalar(select(FollowUp.id))
    envelope = web.data_dir / "envelopes" / f"{followup_id}.age"
    plaintext = subprocess.run(
        [str(AGE), "-d", "-i", str(web.identity_file), str(envelope)],
        check=True,
        capture_output=True,
    ).stdout
    out = tmp_path / "opened"
    out.mkdir()
    subprocess.run([str(TAR), "-x", "-C", str(out)], input=plaintext, check=True)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["kind"] == "followup"
    assert report["case_id"] == case_id and report["seq"] == 1
    assert report["text"] == FOLLOWUP_TEXT
    assert report["danger_now"]["answer"] == "yes"
    [attachment] = report["attachments"]
    assert (out / attachment["member"]).read_bytes() == FOLLOWUP_FILE


# --- migrations --------------------------------------------------------------------------------


def test_followup_tables_exist_after_upgrade(migrated_engine: Engine) -> None:
    tables = set(inspect(migrated_engine).get_table_names())
    assert {"followups", "replies", "reporter_sessions"} <= tables
    columns = {c["name"] for c in inspect(migrated_engine).get_columns("reports")}
    assert {"lookup_key", "reply_recipient", "review_status"} <= columns


# --- with CSRF protection on, as in production -----------------------------------------------


def _csrf_token(page: str) -> str:
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture
def csrf_web(tmp_path: Path) -> tuple[WebApp, str]:
    """An app with CSRF protection on, and the receipt of one report."""
    web = make_app(tmp_path, csrf=True)
    data = valid_form()
    data["csrf_token"] = _csrf_token(web.client.get("/").get_data(as_text=True))
    response = web.client.post("/", data=data, content_type="multipart/form-data")
    assert response.status_code == 200
    return web, receipt_of(response)


def _signed_in_with_csrf(web: WebApp, receipt: str) -> TestResponse:
    token = _csrf_token(web.client.get("/case/").get_data(as_text=True))
    response = web.client.post("/case/sign-in", data={"receipt": receipt, "csrf_token": token})
    assert response.status_code == 200
    return response


def _add_with(client: FlaskClient, token: str | None) -> TestResponse:
    data: dict[str, Any] = {"text": FOLLOWUP_TEXT, "danger_now": "no"}
    if token is not None:
        data["csrf_token"] = token
    return client.post("/case/add", data=data, content_type="multipart/form-data")


def test_case_forms_need_the_csrf_token(csrf_web: tuple[WebApp, str]) -> None:
    web, receipt = csrf_web
    _signed_in_with_csrf(web, receipt)
    assert _add_with(web.client, None).status_code == 400
    assert _add_with(web.client, "forged").status_code == 400
    with web.app.app_context():
        assert db.session.scalar(select(FollowUp.id)) is None
    # A token from the case page as shown by GET /case/ works.
    token = _csrf_token(web.client.get("/case/").get_data(as_text=True))
    assert _add_with(web.client, token).status_code == 303


def test_a_followup_sent_from_the_sign_in_answer_is_accepted(
    csrf_web: tuple[WebApp, str],
) -> None:
    web, receipt = csrf_web
    page = _signed_in_with_csrf(web, receipt).get_data(as_text=True)
    assert _add_with(web.client, _csrf_token(page)).status_code == 303


def test_a_stale_sign_in_page_says_what_went_wrong(csrf_web: tuple[WebApp, str]) -> None:
    web, receipt = csrf_web
    response = web.client.post("/case/sign-in", data={"receipt": receipt, "csrf_token": "old"})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'class="error-message"' in page or 'class="error-summary"' in page
    assert "status-steps" not in page


def test_sign_out_needs_the_csrf_token(csrf_web: tuple[WebApp, str]) -> None:
    web, receipt = csrf_web
    _signed_in_with_csrf(web, receipt)
    assert sign_out(web.client).status_code == 400  # no token
    assert web.client.post("/case/sign-out", data={"csrf_token": "forged"}).status_code == 400
    page = web.client.get("/case/").get_data(as_text=True)
    assert status_on(page) == "received"  # still signed in
    assert query(web, "SELECT count(*) FROM reporter_sessions")[0][0] == 1
    # The token of the sign-out form itself (its own element id) works.
    assert 'id="sign-out-csrf_token"' in page
    found = re.search(
        r'id="sign-out-csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', page
    )
    assert found is not None
    out = web.client.post("/case/sign-out", data={"csrf_token": found.group(1)})
    assert out.status_code == 303
    assert is_sign_in_form(web.client.get("/case/"))
    assert query(web, "SELECT count(*) FROM reporter_sessions")[0][0] == 0


# --- what the database learns of a reporter's activity -------------------------------


class Clock:
    """The follow-up views' clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    # Five past the hour, at an odd second: a precise time would show in the rows.
    clock = Clock(datetime.now(UTC).replace(minute=5, second=7, microsecond=123456))
    monkeypatch.setattr("intake.views.followup.now_utc", clock)
    monkeypatch.setattr("intake.cases.now_utc", clock)  # the CLI commands' clock
    return clock


def _session_datetimes(web: WebApp) -> list[datetime]:
    """Every datetime value in reporter_sessions, as stored."""
    columns = [c["name"] for c in inspect(server_engine(web)).get_columns("reporter_sessions")]
    values = []
    with web.app.app_context():
        for row in db.session.execute(select(ReporterSession)).scalars():
            for name in columns:
                value = getattr(row, name)
                if isinstance(value, datetime):
                    values.append(value)
    return values


def test_reporter_activity_is_stored_by_the_hour_only(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    web = make_app(tmp_path, database_url=database_url)
    receipt = submit(web.client)
    assert sign_in(web.client, receipt).status_code == 200
    for _ in range(3):
        clock.advance(minutes=7, seconds=13, microseconds=4321)
        assert status_on(web.client.get("/case/").get_data(as_text=True)) == "received"
    clock.advance(seconds=11)
    assert add_followup(web.client).status_code == 303
    values = _session_datetimes(web)
    assert values  # the session's row is there
    for value in values:
        assert (value.minute, value.second, value.microsecond) == (0, 0, 0), value
    assert values == [
        (clock.now + timedelta(minutes=30)).replace(minute=0, second=0, microsecond=0)
        + timedelta(hours=1)
    ]
    # Raw, not through the model's type: the stored text or value is a whole hour too.
    [[raw]] = query(web, "SELECT expires_at FROM reporter_sessions")
    if isinstance(raw, datetime):
        assert (raw.minute, raw.second, raw.microsecond) == (0, 0, 0)
    else:  # SQLite keeps text
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:00:00(\.0+)?", raw), raw


def test_idle_expiry_is_kept_in_the_cookie(tmp_path: Path, clock: Clock) -> None:
    web = make_app(tmp_path)
    receipt = submit(web.client)
    assert sign_in(web.client, receipt).status_code == 200
    clock.advance(minutes=29)
    assert status_on(web.client.get("/case/").get_data(as_text=True)) == "received"
    clock.advance(minutes=29)  # each page moves the idle expiry on
    assert status_on(web.client.get("/case/").get_data(as_text=True)) == "received"
    # 31 idle minutes: the cookie's expiry has passed though the row's hour bound has not.
    clock.advance(minutes=31)
    assert session_expiry(web) > clock.now
    assert is_sign_in_form(web.client.get("/case/"))
    assert query(web, "SELECT count(*) FROM reporter_sessions")[0][0] == 0
    # A cookie without its expiry (or with a forged one) is no session either.
    assert sign_in(web.client, receipt).status_code == 200
    with web.client.session_transaction() as cookie_session:
        cookie_session.pop("reporter_exp")
    assert is_sign_in_form(web.client.get("/case/"))
    assert sign_in(web.client, receipt).status_code == 200
    with web.client.session_transaction() as cookie_session:
        cookie_session["reporter_exp"] = "9999999999"
    assert is_sign_in_form(web.client.get("/case/"))


def test_expired_sessions_are_deleted_at_sign_in_and_by_sweep(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    web = make_app(tmp_path, database_url=database_url)
    receipt = submit(web.client)
    clock.advance(hours=-3)
    assert sign_in(web.client, receipt).status_code == 200
    assert query(web, "SELECT count(*) FROM reporter_sessions")[0][0] == 1
    clock.advance(hours=3)  # three hours later: that session is long expired
    result = web.app.test_cli_runner().invoke(args=["sweep"])
    assert result.exit_code == 0, result.output
    assert "removed 1 expired reporter session(s) and 0 expired staff session(s)" in result.output
    assert query(web, "SELECT count(*) FROM reporter_sessions")[0][0] == 0

    # Someone else's sign-in clears expired rows too.
    clock.advance(hours=-3)
    assert sign_in(web.client, receipt).status_code == 200
    clock.advance(hours=3)
    other = web.app.test_client()
    assert sign_in(other, receipt).status_code == 200
    assert query(web, "SELECT count(*) FROM reporter_sessions")[0][0] == 1
    # And a live session survives the sweep.
    result = web.app.test_cli_runner().invoke(args=["sweep"])
    assert "removed 0 expired reporter session(s)" in result.output
    assert query(web, "SELECT count(*) FROM reporter_sessions")[0][0] == 1


def test_submission_and_followup_log_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    web = make_app(tmp_path)
    with caplog.at_level(logging.DEBUG):
        caplog.clear()
        receipt = submit(web.client)
        assert [r.name for r in caplog.records if r.name.startswith("intake")] == []
        assert sign_in(web.client, receipt).status_code == 200
        caplog.clear()
        assert add_followup(web.client).status_code == 303
        assert [r.name for r in caplog.records if r.name.startswith("intake")] == []
