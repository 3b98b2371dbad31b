"""intake-review end to end: keys, list, show, extract, hostile envelopes, real age CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_review_support import (
    Key,
    make_bundle,
    make_folder,
    make_key,
    manifest_entry,
    report_dict,
    seal,
    seal_tar,
    sealed_report,
)

from intake.review.bundle import GENESIS, ChainInfo, chain_hash, manifest_bytes
from intake.review.cli import main
from intake.review.extract import output_name
from intake.review.reports import ReviewError
from intake.review.signature import format_public_key, format_signature
from intake.schema import SECTIONS

ROOT = Path(__file__).resolve().parent.parent
CONSOLE_SCRIPT = ROOT / ".venv" / "bin" / "intake-review"
needs_age = pytest.mark.skipif(
    not (shutil.which("age") and shutil.which("age-keygen")), reason="Debian age CLI not installed"
)
AGE = shutil.which("age") or "age"
AGE_KEYGEN = shutil.which("age-keygen") or "age-keygen"

Capsys = pytest.CaptureFixture[str]
PHOTO = ("photo.jpg", b"\xff\xd8JPEG" * 300)
NOTE = ("записка.pdf", b"%PDF-1.4 handwritten letter")


def no_prompt(_: str) -> str:
    raise AssertionError("no passphrase prompt expected")


def prompts(*answers: str) -> Callable[[str], str]:
    queue = list(answers)

    def prompt(_: str) -> str:
        return queue.pop(0)

    return prompt


@pytest.fixture
def key(tmp_path: Path) -> Key:
    return make_key(tmp_path)


@pytest.fixture
def bundle(tmp_path: Path, key: Key) -> Path:
    return make_bundle(
        tmp_path / "bundle.tar",
        {
            "7f3a9c01-aaaa": sealed_report(
                key,
                [PHOTO, NOTE],
                person_name="Aigul Test",
                danger_now="yes",
                danger_kinds=["threat_to_life"],
                received_hour="2024-05-01T13:00Z",
            ),
            "7f3b0000-bbbb": sealed_report(
                key, person_name="Bakyt Ömürov", received_hour="2024-05-03T08:00Z"
            ),
            "c0ffee00-cccc": sealed_report(
                key, person_name="Cholpon Ңүө", received_hour="2024-05-02T08:00Z"
            ),
        },
    )


def run(*argv: str, prompt: Callable[[str], str] = no_prompt) -> int:
    return main(list(argv), prompt=prompt)


# --- keys -------------------------------------------------------------------------------


@needs_age
def test_keygen_identity_is_accepted_by_the_age_cli(tmp_path: Path, capsys: Capsys) -> None:
    identity = tmp_path / "identity.age"
    passphrase = "correct horse battery staple"
    code = run("keygen", "--out", str(identity), prompt=prompts(passphrase, passphrase))
    out = capsys.readouterr().out
    assert code == 0
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    assert identity.read_bytes().startswith(b"age-encryption.org/v1\n")
    recipient = next(w for w in out.split() if w.startswith("age1"))
    assert "SHA256:" in out and "recipients.txt" in out

    message = tmp_path / "message.age"
    subprocess.run([AGE, "-r", recipient, "-o", str(message)], input=b"hello", check=True)
    child = pexpect.spawn(AGE, ["-d", "-i", str(identity), str(message)], timeout=30)
    child.expect("passphrase")
    child.sendline(passphrase)
    child.expect(pexpect.EOF)
    child.close()
    assert b"hello" in (child.before or b"")
    assert child.exitstatus == 0

    # And intake-review reads an envelope sealed to it, passphrase from a file.
    pass_file = tmp_path / "pass.txt"
    pass_file.write_text(passphrase + "\n")
    from pyrage import x25519

    envelope = seal(report_dict(), [x25519.Recipient.from_str(recipient)])
    folder = make_folder(tmp_path / "in", {"abc": envelope})
    code = run("list", "-i", str(identity), "--passphrase-file", str(pass_file), str(folder))
    assert code == 0
    assert "Aigul Test" in capsys.readouterr().out
    # The prompt is used when no passphrase file is given; a wrong one is a key error.
    assert run("list", "-i", str(identity), str(folder), prompt=prompts(passphrase)) == 0
    capsys.readouterr()
    assert run("list", "-i", str(identity), str(folder), prompt=prompts("wrong")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "wrong passphrase" in err and err.count("\n") == 1


def test_keygen_refusals(tmp_path: Path, capsys: Capsys) -> None:
    out = tmp_path / "id.age"
    assert run("keygen", "--out", str(out), prompt=prompts("a long passphrase", "different")) == 2
    assert "differ" in capsys.readouterr().err and not out.exists()
    assert run("keygen", "--out", str(out), prompt=prompts("", "")) == 2
    assert "empty" in capsys.readouterr().err and not out.exists()

    short = tmp_path / "short.txt"
    short.write_text("shortpw\n")
    assert run("keygen", "--out", str(out), "--passphrase-file", str(short)) == 0
    captured = capsys.readouterr()
    assert "warning: the passphrase is shorter" in captured.err
    first = out.read_bytes()

    assert run("keygen", "--out", str(out), "--passphrase-file", str(short)) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert out.read_bytes() == first
    assert run("keygen", "--out", str(out), "--passphrase-file", str(short), "--force") == 0
    assert out.read_bytes() != first
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@needs_age
def test_plain_age_keygen_identity_and_envelope_sealed_by_age_cli(
    tmp_path: Path, capsys: Capsys
) -> None:
    """An envelope made with GNU tar and `age -r` to an `age-keygen` key is listed."""
    identity = tmp_path / "key.txt"
    subprocess.run([AGE_KEYGEN, "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run(
        [AGE_KEYGEN, "-y", str(identity)], check=True, capture_output=True, text=True
    ).stdout.strip()

    work = tmp_path / "work"
    (work / "attachments").mkdir(parents=True)
    letter = b"letter from SIZO-1"
    (work / "attachments" / "01-letter.txt").write_bytes(letter)
    report = report_dict([("letter.txt", letter)], person_name="Sealed By Age")
    (work / "report.json").write_text(json.dumps(report, ensure_ascii=False))
    plain = tmp_path / "plain.tar"
    subprocess.run(
        [
            "tar",
            "--format=posix",
            "-C",
            str(work),
            "-cf",
            str(plain),
            "report.json",
            "attachments/01-letter.txt",
        ],
        check=True,
    )
    folder = tmp_path / "in"
    folder.mkdir()
    subprocess.run(
        [AGE, "-r", recipient, "-o", str(folder / "from-age-cli.age"), str(plain)], check=True
    )
    assert run("list", "-i", str(identity), str(folder)) == 0
    assert "Sealed By Age" in capsys.readouterr().out
    assert run("show", "-i", str(identity), str(folder), "from") == 0
    assert "check: verified" in capsys.readouterr().out
    target = tmp_path / "out"
    assert (
        run("extract", "-i", str(identity), str(folder), "from-age-cli", "--to", str(target)) == 0
    )
    assert (target / "from-age-cli" / "01-letter.txt").read_bytes() == letter


def test_identity_from_environment_and_missing_identity(
    tmp_path: Path, key: Key, bundle: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INTAKE_REVIEW_IDENTITY", raising=False)
    assert run("list", str(bundle)) == 2
    assert "no identity given" in capsys.readouterr().err
    other = make_key(tmp_path, "other.txt")
    monkeypatch.setenv("INTAKE_REVIEW_IDENTITY", f"{other.path}{os.pathsep}{key.path}")
    assert run("list", str(bundle)) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.txt"
    bad.write_text("not a key\n")
    assert run("list", "-i", str(bad), str(bundle)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.txt:1" in err


# --- list, show, extract ---------------------------------------------------------------


@pytest.fixture(params=["bundle", "folder"])
def source(request: pytest.FixtureRequest, tmp_path: Path, bundle: Path) -> Path:
    if request.param == "bundle":
        return bundle
    import tarfile

    envelopes = {}
    with tarfile.open(bundle) as archive:
        for member in archive.getmembers():
            if member.name.startswith("envelopes/"):
                stream = archive.extractfile(member)
                assert stream is not None
                envelopes[Path(member.name).stem] = stream.read()
    return make_folder(tmp_path / "folder", envelopes)


def test_list_table_and_json(key: Key, source: Path, capsys: Capsys) -> None:
    assert run("list", "-i", str(key.path), str(source)) == 0
    captured = capsys.readouterr()
    assert "error" not in captured.err
    lines = captured.out.splitlines()
    assert lines[0].split()[:3] == ["ID", "RECEIVED", "DANGER"]
    # Danger now first, then newest first.
    assert [line.split()[0] for line in lines[1:]] == [
        "7f3a9c01-aaaa",
        "7f3b0000-bbbb",
        "c0ffee00-cccc",
    ]
    assert "YES" in lines[1] and "Cholpon Ңүө" in captured.out

    assert run("list", "--json", "-i", str(key.path), str(source)) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == ["7f3a9c01-aaaa", "7f3b0000-bbbb", "c0ffee00-cccc"]
    assert rows[0]["danger_now"] == "yes" and rows[0]["attachments"] == 2
    assert rows[0]["person"] == "Aigul Test"
    assert rows[0]["acts"] == [{"code": "beaten", "huridocs": "020101"}]


def test_show_with_prefixes(key: Key, source: Path, capsys: Capsys) -> None:
    assert run("show", "-i", str(key.path), str(source), "7f3a", "c0") == 0
    out = capsys.readouterr().out
    assert "Report 7f3a9c01-aaaa" in out and "Report c0ffee00-cccc" in out
    assert "!! DANGER NOW !!" in out
    assert "What happened:\n    Beaten by guards.\n    No doctor since." in out
    assert "записка.pdf" in out and "photo.jpg" in out
    assert out.count("check: verified") == 2
    import hashlib

    assert hashlib.sha256(PHOTO[1]).hexdigest() in out

    assert run("show", "-i", str(key.path), str(source), "7f3") == 2
    assert "matches 2 cases" in capsys.readouterr().err
    assert run("show", "-i", str(key.path), str(source), "zzz") == 2
    assert "no case or envelope id starts with" in capsys.readouterr().err


def test_extract_writes_verified_files_inside_dir(
    tmp_path: Path, key: Key, source: Path, capsys: Capsys
) -> None:
    target = tmp_path / "cases"
    assert run("extract", "-i", str(key.path), str(source), "7f3a", "--to", str(target)) == 0
    out = capsys.readouterr().out
    folder = target / "7f3a9c01-aaaa"
    assert sorted(p.name for p in folder.iterdir()) == [
        "01-photo.jpg",
        "02-записка.pdf",
        "report.json",
    ]
    assert (folder / "01-photo.jpg").read_bytes() == PHOTO[1]
    assert (folder / "02-записка.pdf").read_bytes() == NOTE[1]
    assert json.loads((folder / "report.json").read_text())["person"]["name"] == "Aigul Test"
    assert out.count("(verified)") == 2
    assert stat.S_IMODE((folder / "01-photo.jpg").stat().st_mode) == 0o600

    # A second run refuses to overwrite, and leaves the first result alone.
    before = {p: p.read_bytes() for p in folder.iterdir()}
    assert run("extract", "-i", str(key.path), str(source), "7f3a", "--to", str(target)) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in target.iterdir()) == ["7f3a9c01-aaaa"]


def test_extract_reports_sha256_mismatch(tmp_path: Path, key: Key, capsys: Capsys) -> None:
    report = report_dict([("a.txt", b"original")])
    envelope = seal(report, [key.recipient_obj], [("a.txt", b"Original")])
    folder = make_folder(tmp_path / "in", {"abc": envelope})
    target = tmp_path / "out"
    assert run("extract", "-i", str(key.path), str(folder), "abc", "--to", str(target)) == 1
    captured = capsys.readouterr()
    assert "SHA-256 MISMATCH" in captured.out and "SHA-256 MISMATCH" in captured.err
    assert run("show", "-i", str(key.path), str(folder), "abc") == 1
    assert "SHA-256 MISMATCH" in capsys.readouterr().out


def test_extract_removes_partial_files_of_a_broken_envelope(
    tmp_path: Path, key: Key, capsys: Capsys
) -> None:
    big = os.urandom(300_000)
    envelope = sealed_report(key, [("small.txt", b"first"), ("big.bin", big)])
    # Cut the ciphertext inside the second attachment: the first is already
    # written when decryption fails.
    broken = envelope[: len(envelope) - 100_000]
    folder = make_folder(tmp_path / "in", {"broken": broken, "good": envelope})
    target = tmp_path / "out"
    code = run("extract", "-i", str(key.path), str(folder), "broken", "good", "--to", str(target))
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.startswith("error: broken: ") and "partial files removed" in captured.err
    assert "Traceback" not in captured.err
    assert not (target / "broken").exists()
    assert (target / "good" / "02-big.bin").read_bytes() == big


def test_extract_never_leaves_the_target(tmp_path: Path, key: Key, capsys: Capsys) -> None:
    hostile_names = ["../../escape.txt", "/etc/passwd", "..", "a/../../b", "\x1b[2J.txt", "CON"]
    attachments = [(name, f"data {i}".encode()) for i, name in enumerate(hostile_names)]
    folder = make_folder(tmp_path / "in", {"abc": sealed_report(key, attachments)})
    target = tmp_path / "deep" / "out"
    # A planted symlink where the envelope's folder would go is not followed.
    target.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (target / "planted").symlink_to(outside)
    before = set(tmp_path.rglob("*"))
    assert run("extract", "-i", str(key.path), str(folder), "abc", "--to", str(target)) == 0
    capsys.readouterr()
    new = set(tmp_path.rglob("*")) - before
    assert new, "something was written"
    for path in new:
        assert path.resolve().is_relative_to(target.resolve() / "abc")
    assert list(outside.iterdir()) == []


def test_folder_with_broken_envelopes(tmp_path: Path, key: Key, capsys: Capsys) -> None:
    stranger = make_key(tmp_path, "stranger.txt")
    bad_json = seal_tar([("report.json", b'{"format": "intake.report", oops')], [key.recipient_obj])
    bad_report = seal(b'{"format": "intake.report", "version": 1}', [key.recipient_obj])
    folder = make_folder(
        tmp_path / "in",
        {
            "good": sealed_report(key),
            "garbage": os.urandom(2000),
            "wrong-key": sealed_report(stranger),
            "bad-json": bad_json,
            "bad-report": bad_report,
        },
    )
    (folder / "README.txt").write_text("not an envelope")
    code = run("list", "-i", str(key.path), str(folder))
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.splitlines()[1].split()[0] == "good"
    assert len(captured.out.splitlines()) == 2
    errors = captured.err.splitlines()
    assert sorted(e.split(":")[1].strip() for e in errors) == [
        "bad-json",
        "bad-report",
        "garbage",
        "wrong-key",
    ]
    assert all(e.startswith("error: ") for e in errors)
    assert "not valid JSON" in captured.err and "schema" in captured.err
    assert "Traceback" not in captured.err


HOSTILE = "\x1b[2J\x1b]0;owned\x07\x1b]52;c;ZXZpbA==\x07\x9b31m\u202egpj.exe\u2066\x00\x08"
HOSTILE_CHARS = ["\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\x00", "\x08"]


def hostile_report() -> dict[str, Any]:
    """A schema-valid report with hostile text in every free-text field and file name."""
    report = report_dict([("x.txt", b"x")])
    for section, specs in SECTIONS.items():
        for spec in specs:
            if spec.kind == "text":
                report[section][spec.key] = f"{spec.key}:{HOSTILE}"[: spec.max_len]
    report["attachments"][0]["name"] = f"name{HOSTILE}.txt"
    return report


def test_terminal_escapes_are_neutralised_everywhere(
    tmp_path: Path, key: Key, capsys: Capsys
) -> None:
    envelope = seal(hostile_report(), [key.recipient_obj], [("x.txt", b"x")])
    bundle = make_bundle(tmp_path / "b.tar", {"abc": envelope})
    outputs = []
    for argv in (
        ["list", str(bundle)],
        ["list", "--json", str(bundle)],
        ["show", str(bundle), "abc"],
        ["extract", str(bundle), "abc", "--to", str(tmp_path / "out")],
    ):
        assert run(argv[0], "-i", str(key.path), *argv[1:]) == 0
        captured = capsys.readouterr()
        outputs.append(captured.out + captured.err)
    for text in outputs:
        for ch in HOSTILE_CHARS:
            assert ch not in text
    show = outputs[2]
    for section, specs in SECTIONS.items():
        for spec in specs:
            if spec.kind == "text" and spec.key != "relationship_other":
                assert f"{spec.key}:\\x1b[2J" in show, f"{section}.{spec.key} not shown"
    assert "\\u202egpj.exe" in show
    json.loads("\n".join(x for x in outputs[1].splitlines() if not x.startswith("warning: ")))


# --- packaging --------------------------------------------------------------------------


def test_console_script_runs_and_errors_are_one_line(
    tmp_path: Path, key: Key, bundle: Path
) -> None:
    assert CONSOLE_SCRIPT.exists()
    env = {**os.environ, "INTAKE_REVIEW_IDENTITY": str(key.path)}
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "list", "--json", str(bundle)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 3
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "x.age").write_bytes(b"\x1b[31mnot age")
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "list", str(garbage)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: x: ")
    assert "Traceback" not in done.stderr
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "list"], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 2


def test_review_imports_no_web_stack() -> None:
    code = (
        "import sys, intake.review.cli, intake.review.bundle;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'flask', 'sqlalchemy', 'werkzeug', 'wtforms', 'flask_wtf', 'flask_sqlalchemy'});"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(autouse=True)
def _no_identity_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("INTAKE_REVIEW_IDENTITY", raising=False)
    yield


def test_extract_odd_members(tmp_path: Path, key: Key, capsys: Capsys) -> None:
    """The envelope reader refuses odd names (whole envelope, nothing kept); an
    attachment report.json does not list is written but flagged."""
    report = json.dumps(report_dict()).encode()
    odd = seal_tar([("report.json", report), ("attachments/01-a?b", b"one")], [key.recipient_obj])
    unlisted = seal_tar(
        [("report.json", report), ("attachments/01-extra.txt", b"two")], [key.recipient_obj]
    )
    folder = make_folder(tmp_path / "in", {"odd": odd, "unlisted": unlisted})
    target = tmp_path / "out"
    code = run("extract", "-i", str(key.path), str(folder), "odd", "unlisted", "--to", str(target))
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err
    assert not (target / "odd").exists()
    assert (target / "unlisted" / "01-extra.txt").read_bytes() == b"two"
    assert "error: unlisted: attachments/01-extra.txt: NOT LISTED" in captured.err


@pytest.mark.parametrize(
    "member",
    [
        "attachments/01-../../x",
        "attachments/..",
        "attachments/01-\u202etxt.exe",
        "attachments/01-a\x1b[2Jb",
        "/etc/passwd",
        "attachments/01-report.json/..",
    ],
)
def test_output_names_are_plain(member: str) -> None:
    try:
        name = output_name(member)
    except ReviewError:
        return
    assert name not in ("", ".", "..", "report.json")
    assert "/" not in name and "\\" not in name
    assert all(ch.isalnum() or ch in "._-" for ch in name)


# --- a bundle named directly: its signature ---------------------------------------------

SIGNED_ID = "5e5e5e5e5e5e5e5e5e5e"


def _signed_bundle(path: Path, data: bytes, signer: Ed25519PrivateKey) -> tuple[Path, bytes]:
    """A version 2 bundle of one report, chained from the genesis and signed by ``signer``."""
    hour = "2024-05-01T13:00Z"
    sha = hashlib.sha256(data).hexdigest()
    head = chain_hash(
        GENESIS, sha, seq=1, kind="report", envelope_id=SIGNED_ID, case_id=SIGNED_ID,
        received_hour=hour,
    )  # fmt: skip
    entry = manifest_entry(SIGNED_ID, data, hour, chain_seq=1, chain_hash=head)
    public = format_public_key(signer.public_key().public_bytes_raw())
    manifest = manifest_bytes(
        "2024-05-02T09:00Z", [entry], chain=ChainInfo(0, GENESIS, 1, head), signing_key=public
    )
    signature = format_signature(signer.sign(manifest))
    return make_bundle(
        path, {SIGNED_ID: data}, manifest=manifest, extra=[("manifest.sig", signature)]
    ), manifest


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The review state folder, via $INTAKE_REVIEW_HOME (nothing pinned yet)."""
    folder = tmp_path / "state"
    monkeypatch.setenv("INTAKE_REVIEW_HOME", str(folder))
    return folder


