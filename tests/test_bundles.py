"""Signed, chained export bundles: the server side of the format, the key, the chain.

- the signing key (0600, made once, reused; ``flask signing-key``);
- what ``flask export`` writes: manifest v2 with chain fields equal to the
  database's chain, ``manifest.sig`` verifying under the printed key;
- the review tool's chain function equals the server's;
- Hypothesis: the new manifest fields only ever raise ManifestError;
- PostgreSQL: threads appending to the chain at once get consecutive seqs and
  a valid chain.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tarfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from test_review_import import add_followup, export, flask, members, report_ids, submit

from intake import chain
from intake.models import ChainEntry, ChainHead, FollowUp, db
from intake.review.bundle import (
    GENESIS,
    ManifestError,
    chain_hash,
    parse_manifest,
)
from intake.review.signature import parse_public_key, parse_signature, verify
from intake.schema import received_hour_now
from intake.signing import (
    SigningKeyError,
    load_or_create_signing_key,
    public_key_fingerprint,
    public_key_text,
)

from conftest import upgrade_database
from webapp import make_app, open_stored


def test_signing_key_made_once_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "signing_key"
    key = load_or_create_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = load_or_create_signing_key(path)
    assert public_key_text(again) == public_key_text(key)
    assert public_key_text(key).startswith("intake-ed25519:")
    assert len(parse_public_key(public_key_text(key))) == 32
    assert [p.name for p in path.parent.iterdir()] == ["signing_key"]  # no temp left


def test_signing_key_refuses_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("not a key")
    with pytest.raises(SigningKeyError):
        load_or_create_signing_key(path)


def test_concurrent_creation_gives_one_key(tmp_path: Path) -> None:
    path = tmp_path / "signing_key"
    texts: list[str] = []

    def make() -> None:
        texts.append(public_key_text(load_or_create_signing_key(path)))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(texts)) == 1


def test_export_is_signed_and_carries_the_chain(tmp_path: Path, database_url: str) -> None:
    web = make_app(tmp_path / "s", database_url=database_url)
    submit(web, "one")
    submit(web, "two")
    add_followup(web, report_ids(web)[0], "more")
    printed = flask(web, "signing-key")
    assert printed.exit_code == 0
    key_text, fingerprint_line = printed.output.splitlines()[:2]
    bundle = export(web, tmp_path / "b.tar")
    items = dict(members(bundle))
    with tarfile.open(bundle) as archive:
        assert archive.getnames()[:2] == ["manifest.json", "manifest.sig"]
    data = items["manifest.json"]
    assert verify(parse_public_key(key_text), data, parse_signature(items["manifest.sig"]))
    key = load_or_create_signing_key(web.app.extensions["intake"].settings.server.signing_key_file)
    assert fingerprint_line == f"fingerprint: {public_key_fingerprint(key)}"
    manifest = parse_manifest(data)
    assert manifest.version == 2 and manifest.signing_key == key_text
    assert manifest.chain is not None
    assert (manifest.chain.from_seq, manifest.chain.head_seq) == (0, 3)
    assert manifest.chain.from_hash == GENESIS and manifest.chain.omitted == ()
    with web.app.app_context():
        rows = {row.envelope_id: row for row in db.session.scalars(select(ChainEntry))}
        head = db.session.get(ChainHead, 1)
        assert head is not None and head.chain_hash == manifest.chain.head_hash
    previous = GENESIS
    for entry in manifest.entries.values():  # chain order
        row = rows[entry.id]
        assert (entry.chain_seq, entry.chain_hash, entry.sha256) == (
            row.seq,
            row.chain_hash,
            row.envelope_sha256,
        )
        previous = chain_hash(
            previous,
            entry.sha256,
            seq=row.seq,
            kind=entry.kind,
            envelope_id=entry.id,
            case_id=entry.case_id,
            received_hour=entry.received_hour,
        )
        assert previous == row.chain_hash
    # The second export (nothing new) is an empty stretch at the head.
    empty = parse_manifest(dict(members(export(web, tmp_path / "c.tar")))["manifest.json"])
    assert empty.chain is not None and empty.chain.from_seq == empty.chain.head_seq == 3
    assert dict(empty.entries) == {}


def test_the_chain_hash_is_the_documented_formula() -> None:
    """SHA-256(previous ‖ envelope SHA-256 ‖ "seq|kind|id|case|hour"), pinned by hand."""
    previous, sha = "ab" * 32, "cd" * 32
    expected = hashlib.sha256(
        bytes.fromhex(previous) + bytes.fromhex(sha) + b"7|followup|f1|c1|2024-05-01T13:00Z"
    ).hexdigest()
    got = chain_hash(
        previous,
        sha,
        seq=7,
        kind="followup",
        envelope_id="f1",
        case_id="c1",
        received_hour="2024-05-01T13:00Z",
    )
    assert got == expected
    assert chain.chain_hash is chain_hash  # the server appends with the same function


# --- fuzzing the new manifest fields -----------------------------------------------------------

_BASE: dict[str, Any] = {
    "format": "intake.bundle",
    "version": 2,
    "created_hour": "2024-05-02T09:00Z",
    "signing_key": "intake-ed25519:" + "A" * 43 + "=",
    "chain": {
        "from_seq": 0,
        "from_hash": GENESIS,
        "head_seq": 2,
        "head_hash": "1" * 64,
        "omitted": [
            {
                "seq": 2,
                "envelope_id": "gone",
                "envelope_sha256": "2" * 64,
                "kind": "report",
                "case_id": "gone",
                "received_hour": "2024-05-01T13:00Z",
            }
        ],
    },
    "envelopes": [
        {
            "id": "abc",
            "received_hour": "2024-05-01T13:00Z",
            "size": 10,
            "sha256": "3" * 64,
            "chain_seq": 1,
            "chain_hash": "4" * 64,
        }
    ],
}

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=80),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
_paths = st.sampled_from(
    [
        ("chain",),
        ("chain", "from_seq"),
        ("chain", "from_hash"),
        ("chain", "head_seq"),
        ("chain", "head_hash"),
        ("chain", "omitted"),
        ("chain", "omitted", 0),
        ("chain", "omitted", 0, "seq"),
        ("chain", "omitted", 0, "envelope_id"),
        ("chain", "omitted", 0, "envelope_sha256"),
        ("chain", "omitted", 0, "kind"),
        ("chain", "omitted", 0, "case_id"),
        ("chain", "omitted", 0, "received_hour"),
        ("signing_key",),
        ("envelopes", 0, "chain_seq"),
        ("envelopes", 0, "chain_hash"),
    ]
)


def test_base_document_parses() -> None:
    manifest = parse_manifest(json.dumps(_BASE).encode())
    assert manifest.chain is not None and manifest.chain.omitted[0].envelope_id == "gone"


@settings(max_examples=400, deadline=None)
@given(changes=st.lists(st.tuples(_paths, _values, st.booleans()), min_size=1, max_size=4))
def test_manifest_chain_fields_raise_only_manifest_error(
    changes: list[tuple[tuple[Any, ...], Any, bool]],
) -> None:
    document = copy.deepcopy(_BASE)
    for path, value, delete in changes:
        target: Any = document
        try:
            for step in path[:-1]:
                target = target[step]
            if delete:
                del target[path[-1]]
            else:
                target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    try:
        parse_manifest(json.dumps(document).encode())
    except ManifestError as exc:
        assert "\n" not in str(exc)


# --- concurrency ----------------------------------------------------------------------------


def test_concurrent_appends_get_consecutive_seqs(database_url: str) -> None:
    # Several workers storing at once: on SQLite too (the default database,
    # with two gunicorn workers in the shipped config), where SELECT ... FOR
    # UPDATE locks nothing.
    upgrade_database(database_url)
    engine = create_engine(database_url, pool_size=10)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def writer(worker: int) -> None:
        try:
            barrier.wait()
            for n in range(10):
                with Session(engine) as session:
                    chain.append(
                        session,
                        envelope_id=f"w{worker}n{n}",
                        kind="report",
                        case_id=f"w{worker}n{n}",
                        received_hour=datetime.now(UTC),
                        envelope_sha256=f"{worker:02x}{n:02x}".ljust(64, "0"),
                    )
                    session.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Session(engine) as session:
        entries = list(session.scalars(select(ChainEntry).order_by(ChainEntry.seq)))
        head = session.get(ChainHead, 1)
    engine.dispose()
    assert [e.seq for e in entries] == list(range(1, 81))
    previous = GENESIS
    for entry in entries:
        previous = chain.chain_hash(
            previous,
            entry.envelope_sha256,
            seq=entry.seq,
            kind=entry.kind,
            envelope_id=entry.envelope_id,
            case_id=entry.case_id,
            received_hour=received_hour_now(entry.received_hour),
        )
        assert previous == entry.chain_hash
    assert head is not None and (head.seq, head.chain_hash) == (80, previous)


def test_followups_sent_at_once_to_one_case_all_get_their_own_number(
    tmp_path: Path, database_url: str
) -> None:
    # A reporter who presses "send" twice, or relatives sharing one receipt:
    # three follow-ups of one case at the same moment, four times over. Every
    # one is stored, numbered 1..n, and its envelope says its own number.
    web = make_app(tmp_path, database_url=database_url)
    submit(web, "the report")
    [case_id] = report_ids(web)
    errors: list[BaseException] = []
    senders, rounds = 3, 4
    barrier = threading.Barrier(senders)

    def sender(worker: int) -> None:
        try:
            for n in range(rounds):
                barrier.wait()
                add_followup(web, case_id, f"follow-up {worker}.{n}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with web.app.app_context():
        stored = list(db.session.scalars(select(FollowUp).order_by(FollowUp.seq)))
        envelope_ids = set(web.app.extensions["intake"].store.ids())
    assert [f.seq for f in stored] == list(range(1, senders * rounds + 1))
    assert envelope_ids == {case_id} | {f.id for f in stored}  # no envelope left over
    for followup in stored:
        assert open_stored(web, followup.id, {}).report["seq"] == followup.seq


def test_sweep_keeps_old_followup_envelopes_and_export_skips_a_lost_one(
    tmp_path: Path, database_url: str
) -> None:
    # A follow-up nobody has collected for days is not an orphan: sweep (run
    # daily from cron) must leave it for the next export.
    web = make_app(tmp_path / "s", database_url=database_url)
    submit(web, "the report")
    [case_id] = report_ids(web)
    followup_id = add_followup(web, case_id, "more")
    envelopes = web.data_dir / "envelopes"
    stray = envelopes / f"{'e' * 20}.age"
    stray.write_bytes((envelopes / f"{case_id}.age").read_bytes())  # no row: an orphan
    three_days_ago = time.time() - 3 * 86400
    for path in envelopes.glob("*.age"):
        os.utime(path, (three_days_ago, three_days_ago))
    swept = flask(web, "sweep")
    assert swept.exit_code == 0, swept.output
    assert "removed 0 temp file(s) and 1 envelope(s) without a record" in swept.output
    assert sorted(p.name for p in envelopes.glob("*.age")) == sorted(
        [f"{case_id}.age", f"{followup_id}.age"]
    )

    # An envelope lost anyway (removed by hand, a disk fault) does not stop
    # exports: the rest go out, the lost one is named and left for the chain
    # to show as omitted.
    (envelopes / f"{followup_id}.age").unlink()
    written = flask(web, "export", "--out", str(tmp_path / "b.tar"))
    assert written.exit_code == 0, written.output
    assert "wrote 1 envelope(s)" in written.output
    assert f"missing from the store and were left out: {followup_id}" in written.output
    assert [name for name, _ in members(tmp_path / "b.tar") if name.startswith("envelopes/")] == [
        f"envelopes/{case_id}.age"
    ]
