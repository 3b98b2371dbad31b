"""Models: what a row holds (and doesn't), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from flask import Flask
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.models import (
    Base,
    EnvelopeChunk,
    Report,
    ReportStatus,
    db,
    hour_now,
    new_report_id,
    to_hour,
)


def test_report_id_is_random_hex() -> None:
    ids = {new_report_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{20}", i) for i in ids)


def test_hour_now_is_utc_and_on_the_hour() -> None:
    h = hour_now()
    assert h.tzinfo is UTC
    assert (h.minute, h.second, h.microsecond) == (0, 0, 0)
    assert timedelta(0) <= datetime.now(UTC) - h < timedelta(hours=1)


def test_to_hour_converts_zones() -> None:
    cest = timezone(timedelta(hours=2))
    assert to_hour(datetime(2025, 3, 1, 1, 59, 59, 999, tzinfo=cest)) == datetime(
        2025, 2, 28, 23, tzinfo=UTC
    )
    assert to_hour(datetime(2025, 3, 1, 1, 30)) == datetime(2025, 3, 1, 1, tzinfo=UTC)


def test_only_metadata_columns() -> None:
    """The server may know an id, the hour, a padded size, a status, the flag."""
    assert set(Base.metadata.tables) == {
        "reports",
        "envelope_chunks",
        "followups",
        "replies",
        "reporter_sessions",
        # the staff side: accounts, sessions, audit log, hash chain, alerts
        "staff_users",
        "staff_sessions",
        "audit_events",
        "chain_entries",
        "chain_head",
        "alert_state",
    }
    assert set(Report.__table__.c.keys()) == {
        "id",
        "received_hour",
        "padded_size",
        "status",
        "danger_now",
        # derived from the receipt with Argon2id; never the receipt itself
        "lookup_key",
        "reply_recipient",
        "review_status",
    }
    assert set(EnvelopeChunk.__table__.c.keys()) == {"envelope_id", "seq", "data"}
    tables = Base.metadata.tables
    assert set(tables["followups"].c.keys()) == {
        "id",
        "case_id",
        "seq",
        "received_hour",
        "padded_size",
        "status",
    }
    # a reply is kept sealed; only staff's status change is in clear
    assert set(tables["replies"].c.keys()) == {
        "id",
        "case_id",
        "seq",
        "imported_hour",
        "sha256",
        "sealed",
        "status_change",
    }
    assert set(tables["reporter_sessions"].c.keys()) == {"token_hash", "case_id", "expires_at"}
    # the chain knows envelopes by ciphertext hash, kind, case and hour only
    assert set(tables["chain_entries"].c.keys()) == {
        "seq",
        "envelope_id",
        "kind",
        "case_id",
        "received_hour",
        "envelope_sha256",
        "chain_hash",
    }
    assert set(tables["audit_events"].c.keys()) == {
        "id",
        "at",
        "actor",
        "action",
        "envelopes",
        "detail",
    }


def test_flask_sqlalchemy_shares_the_metadata() -> None:
    assert db.metadata is Base.metadata


def test_report_round_trip(migrated_engine: Engine) -> None:
    arrived = datetime(2025, 6, 7, 8, 9, 10, 11, tzinfo=timezone(timedelta(hours=-5)))
    with Session(migrated_engine) as session:
        session.add(Report(id="aa" * 10, received_hour=arrived, padded_size=1 << 40))
        session.add(Report(id="bb" * 10, padded_size=512, danger_now=True))
        session.commit()
    with Session(migrated_engine) as session:
        a = session.get(Report, "aa" * 10)
        b = session.get(Report, "bb" * 10)
        assert a is not None and b is not None
        # Stored and read back as the hour only, in UTC, whatever was given.
        assert a.received_hour == datetime(2025, 6, 7, 13, tzinfo=UTC)
        assert a.received_hour.tzinfo is UTC
        assert a.padded_size == 1 << 40
        assert a.status is ReportStatus.NEW
        assert a.danger_now is None
        assert b.received_hour == hour_now() or b.received_hour == hour_now() - timedelta(hours=1)
        assert b.danger_now is True
        b.status = ReportStatus.EXPORTED
        session.commit()
    with migrated_engine.connect() as conn:
        stored = conn.execute(text("SELECT status FROM reports WHERE id = :i"), {"i": "bb" * 10})
        assert stored.scalar_one() == "exported"
        # Nothing finer than the hour reaches the database, whichever path wrote it.
        raw = conn.execute(text("SELECT received_hour FROM reports")).scalars().all()
        for value in raw:
            text_value = value if isinstance(value, str) else value.isoformat()
            assert re.search(r"[ T]\d\d:00:00(\+00:00|\.000000)?$", text_value), text_value


def test_report_default_id(migrated_engine: Engine) -> None:
    with Session(migrated_engine) as session:
        report = Report(padded_size=0)
        session.add(report)
        session.commit()
        assert re.fullmatch(r"[0-9a-f]{20}", report.id)


def test_status_check_constraint(migrated_engine: Engine) -> None:
    with pytest.raises(IntegrityError), migrated_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO reports (id, received_hour, padded_size, status) "
                "VALUES ('x', CURRENT_TIMESTAMP, 0, 'read')"
            )
        )
    with pytest.raises(ValueError, match="'read' is not a valid ReportStatus"):
        Report(padded_size=0, status="read")
    report = Report(padded_size=0, status="purged")
    assert report.status is ReportStatus.PURGED


def test_padded_size_check_constraint(migrated_engine: Engine) -> None:
    with pytest.raises(IntegrityError), Session(migrated_engine) as session:
        session.add(Report(padded_size=-1))
        session.commit()


def test_chunks_primary_key(migrated_engine: Engine) -> None:
    with Session(migrated_engine) as session:
        session.add(EnvelopeChunk(envelope_id="e1", seq=0, data=b"\x00\xff" * 10))
        session.commit()
        chunk = session.scalars(select(EnvelopeChunk)).one()
        assert chunk.data == b"\x00\xff" * 10
    with pytest.raises(IntegrityError), Session(migrated_engine) as session:
        session.add(EnvelopeChunk(envelope_id="e1", seq=0, data=b""))
        session.commit()


def test_constraint_names_follow_the_convention(migrated_engine: Engine) -> None:
    insp = inspect(migrated_engine)
    assert insp.get_pk_constraint("reports")["name"] in ("pk_reports", None)  # SQLite: unnamed
    if migrated_engine.dialect.name == "postgresql":
        assert insp.get_pk_constraint("envelope_chunks")["name"] == "pk_envelope_chunks"
    checks = {c["name"] for c in insp.get_check_constraints("reports")}
    assert checks == {"ck_reports_status", "ck_reports_padded_size", "ck_reports_review_status"}


def test_flask_sqlalchemy_session(database_url: str) -> None:
    """The `db` object works in a bare Flask app, on a migrated database."""
    from conftest import upgrade_database

    upgrade_database(database_url)
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)
    with app.app_context():
        db.session.add(Report(id="cc" * 10, padded_size=1024))
        db.session.commit()
        got = db.session.execute(select(Report)).scalar_one()
        assert got.id == "cc" * 10
        db.session.remove()
        db.engine.dispose()