def _pin(signer: Ed25519PrivateKey, capsys: Capsys) -> None:
    public = format_public_key(signer.public_key().public_bytes_raw())
    assert main(["trust", public]) == 0
    capsys.readouterr()


UNSIGNED_V2 = "a signed (version 2) bundle without manifest.sig (bundle altered?)"
NOT_PINNED = "not verified: no server key pinned; run intake-review trust"


def test_signed_bundle_named_directly_is_verified(
    tmp_path: Path, key: Key, state: Path, capsys: Capsys
) -> None:
    server = Ed25519PrivateKey.generate()
    bundle, _ = _signed_bundle(tmp_path / "b.tar", sealed_report(key, person_name="Aigul"), server)
    listing = ["list", "-i", str(key.path), str(bundle)]

    # No key pinned: read, with a one-line warning.
    assert main(listing) == 0
    captured = capsys.readouterr()
    assert captured.err == f"warning: {bundle}: {NOT_PINNED}\n"
    assert SIGNED_ID in captured.out

    # The server's key pinned (via $INTAKE_REVIEW_HOME): verified, nothing to say.
    _pin(server, capsys)
    for argv in (
        listing,
        ["show", "-i", str(key.path), str(bundle), SIGNED_ID],
        ["extract", "-i", str(key.path), str(bundle), SIGNED_ID, "--to", str(tmp_path / "out")],
    ):
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert captured.err == "", argv
        assert SIGNED_ID in captured.out
    # --state wins over the environment: a state with no key warns again.
    assert main(["list", "--state", str(tmp_path / "other"), *listing[1:]]) == 0
    assert NOT_PINNED in capsys.readouterr().err


