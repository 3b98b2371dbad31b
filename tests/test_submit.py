"""The spine, end to end through the web app: form → sealed envelope → one row.

Every test here opens what the server stored with the private key, as staff
would, and checks it against what the reporter typed.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from intake import schema
from intake.app import StartupError, create_app
from intake.crypto.envelope import open_envelope
from intake.crypto.keys import DEMO_MARKER, generate_identity, load_identities
from intake.i18n import translator
from intake.models import AuditEvent, Report, ReportStatus, db
from intake.schema import parse_report

from conftest import write_toml
from webapp import make_app, open_stored, receipt_of, valid_form

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_submission_is_sealed_to_the_recipients_and_recorded(web: Any) -> None:
    photo = b"\x89PNG fake photo bytes " * 1000
    letter = b"%PDF-1.4 handwritten letter scan"
    data = valid_form(what_happened="He was beaten by guards on 3 May.", acts=["beaten"])
    data["attachments"] = [
        (io.BytesIO(photo), "Фото письма.jpg"),
        (io.BytesIO(letter), "../../letter.pdf"),
    ]
    response = web.client.post("/", data=data, content_type="multipart/form-data")
    assert response.status_code == 200
    assert len(receipt_of(response)) == 24  # the receipt page: 5 groups of 4 digits

    with web.app.app_context():
        rows = list(db.session.scalars(select(Report)))
    assert len(rows) == 1
    row = rows[0]
    assert row.status == ReportStatus.NEW
    assert row.received_hour.minute == 0 and row.received_hour.second == 0
    assert row.danger_now is None  # not recorded unless the operator enables it
    envelope_path = web.data_dir / "envelopes" / f"{row.id}.age"
    assert row.padded_size == envelope_path.stat().st_size

    files: dict[str, io.BytesIO] = {}
    opened = open_stored(web, row.id, files)
    report = parse_report(opened.report)
    assert report.to_dict()["incident"]["what_happened"] == "He was beaten by guards on 3 May."
    assert [a["huridocs"] for a in report.to_dict()["incident"]["acts"]] == ["020101"]
    attachments = report.to_dict()["attachments"]
    assert [a["name"] for a in attachments] == ["Фото письма.jpg", "../../letter.pdf"]
    assert [a["member"] for a in attachments] == [
        "attachments/01-Фото_письма.jpg",
        "attachments/02-letter.pdf",
    ]
    assert files["attachments/01-Фото_письма.jpg"].getvalue() == photo
    assert files["attachments/02-letter.pdf"].getvalue() == letter
    assert attachments[0]["sha256"] == hashlib.sha256(photo).hexdigest()
    assert attachments[1]["size"] == len(letter)


def test_receipt_page_has_no_way_out_but_the_confirmation(web: Any) -> None:
    response = web.client.post("/", data=valid_form(), content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    receipt = receipt_of(response)
    assert "cannot come back" in page  # it cannot be recovered
    assert response.headers["Cache-Control"] == "no-store"
    assert "href=" not in page.split("<main", 1)[1]  # no link away from the code
    assert "?lang=" not in page  # switching language would lose it
    assert receipt not in response.headers.get("Set-Cookie", "")
    # Leaving needs the box ticked; then the page says what happens next.
    unconfirmed = web.client.post("/submitted", data={"written_down": ""})
    assert unconfirmed.status_code == 400
    said = unconfirmed.get_data(as_text=True)
    assert "was received" in said and "cannot be shown again" in said
    assert "back" not in said.lower()  # see the test below
    confirmed = web.client.post("/submitted", data={"written_down": "y"})
    assert confirmed.status_code == 303
    page = web.client.get(confirmed.headers["Location"]).get_data(as_text=True)
    assert "shared" in page.lower()  # the warning about copies on a shared phone


@pytest.mark.parametrize(
    ("lang", "back"), [("en", "back"), ("ru", "назад"), ("ky", "артка"), ("uz", "orqaga")]
)
def test_leaving_the_receipt_unconfirmed_never_sends_the_reporter_back(
    web: Any, lang: str, back: str
) -> None:
    # The receipt page answered a POST and is not stored: the browser's Back
    # offers to send the form again, which makes a second report with another
    # code. So this page says the code is gone and the report arrived, and no
    # word of going back.
    web.client.set_cookie("lang", lang)
    response = web.client.post("/submitted", data={"written_down": ""})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    main = html.unescape(page.split("<main", 1)[1].split("</main>", 1)[0])
    assert back not in main.lower()
    for msgid in (
        "Your report was received and is safe. You do not need to send it again.",
        "The code was shown only once. It cannot be shown again, not even by us.",
    ):
        assert translator(lang).gettext(msgid) in main
    assert "submitted" in main  # the way on is the page that says what happens next


def test_validation_error_keeps_typed_text_and_names_each_field(web: Any) -> None:
    data = valid_form(what_happened="Typed with care: Айгүл was threatened.")
    for required in ("person_name", "facility_type", "danger_now"):
        data.pop(required)
    data["attachments"] = [(io.BytesIO(b"scan"), "scan.pdf")]
    response = web.client.post("/", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Typed with care: Айгүл was threatened." in page
    for field_id in ("person_name", "facility_type", "danger_now"):
        assert f'href="#{field_id}' in page, field_id
    assert "choose" in page.lower() and "again" in page.lower()  # files must be chosen again
    assert (
        not list((web.data_dir / "envelopes").glob("*"))
        if (web.data_dir / "envelopes").exists()
        else True
    )
    with web.app.app_context():
        assert db.session.scalar(select(Report.id)) is None


def test_too_many_files_is_said_in_the_readers_language(tmp_path: Path) -> None:
    web = make_app(tmp_path, settings={"limits": {"max_files": 2}})
    data = valid_form(what_happened="Текст, который должен остаться.")
    data["attachments"] = [(io.BytesIO(b"scan"), f"scan-{n}.pdf") for n in range(3)]
    response = web.client.post(
        "/", data=data, content_type="multipart/form-data", headers={"Accept-Language": "ru"}
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Слишком много файлов. Максимум: 2." in page
    assert "Текст, который должен остаться." in page
    assert 'href="#attachments' in page
    with web.app.app_context():
        assert db.session.scalar(select(Report.id)) is None


def _maxlength(page: str, name: str) -> str | None:
    """The maxlength attribute of the input or textarea called ``name``, if any."""
    tag = re.search(rf'<(?:input|textarea)\b[^>]*\bname="{name}"[^>]*>', page)
    assert tag is not None, name
    found = re.search(r'\bmaxlength="(\d+)"', tag.group())
    return found.group(1) if found else None


def test_max_field_chars_is_the_forms_limit_with_a_form_error(tmp_path: Path) -> None:
    """[limits] max_field_chars = 50: a longer answer gets the form back, not a 413."""
    web = make_app(tmp_path, settings={"limits": {"max_field_chars": 50}})
    page = web.client.get("/").get_data(as_text=True)
    assert _maxlength(page, "what_happened") == "50"
    assert _maxlength(page, "person_name") == "50"  # its own limit (200) is higher

    too_long = "Он😀" * 20  # 60 characters, 160 bytes in UTF-8
    assert len(too_long) == 60
    data = valid_form(what_happened=too_long, facility_name="SIZO-1 Bishkek, cell 12")
    response = web.client.post(
        "/", data=data, content_type="multipart/form-data", headers={"Accept-Language": "ru"}
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    said = translator("ru").gettext("This answer is too long (at most %(max)d characters).")
    message = html.escape(said % {"max": 50}, quote=False)
    assert f'<a href="#what_happened">{message}</a>' in page  # the summary links to the field
    assert message in page.split('id="what_happened-error"')[1]  # and it is said at the field
    assert too_long in page  # what was typed comes back...
    assert "Aigul Tashieva" in page and "SIZO-1 Bishkek, cell 12" in page  # ...all of it
    with web.app.app_context():
        assert db.session.scalar(select(Report.id)) is None

    at_limit = "Он😀" * 16 + "Он"
    assert len(at_limit) == 50
    # With a file larger than the 64 KiB chunks Werkzeug reads: the low limit
    # on text does not shrink the request's in-memory cap and refuse the upload.
    data = valid_form(what_happened=at_limit)
    data["attachments"] = [(io.BytesIO(b"scan " * 40_000), "scan.pdf")]
    accepted = web.client.post("/", data=data, content_type="multipart/form-data")
    assert accepted.status_code == 200 and receipt_of(accepted)
    with web.app.app_context():
        report_id = db.session.scalar(select(Report.id))
    assert report_id is not None
    sinks: dict[str, io.BytesIO] = {}
    opened = open_stored(web, report_id, sinks)
    assert opened.report["incident"]["what_happened"] == at_limit
    assert [sink.getvalue() for sink in sinks.values()] == [b"scan " * 40_000]


def test_max_field_chars_limits_the_follow_up_text(tmp_path: Path) -> None:
    web = make_app(tmp_path, settings={"limits": {"max_field_chars": 50}})
    submitted = web.client.post("/", data=valid_form(), content_type="multipart/form-data")
    receipt = receipt_of(submitted)
    signed_in = web.client.post("/case/sign-in", data={"receipt": receipt})
    assert signed_in.status_code == 200
    assert _maxlength(signed_in.get_data(as_text=True), "text") == "50"

    response = web.client.post(
        "/case/add",
        data={"text": "x" * 51, "danger_now": "no"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "This answer is too long (at most 50 characters)." in page
    assert "x" * 51 in page
    added = web.client.post(
        "/case/add",
        data={"text": "x" * 50, "danger_now": "no"},
        content_type="multipart/form-data",
    )
    assert added.status_code == 303


def test_fields_keep_their_own_limits_under_the_default(web: Any) -> None:
    page = web.client.get("/").get_data(as_text=True)
    assert _maxlength(page, "what_happened") == str(schema.MAX_TEXT)
    assert _maxlength(page, "charges") == str(schema.MAX_LINE)
    assert _maxlength(page, "person_name") == str(schema.MAX_SHORT)


def test_a_form_the_server_cannot_parse_says_so_and_stores_nothing(web: Any) -> None:
    # A file name in a legacy encoding (Latin-1 "résumé.pdf") is not UTF-8: the
    # whole multipart body is unreadable, so the usual "these answers are
    # missing" page would be wrong. The page says what happened instead.
    fields = b"".join(
        b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (name.encode(), value.encode())
        for name, values in valid_form().items()
        for value in (values if isinstance(values, list) else [values])
    )
    upload = (
        b'--B\r\nContent-Disposition: form-data; name="attachments"; filename="r\xe9sum\xe9.pdf"'
        b"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\r\n--B--\r\n"
    )
    response = web.client.post(
        "/",
        data=fields + upload,
        content_type="multipart/form-data; boundary=B",
        headers={"Accept-Language": "ky"},
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Сайт браузериңиз жөнөткөндү окуй алган жок." in page
    assert "файлдын атын өзгөртүп" in page
    with web.app.app_context():
        assert db.session.scalar(select(Report.id)) is None
    # The same form with a UTF-8 file name goes through.
    response = web.client.post(
        "/",
        data=fields + upload.replace("résumé".encode("latin-1"), "résumé".encode()),
        content_type="multipart/form-data; boundary=B",
    )
    assert response.status_code == 200 and receipt_of(response)


def test_expired_form_token_keeps_what_was_typed(tmp_path: Path) -> None:
    web = make_app(tmp_path, csrf=True)
    data = valid_form(what_happened="Text that must survive a stale token")
    data["csrf_token"] = "stale"
    response = web.client.post("/", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    assert "Text that must survive a stale token" in response.get_data(as_text=True)
    # With a fresh token from the page the same submission goes through.
    page = web.client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None
    data["csrf_token"] = token.group(1)
    response = web.client.post("/", data=data, content_type="multipart/form-data")
    assert response.status_code == 200 and receipt_of(response)


def test_honeypot_answers_like_success_and_stores_nothing(web: Any) -> None:
    data = valid_form()
    data["website"] = "http://spam.example"
    response = web.client.post("/", data=data, content_type="multipart/form-data")
    assert response.status_code == 200 and receipt_of(response)  # looks like success
    with web.app.app_context():
        assert db.session.scalar(select(Report.id)) is None
    assert not any((web.data_dir / "envelopes").glob("*.age"))


@pytest.mark.skipif(shutil.which("age") is None, reason="the age CLI is not installed")
def test_envelope_opens_with_the_age_cli_and_tar(web: Any, tmp_path: Path) -> None:
    data = valid_form(what_happened="Opened with standard tools")
    data["attachments"] = [(io.BytesIO(b"note body"), "note.txt")]
    web.client.post("/", data=data, content_type="multipart/form-data")
    [envelope] = (web.data_dir / "envelopes").glob("*.age")
    out = tmp_path / "out"
    out.mkdir()
    plaintext = subprocess.run(
        ["age", "-d", "-i", str(web.identity_file), str(envelope)],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=plaintext, check=True)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["incident"]["what_happened"] == "Opened with standard tools"
    assert (out / "attachments" / "01-note.txt").read_bytes() == b"note body"
    assert (out / "padding").read_bytes().strip(b"\0") == b""


def test_a_failure_while_sealing_leaves_no_row_and_no_file(
    web: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import intake.submission

    real_seal = intake.submission.seal_envelope

    def failing_seal(report_json: bytes, uploads: Any, recipients: Any, out: Any) -> Any:
        out.write(b"partial ciphertext")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(intake.submission, "seal_envelope", failing_seal)
    response = web.client.post("/", data=valid_form(), content_type="multipart/form-data")
    assert response.status_code == 503
    assert "nothing was kept" in response.get_data(as_text=True).lower()
    assert list((web.data_dir / "envelopes").iterdir()) == []
    with web.app.app_context():
        assert db.session.scalar(select(Report.id)) is None

    monkeypatch.setattr(intake.submission, "seal_envelope", real_seal)
    response = web.client.post("/", data=valid_form(), content_type="multipart/form-data")
    assert response.status_code == 200 and receipt_of(response)


def test_a_database_failure_removes_the_envelope_again(web: Any) -> None:
    engine = create_engine(web.database_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE reports RENAME TO reports_gone"))
    engine.dispose()
    response = web.client.post("/", data=valid_form(), content_type="multipart/form-data")
    assert response.status_code == 503
    assert list((web.data_dir / "envelopes").iterdir()) == []


def test_security_headers_on_every_page(web: Any) -> None:
    for path in ("/", "/submitted", "/metadata", "/no-such-page"):
        response = web.client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"
        assert "Server" not in response.headers


def test_error_pages_have_the_site_look_and_no_internals(web: Any) -> None:
    response = web.client.get("/no-such-page")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "Page not found" in page and "Traceback" not in page
    assert web.client.delete("/").status_code == 405


def test_metadata_lists_fingerprints_and_robots_disallows(web: Any) -> None:
    meta = web.client.get("/metadata").get_json()
    assert meta["recipient_fingerprints"] == web.fingerprints
    assert set(meta["languages"]) == {"ky", "ru", "uz", "en"}
    assert meta["uploads_allowed"] is True
    robots = web.client.get("/robots.txt").get_data(as_text=True)
    assert "Disallow: /" in robots


def test_demo_key_shows_a_banner(tmp_path: Path) -> None:
    web = make_app(tmp_path, demo=True)
    page = web.client.get("/").get_data(as_text=True)
    assert "demo key" in page.lower()
    assert "do not submit real reports" in page.lower()
    plain = make_app(tmp_path / "real")
    assert "demo key" not in plain.client.get("/").get_data(as_text=True).lower()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "holds no recipient"),
        ("# only a comment\n", "holds no recipient"),
        ("age1notavalidkey\n", ":1: malformed age recipient"),
        ("ssh-ed25519 AAAA\n", ":1: not an age X25519 recipient"),
        (None, "file not found"),
    ],
)
def test_server_refuses_to_start_without_good_recipients(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    recipients = tmp_path / "recipients.txt"
    if content is not None:
        recipients.write_text(content)
    config = write_toml(tmp_path / "config.toml", _config(tmp_path, recipients))
    with pytest.raises(StartupError, match=re.escape(expected)) as error:
        create_app(str(config))
    assert str(recipients) in str(error.value)


def test_server_refuses_a_private_key_and_names_the_line(tmp_path: Path) -> None:
    identity, recipient = generate_identity()
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"{recipient}\n{identity}")
    config = write_toml(tmp_path / "config.toml", _config(tmp_path, recipients))
    with pytest.raises(StartupError) as error:
        create_app(str(config))
    message = str(error.value)
    assert f"{recipients}:4" in message and "private key" in message
    assert "AGE-SECRET-KEY-1" not in message.upper().replace("AGE-SECRET-KEY-…", "")


def test_flask_cli_refuses_to_start_with_a_one_line_message(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "config.toml", {"keys": {"recipients_fil": "x"}})
    result = subprocess.run(
        [str(Path(".venv/bin/flask").absolute()), "--app", "intake", "routes"],
        env={"INTAKE_CONFIG": str(config), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    # The file, the line ([keys] is line 1) and the key, on one line.
    assert result.stderr.strip().splitlines() == [
        f"intake cannot start: {config}:2: [keys] recipients_fil: unknown key "
        "(known: recipients_file)"
    ]


def test_export_writes_a_bundle_and_marks_reports_exported(web: Any, tmp_path: Path) -> None:
    for text_value in ("first report", "second report"):
        web.client.post(
            "/", data=valid_form(what_happened=text_value), content_type="multipart/form-data"
        )
    runner = web.app.test_cli_runner()
    bundle = tmp_path / "bundle.tar"
    result = runner.invoke(args=["export", "--out", str(bundle)])
    assert result.exit_code == 0, result.output
    assert "wrote 2 envelope(s)" in result.output

    identities = load_identities(web.identity_file.read_bytes(), "id")
    with tarfile.open(bundle) as archive:
        names = archive.getnames()
        assert names[0] == "manifest.json"
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        texts = set()
        for entry in manifest["envelopes"]:
            data = archive.extractfile(f"envelopes/{entry['id']}.age").read()  # type: ignore[union-attr]
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            assert len(data) == entry["size"]
            opened = open_envelope(io.BytesIO(data), identities)
            texts.add(opened.report["incident"]["what_happened"])
    assert texts == {"first report", "second report"}
    with web.app.app_context():
        statuses = set(db.session.scalars(select(Report.status)))
    assert statuses == {ReportStatus.EXPORTED}

    with web.app.app_context():
        events = [(e.actor, e.action, e.envelopes) for e in db.session.scalars(select(AuditEvent))]
    assert events == [("cli", "export", 2)]  # the operator's command is audited too

    again = runner.invoke(args=["export", "--out", str(tmp_path / "again.tar")])
    assert "wrote 0 envelope(s)" in again.output
    everything = runner.invoke(args=["export", "--all", "--out", str(tmp_path / "all.tar")])
    assert "wrote 2 envelope(s)" in everything.output


def _config(tmp_path: Path, recipients: Path) -> dict[str, dict[str, Any]]:
    return {
        "keys": {"recipients_file": str(recipients)},
        "storage": {"data_dir": str(tmp_path / "data")},
        "server": {"secret_key_file": str(tmp_path / "secret")},
    }


@pytest.fixture
def web(tmp_path: Path, database_url: str) -> Any:
    return make_app(tmp_path, database_url=database_url)


def test_cookies_over_https_are_host_bound_secure_and_strict(tmp_path: Path) -> None:
    web = make_app(tmp_path, csrf=True, settings={"server": {"https": True}})
    response = web.client.get("/", base_url="https://localhost")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-session=")
    for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in cookie, attribute
    assert "Domain=" not in cookie  # __Host- cookies must not name a domain
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_cookies_over_plain_http_are_still_httponly_and_strict(web: Any) -> None:
    web.app.config["WTF_CSRF_ENABLED"] = True
    cookie = web.client.get("/").headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Strict-Transport-Security" not in web.client.get("/").headers


def test_the_development_server_logs_no_client_address(tmp_path: Path) -> None:
    """`make run` serves with Werkzeug, whose request lines start with the address."""
    import logging
    import threading
    import urllib.request

    from werkzeug.serving import make_server

    web = make_app(tmp_path)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    werkzeug_log = logging.getLogger("werkzeug")
    handler = Keep(level=logging.DEBUG)
    werkzeug_log.addHandler(handler)
    previous_level = werkzeug_log.level
    werkzeug_log.setLevel(logging.DEBUG)
    server = make_server("127.0.0.1", 0, web.app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def get(path: str) -> None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10)
        except urllib.error.HTTPError as error:
            assert error.code == 404

    try:
        get("/")
        get("/no-such-page?secret-query=1")
        with_filter = [r.getMessage() for r in records]
        # Without the app's filter the same request is logged with the address,
        # so the check above could fail.
        app_filters = list(werkzeug_log.filters)
        for app_filter in app_filters:
            werkzeug_log.removeFilter(app_filter)
        get("/")
        for app_filter in app_filters:
            werkzeug_log.addFilter(app_filter)
    finally:
        server.shutdown()
        thread.join()
        werkzeug_log.removeHandler(handler)
        werkzeug_log.setLevel(previous_level)
    assert not any("127.0.0.1" in m or "secret-query" in m for m in with_filter), with_filter
    assert any("127.0.0.1" in r.getMessage() for r in records[len(with_filter) :])


def test_the_demo_key_cannot_stay_listed_without_its_banner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    demo_identity, demo_recipient = generate_identity()
    (tmp_path / "instance").mkdir()
    (tmp_path / "instance" / "demo-identity.txt").write_text(demo_identity)
    _staff_identity, staff_recipient = generate_identity()
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"# staff keys\n{staff_recipient}\n{demo_recipient}\n")
    config = write_toml(tmp_path / "config.toml", _config(tmp_path, recipients))
    with pytest.raises(StartupError, match="lists the demo key"):
        create_app(str(config))
    # With the marker first, it is a demo site again, and says so on every page.
    recipients.write_text(f"{DEMO_MARKER}\n{demo_recipient}\n")
    app = create_app(str(config), WTF_CSRF_ENABLED=False)
    assert "demo key" in app.test_client().get("/").get_data(as_text=True).lower()
    # Without the demo line, real keys only: no banner, no refusal.
    recipients.write_text(f"{staff_recipient}\n")
    app = create_app(str(config), WTF_CSRF_ENABLED=False)
    assert "demo key" not in app.test_client().get("/").get_data(as_text=True).lower()
