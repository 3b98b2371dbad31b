"""No plaintext on disk, ever: a marked report leaves no readable trace.

A report whose every text field and attachment carries a marker string (one
attachment over 10 MiB, so Werkzeug would spool it to disk) goes through the
real app. Then every file the run wrote (data dir, database, spool files,
temp dir) and every log record is searched for the marker in clear and in
common encodings. Spool files are normally anonymous (``O_TMPFILE``), so the
test has them created with names it can scan afterwards.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from sqlalchemy import create_engine, inspect, select, text

import intake.crypto.spool
from intake.models import Report, db
from intake.schema import SECTIONS

from webapp import make_app, open_stored, receipt_of, valid_form

MARKER = "Zx7-MARKER-Ңүө-Qv9"


def _encodings(marker: str) -> list[bytes]:
    raw = marker.encode("utf-8")
    forms = [raw, marker.encode("utf-16-le"), marker.encode("utf-16-be")]
    # base64 of a string containing the marker, at each of the three alignments
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        forms.append(encoded[4:-4])  # the part that depends only on the marker
    forms.append(raw.hex().encode("ascii"))
    return forms


def _files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file())


def _find(needles: list[bytes], path: Path) -> bytes | None:
    data = path.read_bytes()
    return next((needle for needle in needles if needle in data), None)


@pytest.fixture
def named_spools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """Make spool files named (and kept) so the scan can read what they held."""
    created: list[Path] = []
    spool_dir = tmp_path / "spools-kept"
    spool_dir.mkdir()

    def named_temporary_file(dir: str | None = None, **_: Any) -> IO[bytes]:
        fd, name = tempfile.mkstemp(dir=spool_dir)
        created.append(Path(name))
        return os.fdopen(fd, "w+b")

    monkeypatch.setattr(intake.crypto.spool.tempfile, "TemporaryFile", named_temporary_file)
    return created


def test_marked_report_leaves_no_plaintext_anywhere(
    tmp_path: Path,
    database_url: str,
    named_spools: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))
    monkeypatch.setenv("TMPDIR", str(temp_dir))
    caplog.set_level(logging.DEBUG)

    web = make_app(tmp_path / "site", database_url=database_url)
    data = valid_form()
    text_fields = [
        spec.form_name for specs in SECTIONS.values() for spec in specs if spec.kind == "text"
    ]
    for name in text_fields:
        data[name] = f"{name}: {MARKER}"
    data.pop("no_contact")
    data["contact_channel"] = f"Signal {MARKER}"
    big = (MARKER.encode() + b" scanned page ") * (11 * 1024 * 1024 // 30)
    assert len(big) > 10 * 1024 * 1024
    data["attachments"] = [
        (io.BytesIO(big), f"big-{MARKER}.pdf"),
        (io.BytesIO(f"small {MARKER}".encode()), f"{MARKER}.txt"),
    ]
    response = web.client.post("/", data=data, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    receipt = receipt_of(response)

    # The report really was stored, with the marker inside the ciphertext.
    with web.app.app_context():
        report_id = db.session.scalar(select(Report.id))
    assert report_id is not None
    sinks: dict[str, io.BytesIO] = {}
    opened = open_stored(web, report_id, sinks)
    assert MARKER in opened.report["incident"]["what_happened"]
    assert any(sink.getvalue() == big for sink in sinks.values())
    assert named_spools, "the uploads should have gone through the encrypted spool"

    needles = _encodings(MARKER)
    scanned = 0
    for path in _files_under(tmp_path):
        if path.name in {"identity.txt"}:
            continue
        scanned += 1
        found = _find(needles, path)
        assert found is None, f"{path} holds the marker ({found!r})"
    assert scanned >= 4  # envelope, database or its files, spools, secret key, config

    # The database content itself (PostgreSQL keeps its files elsewhere).
    engine = create_engine(web.database_url)
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                dumped = repr(tuple(row)).encode("utf-8", "backslashreplace")
                assert not any(n in dumped for n in needles), table
    engine.dispose()

    for record in caplog.records:
        message = record.getMessage()
        assert MARKER not in message and report_id not in message, message
        assert receipt not in message and receipt.replace("-", "") not in message