def _tampered(tmp_path: Path, key: Key, server: Ed25519PrivateKey, how: str) -> Path:
    data = sealed_report(key)
    if how == "other key":
        return _signed_bundle(tmp_path / "b.tar", data, Ed25519PrivateKey.generate())[0]
    _, manifest = _signed_bundle(tmp_path / "good.tar", data, server)
    signature = format_signature(server.sign(manifest))
    if how == "altered manifest":
        manifest = manifest.replace(b"2024-05-02T09:00Z", b"2024-05-03T09:00Z")
    extra: list[tuple[str, bytes]] = []
    if how != "no signature":
        extra.append(("manifest.sig", b"not base64!\n" if how == "bad signature" else signature))
    return make_bundle(tmp_path / "b.tar", {SIGNED_ID: data}, manifest=manifest, extra=extra)


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("other key", "bundle from another server"),
        ("altered manifest", "bad signature: manifest.json was not signed by the pinned"),
        ("no signature", "no usable manifest.sig"),
        ("bad signature", "bad signature: manifest.sig: not base64"),
    ],
)
def test_bundle_named_directly_with_a_bad_signature_is_refused(
    tmp_path: Path, key: Key, state: Path, capsys: Capsys, how: str, says: str
) -> None:
    server = Ed25519PrivateKey.generate()
    _pin(server, capsys)
    bundle = _tampered(tmp_path, key, server, how)
    target = tmp_path / "out"
    for argv in (
        ["list", "-i", str(key.path), str(bundle)],
        ["list", "--json", "-i", str(key.path), str(bundle)],
        ["show", "-i", str(key.path), str(bundle), SIGNED_ID],
        ["extract", "-i", str(key.path), str(bundle), SIGNED_ID, "--to", str(target)],
    ):
        assert main(argv) == 1, argv
        captured = capsys.readouterr()
        assert captured.out == ""
        [line] = captured.err.splitlines()
        assert line.startswith(f"error: {bundle}: ") and says in line
        assert line.endswith("refused (give --unverified to read it anyway)")
    assert not target.exists()
    assert main(["--lang", "ru", "list", "-i", str(key.path), str(bundle)]) == 1
    assert "отказано (чтобы всё равно прочитать, укажите --unverified)" in capsys.readouterr().err

    # --unverified: read, with the reason as a warning.
    for argv in (
        ["list", "--unverified", "-i", str(key.path), str(bundle)],
        ["show", "--unverified", "-i", str(key.path), str(bundle), SIGNED_ID],
        [
            "extract",
            "--unverified",
            "-i",
            str(key.path),
            str(bundle),
            SIGNED_ID,
            "--to",
            str(target),
        ],
    ):
        # A version 2 bundle without manifest.sig is also a problem of the bundle.
        assert main(argv) == (1 if how == "no signature" else 0), argv
        captured = capsys.readouterr()
        line, *rest = captured.err.splitlines()
        assert rest == ([f"error: {bundle}: {UNSIGNED_V2}"] if how == "no signature" else [])
        assert line.startswith(f"warning: {bundle}: ") and says in line
        assert line.endswith("read anyway (--unverified)")
        assert SIGNED_ID in captured.out
    assert (target / SIGNED_ID / "report.json").exists()


