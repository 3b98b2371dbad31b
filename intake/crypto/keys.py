"""Age keys: recipients files on the server, identity files on the offline machine.

The server only ever loads *recipients* (public keys). It refuses a recipients
file that holds anything looking like a private key, so a mistaken copy never
makes the server able to read what it stores.

Identity files are read in the formats the ``age`` CLI reads: plain (as
``age-keygen`` writes them) or encrypted with a passphrase (age's scrypt
recipient, binary or ASCII-armored), so ``age -d -i identity.age`` works on the
files ``intake-review keygen`` writes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyrage
from pyrage import x25519

__all__ = [
    "DEMO_MARKER",
    "KeyFileError",
    "encrypt_identity",
    "generate_identity",
    "is_demo_recipients",
    "is_encrypted_identity",
    "load_identities",
    "load_recipients",
    "parse_recipients",
    "recipient_fingerprint",
]

#: First line of a recipients file made by ``python -m intake.demo``; the web
#: pages show a "demo key" banner whenever the loaded file carries it.
DEMO_MARKER = "# intake demo key: do not submit real reports"

_SECRET_PREFIX = "AGE-SECRET-KEY-"  # noqa: S105 - a prefix to detect, not a secret  # nosec B105
_AGE_BINARY_MAGIC = b"age-encryption.org/v1\n"
_AGE_ARMOR_BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
# Limits for files we parse: a recipients or identity file is a few lines.
_MAX_KEY_FILE_BYTES = 1 << 20


class KeyFileError(ValueError):
    """A recipients or identity file that cannot be used; the message names file and line."""


def parse_recipients(text: str, source: str) -> list[x25519.Recipient]:
    """Parse the text of an age recipients file (the format ``age -R`` reads).

    One ``age1…`` X25519 recipient per line; blank lines and ``#`` comments are
    skipped. Anything else, including any private key, is refused.
    """
    recipients: list[x25519.Recipient] = []
    seen: set[str] = set()
    for number, line in _numbered_lines(text):
        # Checked before comments are skipped: a commented-out private key is
        # still a private key on the server.
        if _SECRET_PREFIX in line.upper():
            raise KeyFileError(
                f"{source}:{number}: this looks like a private key (AGE-SECRET-KEY-…); "
                "the server must hold public recipients only: remove it and keep it offline"
            )
        if not line or line.startswith("#"):
            continue
        if not line.startswith("age1"):
            raise KeyFileError(
                f"{source}:{number}: not an age X25519 recipient (expected a line starting 'age1')"
            )
        try:
            recipient = x25519.Recipient.from_str(line)
        except (pyrage.RecipientError, ValueError) as exc:
            raise KeyFileError(f"{source}:{number}: malformed age recipient ({exc})") from None
        if line not in seen:
            seen.add(line)
            recipients.append(recipient)
    if not recipients:
        raise KeyFileError(f"{source}: holds no recipient; add at least one 'age1…' line")
    return recipients


def load_recipients(path: Path) -> list[x25519.Recipient]:
    """Read and validate a recipients file; see :func:`parse_recipients`."""
    return parse_recipients(_read_text(path), str(path))


def is_demo_recipients(path: Path) -> bool:
    """Whether a recipients file is the generated demo key (its first line is the marker)."""
    try:
        first_line = _read_text(path).removeprefix("\ufeff").split("\n", 1)[0].strip()
    except KeyFileError:
        return False
    return first_line == DEMO_MARKER


def recipient_fingerprint(recipient: str | x25519.Recipient) -> str:
    """A short, stable fingerprint of a recipient: ``SHA256:`` and base64 of its digest.

    Staff compare it with ``intake-review keygen`` output and ``/metadata``.
    """
    digest = hashlib.sha256(str(recipient).strip().encode("ascii")).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def generate_identity() -> tuple[str, str]:
    """A new X25519 identity: ``(identity_file_text, recipient)``.

    The text is what ``age-keygen`` writes: comments with the creation time and
    the public key, then the ``AGE-SECRET-KEY-1…`` line.
    """
    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    created = datetime.now(UTC).replace(microsecond=0).isoformat()
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    return text, recipient


def encrypt_identity(identity_text: str, passphrase: str) -> bytes:
    """Encrypt an identity file with a passphrase (age scrypt), as ``age -p`` would.

    The result is binary age; ``age -d -i`` asks for the passphrase and uses it.
    """
    if not passphrase:
        raise ValueError("the passphrase must not be empty")
    encrypted: bytes = pyrage.passphrase.encrypt(identity_text.encode("utf-8"), passphrase)
    return encrypted


def is_encrypted_identity(data: bytes) -> bool:
    """Whether identity file bytes are an age-encrypted (passphrase-protected) file."""
    head = data.lstrip()[: len(_AGE_ARMOR_BEGIN)]
    return data.startswith(_AGE_BINARY_MAGIC) or head == _AGE_ARMOR_BEGIN


def load_identities(
    data: bytes, source: str, passphrase: Callable[[], str] | None = None
) -> list[x25519.Identity]:
    """Parse an identity file, decrypting it first when it is passphrase-protected.

    ``passphrase`` is called only for an encrypted file. Errors name the file
    and, for a bad line, the line number; they never echo key material.
    """
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{source}: too large to be an identity file")
    if is_encrypted_identity(data):
        if passphrase is None:
            raise KeyFileError(f"{source}: is passphrase-protected; a passphrase is needed")
        if not data.startswith(_AGE_BINARY_MAGIC):
            # ASCII armor may be surrounded by whitespace (age accepts it; pyrage does not).
            data = data.strip()
        data = _decrypt_identity_file(data, passphrase(), source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(f"{source}: is neither an identity file nor an age file") from None
    identities: list[x25519.Identity] = []
    for number, line in _numbered_lines(text):
        if not line or line.startswith("#"):
            continue
        if not line.startswith(_SECRET_PREFIX):
            raise KeyFileError(
                f"{source}:{number}: not an age identity (expected 'AGE-SECRET-KEY-1…')"
            )
        try:
            identities.append(x25519.Identity.from_str(line))
        except (pyrage.IdentityError, ValueError):
            raise KeyFileError(f"{source}:{number}: malformed age identity") from None
    if not identities:
        raise KeyFileError(f"{source}: holds no identity")
    return identities


#: How often to try a passphrase-protected file whose scrypt work factor pyrage
#: calls excessive (see :func:`_decrypt_identity_file`).
_EXCESSIVE_WORK_ATTEMPTS = 3


def _decrypt_identity_file(data: bytes, passphrase: str, source: str) -> bytes:
    """Decrypt a passphrase-protected identity file.

    age caps the scrypt work factor it accepts at a few steps above what this
    machine does in about a second, and measures that anew on every call with a
    short timing run. A moment of load (a busy laptop) makes the measure low and
    refuses a file ``age -p`` wrote here a moment ago, so that refusal is tried
    again; a file whose factor really is too high is refused every time, and
    said so apart from a wrong passphrase.
    """
    for _attempt in range(_EXCESSIVE_WORK_ATTEMPTS):
        try:
            decrypted: bytes = pyrage.passphrase.decrypt(data, passphrase)
            return decrypted
        except pyrage.DecryptError as exc:
            if "excessive work" not in str(exc).lower():
                break
        except (OSError, ValueError, TypeError):
            break
    else:
        raise KeyFileError(
            f"{source}: the passphrase protection asks for more work than this machine "
            "accepts (was the file made with a much higher work factor?)"
        ) from None
    raise KeyFileError(f"{source}: cannot decrypt the identity file (wrong passphrase?)") from None


def _numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, stripped line)``, numbered as editors and ``age`` number them.

    Lines end at ``\n`` only (``str.splitlines`` also splits on form feeds and
    Unicode separators, which would make reported line numbers wrong); a UTF-8
    byte-order mark, as some editors write, is ignored.
    """
    text = text.removeprefix("\ufeff")
    for number, raw_line in enumerate(text.split("\n"), start=1):
        yield number, raw_line.strip()


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: file not found") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path}: too large to be a keys file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: is not UTF-8 text") from None
