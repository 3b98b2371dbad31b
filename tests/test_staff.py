"""Staff accounts and the staff pages (issue 5): CLI accounts, passphrase + TOTP sign-in,
the case list, bundle downloads, replies and acknowledgement uploads, the audit log.

TOTP codes are real pyotp codes computed from the secret in the otpauth URI
the CLI printed, at a time the test chooses: the views' clock
(``intake.views.staff.now_utc``) is replaced by one the test moves.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyotp
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from intake import staff as staff_module
from intake.models import AuditEvent, Report, ReportStatus, StaffSession, StaffUser, db
from intake.review.cli import main as review_main
from intake.staff import PASSPHRASE_WORDS, generate_passphrase, wordlist

from webapp import WebApp, make_app, receipt_of, valid_form

ADDRESS = "203.0.113.77"  # a distinctive client address: it must appear nowhere
START = datetime.now(UTC).replace(microsecond=0)  # reports arrive at the real hour
FAILED = "Sign-in failed. Check the name, the passphrase and the code, and try again."
REPORT_TEXT = "Staff-MARKER-r8T: she was beaten during transfer."
REPLY_TEXT = "Staff-reply-MARKER-q2W: we have written to the prosecutor."
SECURITY_HEADERS = {
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
}


# --- helpers ---------------------------------------------------------------------


class Clock:
    """The views' clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Account:
    name: str
    passphrase: str
    uri: str

    @property
    def totp(self) -> pyotp.TOTP:
        totp = pyotp.parse_uri(self.uri)
        assert isinstance(totp, pyotp.TOTP)
        return totp

    def code(self, moment: datetime) -> str:
        return self.totp.at(moment)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    # From the real time the test starts at (not the collection time): reports
    # arrive at the real hour, and an older clock would hold them back as
    # "too young to purge" whenever the suite crosses an hour.
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    monkeypatch.setattr("intake.views.staff.now_utc", clock)
    return clock


def staff_app(tmp_path: Path, database_url: str | None = None, **settings: Any) -> WebApp:
    sections: dict[str, dict[str, Any]] = {"privacy": {"record_danger_flag": True}}
    for name, values in settings.items():
        sections.setdefault(name, {}).update(values)
    web = make_app(tmp_path, database_url=database_url, settings=sections)
    web.client.environ_base["REMOTE_ADDR"] = ADDRESS
    return web


@pytest.fixture
def web(tmp_path: Path, database_url: str) -> Iterator[WebApp]:
    web = staff_app(tmp_path, database_url)
    yield web
    with web.app.app_context():
        db.engine.dispose()


def cli(web: WebApp, *args: str) -> str:
    result = web.app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def add_account(web: WebApp, name: str = "alice", *extra: str) -> Account:
    output = cli(web, "staff", "add", name, *extra)
    lines = output.splitlines()
    passphrase = lines[
        lines.index("passphrase (shown once; give it to the person in private):") + 1
    ]
    [uri] = [line for line in lines if line.startswith("otpauth://")]
    return Account(name, passphrase.strip(), uri)


def sign_in(client: FlaskClient, account: Account, at: datetime, **override: str) -> Any:
    data = {"name": account.name, "passphrase": account.passphrase, "code": account.code(at)}
    data.update(override)
    return client.post("/staff/sign-in", data=data)


def is_sign_in_page(response: Any) -> bool:
    page = response.get_data(as_text=True)
    return 'name="passphrase"' in page and "Signed in as" not in page


def submit(client: FlaskClient, **overrides: Any) -> str:
    data = valid_form(what_happened=REPORT_TEXT, **overrides)
    data["attachments"] = [(io.BytesIO(b"scan of a letter " * 50), "letter.jpg")]
    response = client.post("/", data=data, content_type="multipart/form-data")
    assert response.status_code == 200
    return receipt_of(response)


def report_ids(web: WebApp) -> dict[str, Report]:
    with web.app.app_context():
        reports = list(db.session.scalars(select(Report)))
        db.session.expunge_all()
    return {r.id: r for r in reports}


def audit_rows(web: WebApp) -> list[AuditEvent]:
    with web.app.app_context():
        rows = list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        db.session.expunge_all()
    return rows


def manifest_of(bundle: bytes) -> dict[str, Any]:
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        loaded: dict[str, Any] = json.loads(member.read())
    return loaded


