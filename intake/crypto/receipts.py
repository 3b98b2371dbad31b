"""Receipts: the code a reporter keeps to come back, and what the server derives from it.

A receipt is 20 random digits shown as five groups of four (66.4 bits): it
works in any language and on any keyboard. The server never stores it.
From the receipt and a server-side secret (the *pepper*) it derives, with
Argon2id:

- a **lookup key**, stored to find the case again at sign-in;
- under another context, a **reply key**: an age X25519 identity whose public
  half (the *reply recipient*) is stored so staff can seal replies that only
  the receipt opens. The private half is derived again at sign-in, used for
  that request, and forgotten.

Argon2id parameters: 2 passes over 64 MiB (libsodium's "interactive" level),
about 100 ms on one core of a 2025 server, for each of the two derivations.
An attacker with the database *and* the pepper must pay that per guess, over
a space of 10^20 receipts; without the pepper they cannot even start.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import unicodedata

import nacl.pwhash.argon2id as argon2id
from pyrage import x25519

__all__ = [
    "ARGON2_MEMLIMIT",
    "ARGON2_OPSLIMIT",
    "RECEIPT_DIGITS",
    "ReceiptKeys",
    "derive_receipt_keys",
    "format_receipt",
    "new_receipt",
    "normalise_receipt",
    "reply_identity",
]

RECEIPT_DIGITS = 20
RECEIPT_GROUP = 4
ARGON2_OPSLIMIT = 2
ARGON2_MEMLIMIT = 64 * 1024 * 1024

_LOOKUP_CONTEXT = b"intake receipt lookup v1"
_REPLY_CONTEXT = b"intake receipt reply key v1"
_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_IDENTITY_HRP = "age-secret-key-"


def new_receipt() -> str:
    """A fresh receipt: 20 random digits, as printed (``1234-5678-…``)."""
    digits = "".join(str(secrets.randbelow(10)) for _ in range(RECEIPT_DIGITS))
    return format_receipt(digits)


def format_receipt(digits: str) -> str:
    """Group 20 digits as ``1234-5678-9012-3456-7890``."""
    return "-".join(digits[i : i + RECEIPT_GROUP] for i in range(0, len(digits), RECEIPT_GROUP))


def normalise_receipt(typed: str) -> str | None:
    """The 20 digits of a typed receipt, or None if it cannot be one.

    Spaces, dashes and other separators are ignored; digits of any script
    (Arabic-Indic, full-width, …) count as the digits they stand for.
    """
    digits = []
    for char in typed[:200]:
        if char.isdigit():
            value = unicodedata.digit(char, None)
            if value is None:
                return None
            digits.append(str(value))
        elif char.isalpha():
            return None
    return "".join(digits) if len(digits) == RECEIPT_DIGITS else None


def _salt(pepper: bytes, context: bytes) -> bytes:
    return hmac.new(pepper, context, hashlib.sha256).digest()[: argon2id.SALTBYTES]


#: At most this many derivations run at once in a process: each takes 64 MiB,
#: and a burst of sign-ins (rate limits count them only after they finish)
#: must not exhaust a small server's memory. Others wait their turn.
MAX_CONCURRENT_DERIVATIONS = 2
_DERIVATION_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT_DERIVATIONS)


def _argon2(digits: str, pepper: bytes, context: bytes) -> bytes:
    with _DERIVATION_SLOTS:
        derived: bytes = argon2id.kdf(
            32,
            digits.encode("ascii"),
            _salt(pepper, context),
            opslimit=ARGON2_OPSLIMIT,
            memlimit=ARGON2_MEMLIMIT,
        )
    return derived


class ReceiptKeys:
    """What the server may store about a receipt: a lookup key and a reply recipient."""

    __slots__ = ("lookup_key", "reply_recipient")

    def __init__(self, lookup_key: str, reply_recipient: str) -> None:
        self.lookup_key = lookup_key
        self.reply_recipient = reply_recipient


def lookup_key(digits: str, pepper: bytes) -> str:
    """The stored lookup key of a normalised receipt (hex)."""
    return _argon2(digits, pepper, _LOOKUP_CONTEXT).hex()


def reply_identity(digits: str, pepper: bytes) -> x25519.Identity:
    """The reply key's private half: derive it, use it, let it go."""
    scalar = _argon2(digits, pepper, _REPLY_CONTEXT)
    return x25519.Identity.from_str(_bech32_encode(_IDENTITY_HRP, scalar).upper())


def derive_receipt_keys(digits: str, pepper: bytes) -> ReceiptKeys:
    """Everything the server stores for a new receipt."""
    recipient = str(reply_identity(digits, pepper).to_public())
    return ReceiptKeys(lookup_key(digits, pepper), recipient)


# -- Bech32 (BIP 173), as age encodes X25519 identities ------------------------


def _polymod(values: list[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            checksum ^= generator[i] if (top >> i) & 1 else 0
    return checksum


def _bech32_encode(hrp: str, data: bytes) -> str:
    words: list[int] = []
    accumulator = bits = 0
    for byte in data:
        accumulator = (accumulator << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            words.append((accumulator >> bits) & 31)
    if bits:
        words.append((accumulator << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = _polymod([*expanded, *words, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32_CHARSET[w] for w in words + checksum)
