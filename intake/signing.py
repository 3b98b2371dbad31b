"""The server's Ed25519 key that signs export bundles.

The private key lives in ``[server] signing_key_file`` (PEM, PKCS#8, mode
0600), made atomically on first start. Staff pin its public half on the
offline machine with ``intake-review trust`` in the form :func:`public_key_text`
gives, ``intake-ed25519:<base64 of the 32-byte raw public key>``;
``flask --app intake signing-key`` prints it with its fingerprint.

The text format and the verification side are in
:mod:`intake.review.signature` (stdlib and cryptography only), which this
module reuses so both sides agree by construction.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from intake.review.signature import format_public_key, key_fingerprint

__all__ = [
    "Ed25519PrivateKey",
    "SigningKeyError",
    "load_or_create_signing_key",
    "public_key_fingerprint",
    "public_key_text",
    "sign",
]


class SigningKeyError(ValueError):
    """The signing key file exists but is not an unencrypted Ed25519 PEM key."""


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Read the key at ``path``, or make one there (0600, atomically) if it is missing.

    Two processes starting at once both end up with the same key: the file is
    created with a hard link, which fails if another process got there first,
    and the loser reads the winner's key.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = _create(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key")
    return key


def _create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp: mode 0600
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails if the file appeared meanwhile: never overwrite
        except FileExistsError:
            return path.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    return data


def public_key_text(key: Ed25519PrivateKey) -> str:
    """``intake-ed25519:<base64 of the raw public key>``: what staff pin."""
    return format_public_key(_raw_public(key))


def public_key_fingerprint(key: Ed25519PrivateKey) -> str:
    """A short fingerprint of the public key to compare by eye or by phone."""
    return key_fingerprint(_raw_public(key))


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """The Ed25519 signature (64 bytes) of ``data``."""
    return key.sign(data)