def envelopes_in(bundle: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        return sorted(
            Path(m.name).stem for m in tar.getmembers() if m.name.startswith("envelopes/")
        )


def sign_out(client: FlaskClient) -> Any:
    """Press "Sign out": a browser posts the (here empty) form url-encoded."""
    return client.post(
        "/staff/sign-out", data=b"", content_type="application/x-www-form-urlencoded"
    )


def download(client: FlaskClient, which: str) -> Any:
    return client.post("/staff/download", data={"which": which})


# --- the whole flow ----------------------------------------------------------------


def test_staff_flow_end_to_end(
    web: WebApp, clock: Clock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = web.client
    reporter = web.app.test_client()
    reporter.environ_base["REMOTE_ADDR"] = ADDRESS

    # Three reports arrive through the web form, one "danger now".
    receipt = submit(reporter, danger_now="no", danger_kinds=[])
    submit(reporter, danger_now="yes")
    submit(reporter, danger_now="dont_know", danger_kinds=[])
    reports = report_ids(web)
    assert len(reports) == 3
    [danger_id] = [i for i, r in reports.items() if r.danger_now]

    account = add_account(web)
    assert len(account.passphrase.split()) == PASSPHRASE_WORDS

    # Not signed in: the staff pages show the sign-in form or send you there.
    assert is_sign_in_page(client.get("/staff"))
    assert client.post("/staff/download", data={"which": "new"}).status_code == 303

    signed_at = clock.now
    signed = sign_in(client, account, signed_at)
    assert signed.status_code == 303
    assert signed.headers["Location"].endswith("/staff/")

    # The used TOTP code fails a second time, even with the right passphrase
    # (at the same moment on the views' clock: the code is still in its window).
    replayed = web.app.test_client()
    replayed.environ_base["REMOTE_ADDR"] = ADDRESS
    again = sign_in(replayed, account, signed_at)
    assert again.status_code == 400 and FAILED in again.get_data(as_text=True)
    assert is_sign_in_page(replayed.get("/staff"))

    listing = client.get("/staff")
    assert listing.status_code == 200
    page = listing.get_data(as_text=True)
    assert "case-list" in page and "Signed in as alice." in page
    positions = {rid: page.index(rid) for rid in reports}
    assert min(positions, key=lambda rid: positions[rid]) == danger_id  # danger first
    assert "DANGER NOW" in page
    assert REPORT_TEXT not in page
    assert page.count(">new<") == 3

    # Download new: a bundle intake-review reads with the app's identity.
    first = download(client, "new")
    assert first.status_code == 200
    assert first.mimetype == "application/x-tar"
    assert re.fullmatch(
        r"attachment; filename=intake-bundle-\d{8}T\d{2}Z\.tar",
        first.headers["Content-Disposition"],
    )
    assert first.headers["Cache-Control"] == "no-store"
    bundle = tmp_path / "offline" / "bundle.tar"
    bundle.parent.mkdir()
    bundle.write_bytes(first.get_data())
    assert envelopes_in(first.get_data()) == sorted(reports)
    capsys.readouterr()
    assert review_main(["list", "-i", str(web.identity_file), str(bundle)]) == 0
    listed = capsys.readouterr().out
    assert all(rid in listed for rid in reports)
    # The temp file is gone from the data dir.
    assert not list((web.data_dir / "staff-tmp").iterdir())

    # Download new again: nothing new.
    second = download(client, "new")
    assert second.status_code == 200
    assert envelopes_in(second.get_data()) == []
    assert manifest_of(second.get_data())["envelopes"] == []
    assert client.get("/staff").get_data(as_text=True).count(">exported<") == 3

    # Download all: every envelope still held.
    everything = download(client, "all")
    assert envelopes_in(everything.get_data()) == sorted(reports)

    # A reply written offline, uploaded on the staff page.
    reply_file = tmp_path / "offline" / "reply.txt"
    reply_file.write_text(REPLY_TEXT, encoding="utf-8")
    replies_tar = tmp_path / "offline" / "replies.tar"
    receipt_case = next(
        rid for rid, r in reports.items() if rid != danger_id and r.danger_now is False
    )
    assert (
        review_main(
            [
                "reply",
                receipt_case,
                "--message-file",
                f"en:{reply_file}",
                "--status",
                "reviewed",
                "--staff-recipients",
                str(tmp_path / "recipients.txt"),
                "--out",
                str(replies_tar),
                str(bundle),
            ]
        )
        == 0
    )
    uploaded = client.post(
        "/staff/replies",
        data={"upload": (io.BytesIO(replies_tar.read_bytes()), "replies.tar")},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 200, uploaded.get_data(as_text=True)
    result_page = uploaded.get_data(as_text=True)
    assert "Replies imported" in result_page and "New replies stored: 1" in result_page
    assert not list((web.data_dir / "staff-tmp").iterdir())

    # A broken bundle is refused, saying why.
    refused = client.post(
        "/staff/replies",
        data={"upload": (io.BytesIO(b"not a tar at all"), "replies.tar")},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 400
    assert "Replies refused" in refused.get_data(as_text=True)

    # The reporter signs in with the receipt and reads the reply.
    case_page = reporter.post("/case/sign-in", data={"receipt": receipt})
    assert case_page.status_code == 200
    assert REPLY_TEXT in case_page.get_data(as_text=True)

    # The acknowledgement of the first bundle purges those envelopes
    # (the views' clock catches up with the real hour the reports arrived in).
    clock.now = max(clock.now, datetime.now(UTC))
    hashes = [entry["sha256"] for entry in manifest_of(first.get_data())["envelopes"]]
    ack = json.dumps({"format": "intake.ack", "version": 1, "envelopes": hashes}).encode()
    purged = client.post(
        "/staff/ack",
        data={"upload": (io.BytesIO(ack), "intake-ack.json")},
        content_type="multipart/form-data",
    )
    assert purged.status_code == 200, purged.get_data(as_text=True)
    assert "Envelopes removed from the server: 3" in purged.get_data(as_text=True)
    assert all(r.status == ReportStatus.PURGED for r in report_ids(web).values())
    bad_ack = client.post(
        "/staff/ack",
        data={"upload": (io.BytesIO(b"{}"), "intake-ack.json")},
        content_type="multipart/form-data",
    )
    assert bad_ack.status_code == 400
    assert "Acknowledgement refused" in bad_ack.get_data(as_text=True)

    # Sign out ends the session, in the cookie and in the database.
    assert sign_out(client).status_code == 303
    assert is_sign_in_page(client.get("/staff"))
    assert client.post("/staff/download", data={"which": "new"}).status_code == 303
    with web.app.app_context():
        assert db.session.scalar(select(StaffSession)) is None

    # The next step's code signs in again.
    clock.advance(seconds=30)
    assert sign_in(client, account, clock.now).status_code == 303

    # The audit log: who, what, how many; never content, address or secrets.
    rows = audit_rows(web)
    actions = [row.action for row in rows]
    for action in (
        "account_add",
        "sign_in",
        "export",
        "replies_upload",
        "ack_upload",
        "purge",
        "sign_out",
        "sign_in_failed",
    ):
        assert action in actions, action
    exports = [row for row in rows if row.action == "export"]
    assert [row.envelopes for row in exports] == [3, 0, 3]
    assert all(row.actor == "alice" for row in exports)
    assert [r.envelopes for r in rows if r.action == "replies_upload"] == [1, 0]
    assert [r.detail for r in rows if r.action == "sign_in_failed"] == ["TOTP code already used"]
    everything_logged = " ".join(
        f"{row.actor} {row.action} {row.envelopes} {row.detail}" for row in rows
    )
    # Any two neighbouring words of the passphrase: one word alone may be an
    # everyday word the log uses ("purge", "status" are in the list).
    words = account.passphrase.split()
    for secret in (
        ADDRESS,
        REPORT_TEXT,
        REPLY_TEXT,
        account.code(signed_at),
        account.totp.secret,
        receipt,
        *(" ".join(pair) for pair in pairwise(words)),
    ):
        assert secret not in everything_logged, secret


def test_every_failure_says_the_same(web: WebApp, clock: Clock) -> None:
    client = web.client
    account = add_account(web)
    other = add_account(web, "bob")
    now = clock.now
    wrong_passphrase = sign_in(client, account, now, passphrase=other.passphrase)
    wrong_code = sign_in(client, account, now, code=other.code(now))
    old_code = sign_in(client, account, now, code=account.code(now - timedelta(minutes=5)))
    unknown = sign_in(client, account, now, name="mallory")
    empty = sign_in(client, account, now, code="")
    cli(web, "staff", "disable", "bob")
    disabled = sign_in(client, other, now)
    responses = [wrong_passphrase, wrong_code, old_code, unknown, empty, disabled]
    for response in responses:
        assert response.status_code == 400
        page = response.get_data(as_text=True)
        assert FAILED in page
        assert 'name="passphrase"' in page and other.passphrase not in page
    details = [r.detail for r in audit_rows(web) if r.action == "sign_in_failed"]
    assert details == [
        "wrong passphrase",
        "wrong TOTP code",
        "wrong TOTP code",
        "unknown name",
        "account disabled",
    ]
    assert [r.actor for r in audit_rows(web) if r.action == "sign_in_failed"][3] == "unknown"
    # The codes of the step before and after are accepted (clock drift).
    assert (
        sign_in(client, account, now, code=account.code(now - timedelta(seconds=30))).status_code
        == 303
    )


def test_code_window_and_single_use(web: WebApp, clock: Clock) -> None:
    account = add_account(web)
    client = web.client
    # The next step's code is accepted; then the current one (an earlier step) is not.
    assert (
        sign_in(
            client, account, clock.now, code=account.code(clock.now + timedelta(seconds=30))
        ).status_code
        == 303
    )
    assert sign_in(client, account, clock.now).status_code == 400
    clock.advance(seconds=60)
    assert sign_in(client, account, clock.now).status_code == 303
    assert sign_in(client, account, clock.now).status_code == 400


def test_idle_session_expires(web: WebApp, clock: Clock) -> None:
    account = add_account(web)
    client = web.client
    assert sign_in(client, account, clock.now).status_code == 303
    clock.advance(minutes=29)
    assert "Signed in as alice." in client.get("/staff").get_data(as_text=True)
    clock.advance(minutes=29)  # activity moved the expiry on
    assert "Signed in as alice." in client.get("/staff").get_data(as_text=True)
    clock.advance(minutes=31)
    assert is_sign_in_page(client.get("/staff"))
    assert client.post("/staff/download", data={"which": "new"}).status_code == 303
    with web.app.app_context():
        assert db.session.scalar(select(StaffSession)) is None


def test_disable_and_reset_end_sessions(web: WebApp, clock: Clock) -> None:
    account = add_account(web)
    client = web.client
    assert sign_in(client, account, clock.now).status_code == 303
    output = cli(web, "staff", "reset-2fa", "alice")
    [new_uri] = [line for line in output.splitlines() if line.startswith("otpauth://")]
    assert new_uri != account.uri
    assert is_sign_in_page(client.get("/staff"))  # the session ended
    clock.advance(seconds=60)
    assert sign_in(client, account, clock.now).status_code == 400  # the old secret
    renewed = Account("alice", account.passphrase, new_uri)
    assert sign_in(client, renewed, clock.now).status_code == 303
    cli(web, "staff", "disable", "alice")
    assert is_sign_in_page(client.get("/staff"))
    clock.advance(seconds=60)
    assert sign_in(client, renewed, clock.now).status_code == 400
    actions = [r.action for r in audit_rows(web)]
    assert {"account_add", "account_reset_2fa", "account_disable"} <= set(actions)


# --- CLI -------------------------------------------------------------------------


def test_cli_accounts(web: WebApp, tmp_path: Path) -> None:
    output = cli(web, "staff", "add", "Alice")
    assert "otpauth://totp/intake:alice?secret=" in output
    assert "▀" in output or "█" in output  # the QR code as text
    png = tmp_path / "bob.png"
    cli(web, "staff", "add", "bob", "--qr-png", str(png))
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert png.stat().st_mode & 0o077 == 0

    runner = web.app.test_cli_runner()
    duplicate = runner.invoke(args=["staff", "add", "alice"])
    assert duplicate.exit_code != 0 and "exists already" in duplicate.output
    bad = runner.invoke(args=["staff", "add", "al ice"])
    assert bad.exit_code != 0
    assert runner.invoke(args=["staff", "disable", "nobody"]).exit_code != 0

    cli(web, "staff", "disable", "bob")
    listed = cli(web, "staff", "list")
    lines = listed.splitlines()
    assert lines[0].startswith("alice\t") and lines[0].endswith("\tactive")
    assert lines[1].startswith("bob\t") and lines[1].endswith("\tdisabled")
    with web.app.app_context():
        users = list(db.session.scalars(select(StaffUser)))
        for user in users:
            assert user.totp_secret not in listed
            assert user.passphrase_hash.startswith("$argon2id$")
            assert user.passphrase_hash not in listed


def test_wordlist_and_passphrase_strength() -> None:
    words = wordlist()
    assert len(set(words)) == len(words) >= 7000
    assert all(re.fullmatch(r"[a-z-]+", word) for word in words)
    phrase = generate_passphrase()
    parts = phrase.split(" ")
    assert len(parts) == PASSPHRASE_WORDS == 7
    assert all(part in set(words) for part in parts)
    assert PASSPHRASE_WORDS * math.log2(len(set(words))) >= 90
    assert len({generate_passphrase() for _ in range(50)}) == 50
    shipped = Path(staff_module.__file__).parent / "data" / "wordlist.txt"
    readme = (shipped.parent / "README.md").read_text(encoding="utf-8")
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() in readme
    assert "CC BY 3.0" in readme


# --- rate limits -------------------------------------------------------------------


def test_failures_limited_per_account(tmp_path: Path, clock: Clock) -> None:
    web = staff_app(
        tmp_path,
        staff={
            "signin_failure_rate_per_account": "3 per hour",
            "signin_failure_rate_per_client": "50 per hour",
        },
    )
    account = add_account(web)
    clients = [web.app.test_client() for _ in range(4)]
    for index, client in enumerate(clients):
        client.environ_base["REMOTE_ADDR"] = f"198.51.100.{index + 1}"
    for client in clients[:3]:
        assert sign_in(client, account, clock.now, passphrase="wrong words").status_code == 400
    # A fourth client, with the right passphrase and code: the account is locked for now.
    assert sign_in(clients[3], account, clock.now).status_code == 429
    # Another account is not affected; an unknown name is limited the same way.
    other = add_account(web, "bob")
    assert sign_in(clients[3], other, clock.now).status_code == 303


def test_failures_limited_per_client_and_success_is_free(tmp_path: Path, clock: Clock) -> None:
    web = staff_app(
        tmp_path,
        staff={
            "signin_failure_rate_per_account": "50 per hour",
            "signin_failure_rate_per_client": "3 per hour",
        },
    )
    account = add_account(web)
    client = web.client
    # Successful sign-ins cost nothing.
    for _ in range(5):
        assert sign_in(client, account, clock.now).status_code == 303
        clock.advance(seconds=30)
    for name in ("x1", "x2", "x3"):
        assert sign_in(client, account, clock.now, name=name).status_code == 400
    assert sign_in(client, account, clock.now).status_code == 429
    other = web.app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.9"
    assert sign_in(other, account, clock.now).status_code == 303


# --- pages -------------------------------------------------------------------------


def test_staff_pages_have_no_script_and_the_headers(web: WebApp, clock: Clock) -> None:
    client = web.client
    account = add_account(web)
    pages = [client.get("/staff"), client.get("/staff/sign-in")]
    pages.append(sign_in(client, account, clock.now, passphrase="nope"))
    assert sign_in(client, account, clock.now).status_code == 303
    pages.append(client.get("/staff"))
    pages.append(
        client.post(
            "/staff/ack",
            data={"upload": (io.BytesIO(b"[]"), "ack.json")},
            content_type="multipart/form-data",
        )
    )
    for response in pages:
        page = response.get_data(as_text=True)
        assert "<script" not in page.lower()
        assert set(response.headers.keys()) >= SECURITY_HEADERS
        assert response.headers["Cache-Control"] == "no-store"
        assert ADDRESS not in page


def test_sign_in_needs_csrf(tmp_path: Path, clock: Clock) -> None:
    web = make_app(tmp_path, csrf=True)
    account = add_account(web)
    response = sign_in(web.client, account, clock.now)
    assert response.status_code == 400
    assert FAILED in response.get_data(as_text=True)
    page = web.client.get("/staff/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None
    signed = sign_in(web.client, account, clock.now, csrf_token=token.group(1))
    assert signed.status_code == 303
    cookie = signed.headers["Set-Cookie"]
    assert "SameSite=Strict" in cookie and "HttpOnly" in cookie


def test_expiry_warning_in_the_list(web: WebApp, clock: Clock) -> None:
    clock.now = datetime.now(UTC)
    submit(web.client, danger_now="no", danger_kinds=[])
    [report_id] = report_ids(web)
    with web.app.app_context():
        report = db.session.get(Report, report_id)
        assert report is not None
        report.received_hour = datetime.now(UTC) - timedelta(days=86)
        db.session.commit()
    account = add_account(web)
    assert sign_in(web.client, account, clock.now).status_code == 303
    page = web.client.get("/staff").get_data(as_text=True)
    assert re.search(r"Deleted in [34] days unless downloaded", page), page


# --- what the database learns of staff activity; absolute lifetime; sign-out ---------


def _staff_session_datetimes(web: WebApp) -> list[datetime]:
    with web.app.app_context():
        rows = list(db.session.scalars(select(StaffSession)))
        return [
            getattr(row, column.key)
            for row in rows
            for column in StaffSession.__table__.columns
            if isinstance(getattr(row, column.key), datetime)
        ]


def test_staff_activity_is_stored_by_the_hour_only(web: WebApp, clock: Clock) -> None:
    clock.now = START.replace(minute=5, second=7, microsecond=123456)
    account = add_account(web)
    assert sign_in(web.client, account, clock.now).status_code == 303
    for _ in range(3):
        clock.advance(minutes=7, seconds=13, microseconds=4321)
        assert "Signed in as alice." in web.client.get("/staff").get_data(as_text=True)
    values = _staff_session_datetimes(web)
    assert values
    for value in values:
        assert (value.minute, value.second, value.microsecond) == (0, 0, 0), value


def test_staff_session_ends_after_twelve_hours_however_active(web: WebApp, clock: Clock) -> None:
    account = add_account(web)
    assert sign_in(web.client, account, clock.now).status_code == 303
    signed_in_at = clock.now
    while clock.now < signed_in_at + timedelta(hours=11, minutes=40):  # to 11:40, active
        clock.advance(minutes=20)
        assert "Signed in as alice." in web.client.get("/staff").get_data(as_text=True)
    clock.now = signed_in_at + timedelta(hours=12, seconds=1)
    assert is_sign_in_page(web.client.get("/staff"))
    with web.app.app_context():
        assert db.session.scalar(select(StaffSession)) is None
    # The row's hour bound never outlives the absolute end (rounded up to the hour).
    clock.advance(minutes=5)
    assert sign_in(web.client, account, clock.now).status_code == 303
    for _ in range(40):
        clock.advance(minutes=20)
        web.client.get("/staff")
    assert is_sign_in_page(web.client.get("/staff"))


def test_staff_sign_out_needs_the_csrf_token(tmp_path: Path, clock: Clock) -> None:
    web = make_app(tmp_path, csrf=True)
    account = add_account(web)
    page = web.client.get("/staff/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None
    assert sign_in(web.client, account, clock.now, csrf_token=token.group(1)).status_code == 303
    assert sign_out(web.client).status_code == 400
    listing = web.client.get("/staff").get_data(as_text=True)
    assert "Signed in as alice." in listing  # still signed in
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', listing)
    assert token is not None
    out = web.client.post("/staff/sign-out", data={"csrf_token": token.group(1)})
    assert out.status_code == 303
    assert is_sign_in_page(web.client.get("/staff"))
    with web.app.app_context():
        assert db.session.scalar(select(StaffSession)) is None


def test_sweep_removes_expired_staff_sessions(web: WebApp, clock: Clock) -> None:
    account = add_account(web)
    clock.now = datetime.now(UTC)
    other = web.app.test_client()
    assert sign_in(other, add_account(web, "bob"), clock.now).status_code == 303
    clock.now = datetime.now(UTC) - timedelta(hours=3)  # a session long expired
    assert sign_in(web.client, account, clock.now).status_code == 303
    clock.now = datetime.now(UTC)
    output = cli(web, "sweep")
    assert "removed 0 expired reporter session(s) and 1 expired staff session(s)" in output
    with web.app.app_context():
        assert len(list(db.session.scalars(select(StaffSession)))) == 1
    assert "Signed in as bob." in other.get("/staff").get_data(as_text=True)
