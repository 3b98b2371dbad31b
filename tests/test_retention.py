"""Retention: purge on acknowledgement, purge of envelopes nobody collected, warnings.

Real app, real store (files, or chunks in the database), SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from test_review_import import add_followup, flask, report_ids, submit

from intake.models import AuditEvent, ChainEntry, FollowUp, Report, ReportStatus, db
from intake.retention import (
    AckError,
    PurgeResult,
    expiring_soon,
    forget_old_cases,
    parse_ack,
    purge_acknowledged,
    purge_expired,
)

from webapp import WebApp, make_app

SHA = "ab" * 32


def ack(*hashes: str) -> bytes:
    return json.dumps({"format": "intake.ack", "version": 1, "envelopes": list(hashes)}).encode()


def hashes_of(web: WebApp, *ids: str) -> list[str]:
    with web.app.app_context():
        rows = db.session.scalars(select(ChainEntry).where(ChainEntry.envelope_id.in_(ids)))
        return [row.envelope_sha256 for row in rows]


def call(web: WebApp, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with web.app.app_context():
        state = web.app.extensions["intake"]
        return fn(
            *args,
            session=db.session(),
            store=state.store,
            settings=state.settings,
            actor="tester",
            **kwargs,
        )


def age_rows(web: WebApp, days: int) -> None:
    """Make every report and follow-up ``days`` older."""
    with web.app.app_context():
        for model in (Report, FollowUp):
            for row in db.session.scalars(select(model)):
                row.received_hour = row.received_hour - timedelta(days=days)
        db.session.commit()


@pytest.fixture
def web(tmp_path: Path, database_url: str) -> WebApp:
    return make_app(tmp_path / "server", database_url=database_url)


@pytest.mark.parametrize("backend", ["filesystem", "database"])
def test_purge_acknowledged_removes_envelopes_keeps_rows(
    tmp_path: Path, database_url: str, backend: str
) -> None:
    web = make_app(
        tmp_path / "s",
        database_url=database_url,
        settings={"storage": {"backend": backend}, "privacy": {"record_danger_flag": True}},
    )
    submit(web, "one")
    submit(web, "two")
    first, second = report_ids(web)
    followup = add_followup(web, first, "more")
    now = datetime.now(UTC)
    result = call(web, purge_acknowledged, ack(*hashes_of(web, first, followup), SHA), now=now)
    assert isinstance(result, PurgeResult)
    assert sorted(result.purged) == sorted([first, followup])
    assert result.unknown == 1 and result.kept_for_retention == 0
    assert "purged 2 envelopes" in result.summary() and "1 not known" in result.summary()
    with web.app.app_context():
        store = web.app.extensions["intake"].store
        assert list(store.ids()) == [second]
        assert db.session.get(Report, first).status == ReportStatus.PURGED  # type: ignore[union-attr]
        assert db.session.get(FollowUp, followup).status == ReportStatus.PURGED  # type: ignore[union-attr]
        assert db.session.get(Report, second).status == ReportStatus.NEW  # type: ignore[union-attr]
        # A purged row keeps what follow-ups and replies need, not size or danger flag.
        purged_report, kept_report = db.session.get(Report, first), db.session.get(Report, second)
        purged_followup = db.session.get(FollowUp, followup)
        assert purged_report is not None and kept_report is not None and purged_followup
        assert (purged_report.padded_size, purged_report.danger_now) == (0, None)
        assert purged_report.lookup_key and purged_report.reply_recipient
        assert (purged_followup.padded_size, purged_followup.case_id) == (0, first)
        assert purged_followup.seq == 1
        assert kept_report.padded_size > 0 and kept_report.danger_now is True
        [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "purge"))
        assert event.actor == "tester" and event.envelopes == 2
    # The same acknowledgement again: nothing more, counted as already purged.
    again = call(web, purge_acknowledged, ack(*hashes_of(web, first, followup)), now=now)
    assert again.purged == [] and again.already_purged == 2


def test_purge_waits_for_the_retention_period(tmp_path: Path, database_url: str) -> None:
    web = make_app(
        tmp_path / "s",
        database_url=database_url,
        settings={"retention": {"purge_after_ack_days": 7}},
    )
    submit(web, "one")
    [report] = report_ids(web)
    now = datetime.now(UTC)
    result = call(web, purge_acknowledged, ack(*hashes_of(web, report)), now=now)
    assert result.purged == [] and result.kept_for_retention == 1
    assert "kept until the retention period ends" in result.summary()
    later = call(web, purge_acknowledged, ack(*hashes_of(web, report)), now=now + timedelta(days=8))
    assert later.purged == [report]


def test_malformed_ack_changes_nothing(web: WebApp) -> None:
    submit(web, "one")
    with pytest.raises(AckError):
        call(web, purge_acknowledged, b'{"format": "intake.ack"}', now=datetime.now(UTC))
    with web.app.app_context():
        assert db.session.scalars(select(Report.status)).one() == ReportStatus.NEW


def test_purge_expired_and_warnings(web: WebApp) -> None:
    submit(web, "old and never collected")
    [old] = report_ids(web)
    age_rows(web, 85)
    submit(web, "new")
    fresh_id = next(i for i in report_ids(web) if i != old)
    now = datetime.now(UTC)
    with web.app.app_context():
        state = web.app.extensions["intake"]
        soon = expiring_soon(db.session(), state.settings, now)
    assert [case for case, _ in soon] == [old]
    assert 3 <= soon[0][1] <= 5
    # Nothing is old enough yet.
    assert call(web, purge_expired, now=now).purged == []
    age_rows(web, 6)  # now 91 days
    result = call(web, purge_expired, now=now)
    assert result.purged == [old]
    with web.app.app_context():
        assert db.session.get(Report, old).status == ReportStatus.PURGED  # type: ignore[union-attr]
        assert db.session.get(Report, fresh_id).status == ReportStatus.NEW  # type: ignore[union-attr]
        assert list(web.app.extensions["intake"].store.ids()) == [fresh_id]
        assert expiring_soon(db.session(), web.app.extensions["intake"].settings, now) == []


def test_exported_envelopes_do_not_expire(web: WebApp, tmp_path: Path) -> None:
    submit(web, "collected")
    assert flask(web, "export", "--out", str(tmp_path / "b.tar")).exit_code == 0
    age_rows(web, 200)
    assert call(web, purge_expired, now=datetime.now(UTC)).purged == []


def test_cli_purge(web: WebApp, tmp_path: Path) -> None:
    submit(web, "one")
    [report] = report_ids(web)
    file = tmp_path / "ack.json"
    file.write_bytes(ack(*hashes_of(web, report)))
    result = flask(web, "purge", "--ack", str(file))
    assert result.exit_code == 0, result.output
    assert f"purged {report}" in result.output and "purged 1 envelope" in result.output
    file.write_bytes(b"not json")
    result = flask(web, "purge", "--ack", str(file))
    assert result.exit_code == 1 and "refused, nothing purged" in result.output
    result = flask(web, "purge", "--expired")
    assert result.exit_code == 0 and "purged 0 envelopes" in result.output
    assert flask(web, "purge").exit_code == 2
    with web.app.app_context():
        actors = set(db.session.scalars(select(AuditEvent.actor)))
    assert actors == {"cli"}


def test_rows_stay_for_followups(web: WebApp) -> None:
    submit(web, "one")
    [report] = report_ids(web)
    call(web, purge_acknowledged, ack(*hashes_of(web, report)), now=datetime.now(UTC))
    followup = add_followup(web, report, "after the purge")
    with web.app.app_context():
        row = db.session.get(FollowUp, followup)
        assert row is not None and row.status == ReportStatus.NEW
        db.session.execute(update(Report).values(review_status="reviewed"))
        db.session.commit()


def test_old_cases_are_forgotten_once_all_their_envelopes_are_purged(web: WebApp) -> None:
    submit(web, "one")
    [report] = report_ids(web)
    followup = add_followup(web, report, "later")
    submit(web, "still held")
    held = next(i for i in report_ids(web) if i != report)
    now = datetime.now(UTC)
    call(web, purge_acknowledged, ack(*hashes_of(web, report)), now=now)
    age_rows(web, 400)
    with web.app.app_context():
        state = web.app.extensions["intake"]
        # The follow-up is still held: the case stays.
        assert (
            forget_old_cases(session=db.session(), settings=state.settings, now=now, actor="t")
            == []
        )
    call(web, purge_acknowledged, ack(*hashes_of(web, followup)), now=now)
    with web.app.app_context():
        state = web.app.extensions["intake"]
        forgotten = forget_old_cases(
            session=db.session(), settings=state.settings, now=now, actor="t"
        )
        assert forgotten == [report]
        assert db.session.get(Report, report) is None  # lookup key and reply key gone
        assert db.session.get(FollowUp, followup) is None
        assert db.session.get(Report, held) is not None  # not purged: kept
        # The chain still proves the envelopes existed.
        assert db.session.scalar(select(ChainEntry).where(ChainEntry.envelope_id == report))


# --- the acknowledgement parser ----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\xff", "not valid UTF-8 JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"format": "x", "version": 1, "envelopes": []}', "format"),
        (b'{"format": "intake.ack", "version": 2, "envelopes": []}', "version"),
        (b'{"format": "intake.ack", "version": true, "envelopes": []}', "version"),
        (b'{"format": "intake.ack", "version": 1, "envelopes": {}}', "expected a list"),
        (b'{"format": "intake.ack", "version": 1, "envelopes": ["AB"]}', "envelopes[0]"),
        (b'{"format": "intake.ack", "version": 1, "envelopes": [], "x": 1}', "unexpected keys"),
        (b'{"format": "intake.ack", "format": "intake.ack"}', "appears twice"),
        (b'{"format": "intake.ack", "version": NaN}', "NaN"),
        (ack(SHA, SHA), "listed twice"),
    ],
)
def test_bad_acks(data: bytes, fragment: str) -> None:
    with pytest.raises(AckError, match=None) as caught:
        parse_ack(data)
    assert fragment in str(caught.value)


def test_good_ack() -> None:
    assert parse_ack(ack(SHA, "cd" * 32)) == [SHA, "cd" * 32]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["format", "version", "envelopes", "x"]), children)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | _json.map(lambda v: json.dumps(v).encode()))
def test_ack_parser_raises_only_its_own_error(data: bytes) -> None:
    try:
        result = parse_ack(data)
    except AckError:
        return
    assert all(len(h) == 64 for h in result)
