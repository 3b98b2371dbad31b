"""Staff replies: the reply format, sealing, the replies bundle, and ``intake-review reply``."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrage import x25519
from test_review_support import Key, make_bundle, make_folder, make_key, sealed_report

from intake.crypto.receipts import derive_receipt_keys, reply_identity
from intake.review.cli import main
from intake.review.replies import (
    MAX_REPLY_BYTES,
    MAX_SEALED_BYTES,
    RepliesBundleError,
    ReplyEntry,
    ReplyFormatError,
    build_reply,
    open_reply,
    parse_replies_manifest,
    parse_reply,
    read_replies_bundle,
    replies_manifest_bytes,
    reply_entry,
    reply_json_bytes,
    seal_reply,
    write_replies_bundle,
)

Capsys = pytest.CaptureFixture[str]
AGE = shutil.which("age")
needs_age = pytest.mark.skipif(AGE is None, reason="Debian age CLI not installed")
PEPPER = b"test pepper: not a real server secret"
RECEIPT_DIGITS = "12345678901234567890"
CASE = "a1a1a1a1a1a1a1a1a1a1"
OTHER_CASE = "b2b2b2b2b2b2b2b2b2b2"
HOUR = "2024-05-07T10:00Z"


@pytest.fixture(scope="module")
def reporter() -> tuple[str, x25519.Identity]:
    """The reply key a receipt derives: (recipient the server stores, identity)."""
    keys = derive_receipt_keys(RECEIPT_DIGITS, PEPPER)
    identity = reply_identity(RECEIPT_DIGITS, PEPPER)
    assert str(identity.to_public()) == keys.reply_recipient
    return keys.reply_recipient, identity


@pytest.fixture
def staff(tmp_path: Path) -> Key:
    return make_key(tmp_path, "staff.txt")


def sealed(
    staff: Key,
    recipient: str,
    case_id: str = CASE,
    status: str | None = None,
    text: str = "Мы получили ваше сообщение.",
) -> tuple[ReplyEntry, bytes]:
    data = reply_json_bytes(build_reply(case_id, {"ru": text}, status))
    blob = seal_reply(data, recipient, [staff.recipient])
    return reply_entry(parse_reply(data), blob), blob


# --- the reply document ------------------------------------------------------------------


def test_build_and_parse_round_trip() -> None:
    document = build_reply(
        CASE,
        {"en": "We have your report.\r\nA lawyer will call.", "ky": "\ufeff  Салам  "},
        "reviewed",
        written_hour=HOUR,
    )
    assert document["format"] == "intake.reply" and document["version"] == 1
    assert len(document["id"]) == 20 and int(document["id"], 16) >= 0
    data = reply_json_bytes(document)
    reply = parse_reply(data)
    assert reply.case_id == CASE and reply.written_hour == HOUR and reply.status == "reviewed"
    # Languages in the vocabulary's order; text normalised (BOM, CRLF, blank space).
    assert list(reply.messages) == ["ky", "en"]
    assert reply.messages == {"ky": "Салам", "en": "We have your report.\nA lawyer will call."}
    assert "Салам".encode() in data  # UTF-8, not \\u escapes: keeps replies small
    assert parse_reply(reply_json_bytes(reply)) == reply
    assert build_reply(CASE, {"uz": "x"})["status"] is None
    assert build_reply(CASE, {"uz": "x"})["id"] != build_reply(CASE, {"uz": "x"})["id"]


def _doc(**changes: Any) -> dict[str, Any]:
    document = build_reply(CASE, {"ru": "текст"}, written_hour=HOUR)
    document.update(changes)
    return document


def _bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\xff", "not valid UTF-8 JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"id": 1, "id": 2}', "appears twice"),
        (b'{"version": NaN}', "NaN"),
        (b"[" * 50_000, "not valid"),
        (b" " * (MAX_REPLY_BYTES + 1), "larger than"),
        (_bytes(_doc(format="intake.report")), "format"),
        (_bytes(_doc(version=2)), "version 2"),
        (_bytes(_doc(version=True)), "version"),
        (_bytes(_doc(extra=1)), "unknown key 'extra'"),
        (_bytes({k: v for k, v in _doc().items() if k != "status"}), "missing key 'status'"),
        (_bytes(_doc(id="ABC")), "id"),
        (_bytes(_doc(id="0" * 21)), "id"),
        (_bytes(_doc(case_id="../x")), "case_id"),
        (_bytes(_doc(written_hour="2024-05-07T10:30Z")), "written_hour"),
        (_bytes(_doc(written_hour="2024-02-30T10:00Z")), "not a real date"),
        (_bytes(_doc(messages={})), "at least one"),
        (_bytes(_doc(messages=["ru"])), "messages"),
        (_bytes(_doc(messages={"de": "Hallo"})), "unknown language 'de'"),
        (_bytes(_doc(messages={"ru": 5})), "messages.ru"),
        (_bytes(_doc(messages={"ru": "   \n"})), "empty"),
        (_bytes(_doc(messages={"ru": "x" * 20_001})), "longer than 20000"),
        (_bytes(_doc(messages={"ru": "a\x1b[2Jb"})), "control character U+001B"),
        (_bytes(_doc(messages={"ru": "a\x9bb"})), "control character U+009B"),
        (_bytes(_doc(messages={"ru": "a\rb"})), "control character U+000D"),
        (_bytes(_doc(messages={"ru": "a\ud800b"})), "control character U+D800"),
        (_bytes(_doc(status="open")), "status"),
    ],
)
def test_parse_reply_refuses_with_one_clean_line(data: bytes, fragment: str) -> None:
    with pytest.raises(ReplyFormatError) as caught:
        parse_reply(data)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message and "\x1b" not in message


def test_build_reply_refuses_what_parse_refuses() -> None:
    with pytest.raises(ReplyFormatError, match="unknown language"):
        build_reply(CASE, {"fr": "x"})
    with pytest.raises(ReplyFormatError, match="at least one"):
        build_reply(CASE, {})
    with pytest.raises(ReplyFormatError, match="status"):
        build_reply(CASE, {"en": "x"}, "deleted")
    with pytest.raises(ReplyFormatError, match="case_id"):
        build_reply("Not A Case", {"en": "x"})
    with pytest.raises(ReplyFormatError, match="larger than"):
        # Four messages of 20000 four-byte characters exceed the 256 KiB cap.
        build_reply(CASE, {lang: "😀" * 20_000 for lang in ("ky", "ru", "uz", "en")})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@given(st.binary(max_size=2000))
def test_parse_reply_fuzz_bytes(data: bytes) -> None:
    with contextlib.suppress(ReplyFormatError):
        parse_reply(data)


@given(key=st.sampled_from(sorted(_doc())), value=json_values)
def test_parse_reply_fuzz_structured(key: str, value: object) -> None:
    document = _doc()
    document[key] = value
    for candidate in (document, {"messages": value}, value):
        with contextlib.suppress(ReplyFormatError):
            parse_reply(json.dumps(candidate).encode())


# --- sealing -----------------------------------------------------------------------------


def test_sealed_reply_opens_for_reporter_and_staff(
    reporter: tuple[str, x25519.Identity], staff: Key
) -> None:
    recipient, identity = reporter
    data = reply_json_bytes(build_reply(CASE, {"ru": "Ответ"}, "closed"))
    blob = seal_reply(data, recipient, [staff.recipient])
    assert data not in blob
    for opener in (identity, staff.identity):
        reply = open_reply(blob, [opener], case_id=CASE)
        assert reply.messages == {"ru": "Ответ"} and reply.status == "closed"
    stranger = x25519.Identity.generate()
    with pytest.raises(ReplyFormatError, match="cannot decrypt"):
        open_reply(blob, [stranger])
    with pytest.raises(ReplyFormatError, match="names case"):
        open_reply(blob, [identity], case_id=OTHER_CASE)


def test_seal_reply_refusals(reporter: tuple[str, x25519.Identity], staff: Key) -> None:
    recipient, _ = reporter
    data = reply_json_bytes(build_reply(CASE, {"en": "x"}))
    with pytest.raises(ValueError, match="no staff recipient"):
        seal_reply(data, recipient, [])
    with pytest.raises(ValueError, match="reply recipient"):
        seal_reply(data, "age1nope", [staff.recipient])
    with pytest.raises(ValueError, match="staff recipient 1"):
        seal_reply(data, recipient, ["AGE-SECRET-KEY-1"])
    with pytest.raises(ReplyFormatError):
        seal_reply(b'{"not": "a reply"}', recipient, [staff.recipient])


@needs_age
def test_age_cli_opens_the_staff_copy(
    tmp_path: Path, reporter: tuple[str, x25519.Identity], staff: Key
) -> None:
    recipient, _ = reporter
    data = reply_json_bytes(build_reply(CASE, {"en": "Seen by staff"}))
    blob = tmp_path / "reply.age"
    blob.write_bytes(seal_reply(data, recipient, [staff.recipient]))
    assert AGE is not None
    done = subprocess.run(
        [AGE, "-d", "-i", str(staff.path), str(blob)], capture_output=True, check=True
    )
    assert parse_reply(done.stdout).messages == {"en": "Seen by staff"}


# --- the replies bundle ------------------------------------------------------------------


def test_bundle_round_trip_and_adding_keeps_earlier_replies(
    tmp_path: Path, reporter: tuple[str, x25519.Identity], staff: Key
) -> None:
    recipient, identity = reporter
    path = tmp_path / "replies.tar"
    first = sealed(staff, recipient, status="reviewed")
    assert write_replies_bundle(path, [first]) == [first[0]]
    assert read_replies_bundle(path) == [first]
    second, third = sealed(staff, recipient, text="2"), sealed(staff, recipient, OTHER_CASE)
    written = write_replies_bundle(path, [second, third])
    assert written == [first[0], second[0], third[0]]
    back = read_replies_bundle(path)
    assert back == [first, second, third]
    assert open_reply(back[0][1], [identity]).status == "reviewed"
    with tarfile.open(path) as archive:
        names = archive.getnames()
    assert names[0] == "manifest.json"
    assert names[1:] == [f"replies/{e.id}.age" for e, _ in back]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replies.tar", "staff.txt"]


def test_adding_refuses_duplicates_and_leaves_the_bundle_alone(
    tmp_path: Path, reporter: tuple[str, x25519.Identity], staff: Key
) -> None:
    recipient, _ = reporter
    path = tmp_path / "replies.tar"
    first = sealed(staff, recipient)
    write_replies_bundle(path, [first])
    before = path.read_bytes()
    with pytest.raises(RepliesBundleError, match=f"reply {first[0].id} is already in"):
        write_replies_bundle(path, [first])
    entry, blob = sealed(staff, recipient)
    with pytest.raises(RepliesBundleError, match=f"reply {entry.id}: SHA-256"):
        write_replies_bundle(path, [(entry, blob[:-1] + bytes([blob[-1] ^ 1]))])
    assert path.read_bytes() == before
    # A damaged bundle is not added to.
    path.write_bytes(before[:700])
    with pytest.raises(RepliesBundleError):
        write_replies_bundle(path, [(entry, blob)])
    assert path.read_bytes() == before[:700]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _tar(path: Path, members: Sequence[tuple[str, bytes] | tarfile.TarInfo]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for item in members:
            if isinstance(item, tarfile.TarInfo):
                archive.addfile(item)
                continue
            info = tarfile.TarInfo(item[0])
            info.size = len(item[1])
            archive.addfile(info, io.BytesIO(item[1]))
    return path


def _manifest(entries: Sequence[ReplyEntry]) -> bytes:
    return replies_manifest_bytes(HOUR, entries)


def _member(entry: ReplyEntry) -> str:
    return f"replies/{entry.id}.age"


def _hostile_cases(
    tmp_path: Path, staff: Key, recipient: str
) -> list[tuple[str, list[tuple[str, bytes] | tarfile.TarInfo], str]]:
    (a, blob_a), (b, blob_b) = sealed(staff, recipient), sealed(staff, recipient)
    good = [(_member(a), blob_a), (_member(b), blob_b)]
    manifest = ("manifest.json", _manifest([a, b]))
    wrong_sha = ReplyEntry(a.id, a.case_id, a.size, hashlib.sha256(b"x").hexdigest())
    wrong_size = ReplyEntry(a.id, a.case_id, a.size + 1, a.sha256)
    link = tarfile.TarInfo(_member(b))
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    folder = tarfile.TarInfo("replies/")
    folder.type = tarfile.DIRTYPE
    document = json.loads(_manifest([a, b]))
    document["replies"].append(document["replies"][0])
    big = "f" * 20
    big_entry = {"id": big, "case_id": CASE, "size": MAX_SEALED_BYTES + 1, "sha256": "0" * 64}
    big_manifest = json.loads(_manifest([a]))
    big_manifest["replies"].append({**big_entry, "status": None})
    not_age = ReplyEntry("e" * 20, CASE, 5, hashlib.sha256(b"hello").hexdigest())
    return [
        ("sha mismatch", [("manifest.json", _manifest([wrong_sha])), good[0]], a.id),
        ("size mismatch", [("manifest.json", _manifest([wrong_size])), good[0]], a.id),
        ("extra member", [manifest, *good, ("replies/" + "0" * 20 + ".age", blob_a)], "0" * 20),
        ("extra file", [manifest, *good, ("notes.txt", b"hi")], "notes.txt"),
        ("missing member", [manifest, good[0]], f"reply {b.id} is in the manifest but missing"),
        ("duplicate member", [manifest, *good, good[1]], f"{b.id}.age': appears twice"),
        ("duplicate id", [("manifest.json", json.dumps(document).encode()), *good], a.id),
        ("bad JSON manifest", [("manifest.json", b"{oops"), *good], "manifest.json"),
        ("manifest not first", [good[0], manifest, good[1]], f"{a.id}.age"),
        ("traversal", [manifest, *good, ("../../etc/x", b"x")], "../../etc/x"),
        ("traversal in dir", [manifest, good[0], (f"replies/../{b.id}.age", blob_b)], "../"),
        ("symlink member", [manifest, good[0], link], f"{b.id}.age"),
        ("folder member", [manifest, folder, *good], "replies/"),
        (
            "oversize manifest entry",
            [("manifest.json", json.dumps(big_manifest).encode()), good[0]],
            big,
        ),
        (
            "oversize member",
            [("manifest.json", _manifest([a])), (_member(a), b"x" * (MAX_SEALED_BYTES + 1))],
            a.id,
        ),
        ("not age", [("manifest.json", _manifest([not_age])), (_member(not_age), b"hello")], "e"),
        ("empty", [], "no manifest.json"),
    ]


def test_read_replies_bundle_refuses_naming_the_entry(
    tmp_path: Path, reporter: tuple[str, x25519.Identity], staff: Key
) -> None:
    recipient, _ = reporter
    for label, members, named in _hostile_cases(tmp_path, staff, recipient):
        path = _tar(tmp_path / "hostile.tar", members)
        with pytest.raises(RepliesBundleError) as caught:
            read_replies_bundle(path)
        message = str(caught.value)
        assert named in message, f"{label}: {message}"
        assert message.startswith("hostile.tar: ") and "\n" not in message, label


def test_read_replies_bundle_refuses_non_tars(tmp_path: Path) -> None:
    for name, data in [("junk.tar", b"\x89PNG" * 300), ("missing.tar", None)]:
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(RepliesBundleError, match=name):
            read_replies_bundle(path)
    gz = tmp_path / "r.tar.gz"
    with tarfile.open(gz, "w:gz") as archive:
        archive.addfile(tarfile.TarInfo("manifest.json"), io.BytesIO(b""))
    with pytest.raises(RepliesBundleError, match="not a tar"):
        read_replies_bundle(gz)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"format": "intake.bundle"}, "format"),
        ({"version": 2}, "version 2"),
        ({"created_hour": "yesterday"}, "created_hour"),
        ({"replies": {}}, "replies: expected a list"),
        ({"replies": [{"id": "x"}]}, "replies[0].id"),
        ({"more": 1}, "unknown key"),
        ({"replies": [{"id": "a" * 20}]}, "reply aaaaaaaaaaaaaaaaaaaa: missing key"),
        (
            {"replies": [{"id": "a" * 20, "case_id": CASE, "size": 1, "sha256": "0" * 64}] * 2},
            "missing key",
        ),
        (
            {
                "replies": [
                    {"id": "a" * 20, "case_id": CASE, "size": 1, "sha256": "0" * 64, "status": "x"}
                ]
            },
            "reply aaaaaaaaaaaaaaaaaaaa: status",
        ),
        ({"replies": [{}] * 10_001}, "more than 10000 replies"),
    ],
)
def test_replies_manifest_refusals(change: dict[str, Any], fragment: str) -> None:
    document = {"format": "intake.replies", "version": 1, "created_hour": HOUR, "replies": []}
    document.update(change)
    with pytest.raises(RepliesBundleError) as caught:
        parse_replies_manifest(json.dumps(document).encode())
    assert fragment in str(caught.value)


@given(st.binary(max_size=2000))
def test_replies_manifest_fuzz_bytes(data: bytes) -> None:
    with contextlib.suppress(RepliesBundleError):
        parse_replies_manifest(data)


@given(json_values)
def test_replies_manifest_fuzz_structured(value: object) -> None:
    base = {"format": "intake.replies", "version": 1, "created_hour": HOUR}
    for candidate in (value, {**base, "replies": [value]}, {**base, "replies": value}):
        with contextlib.suppress(RepliesBundleError):
            parse_replies_manifest(json.dumps(candidate).encode())


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=100)
@given(flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8))
def test_damaged_replies_bundle_fuzz(tmp_path: Path, flips: list[tuple[int, int]]) -> None:
    """A real replies bundle with random bytes changed: the bundle or a clean error."""
    path = tmp_path / "real.tar"
    if not path.exists():
        blob = b"age-encryption.org/v1\n" + bytes(range(256)) * 4
        entry = ReplyEntry("a" * 20, CASE, len(blob), hashlib.sha256(blob).hexdigest())
        write_replies_bundle(path, [(entry, blob)])
    data = bytearray(path.read_bytes())
    for offset, value in flips:
        data[offset % len(data)] = value
    damaged = tmp_path / "damaged.tar"
    damaged.write_bytes(bytes(data))
    with contextlib.suppress(RepliesBundleError):
        for entry, blob in read_replies_bundle(damaged):
            assert entry.size == len(blob)
            assert hashlib.sha256(blob).hexdigest() == entry.sha256


# --- intake-review reply ------------------------------------------------------------------


@pytest.fixture
def export(tmp_path: Path, staff: Key, reporter: tuple[str, x25519.Identity]) -> Path:
    """An export bundle: one case with a reply key, one without."""
    recipient, _ = reporter
    return make_bundle(
        tmp_path / "export.tar",
        {CASE: sealed_report(staff), OTHER_CASE: sealed_report(staff)},
        case_fields={CASE: {"reply_recipient": recipient}},
    )


@pytest.fixture
def staff_recipients(tmp_path: Path, staff: Key) -> Path:
    path = tmp_path / "staff-recipients.txt"
    other = x25519.Identity.generate().to_public()
    path.write_text(f"# staff\n{staff.recipient}\n{other}\n")
    return path


def run(*argv: str) -> int:
    return main(list(argv), prompt=lambda _: "")


def test_reply_command_end_to_end(
    tmp_path: Path,
    export: Path,
    staff: Key,
    staff_recipients: Path,
    reporter: tuple[str, x25519.Identity],
    capsys: Capsys,
) -> None:
    _, identity = reporter
    ru, en = tmp_path / "reply-ru.txt", tmp_path / "reply-en.txt"
    ru.write_text("Мы получили ваш отчёт.\nЮрист свяжется с вами.\n")
    en.write_text("We have your report.")
    out = tmp_path / "replies.tar"
    common = ["--staff-recipients", str(staff_recipients), "--out", str(out), str(export)]
    code = run(
        "reply",
        CASE[:6],
        "--message-file",
        f"ru:{ru}",
        "--message-file",
        str(en),
        "--status",
        "reviewed",
        *common,
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"to case {CASE}" in captured.out
    assert "languages: ru, en" in captured.out and "status change: reviewed" in captured.out
    assert "2 staff recipients" in captured.out and "(1 reply)" in captured.out
    [(entry, blob)] = read_replies_bundle(out)
    assert entry.id in captured.out and entry.case_id == CASE and entry.status == "reviewed"
    for opener in (identity, staff.identity):
        reply = open_reply(blob, [opener], case_id=CASE)
        assert reply.messages["ru"] == "Мы получили ваш отчёт.\nЮрист свяжется с вами."
        assert reply.messages["en"] == "We have your report."

    # A second reply is added; the first stays.
    assert run("reply", CASE, "--lang", "ky", "--message-file", str(en), *common) == 0
    assert "(2 replies)" in capsys.readouterr().out
    entries = read_replies_bundle(out)
    assert entries[0] == (entry, blob) and entries[1][0].status is None
    assert list(open_reply(entries[1][1], [identity]).messages) == ["ky"]

    # show --replies shows the staff copies with the case.
    code = run("show", "-i", str(staff.path), str(export), CASE, "--replies", str(out))
    shown = capsys.readouterr()
    assert code == 0, shown.err
    assert "Replies from staff (2, oldest first)" in shown.out
    assert f"Reply {entry.id} (staff copy)" in shown.out
    assert "Message (Russian):" in shown.out or "Message (" in shown.out
    assert "Юрист свяжется с вами." in shown.out and "Status change: reviewed" in shown.out
    # Cases without replies show none.
    assert run("show", "-i", str(staff.path), str(export), OTHER_CASE, "--replies", str(out)) == 0
    assert "Replies from staff" not in capsys.readouterr().out


def test_show_replies_that_staff_cannot_open(
    tmp_path: Path, export: Path, staff: Key, reporter: tuple[str, x25519.Identity], capsys: Capsys
) -> None:
    recipient, _ = reporter
    stranger = make_key(tmp_path, "stranger.txt")
    out = tmp_path / "replies.tar"
    write_replies_bundle(out, [sealed(stranger, recipient)])
    assert run("show", "-i", str(staff.path), str(export), CASE, "--replies", str(out)) == 1
    assert "cannot decrypt" in capsys.readouterr().err
    (out).write_bytes(b"junk" * 200)
    assert run("show", "-i", str(staff.path), str(export), CASE, "--replies", str(out)) == 1
    captured = capsys.readouterr()
    assert "replies not shown" in captured.err and f"Report {CASE}" in captured.out


def test_reply_command_refusals(
    tmp_path: Path, export: Path, staff: Key, staff_recipients: Path, capsys: Capsys
) -> None:
    good = tmp_path / "good.txt"
    good.write_text("fine")
    out = tmp_path / "replies.tar"

    def reply(case: str, *messages: str, source: Path = export, **options: str) -> str:
        argv = ["reply", case]
        for message in messages:
            argv += ["--message-file", message]
        for name, value in {
            "staff-recipients": str(staff_recipients),
            "out": str(out),
            **options,
        }.items():
            argv += [f"--{name}", value]
        assert run(*argv, str(source)) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        return err

    assert "not in the manifest" in reply("ffffffff", str(good))
    assert "no reply key" in reply(OTHER_CASE, str(good))
    folder = make_folder(tmp_path / "folder", {CASE: sealed_report(staff)})
    assert "a folder has no manifest" in reply(CASE, str(good), source=folder)
    followups_only = make_bundle(
        tmp_path / "later.tar",
        {"f" * 20: b"x"},
        case_fields={"f" * 20: {"kind": "followup", "case_id": CASE, "seq": 1}},
    )
    assert "only its follow-ups" in reply(CASE, str(good), source=followups_only)

    control = tmp_path / "control.txt"
    control.write_text("bad \x1b[2J text")
    assert "control.txt" in reply(CASE, str(control)) and "U+001B" in reply(CASE, str(control))
    long = tmp_path / "long.txt"
    long.write_text("x" * 20_001)
    assert "longer than 20000" in reply(CASE, str(long))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    assert "not UTF-8" in reply(CASE, str(latin1))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert "empty" in reply(CASE, str(empty))
    assert "unknown language 'de'" in reply(CASE, f"de:{good}")
    assert "two message files in ru" in reply(CASE, f"ru:{good}", f"ru:{good}")
    assert "cannot read" in reply(CASE, str(tmp_path / "missing.txt"))
    secret = tmp_path / "secret.txt"
    secret.write_text(staff.text)
    assert "private key" in reply(CASE, str(good), **{"staff-recipients": str(secret)})
    out.write_bytes(b"not a bundle" * 100)
    assert "nothing written" in reply(CASE, str(good))
    assert out.read_bytes() == b"not a bundle" * 100
    assert not any(p.name.startswith(".replies") for p in tmp_path.iterdir())


def test_review_replies_module_imports_no_web_stack() -> None:
    import sys

    code = (
        "import sys, intake.review.replies;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'flask', 'sqlalchemy', 'werkzeug', 'wtforms', 'nacl', 'cryptography'});"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
