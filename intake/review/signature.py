"""Ed25519 bundle signatures: the server-key text format and verification.

The server signs the exact bytes of a bundle's ``manifest.json`` with its
Ed25519 key; the signature travels as the member ``manifest.sig`` (base64 of
the 64-byte signature, one line). Staff pin the server's public key as text::

    intake-ed25519:<base64 of the 32-byte raw public key>

and compare its fingerprint (``SHA256:`` and unpadded base64 of the SHA-256
of the raw key, like age recipient fingerprints) by eye or by phone.

Standard library and cryptography only; every parser raises only
:class:`SignatureFormatError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from intake.review.lang import _

__all__ = [
    "KEY_PREFIX",
    "SIGNATURE_NAME",
    "SignatureFormatError",
    "format_public_key",
    "format_signature",
    "key_fingerprint",
    "parse_public_key",
    "parse_signature",
    "verify",
]

KEY_PREFIX: Final = "intake-ed25519:"
#: The tar member holding the signature, right after manifest.json.
SIGNATURE_NAME: Final = "manifest.sig"
_KEY_BYTES: Final = 32
_SIGNATURE_BYTES: Final = 64
#: A signature member is one line of base64: anything longer is refused unread.
MAX_SIGNATURE_BYTES: Final = 200


class SignatureFormatError(ValueError):
    """A key or signature text that is not in the expected form; one line."""


def _not_base64(field: str) -> str:
    return _("%(field)s: not base64") % {"field": field}


def _b64decode(text: str, size: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise SignatureFormatError(_not_base64(what)) from None
    if len(raw) != size:
        raise SignatureFormatError(
            _("%(field)s: expected %(size)d bytes, got %(got)d")
            % {"field": what, "size": size, "got": len(raw)}
        )
    if base64.b64encode(raw).decode("ascii") != text:
        raise SignatureFormatError(_("%(field)s: not in canonical base64") % {"field": what})
    return raw


def format_public_key(raw: bytes) -> str:
    """``intake-ed25519:<base64>`` of a 32-byte raw Ed25519 public key."""
    if len(raw) != _KEY_BYTES:
        raise SignatureFormatError(
            _("an Ed25519 public key has %(size)d bytes") % {"size": _KEY_BYTES}
        )
    return KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> bytes:
    """The 32 raw bytes of a key in :func:`format_public_key` form (whitespace around ignored)."""
    if not isinstance(text, str):
        raise SignatureFormatError(_("server key: expected text"))
    text = text.strip()
    if not text.startswith(KEY_PREFIX):
        raise SignatureFormatError(
            _(
                "server key: expected %(prefix)s<base64> (as `flask --app intake signing-key` "
                "prints it)"
            )
            % {"prefix": KEY_PREFIX}
        )
    raw = _b64decode(text[len(KEY_PREFIX) :], _KEY_BYTES, "server key")
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise SignatureFormatError(_("server key: not a valid Ed25519 public key")) from None
    return raw


def key_fingerprint(raw: bytes) -> str:
    """``SHA256:<unpadded base64>`` of the raw public key."""
    digest = hashlib.sha256(raw).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def format_signature(signature: bytes) -> bytes:
    """The ``manifest.sig`` member: base64 of the signature and a newline."""
    if len(signature) != _SIGNATURE_BYTES:
        raise SignatureFormatError(
            _("an Ed25519 signature has %(size)d bytes") % {"size": _SIGNATURE_BYTES}
        )
    return base64.b64encode(signature) + b"\n"


def parse_signature(data: bytes) -> bytes:
    """The 64 signature bytes of a ``manifest.sig`` member."""
    if len(data) > MAX_SIGNATURE_BYTES:
        raise SignatureFormatError(_("manifest.sig: too long"))
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise SignatureFormatError(_not_base64("manifest.sig")) from None
    return _b64decode(text.removesuffix("\n"), _SIGNATURE_BYTES, "manifest.sig")


def verify(public_raw: bytes, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the Ed25519 signature of ``data`` by ``public_raw``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