def test_reply_checks_the_signature_of_a_bundle_named_directly(
    tmp_path: Path, key: Key, state: Path, capsys: Capsys
) -> None:
    _pin(Ed25519PrivateKey.generate(), capsys)
    bundle = _signed_bundle(tmp_path / "b.tar", sealed_report(key), Ed25519PrivateKey.generate())[0]
    message = tmp_path / "m.txt"
    message.write_text("We have your report.")
    staff = tmp_path / "staff.txt"
    staff.write_text(key.recipient + "\n")
    out = tmp_path / "replies.tar"
    argv = ["reply", SIGNED_ID, str(bundle), "--message-file", str(message)]
    argv += ["--staff-recipients", str(staff), "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bundle}: bundle from another server") and err.count("\n") == 1
    assert not out.exists()
    # --unverified goes on to the next check (this manifest holds no reply key).
    assert main([*argv, "--unverified"]) == 2
    err = capsys.readouterr().err
    assert "read anyway (--unverified)" in err and "no reply key" in err
    assert not out.exists()


def test_unsigned_bundle_keeps_its_warning_with_a_key_pinned(
    bundle: Path, key: Key, state: Path, capsys: Capsys
) -> None:
    _pin(Ed25519PrivateKey.generate(), capsys)
    assert main(["list", "-i", str(key.path), str(bundle)]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {bundle}: unsigned bundle (manifest version 1)")
    assert err.count("\n") == 1 and "not verified" not in err


def test_a_folder_is_not_checked(tmp_path: Path, key: Key, state: Path, capsys: Capsys) -> None:
    _pin(Ed25519PrivateKey.generate(), capsys)
    folder = make_folder(tmp_path / "in", {"abc": sealed_report(key)})
    assert main(["list", "-i", str(key.path), str(folder)]) == 0
    assert capsys.readouterr().err == ""
