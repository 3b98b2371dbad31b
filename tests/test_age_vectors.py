"""C2SP age test vectors against the review side's decrypt path.

Each vector in ``../shared/vectors/age`` (C2SP/CCTV ``age/testdata``) is an age
file with the expected outcome. ``identity:`` vectors go through exactly what
the review tool does with an envelope: identities parsed by
:func:`intake.crypto.keys.load_identities`, decryption by
:func:`intake.crypto.envelope.decrypt_stream` (the function ``open_envelope``
and ``read_report`` use). ``passphrase:`` vectors exercise
``pyrage.passphrase.decrypt``, which unlocks passphrase-protected identity
files; they run in a child process with a 2 GiB address-space cap, so a
library that starts an absurd scrypt computation instead of refusing it is
seen as "accepted" without endangering the test machine.

Deviations of pyrage from the spec are listed in :data:`KNOWN_DEVIATIONS` and
marked ``xfail(strict=True)``: a new deviation fails, and so does a fixed one
(then remove it from the list). The one exception, :data:`MACHINE_DEPENDENT`,
is an xfail that may pass: its outcome depends on the CPU's speed and load.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyrage import x25519

from intake.crypto.envelope import EnvelopeError, decrypt_stream
from intake.crypto.keys import load_identities

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "age"
if not VECTORS.is_dir():
    pytest.skip(f"age test vectors not found at {VECTORS}", allow_module_level=True)

EXPECTATIONS = {
    "success",
    "header failure",
    "armor failure",
    "payload failure",
    "no match",
    "HMAC failure",
}

#: Seen with pyrage 1.4.0 (rage 0.11). Keep in step with SOURCE.md.
KNOWN_DEVIATIONS: dict[str, str] = {
    "armor_whitespace_outside": (
        "pyrage rejects whitespace before/after an armored file, which the spec allows; "
        "intake envelopes are binary, and load_identities strips it for armored identities"
    ),
    "scrypt_work_factor_23": (
        "pyrage accepts scrypt work factor 23 (the spec caps it at 22) and tries to "
        "allocate 8 GiB instead of refusing; only passphrase-protected identity files, "
        "which staff make themselves, reach this path"
    ),
    "stanza_missing_body": "pyrage accepts a stanza with no body line (must end with one)",
    "stanza_missing_final_line": "pyrage accepts a stanza whose final short line is missing",
}

#: Deviations whose outcome depends on the machine, so they cannot be strict:
#: rage caps the scrypt work factor at its *measured* target + 4 (the target is
#: calibrated at run time to about a second), so factor 23 is attempted on an
#: idle fast machine and refused on a slow or loaded one. The spec's cap is 22.
MACHINE_DEPENDENT = frozenset({"scrypt_work_factor_23"})

HYBRID_REASON = "post-quantum recipients: not implemented by age 1.1 / pyrage"


@dataclass(frozen=True)
class Vector:
    name: str
    expect: str
    payload_sha256: str | None
    identities: tuple[str, ...]
    passphrase: str | None
    armored: bool
    body: bytes


def parse_vector(path: Path) -> Vector:
    raw = path.read_bytes()
    head, separator, body = raw.partition(b"\n\n")
    assert separator, f"{path.name}: no blank line after the header"
    fields: dict[str, list[str]] = {}
    for line in head.decode("utf-8").split("\n"):
        key, colon, value = line.partition(": ")
        assert colon, f"{path.name}: bad header line {line!r}"
        fields.setdefault(key, []).append(value)
    if fields.get("compressed") == ["zlib"]:
        body = zlib.decompress(body)
    expect = fields["expect"][0]
    assert expect in EXPECTATIONS, f"{path.name}: unknown expectation {expect!r}"
    return Vector(
        name=path.name,
        expect=expect,
        payload_sha256=fields.get("payload", [None])[0],
        identities=tuple(fields.get("identity", [])),
        passphrase=fields.get("passphrase", [None])[0],
        armored=fields.get("armored") == ["yes"],
        body=body,
    )


def _vector_files() -> list[Path]:
    return sorted(p for p in VECTORS.iterdir() if p.is_file() and p.name != "SOURCE.md")


def _params() -> list[object]:
    params: list[object] = []
    for path in _vector_files():
        marks: list[pytest.MarkDecorator] = []
        if path.name.startswith("hybrid") or path.name == "armor_hybrid":
            marks.append(pytest.mark.skip(reason=HYBRID_REASON))
        elif path.name in KNOWN_DEVIATIONS:
            strict = path.name not in MACHINE_DEPENDENT
            marks.append(pytest.mark.xfail(reason=KNOWN_DEVIATIONS[path.name], strict=strict))
        params.append(pytest.param(path, id=path.name, marks=marks))
    return params


def test_the_vector_set_is_complete() -> None:
    files = _vector_files()
    assert len(files) == 143
    names = {p.name for p in files}
    assert set(KNOWN_DEVIATIONS) <= names
    assert set(KNOWN_DEVIATIONS) >= MACHINE_DEPENDENT
    vectors = [parse_vector(p) for p in files]
    assert sum(v.expect == "success" for v in vectors) >= 10
    both = {v.name for v in vectors if v.identities and v.passphrase is not None}
    assert both == {"scrypt_and_x25519"}  # tried both ways, both must fail
    keyless = {v.name for v in vectors if not v.identities and v.passphrase is None}
    assert keyless == {"empty", "armor_empty"}


# A child process with a capped address space: scrypt with an absurd work factor
# must be refused, not attempted (an attempt aborts the child on allocation).
_PASSPHRASE_CHILD = """
import hashlib, json, resource, sys
import pyrage
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
body = sys.stdin.buffer.read()
try:
    plain = pyrage.passphrase.decrypt(body, sys.argv[1])
