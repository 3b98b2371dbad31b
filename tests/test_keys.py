"""Recipients and identity files: what the server loads, what staff unlock offline.

Checks the promises of :mod:`intake.crypto.keys` a user (operator or staff
member) relies on: a recipients file is parsed the way ``age -R`` reads it,
every error names the file and the line, a private key is never accepted on
the server, and the identity files we write are read by the real ``age`` CLI
(and the other way round).
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pyrage
import pytest
from pyrage import x25519

from intake.crypto.envelope import read_report, seal_envelope
from intake.crypto.keys import (
    DEMO_MARKER,
    KeyFileError,
    encrypt_identity,
    generate_identity,
    is_demo_recipients,
    is_encrypted_identity,
    load_identities,
    load_recipients,
    parse_recipients,
    recipient_fingerprint,
)

AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")
needs_age = pytest.mark.skipif(
    AGE is None or AGE_KEYGEN is None, reason="the age CLI (age, age-keygen) is not on PATH"
)


def _new_recipient() -> str:
    return str(x25519.Identity.generate().to_public())


def _new_secret() -> str:
    return str(x25519.Identity.generate())


# --- recipients files ------------------------------------------------------------


def test_comments_blanks_and_duplicates() -> None:
    first, second = _new_recipient(), _new_recipient()
    text = (
        f"# staff key of the Kyiv office\n\n   \n{first}\n  {second}  \r\n# again:\n{first}\n\t\n"
    )
    parsed = parse_recipients(text, "keys/recipients.txt")
    assert [str(r) for r in parsed] == [first, second]


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    recipient = _new_recipient()
    path = tmp_path / "recipients.txt"
    path.write_bytes(b"\xef\xbb\xbf" + recipient.encode() + b"\n")
    assert [str(r) for r in load_recipients(path)] == [recipient]


@pytest.mark.parametrize(
    ("bad_line", "why"),
    [
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA x@y", "not an age X25519 recipient"),
        ("age1notarealkey", "malformed age recipient"),
        ("age1" + "q" * 58, "malformed age recipient"),
        ("hello world", "not an age X25519 recipient"),
    ],
)
def test_every_error_names_file_and_line(tmp_path: Path, bad_line: str, why: str) -> None:
    path = tmp_path / "recipients.txt"
    path.write_text(f"# header\n{_new_recipient()}\n\n{bad_line}\n", encoding="utf-8")
    with pytest.raises(KeyFileError) as caught:
        load_recipients(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:4: "), message
    assert why in message
    assert "\n" not in message


def test_line_numbers_count_newlines_only() -> None:
    # A form feed or U+2028 inside a file does not start a new line for an
    # editor or for age; the reported line must be the one the user sees.
    text = f"{_new_recipient()}\n# page\x0c# break\u2028# still line 2\nbogus\n"
    with pytest.raises(KeyFileError, match=r"^r\.txt:3: "):
        parse_recipients(text, "r.txt")


@pytest.mark.parametrize(
    "make_line",
    [
        lambda key: key,
        lambda key: key.lower(),
        lambda key: f"age1 and also {key} here",
        lambda key: f"# old key, kept just in case: {key}",
        lambda key: f"   {key.lower()}   ",
        lambda key: f"x{key[:20].lower()}",
    ],
    ids=["plain", "lowercase", "embedded", "in-a-comment", "padded-lowercase", "prefix-only"],
)
def test_private_key_is_refused_with_keep_offline_advice(tmp_path: Path, make_line: object) -> None:
    secret = _new_secret()
    line = make_line(secret)  # type: ignore[operator]
    path = tmp_path / "recipients.txt"
    path.write_text(f"{_new_recipient()}\n{line}\n", encoding="utf-8")
    with pytest.raises(KeyFileError) as caught:
        load_recipients(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:2: ")
    assert "private key" in message
    assert "offline" in message
    # The error is printed in logs: it must not repeat the key material.
    assert secret[len("AGE-SECRET-KEY-") :].lower() not in message.lower()


def test_empty_and_comment_only_files_are_refused(tmp_path: Path) -> None:
    for content in ["", "\n\n", "# just a comment\n", DEMO_MARKER + "\n"]:
        path = tmp_path / "recipients.txt"
        path.write_text(content, encoding="utf-8")
        with pytest.raises(KeyFileError, match="holds no recipient") as caught:
            load_recipients(path)
        assert str(path) in str(caught.value)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "recipients.txt"
    with pytest.raises(KeyFileError, match="not found") as caught:
        load_recipients(path)
    assert str(path) in str(caught.value)


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot be read") as caught:
        load_recipients(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "recipients.txt"
    path.write_bytes(_new_recipient().encode() + b"\n\xff\xfe caf\xe9\n")
    with pytest.raises(KeyFileError, match="not UTF-8") as caught:
        load_recipients(path)
    assert str(path) in str(caught.value)


def test_huge_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "recipients.txt"
    path.write_bytes((_new_recipient() + "\n").encode() * 20_000)
    with pytest.raises(KeyFileError, match="too large"):
        load_recipients(path)


def test_demo_marker(tmp_path: Path) -> None:
    path = tmp_path / "recipients.txt"
    path.write_text(f"{DEMO_MARKER}\n{_new_recipient()}\n", encoding="utf-8")
    assert is_demo_recipients(path)
    assert load_recipients(path)  # the marker is a comment
    path.write_text(f"{_new_recipient()}\n{DEMO_MARKER}\n", encoding="utf-8")
    assert not is_demo_recipients(path)
    assert not is_demo_recipients(tmp_path / "missing.txt")


# --- fingerprints ----------------------------------------------------------------


def test_fingerprint_is_stable_documented_and_distinct() -> None:
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    expected = "SHA256:" + base64.b64encode(
        hashlib.sha256(recipient.encode()).digest()
    ).decode().rstrip("=")
    assert recipient_fingerprint(recipient) == expected
    assert recipient_fingerprint(recipient) == recipient_fingerprint(recipient)
    assert recipient_fingerprint(identity.to_public()) == expected
    assert recipient_fingerprint(f"  {recipient}\n") == expected
    others = {recipient_fingerprint(_new_recipient()) for _ in range(50)}
    assert expected not in others
    assert len(others) == 50
    assert len(expected) == len("SHA256:") + 43


# --- identities ------------------------------------------------------------------


def test_generate_identity_round_trip() -> None:
    text, recipient = generate_identity()
    assert f"# public key: {recipient}" in text
    assert text.count("AGE-SECRET-KEY-1") == 1
    (identity,) = load_identities(text.encode(), "new.txt")
    assert str(identity.to_public()) == recipient
    assert generate_identity()[1] != recipient


@needs_age
def test_generate_identity_is_read_by_age_keygen(tmp_path: Path) -> None:
    text, recipient = generate_identity()
    path = tmp_path / "identity.txt"
    path.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [str(AGE_KEYGEN), "-y", str(path)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == recipient


@needs_age
def test_identity_from_age_keygen_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    subprocess.run([str(AGE_KEYGEN), "-o", str(path)], capture_output=True, check=True)
    expected = subprocess.run(
        [str(AGE_KEYGEN), "-y", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()
    identities = load_identities(path.read_bytes(), str(path))
    assert [str(i.to_public()) for i in identities] == [expected]
    assert not is_encrypted_identity(path.read_bytes())


def test_encrypted_identity_right_and_wrong_passphrase() -> None:
    text, recipient = generate_identity()
    secret_line = next(line for line in text.splitlines() if line.startswith("AGE-SECRET"))
    sealed = encrypt_identity(text, "correct horse battery staple")
    assert is_encrypted_identity(sealed)
    assert sealed.startswith(b"age-encryption.org/v1\n")
    assert secret_line.encode() not in sealed

    calls: list[int] = []

    def right() -> str:
        calls.append(1)
        return "correct horse battery staple"

    (identity,) = load_identities(sealed, "identity.age", right)
    assert str(identity.to_public()) == recipient
    assert calls == [1]

    with pytest.raises(KeyFileError) as caught:
        load_identities(sealed, "identity.age", lambda: "Correct horse battery staple")
    message = str(caught.value)
    assert message.startswith("identity.age: ")
    assert "passphrase" in message
    assert "Correct horse" not in message
    assert secret_line not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

    with pytest.raises(KeyFileError, match="passphrase is needed"):
        load_identities(sealed, "identity.age", None)


def _with_work_factor(sealed: bytes, factor: int) -> bytes:
    header, _, rest = sealed.partition(b"\n-> scrypt ")
    salt, _, after = rest.partition(b" ")
    return (
        header + b"\n-> scrypt " + salt + b" " + str(factor).encode() + after[after.index(b"\n") :]
    )


def test_a_work_factor_beyond_this_machine_is_refused_as_such() -> None:
    sealed = encrypt_identity(generate_identity()[0], "pass")
    # 2^40 scrypt rounds: age refuses before doing any of the work.
    with pytest.raises(KeyFileError) as caught:
        load_identities(_with_work_factor(sealed, 40), "identity.age", lambda: "pass")
    assert str(caught.value).startswith("identity.age: the passphrase protection asks for more")
    assert "wrong passphrase" not in str(caught.value)


def test_a_momentary_excessive_work_refusal_is_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # age measures this machine on every call; under load the measure comes out
    # low and a file written here a moment ago is refused once. The next try works.
    text, recipient = generate_identity()
    sealed = encrypt_identity(text, "pass")
    real_decrypt = pyrage.passphrase.decrypt
    refusals = [pyrage.DecryptError("Excessive work parameter for passphrase.")]

    def busy_then_real(data: bytes, passphrase: str) -> bytes:
        if refusals:
            raise refusals.pop()
        decrypted: bytes = real_decrypt(data, passphrase)
        return decrypted

    monkeypatch.setattr(pyrage.passphrase, "decrypt", busy_then_real)
    (identity,) = load_identities(sealed, "identity.age", lambda: "pass")
    assert str(identity.to_public()) == recipient
    assert refusals == []


def test_empty_passphrase_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        encrypt_identity(generate_identity()[0], "")


def test_armored_identity_with_surrounding_whitespace() -> None:
    text, recipient = generate_identity()
    armored = pyrage.passphrase.encrypt(text.encode(), "pw", armored=True)
    for data in (armored, b"\n  " + armored + b"\r\n\n"):
        assert is_encrypted_identity(data)
        (identity,) = load_identities(data, "identity.age", lambda: "pw")
        assert str(identity.to_public()) == recipient


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", r"^id\.txt: holds no identity$"),
        (b"# only a comment\n\n", r"^id\.txt: holds no identity$"),
        (b"\xff\xfe\x00garbage", r"^id\.txt: is neither an identity file nor an age file$"),
        (b"# c\nage1qqqqqqqq\n", r"^id\.txt:2: not an age identity"),
        (b"\n\nAGE-SECRET-KEY-1QQQQQQQQQQQQQQQ\n", r"^id\.txt:3: malformed age identity$"),
        (b"x" * (2 << 20), r"^id\.txt: too large"),
    ],
)
def test_bad_identity_files(data: bytes, match: str) -> None:
    with pytest.raises(KeyFileError, match=match):
        load_identities(data, "id.txt")


def test_several_identities_in_one_file() -> None:
    a, b = generate_identity(), generate_identity()
    identities = load_identities((a[0] + "\n" + b[0]).encode(), "ids.txt")
    assert [str(i.to_public()) for i in identities] == [a[1], b[1]]


# --- the age CLI opens what we write ------------------------------------------------


def _seal_small(recipient: str, out: Path) -> bytes:
    report = b'{"schema": 1, "note": "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"}'
    with out.open("wb") as handle:
        seal_envelope(report, [], [x25519.Recipient.from_str(recipient)], handle)
    return report


@needs_age
def test_age_cli_decrypts_with_our_passphrase_protected_identity(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    text, recipient = generate_identity()
    identity_path = tmp_path / "identity.age"
    identity_path.write_bytes(encrypt_identity(text, "s3cret passphrase"))
    report = _seal_small(recipient, tmp_path / "envelope.age")
    out = tmp_path / "plain.tar"

    child = pexpect.spawn(
        str(AGE),
        ["-d", "-i", str(identity_path), "-o", str(out), str(tmp_path / "envelope.age")],
        timeout=60,
    )
    child.expect("(?i)passphrase")
    child.sendline("s3cret passphrase")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    with tarfile.open(out) as archive:
        assert archive.getnames()[0] == "report.json"
        member = archive.extractfile("report.json")
        assert member is not None
        assert member.read() == report


@needs_age
def test_age_cli_refuses_a_wrong_passphrase(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    text, recipient = generate_identity()
    identity_path = tmp_path / "identity.age"
    identity_path.write_bytes(encrypt_identity(text, "right one"))
    _seal_small(recipient, tmp_path / "envelope.age")
    out = tmp_path / "plain.tar"
    child = pexpect.spawn(
        str(AGE),
        ["-d", "-i", str(identity_path), "-o", str(out), str(tmp_path / "envelope.age")],
        timeout=60,
    )
    child.expect("(?i)passphrase")
    child.sendline("wrong one")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus != 0
    assert not out.exists() or out.stat().st_size == 0


@needs_age
def test_identity_encrypted_by_age_cli_is_loaded(tmp_path: Path) -> None:
    """The other direction: an identity protected with ``age -p`` unlocks here."""
    pexpect = pytest.importorskip("pexpect")
    key = tmp_path / "key.txt"
    subprocess.run([str(AGE_KEYGEN), "-o", str(key)], capture_output=True, check=True)
    recipient = subprocess.run(
        [str(AGE_KEYGEN), "-y", str(key)], capture_output=True, text=True, check=True
    ).stdout.strip()
    sealed = tmp_path / "key.age"
    child = pexpect.spawn(str(AGE), ["-p", "-o", str(sealed), str(key)], timeout=60)
    for _ in range(2):  # "Enter passphrase", then "Confirm passphrase"
        child.expect("(?i)passphrase")
        child.sendline("from the cli")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    (identity,) = load_identities(sealed.read_bytes(), str(sealed), lambda: "from the cli")
    assert str(identity.to_public()) == recipient
    # and it opens an envelope sealed to that recipient
    envelope = io.BytesIO()
    seal_envelope(b'{"a": 1}', [], [x25519.Recipient.from_str(recipient)], envelope)

    envelope.seek(0)
    assert read_report(envelope, [identity]) == {"a": 1}
