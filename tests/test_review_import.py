"""intake-review trust/import: verified bundles end to end, and every kind of tampering.

A real server (the Flask app with its own age key, signing key, database and
store) takes submissions through the web form; its ``flask export`` bundle
is imported with ``intake-review import`` after ``trust``; the
acknowledgement purges the server (``flask purge --ack``) while the
reporter's sign-in, follow-ups and replies keep working; a later export
continues the chain. Then each tampering is made with real tar files and real
Ed25519 signatures and must be reported as such, with exit code 1 and
nothing imported.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from intake import cases
from intake.models import ChainEntry, EnvelopeChunk, FollowUp, Report, ReportStatus, db
from intake.review.cli import main
from intake.review.replies import (
    build_reply,
    parse_reply,
    reply_entry,
    reply_json_bytes,
    seal_reply,
    write_replies_bundle,
)
from intake.review.signature import format_signature
from intake.signing import load_or_create_signing_key, public_key_text
from intake.store import FilesystemStore

from webapp import WebApp, make_app, receipt_of, valid_form

Capsys = pytest.CaptureFixture[str]


# --- a server and its bundles ----------------------------------------------------------


def submit(web: WebApp, text: str) -> str:
    response = web.client.post(
        "/", data=valid_form(what_happened=text), content_type="multipart/form-data"
    )
    assert response.status_code == 200
    receipt = receipt_of(response)
    assert receipt
    return receipt


def report_ids(web: WebApp) -> list[str]:
    with web.app.app_context():
        return list(db.session.scalars(select(Report.id).order_by(Report.id)))


def add_followup(web: WebApp, case_id: str, text: str) -> str:
    with web.app.app_context():
        state = web.app.extensions["intake"]
        return cases.add_followup(
            case_id,
            {"text": text, "danger_now": "no"},
            [],
            language="en",
            recipients=state.recipients,
            store=state.store,
            session=db.session(),
            received=datetime.now(UTC),
        )


def flask(web: WebApp, *args: str) -> Any:
    runner: FlaskCliRunner = web.app.test_cli_runner()
    result = runner.invoke(args=list(args))
    return result


def export(web: WebApp, out: Path, *extra: str) -> Path:
    result = flask(web, "export", "--out", str(out), *extra)
    assert result.exit_code == 0, result.output
    return out


def server_key(web: WebApp) -> Ed25519PrivateKey:
    return load_or_create_signing_key(web.app.extensions["intake"].settings.server.signing_key_file)


def review(capsys: Capsys, *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def trust(capsys: Capsys, state: Path, web: WebApp) -> None:
    code, out, err = review(capsys, "trust", "--state", state, public_key_text(server_key(web)))
    assert code == 0, err
    assert "fingerprint: SHA256:" in out


# --- tar surgery -------------------------------------------------------------------------


def members(bundle: Path) -> list[tuple[str, bytes]]:
    out = []
    with tarfile.open(bundle) as archive:
        for info in archive.getmembers():
            stream = archive.extractfile(info)
            assert stream is not None
            out.append((info.name, stream.read()))
    return out


def write_tar(path: Path, items: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in items:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def resign(items: list[tuple[str, bytes]], manifest: dict[str, Any], key: Ed25519PrivateKey):  # type: ignore[no-untyped-def]
    """Replace manifest.json (re-serialised) and sign it with ``key``."""
    data = (json.dumps(manifest, indent=1) + "\n").encode()
    signature = format_signature(key.sign(data))
    out = []
    for name, payload in items:
        if name == "manifest.json":
            out.append((name, data))
        elif name == "manifest.sig":
            out.append((name, signature))
        else:
            out.append((name, payload))
    return out


def manifest_of(items: list[tuple[str, bytes]]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(dict(items)["manifest.json"])
    return document


# --- the whole flow ------------------------------------------------------------------------


def test_export_trust_import_ack_purge_continue(
    tmp_path: Path, database_url: str, capsys: Capsys
) -> None:
    web = make_app(tmp_path / "server", database_url=database_url)
    state = tmp_path / "review-state"
    receipt_a = submit(web, "first report")
    [case_a] = report_ids(web)
    submit(web, "second report")
    followup_1 = add_followup(web, case_a, "a first follow-up")

    # Export, trust, import.
    bundle = export(web, tmp_path / "bundle-1.tar")
    names = [name for name, _ in members(bundle)]
    assert names[:2] == ["manifest.json", "manifest.sig"]
    code, _, err = review(capsys, "import", "--state", state, bundle)
    assert code == 2 and "no server key is pinned" in err
    trust(capsys, state, web)
    code, out, err = review(capsys, "import", "--state", state, bundle)
    assert code == 0, err
    assert "imported 3 envelope(s)" in out and "chain verified from seq 0 to 3" in out
    ack = tmp_path / "ack-3.json"
    document = json.loads(ack.read_text())
    assert document["format"] == "intake.ack" and document["version"] == 1
    held = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in _archived(state))
    assert document["envelopes"] == held and len(held) == 3
    assert (state / "server-key").stat().st_mode & 0o777 == 0o600

    # The archive is a source for list/show/extract without naming a bundle.
    code, out, err = review(capsys, "list", "--state", state, "-i", web.identity_file)
    assert code == 0, err
    assert case_a in out and "+1" in out
    code, out, err = review(capsys, "show", "--state", state, "-i", web.identity_file, case_a)
    assert code == 0, err
    assert "first report" in out and "a first follow-up" in out

    # Importing the same bundle again adds nothing and still succeeds.
    code, out, _ = review(capsys, "import", "--state", state, bundle)
    assert code == 0 and "imported 0 envelope(s) (3 already in the archive)" in out

    # The acknowledgement purges the server.
    result = flask(web, "purge", "--ack", str(ack))
    assert result.exit_code == 0, result.output
    assert "purged 3 envelopes" in result.output
    with web.app.app_context():
        statuses = set(db.session.scalars(select(Report.status))) | set(
            db.session.scalars(select(FollowUp.status))
        )
        assert statuses == {ReportStatus.PURGED}
        store = web.app.extensions["intake"].store
        assert list(store.ids()) == []
        assert db.session.scalar(select(func.count()).select_from(EnvelopeChunk)) == 0
        assert db.session.scalar(select(func.count()).select_from(ChainEntry)) == 3
        # The row keeps what follow-ups and replies need.
        report = db.session.get(Report, case_a)
        assert report is not None and report.reply_recipient and report.lookup_key
    if isinstance(web.app.extensions["intake"].store, FilesystemStore):
        assert list((web.data_dir / "envelopes").glob("*.age")) == []

    # The reporter still signs in, adds a follow-up, and reads a reply.
    assert _case_of(web, receipt_a) == case_a
    followup_2 = add_followup(web, case_a, "a second follow-up, after the purge")
    assert followup_2 != followup_1
    _send_reply(web, tmp_path, case_a, "We have your report and both follow-ups.")
    with web.app.app_context():
        signed_in = cases.sign_in(
            receipt_a,
            pepper=web.app.extensions["intake"].pepper,
            session=db.session(),
            language="en",
        )
        assert signed_in is not None
        assert [r.text for r in signed_in.replies] == ["We have your report and both follow-ups."]
        assert cases.reporter_status(db.session.get(Report, case_a)) == "reviewed"  # type: ignore[arg-type]

    # A later export continues the chain; a new report too.
    submit(web, "third report")
    bundle_2 = export(web, tmp_path / "bundle-2.tar")
    manifest = manifest_of(members(bundle_2))
    assert manifest["chain"]["from_seq"] == 3 and manifest["chain"]["head_seq"] == 5
    code, out, err = review(capsys, "import", "--state", state, bundle_2)
    assert code == 0, err
    assert "imported 2 envelope(s)" in out and "from seq 3 to 5" in out
    # A full export from genesis lists the purged envelopes as omitted and still verifies.
    bundle_all = export(web, tmp_path / "bundle-all.tar", "--all", "--chain-from", "0")
    chain = manifest_of(members(bundle_all))["chain"]
    assert chain["from_seq"] == 0 and [o["seq"] for o in chain["omitted"]] == [1, 2, 3]
    code, out, err = review(capsys, "import", "--state", state, bundle_all)
    assert code == 0, err
    assert "imported 0 envelope(s) (2 already in the archive)" in out
    assert len(_archived(state)) == 5
    code, out, err = review(capsys, "show", "--state", state, "-i", web.identity_file, case_a[:8])
    assert code == 0, err
    assert "a second follow-up, after the purge" in out


def _case_of(web: WebApp, receipt: str) -> str | None:
    with web.app.app_context():
        found = cases.sign_in(
            receipt,
            pepper=web.app.extensions["intake"].pepper,
            session=db.session(),
            language="en",
        )
        return found.case_id if found else None


def _archived(state: Path) -> list[Path]:
    return sorted((state / "archive" / "envelopes").glob("*.age"))


def _send_reply(web: WebApp, tmp_path: Path, case_id: str, text: str) -> None:
    from intake.crypto.keys import load_recipients

    with web.app.app_context():
        report = db.session.get(Report, case_id)
        assert report is not None and report.reply_recipient
        recipient = report.reply_recipient
    staff = load_recipients(web.app.extensions["intake"].settings.keys.recipients_file)
    data = reply_json_bytes(build_reply(case_id, {"en": text}, "reviewed"))
    reply = parse_reply(data)
    sealed = seal_reply(data, recipient, staff)
    replies = tmp_path / "replies.tar"
    write_replies_bundle(replies, [(reply_entry(reply, sealed), sealed)])
    result = flask(web, "import-replies", str(replies))
    assert result.exit_code == 0, result.output


# --- tampering ------------------------------------------------------------------------------


@dataclass
class Site:
    """A server with three reports and a follow-up, exported once, and a trusting reviewer."""

    web: WebApp
    bundle: Path
    key: Ed25519PrivateKey
    root: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    root = tmp_path_factory.mktemp("site")
    web = make_app(root / "server")
    for text in ("report one", "report two", "report three"):
        submit(web, text)
    first = report_ids(web)[0]
    add_followup(web, first, "a follow-up")
    bundle = export(web, root / "bundle.tar")
    return Site(web, bundle, server_key(web), root)


@pytest.fixture
def fresh(site: Site, tmp_path: Path, capsys: Capsys) -> Iterator[Callable[..., tuple[int, str]]]:
    """A reviewer state that trusts the site; returns a function importing a tar."""
    state = tmp_path / "state"
    trust(capsys, state, site.web)

    def run(bundle: Path) -> tuple[int, str]:
        code, _out, err = review(capsys, "import", "--state", state, bundle)
        if code != 0:
            assert "nothing was imported" in err
            assert not (state / "head.json").exists()
            assert _archived(state) == []
        return code, err

    run.state = state  # type: ignore[attr-defined]
    yield run


def test_untouched_bundle_imports(site: Site, fresh: Callable[..., tuple[int, str]]) -> None:
    code, err = fresh(site.bundle)
    assert code == 0, err


def test_removed_envelope_member(site: Site, tmp_path: Path, fresh: Any) -> None:
    items = members(site.bundle)
    gone = next(name for name, _ in items if name.startswith("envelopes/"))
    tampered = write_tar(tmp_path / "t.tar", [i for i in items if i[0] != gone])
    code, err = fresh(tampered)
    assert code == 1
    envelope_id = gone.removeprefix("envelopes/").removesuffix(".age")
    assert f"{envelope_id}: missing: listed in the signed manifest" in err


def test_removed_manifest_entry_resigned_with_another_key(
    site: Site, tmp_path: Path, fresh: Any
) -> None:
    items = members(site.bundle)
    manifest = manifest_of(items)
    removed = manifest["envelopes"].pop(1)
    items = [i for i in items if i[0] != f"envelopes/{removed['id']}.age"]
    tampered = write_tar(tmp_path / "t.tar", resign(items, manifest, Ed25519PrivateKey.generate()))
    code, err = fresh(tampered)
    assert code == 1
    assert "bad signature" in err


def test_removed_manifest_entry_resigned_with_the_server_key_is_a_missing_seq(
    site: Site, tmp_path: Path, fresh: Any
) -> None:
    items = members(site.bundle)
    manifest = manifest_of(items)
    removed = manifest["envelopes"].pop(1)
    items = [i for i in items if i[0] != f"envelopes/{removed['id']}.age"]
    code, err = fresh(write_tar(tmp_path / "t.tar", resign(items, manifest, site.key)))
    assert code == 1
    assert f"missing: chain seq {removed['chain_seq']} is neither in the bundle" in err


def test_reordered_entries_resigned_with_the_server_key(
    site: Site, tmp_path: Path, fresh: Any
) -> None:
    items = members(site.bundle)
    manifest = manifest_of(items)
    entries = manifest["envelopes"]
    # Swap two envelopes' places in the chain: each keeps its own data but takes
    # the other's chain position.
    first, second = entries[0], entries[1]
    for field in ("chain_seq", "chain_hash"):
        first[field], second[field] = second[field], first[field]
    entries[0], entries[1] = second, first
    code, err = fresh(write_tar(tmp_path / "t.tar", resign(items, manifest, site.key)))
    assert code == 1
    assert f"{first['id']}: reordered: the chain places this envelope at seq" in err
    assert f"{second['id']}: reordered" in err


def test_swapped_list_order_is_reported_as_reordered(
    site: Site, tmp_path: Path, fresh: Any
) -> None:
    items = members(site.bundle)
    manifest = manifest_of(items)
    entries = manifest["envelopes"]
    entries[0], entries[2] = entries[2], entries[0]
    code, err = fresh(write_tar(tmp_path / "t.tar", resign(items, manifest, site.key)))
    assert code == 1
    assert "reordered: listed after envelope" in err


def test_duplicated_member(site: Site, tmp_path: Path, fresh: Any) -> None:
    items = members(site.bundle)
    copy = next(i for i in items if i[0].startswith("envelopes/"))
    code, err = fresh(write_tar(tmp_path / "t.tar", [*items, copy]))
    assert code == 1
    assert "duplicated: the envelope member appears twice" in err


def test_duplicated_under_another_id_resigned(site: Site, tmp_path: Path, fresh: Any) -> None:
    items = members(site.bundle)
    manifest = manifest_of(items)
    original = manifest["envelopes"][0]
    copy = dict(original, id="copy0000000000000000", case_id="copy0000000000000000")
    manifest["envelopes"].insert(1, copy)
    data = dict(items)[f"envelopes/{original['id']}.age"]
    items = [*items, ("envelopes/copy0000000000000000.age", data)]
    code, err = fresh(write_tar(tmp_path / "t.tar", resign(items, manifest, site.key)))
    assert code == 1
    assert "copy0000000000000000: duplicated" in err


def test_altered_envelope_bytes(site: Site, tmp_path: Path, fresh: Any) -> None:
    items = members(site.bundle)
    index = next(n for n, i in enumerate(items) if i[0].startswith("envelopes/"))
    name, data = items[index]
    items[index] = (name, data[:-1] + bytes([data[-1] ^ 1]))
    code, err = fresh(write_tar(tmp_path / "t.tar", items))
    assert code == 1
    envelope_id = name.removeprefix("envelopes/").removesuffix(".age")
    assert f"{envelope_id}: altered: SHA-256 differs from the manifest" in err


def test_altered_envelope_with_matching_manifest_resigned(
    site: Site, tmp_path: Path, fresh: Any
) -> None:
    items = members(site.bundle)
    manifest = manifest_of(items)
    entry = manifest["envelopes"][2]
    name = f"envelopes/{entry['id']}.age"
    data = dict(items)[name] + b"more"
    entry["sha256"] = hashlib.sha256(data).hexdigest()
    entry["size"] = len(data)
    items = [(n, data if n == name else d) for n, d in items]
    code, err = fresh(write_tar(tmp_path / "t.tar", resign(items, manifest, site.key)))
    assert code == 1
    assert f"{entry['id']}: altered: its SHA-256 or details do not match the server's chain" in err


def test_foreign_envelope(site: Site, tmp_path: Path, fresh: Any) -> None:
    items = members(site.bundle)
    items.append(("envelopes/foreign00000000000000.age", b"age-encryption.org/v1\n..."))
    code, err = fresh(write_tar(tmp_path / "t.tar", items))
    assert code == 1
    assert "foreign00000000000000: foreign: an envelope member that the signed manifest" in err


def test_bad_signature(site: Site, tmp_path: Path, fresh: Any) -> None:
    items = members(site.bundle)
    manifest = dict(items)["manifest.json"]
    altered = manifest.replace(b'"created_hour": "', b'"created_hour": "X', 1)
    items = [(n, altered if n == "manifest.json" else d) for n, d in items]
    code, err = fresh(write_tar(tmp_path / "t.tar", items))
    assert code == 1
    assert "bad signature: manifest.json was not signed by the pinned server key" in err


def test_missing_signature(site: Site, tmp_path: Path, fresh: Any) -> None:
    items = [i for i in members(site.bundle) if i[0] != "manifest.sig"]
    code, err = fresh(write_tar(tmp_path / "t.tar", items))
    assert code == 1
    assert "no usable manifest.sig" in err


def test_unsigned_version_1_bundle_is_refused(site: Site, tmp_path: Path, fresh: Any) -> None:
    items = members(site.bundle)
    manifest = manifest_of(items)
    manifest["version"] = 1
    del manifest["chain"], manifest["signing_key"]
    for entry in manifest["envelopes"]:
        del entry["chain_seq"], entry["chain_hash"]
    data = json.dumps(manifest).encode()
    items = [(n, data if n == "manifest.json" else d) for n, d in items if n != "manifest.sig"]
    code, err = fresh(write_tar(tmp_path / "t.tar", items))
    assert code == 1
    assert "unsigned bundle" in err


def test_bundle_from_another_server(tmp_path: Path, fresh: Any) -> None:
    other = make_app(tmp_path / "other")
    submit(other, "somewhere else")
    code, err = fresh(export(other, tmp_path / "other.tar"))
    assert code == 1
    assert "bundle from another server: signed by key SHA256:" in err


def test_skipped_bundle_is_a_gap(site: Site, tmp_path: Path, capsys: Capsys) -> None:
    web = make_app(tmp_path / "server")
    state = tmp_path / "state"
    trust(capsys, state, web)
    submit(web, "one")
    first = export(web, tmp_path / "1.tar")
    submit(web, "two")
    export(web, tmp_path / "2.tar")  # never carried over
    submit(web, "three")
    third = export(web, tmp_path / "3.tar")
    assert review(capsys, "import", "--state", state, first)[0] == 0
    code, _, err = review(capsys, "import", "--state", state, third)
    assert code == 1
    assert (
        "gap: the bundle's chain starts after seq 2, but this archive's last head is seq 1" in err
    )
    assert "--chain-from 1" in err
    head = json.loads((state / "head.json").read_text())
    assert head["seq"] == 1
    # The remedy it names works: an export starting at the archive's head.
    again = export(web, tmp_path / "again.tar", "--all", "--chain-from", "1")
    code, out, err = review(capsys, "import", "--state", state, again)
    assert code == 0, err
    assert "imported 2 envelope(s)" in out


def test_first_import_must_start_at_genesis(site: Site, tmp_path: Path, capsys: Capsys) -> None:
    web = make_app(tmp_path / "server")
    submit(web, "one")
    export(web, tmp_path / "1.tar")
    submit(web, "two")
    second = export(web, tmp_path / "2.tar")
    state = tmp_path / "state"
    trust(capsys, state, web)
    code, _, err = review(capsys, "import", "--state", state, second)
    assert code == 1 and "this archive has imported nothing yet" in err


def test_trust_refuses_a_different_key_and_bad_text(tmp_path: Path, capsys: Capsys) -> None:
    state = tmp_path / "state"
    first = public_key_text(Ed25519PrivateKey.generate())
    assert review(capsys, "trust", "--state", state, first)[0] == 0
    assert review(capsys, "trust", "--state", state, first)[0] == 0  # the same again is fine
    code, _, err = review(
        capsys, "trust", "--state", state, public_key_text(Ed25519PrivateKey.generate())
    )
    assert code == 2 and "another server key is already pinned" in err
    for bad in ("age1qqq", "intake-ed25519:AAAA", "intake-ed25519:not base64!"):
        code, _, err = review(capsys, "trust", "--state", tmp_path / "s2", bad)
        assert code == 2, bad
        assert "server key" in err


def test_list_without_source_on_an_empty_archive(tmp_path: Path, capsys: Capsys) -> None:
    code, _, _err = review(capsys, "list", "--state", tmp_path / "none", "-i", "/dev/null")
    assert code == 2


def test_state_defaults_to_the_environment(
    tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTAKE_REVIEW_HOME", str(tmp_path / "home"))
    key = public_key_text(Ed25519PrivateKey.generate())
    assert review(capsys, "trust", key)[0] == 0
    assert (tmp_path / "home" / "server-key").read_text().strip() == key
