"""Coverage-guided fuzzing of the envelope reader with atheris (libFuzzer).

Each input is used twice:

1. as the *plaintext* of an envelope: sealed with ``pyrage.encrypt`` to a fixed
   test key and opened with ``open_envelope`` and ``read_report`` -- this is
   the interesting target, since anyone can seal anything to our public key;
2. raw, as the envelope itself (exercising the age layer and error mapping).

The only exception allowed out of ``intake.crypto.envelope`` is
``EnvelopeError``; the attachment sink checks it is never offered a name outside
``attachments/``. Anything else crashes the fuzzer, which saves the input.

Run (see fuzz/README.md)::

    PYTHONPATH=. python fuzz/atheris_envelope.py -max_total_time=60
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import intake.crypto.envelope as envelope

import pyrage
from pyrage import x25519

# A fixed test key: only for this fuzzer, never for anything real.
IDENTITY = x25519.Identity.from_str(
    "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0"
)
RECIPIENT = IDENTITY.to_public()
SAFE_MEMBER = re.compile(r"attachments/[0-9]{2,4}-[^/\\\x00-\x1f\x7f-\x9f]+")


class Sink:
    """Checks every name open_envelope offers; keeps only a byte count."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.written = 0

    def __call__(self, name: str, size: int) -> Sink:
        if not SAFE_MEMBER.fullmatch(name) or ".." in name or name in self.names:
            raise AssertionError(f"unsafe attachment name offered: {name!r}")
        self.names.add(name)
        return self

    def write(self, data: bytes) -> int:
        self.written += len(data)
        return len(data)


def _open(data: bytes) -> None:
    try:
        opened = envelope.open_envelope(io.BytesIO(data), [IDENTITY], Sink())  # type: ignore[arg-type]
    except envelope.EnvelopeError as exc:
        message = str(exc)
        if not message or not message.isprintable() or len(message) > 300:
            raise AssertionError(f"bad error message: {message!r}") from None
    else:
        if not isinstance(opened.report, dict):
            raise AssertionError("report is not a dict")
    with contextlib.suppress(envelope.EnvelopeError):
        envelope.read_report(io.BytesIO(data), [IDENTITY])


def _fix_checksums(plaintext: bytes) -> bytes:
    """Give every 512-byte block that looks like a tar header a correct checksum.

    Without this, nearly every mutation of a header is refused for its
    checksum alone, and the fuzzer never gets further.
    """
    buffer = bytearray(plaintext)
    for start in range(0, len(buffer) - 511, 512):
        block = buffer[start : start + 512]
        if block[257:262] == b"ustar":
            block[148:156] = b"        "
            block[148:156] = b"%06o\0 " % sum(block)
            buffer[start : start + 512] = block
    return bytes(buffer)


def TestOneInput(data: bytes) -> None:
    """First byte: bit 0 set = repair tar checksums. The rest: the plaintext."""
    if not data:
        return
    plaintext = data[1:]
    if data[0] & 1:
        plaintext = _fix_checksums(plaintext)
    _open(pyrage.encrypt(plaintext, [RECIPIENT]))
    _open(data)


def _seeds() -> list[bytes]:
    """Valid plaintexts (the layouts seal_envelope and GNU tar write), mode byte first."""
    seeds = []
    for names in (["a.txt"], ["Фото допроса.jpg", "b"], []):
        out = io.BytesIO()
        sources = [
            envelope.AttachmentSource(name, 5, "", lambda: io.BytesIO(b"hello")) for name in names
        ]
        envelope.seal_envelope(b'{"schema": 1, "k": [1]}', sources, [RECIPIENT], out)
        plaintext: bytes = pyrage.decrypt(out.getvalue(), [IDENTITY])
        # the 16 KiB of padding is dull: keep the headers and a little of it
        seeds.append(b"\1" + plaintext[:4096] + b"\0" * 1024)
    return seeds


def main() -> None:
    argv = list(sys.argv)
    if not any(not arg.startswith("-") for arg in argv[1:]):
        # No corpus directory given: start from a fresh one holding the seeds.
        corpus = tempfile.mkdtemp(prefix="intake-envelope-corpus-")
        argv.append(corpus)
    for arg in argv[1:]:
        directory = Path(arg)
        if not arg.startswith("-") and directory.is_dir() and not any(directory.iterdir()):
            for number, seed in enumerate(_seeds()):
                (directory / f"seed-{number}").write_bytes(seed)
    for seed in _seeds():
        TestOneInput(seed)  # the valid cases must work before fuzzing starts
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