except Exception as exc:
    print(json.dumps({"ok": False, "error": type(exc).__name__}))
else:
    print(json.dumps({"ok": True, "sha256": hashlib.sha256(plain).hexdigest()}))
"""


def _decrypt_with_passphrase(vector: Vector) -> str | None:
    """SHA-256 of the plaintext, or None when refused (or when the child crashed)."""
    assert vector.passphrase is not None
    done = subprocess.run(
        [sys.executable, "-c", _PASSPHRASE_CHILD, vector.passphrase],
        input=vector.body,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        # Aborted trying to allocate the scrypt memory: it did not refuse the file.
        return "crashed: " + done.stderr.decode(errors="replace").splitlines()[0][:100]
    result = json.loads(done.stdout)
    return result["sha256"] if result["ok"] else None


def _decrypt_with_identity(vector: Vector) -> str | None:
    # Two vectors ("empty", "armor_empty") name no key: they must fail in the
    # header whatever the identity, so an unrelated one is used.
    text = "\n".join(vector.identities) or str(x25519.Identity.generate())
    identities = load_identities(text.encode(), f"{vector.name}:identity")
    out = io.BytesIO()
    try:
        decrypt_stream(io.BytesIO(vector.body), identities, out)
    except EnvelopeError as exc:
        message = str(exc)
        assert message.isprintable() and len(message) <= 300, message
        return None
    return hashlib.sha256(out.getvalue()).hexdigest()


@pytest.mark.parametrize("path", _params())
def test_vector(path: Path) -> None:
    vector = parse_vector(path)
    outcomes = []
    if vector.passphrase is not None:
        outcomes.append(("passphrase", _decrypt_with_passphrase(vector)))
    if vector.identities or vector.passphrase is None:
        outcomes.append(("identity", _decrypt_with_identity(vector)))
    for how, outcome in outcomes:
        if vector.expect == "success":
            assert outcome == vector.payload_sha256, f"{vector.name} ({how}): expected success"
        else:
            assert outcome is None, (
                f"{vector.name} ({how}): expected {vector.expect}, got {outcome}"
            )
