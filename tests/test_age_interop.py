"""The product promise: standard tools and intake read each other's envelopes.

A staff member with only Debian's ``age`` and GNU ``tar`` must be able to read
every report (``age -d -i key envelope.age | tar -x``), and the review tool must
open an envelope made by those tools in the documented layout.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from intake.crypto.envelope import (
    AttachmentSource,
    EnvelopeError,
    open_envelope,
    padded_size,
    read_report,
    seal_envelope,
)
from intake.crypto.keys import load_identities, load_recipients

AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")
TAR = shutil.which("tar")

pytestmark = pytest.mark.skipif(
    AGE is None or AGE_KEYGEN is None or TAR is None,
    reason="needs the age CLI (age, age-keygen) and tar on PATH (Debian: apt install age tar)",
)


def _keygen(path: Path) -> str:
    subprocess.run([str(AGE_KEYGEN), "-o", str(path)], capture_output=True, check=True)
    return subprocess.run(
        [str(AGE_KEYGEN), "-y", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "id.txt"
    return path, _keygen(path)


def _source(name: str, data: bytes) -> AttachmentSource:
    return AttachmentSource(
        name, len(data), hashlib.sha256(data).hexdigest(), lambda: io.BytesIO(data)
    )


def _age_decrypt_untar(identity: Path, envelope: Path, into: Path) -> None:
    """``age -d -i identity envelope | tar -x -C into``, as a staff member would run it."""
    into.mkdir()
    age = subprocess.Popen(
        [str(AGE), "-d", "-i", str(identity), str(envelope)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert age.stdout is not None
    tar = subprocess.run(
        [str(TAR), "-x", "-C", str(into)], stdin=age.stdout, capture_output=True, check=False
    )
    age.stdout.close()
    age_err = age.stderr.read() if age.stderr else b""
    assert age.wait() == 0, age_err
    assert tar.returncode == 0, tar.stderr


def _files_under(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_age_and_tar_read_our_envelope(tmp_path: Path, key: tuple[Path, str]) -> None:
    identity_path, recipient = key
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"# staff\n{recipient}\n", encoding="utf-8")
    report = '{"schema": 1, "text": "Задержан 3 марта"}'.encode()
    attachments = {
        "photo.jpg": os.urandom(300_001),
        "Протокол.pdf": os.urandom(70_000),
        "../../escape.txt": b"stays inside",
        "empty": b"",
    }
    envelope = tmp_path / "envelope.age"
    with envelope.open("wb") as out:
        result = seal_envelope(
            report,
            [_source(n, d) for n, d in attachments.items()],
            load_recipients(recipients),
            out,
        )
    assert envelope.stat().st_size == result.envelope_size

    into = tmp_path / "out"
    _age_decrypt_untar(identity_path, envelope, into)
    files = _files_under(into)
    assert files.pop("report.json") == report
    padding = files.pop("padding")
    assert padding == b"\0" * len(padding)
    assert files == {
        "attachments/01-photo.jpg": attachments["photo.jpg"],
        "attachments/02-Протокол.pdf": attachments["Протокол.pdf"],
        "attachments/03-escape.txt": b"stays inside",
        "attachments/04-empty": b"",
    }
    assert not (tmp_path / "escape.txt").exists()


def _gnu_tar_envelope(
    workdir: Path, age_args: list[str], tar_format: str, data: bytes
) -> tuple[bytes, bytes]:
    """The documented layout, made with GNU tar and encrypted with ``age``."""
    src = workdir / "src"
    (src / "attachments").mkdir(parents=True)
    report = b'{"schema": 1, "from": "gnu tar"}'
    (src / "report.json").write_bytes(report)
    (src / "attachments" / "01-x").write_bytes(data)
    (src / "padding").write_bytes(b"\0" * 3000)
    tar = subprocess.run(
        [
            str(TAR),
            "-c",
            f"--format={tar_format}",
            "-C",
            str(src),
            "report.json",
            "attachments/01-x",
            "padding",
        ],
        capture_output=True,
        check=True,
    )
    age = subprocess.run([str(AGE), *age_args], input=tar.stdout, capture_output=True, check=True)
    return report, age.stdout


@pytest.mark.parametrize("tar_format", ["gnu", "ustar", "posix"])
def test_we_open_what_gnu_tar_and_age_made(
    tmp_path: Path, key: tuple[Path, str], tar_format: str
) -> None:
    identity_path, recipient = key
    data = os.urandom(123_457)
    report, envelope = _gnu_tar_envelope(tmp_path, ["-r", recipient], tar_format, data)
    identities = load_identities(identity_path.read_bytes(), str(identity_path))
    sinks: dict[str, io.BytesIO] = {}

    def sink(name: str, size: int) -> io.BytesIO:
        sinks[name] = io.BytesIO()
        return sinks[name]

    opened = open_envelope(io.BytesIO(envelope), identities, sink)
    assert opened.report == {"schema": 1, "from": "gnu tar"}
    assert [(m.member, m.size) for m in opened.attachments] == [("attachments/01-x", len(data))]
    assert sinks["attachments/01-x"].getvalue() == data
    assert read_report(io.BytesIO(envelope), identities) == {"schema": 1, "from": "gnu tar"}
    assert report


def test_armored(tmp_path: Path, key: tuple[Path, str]) -> None:
    identity_path, recipient = key
    data = os.urandom(50_000)
    _, envelope = _gnu_tar_envelope(tmp_path, ["-a", "-r", recipient], "gnu", data)
    assert envelope.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    identities = load_identities(identity_path.read_bytes(), str(identity_path))
    opened = open_envelope(io.BytesIO(envelope), identities)
    assert opened.attachments[0].size == len(data)


def test_several_recipients_and_recipients_file(tmp_path: Path) -> None:
    keys = [tmp_path / f"id{i}.txt" for i in range(3)]
    recipients = [_keygen(path) for path in keys]
    data = os.urandom(10_000)
    (tmp_path / "a").mkdir()
    _, by_flags = _gnu_tar_envelope(
        tmp_path / "a", ["-r", recipients[0], "-r", recipients[1]], "gnu", data
    )
    recipients_file = tmp_path / "recipients.txt"
    recipients_file.write_text("# office\n" + "\n".join(recipients) + "\n", encoding="utf-8")
    (tmp_path / "b").mkdir()
    _, by_file = _gnu_tar_envelope(tmp_path / "b", ["-R", str(recipients_file)], "gnu", data)

    for envelope, holders in ((by_flags, keys[:2]), (by_file, keys)):
        for path in holders:
            identities = load_identities(path.read_bytes(), str(path))
            opened = open_envelope(io.BytesIO(envelope), identities)
            assert opened.report["from"] == "gnu tar"
    # the third key was not a recipient of the first envelope
    with pytest.raises(EnvelopeError):
        open_envelope(io.BytesIO(by_flags), load_identities(keys[2].read_bytes(), "id2"))


def test_age_reads_an_envelope_sealed_to_several_recipients(tmp_path: Path) -> None:
    keys = [tmp_path / f"id{i}.txt" for i in range(2)]
    recipients_file = tmp_path / "recipients.txt"
    recipients_file.write_text("\n".join(_keygen(p) for p in keys) + "\n", encoding="utf-8")
    envelope = tmp_path / "envelope.age"
    with envelope.open("wb") as out:
        result = seal_envelope(
            b'{"a": 1}', [_source("f.txt", b"hi")], load_recipients(recipients_file), out
        )
    assert result.plaintext_size == padded_size(result.plaintext_size)
    for index, path in enumerate(keys):
        into = tmp_path / f"out{index}"
        _age_decrypt_untar(path, envelope, into)
        assert (into / "attachments" / "01-f.txt").read_bytes() == b"hi"
