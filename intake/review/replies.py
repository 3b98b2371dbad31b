"""Staff replies: written offline, sealed to the reporter's reply key and to staff.

A reply is a small JSON document (never a tar; staff send no attachments)::

    {"format": "intake.reply", "version": 1,
     "id": "<20 lowercase hex>", "case_id": "<the report's id>",
     "written_hour": "2024-05-01T13:00Z",
     "messages": {"ru": "…", "en": "…"},      # ky/ru/uz/en, at least one
     "status": null | "reviewed" | "closed"}

:func:`build_reply` makes one, :func:`reply_json_bytes` serialises it, and
:func:`seal_reply` age-encrypts the bytes to the case's *reply recipient* (the
public half of the key the reporter's receipt derives, see
:mod:`intake.crypto.receipts`) **and** to every staff recipient, so staff keep
a copy they can read. :func:`parse_reply` reads decrypted bytes back; it treats
them as hostile (anyone holding a public key can seal something) and raises
only :class:`ReplyFormatError`.

Replies travel to the server in a *replies bundle*, an uncompressed tar::

    manifest.json     {"format": "intake.replies", "version": 1,
                       "created_hour": "…",
                       "replies": [{"id", "case_id", "size", "sha256", "status"}]}
    replies/<id>.age  one sealed reply per manifest entry, in manifest order

:func:`write_replies_bundle` writes one atomically (adding to an existing
bundle); :func:`read_replies_bundle` reads one strictly and within fixed
bounds, raising only :class:`RepliesBundleError`, whose one-line message names
the offending entry or member. The server's ``import-replies`` calls it, so
this module imports only the standard library, pyrage and :mod:`intake.crypto`
(never Flask or SQLAlchemy).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import tarfile
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pyrage
from pyrage import x25519

from intake.review.bundle import json_refusal
from intake.review.lang import _
from intake.review.tarcheck import TarCheckError, check_tar_headers
from intake.strictjson import StrictJSONError, loads_strict

__all__ = [
    "LANGUAGES",
    "MAX_MESSAGE_CHARS",
    "MAX_REPLIES",
    "MAX_REPLY_BYTES",
    "MAX_SEALED_BYTES",
    "REPLIES_FORMAT",
    "REPLIES_VERSION",
    "REPLY_FORMAT",
    "REPLY_STATUSES",
    "REPLY_VERSION",
    "RepliesBundleError",
    "RepliesManifest",
    "Reply",
    "ReplyEntry",
    "ReplyFormatError",
    "build_reply",
    "new_reply_id",
    "open_reply",
    "parse_replies_manifest",
    "parse_reply",
    "read_replies_bundle",
    "replies_manifest_bytes",
    "reply_entry",
    "reply_json_bytes",
    "reply_member_name",
    "seal_reply",
    "write_replies_bundle",
]

REPLY_FORMAT: Final = "intake.reply"
REPLY_VERSION: Final = 1
REPLIES_FORMAT: Final = "intake.replies"
REPLIES_VERSION: Final = 1
#: Languages a reply may be written in (the languages of the web form).
LANGUAGES: Final = ("ky", "ru", "uz", "en")
#: A status change a reply may carry; ``None`` means "no change".
REPLY_STATUSES: Final = ("reviewed", "closed")
MAX_MESSAGE_CHARS: Final = 20_000
#: Serialised reply JSON, before sealing.
MAX_REPLY_BYTES: Final = 256 * 1024
#: One sealed reply in a bundle.
MAX_SEALED_BYTES: Final = 1024 * 1024
MAX_REPLIES: Final = 10_000
#: All sealed replies of one bundle together; bounds what reading one holds in memory.
MAX_TOTAL_SEALED_BYTES: Final = 256 * 1024 * 1024
MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024
MANIFEST_NAME: Final = "manifest.json"
REPLY_DIR: Final = "replies/"
REPLY_SUFFIX: Final = ".age"

_REPLY_ID_RE: Final = re.compile(r"[0-9a-f]{20}")
_CASE_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_HOUR_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:00Z")
_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
_MEMBER_RE: Final = re.compile(r"replies/([0-9a-f]{20})\.age")
_AGE_MAGIC: Final = b"age-encryption.org/v1\n"
_REPLY_KEYS: Final = frozenset(
    {"format", "version", "id", "case_id", "written_hour", "messages", "status"}
)
_ENTRY_KEYS: Final = frozenset({"id", "case_id", "size", "sha256", "status"})
_MANIFEST_KEYS: Final = frozenset({"format", "version", "created_hour", "replies"})
# Characters plain text never holds: C0 controls but tab and newline, DEL, C1
# controls, lone surrogates, line/paragraph separators.
_FORBIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cs", "Zl", "Zp"})
_TAR_ERRORS: Final = (tarfile.TarError, OSError, EOFError, ValueError, OverflowError, UnicodeError)


class ReplyFormatError(ValueError):
    """A reply that does not follow the format (or cannot be opened); one line."""


def _reply_error(problem: str) -> ReplyFormatError:
    """``reply: <problem>``, the prefix in the current language (see :func:`reply_prefix`)."""
    return ReplyFormatError(_("reply: %(problem)s") % {"problem": problem})


def reply_prefix() -> str:
    """What every message of a :class:`ReplyFormatError` about a reply's content starts with."""
    return _("reply: %(problem)s") % {"problem": ""}


def _failure(error: type[ValueError], where: str, problem: str) -> ValueError:
    """``where: problem``; where a reply's own content is meant, the translated prefix."""
    if error is ReplyFormatError and (where == "reply" or where.startswith("reply: ")):
        field = where.removeprefix("reply").removeprefix(": ")
        return _reply_error(f"{field}: {problem}" if field else problem)
    return error(f"{where}: {problem}")


class RepliesBundleError(ValueError):
    """A replies bundle refused whole; the one-line message names the entry or member."""


# ---------------------------------------------------------------------------
# The reply document


@dataclass(frozen=True)
class Reply:
    """A validated reply. ``messages`` maps language codes to text, in :data:`LANGUAGES` order."""

    id: str
    case_id: str
    written_hour: str
    messages: Mapping[str, str]
    status: str | None
    version: int = REPLY_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPLY_FORMAT,
            "version": self.version,
            "id": self.id,
            "case_id": self.case_id,
            "written_hour": self.written_hour,
            "messages": dict(self.messages),
            "status": self.status,
        }


def new_reply_id() -> str:
    """A fresh random reply id: 20 lowercase hex characters (80 bits)."""
    return secrets.token_hex(10)


def _hour_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:00Z")


def _clean_message(text: str) -> str:
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text.strip()


def build_reply(
    case_id: str,
    messages: Mapping[str, str],
    status: str | None = None,
    *,
    reply_id: str | None = None,
    written_hour: str | None = None,
) -> dict[str, Any]:
    """The JSON document of a new reply (a dict; see :func:`reply_json_bytes`).

    Message text has a leading BOM removed, line endings made ``\\n`` and
    surrounding blank space stripped. ``reply_id`` defaults to a new random
    id, ``written_hour`` to the current hour (UTC). Raises
    :class:`ReplyFormatError` if the result would not pass :func:`parse_reply`
    (unknown language, empty or over-long text, control characters, …).
    """
    if not isinstance(messages, Mapping):
        raise ReplyFormatError(
            _("%(field)s: expected a mapping of language to text") % {"field": "messages"}
        )
    cleaned: dict[str, Any] = {}
    for language in LANGUAGES:
        if language in messages:
            text = messages[language]
            cleaned[language] = _clean_message(text) if isinstance(text, str) else text
    for language in messages:
        if language not in LANGUAGES:
            raise ReplyFormatError(_unknown_language("messages", str(language)))
    reply = {
        "format": REPLY_FORMAT,
        "version": REPLY_VERSION,
        "id": reply_id if reply_id is not None else new_reply_id(),
        "case_id": case_id,
        "written_hour": written_hour if written_hour is not None else _hour_now(),
        "messages": cleaned,
        "status": status,
    }
    parse_reply(reply_json_bytes(reply))  # what we build must always parse
    return reply


def reply_json_bytes(reply: Mapping[str, Any] | Reply) -> bytes:
    """Serialise a reply (from :func:`build_reply` or a :class:`Reply`) as UTF-8 JSON."""
    document = reply.to_dict() if isinstance(reply, Reply) else dict(reply)
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"


def _unknown_language(field: str, language: str) -> str:
    return _("%(field)s: unknown language %(language)s (expected one of %(languages)s)") % {
        "field": field,
        "language": _shown(language),
        "languages": ", ".join(LANGUAGES),
    }


def _one_of_statuses(field: str) -> str:
    return _("%(field)s: expected null or one of %(values)s") % {
        "field": field,
        "values": ", ".join(REPLY_STATUSES),
    }


def _load_json(data: bytes, error: type[ValueError], what: str, limit: int) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _failure(error, what, _("expected bytes"))
    try:
        return loads_strict(data, what=what, max_bytes=limit)
    except StrictJSONError as refusal:
        raise _failure(error, what, json_refusal(refusal)) from None


def _check_plain_text(text: Any, path: str) -> str:
    if not isinstance(text, str):
        raise _reply_error(_("%(field)s: expected text") % {"field": path})
    if len(text) > MAX_MESSAGE_CHARS:
        raise _reply_error(
            _("%(field)s: longer than %(max)d characters")
            % {"field": path, "max": MAX_MESSAGE_CHARS}
        )
    if not text.strip():
        raise _reply_error(_("%(field)s: empty") % {"field": path})
    for position, ch in enumerate(text):
        if ch in "\n\t" or " " <= ch < "\x7f":
            continue
        if unicodedata.category(ch) in _FORBIDDEN_CATEGORIES:
            raise _reply_error(
                _(
                    "%(field)s: control character %(character)s at position %(position)d "
                    "(plain text only)"
                )
                % {"field": path, "character": f"U+{ord(ch):04X}", "position": position}
            )
    return text


def _check_hour(value: Any, where: str, error: type[ValueError]) -> str:
    if not isinstance(value, str) or not _HOUR_RE.fullmatch(value):
        raise _failure(error, where, _("expected YYYY-MM-DDTHH:00Z"))
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:00Z")
    except ValueError:
        raise _failure(error, where, _("not a real date and hour")) from None
    return value


def _unsupported_version(version: int, expected: int) -> str:
    return _("version %(version)d is not supported (expected %(expected)d)") % {
        "version": version,
        "expected": expected,
    }


def _hex20(field: str) -> str:
    return _("%(field)s: expected 20 lowercase hex digits") % {"field": field}


def _parse_reply_document(document: Any) -> Reply:
    if not isinstance(document, dict):
        raise _reply_error(_("expected a JSON object"))
    unknown = sorted(str(k) for k in document if k not in _REPLY_KEYS)
    if unknown:
        raise _reply_error(_("unknown key %(key)s") % {"key": _shown(unknown[0])})
    missing = sorted(_REPLY_KEYS - set(document))
    if missing:
        raise _reply_error(_("missing key %(key)s") % {"key": repr(missing[0])})
    if document["format"] != REPLY_FORMAT:
        raise _reply_error(
            _("%(field)s: expected %(value)s") % {"field": "format", "value": repr(REPLY_FORMAT)}
        )
    version = document["version"]
    if type(version) is not int:
        raise _reply_error(_("%(field)s: expected a whole number") % {"field": "version"})
    if version != REPLY_VERSION:
        raise _reply_error(_unsupported_version(version, REPLY_VERSION))
    reply_id = document["id"]
    if not isinstance(reply_id, str) or not _REPLY_ID_RE.fullmatch(reply_id):
        raise _reply_error(_hex20("id"))
    case_id = document["case_id"]
    if not isinstance(case_id, str) or not _CASE_ID_RE.fullmatch(case_id):
        raise _reply_error(_("%(field)s: not a case id") % {"field": "case_id"})
    written = _check_hour(document["written_hour"], "reply: written_hour", ReplyFormatError)
    raw_messages = document["messages"]
    if not isinstance(raw_messages, dict):
        raise _reply_error(_("%(field)s: expected an object") % {"field": "messages"})
    for language in raw_messages:
        if language not in LANGUAGES:
            raise _reply_error(_unknown_language("messages", language))
    if not raw_messages:
        raise _reply_error(_("%(field)s: at least one message is needed") % {"field": "messages"})
    messages = {
        language: _check_plain_text(raw_messages[language], f"messages.{language}")
        for language in LANGUAGES
        if language in raw_messages
    }
    status = document["status"]
    if status is not None and (not isinstance(status, str) or status not in REPLY_STATUSES):
        raise _reply_error(_one_of_statuses("status"))
    return Reply(reply_id, case_id, written, messages, status, version)


def parse_reply(data: bytes) -> Reply:
    """Parse untrusted reply JSON bytes (decrypted); raises only :class:`ReplyFormatError`.

    At most :data:`MAX_REPLY_BYTES`; duplicate keys, NaN/Infinity, unknown or
    missing keys, unknown languages and control characters are refused.
    """
    try:
        return _parse_reply_document(_load_json(data, ReplyFormatError, "reply", MAX_REPLY_BYTES))
    except ReplyFormatError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise _reply_error(_too_deep(exc)) from None
    except Exception as exc:  # the contract: only ReplyFormatError escapes
        raise _reply_error(_malformed(exc)) from None


def _too_deep(exc: BaseException) -> str:
    return _("too large or too deeply nested (%(kind)s)") % {"kind": type(exc).__name__}


def _malformed(exc: BaseException) -> str:
    return _("malformed (%(kind)s)") % {"kind": type(exc).__name__}


def _recipient(value: Any, what: str) -> Any:
    if not isinstance(value, str):
        if isinstance(value, x25519.Recipient):
            return value
        raise ValueError(_("%(field)s: expected an age1… recipient") % {"field": what})
    text = value.strip()
    if not text.startswith("age1"):
        raise ValueError(_("%(field)s: not an age X25519 recipient (age1…)") % {"field": what})
    try:
        return x25519.Recipient.from_str(text)
    except (pyrage.RecipientError, ValueError, TypeError):
        raise ValueError(
            _("%(field)s: not a valid age X25519 recipient") % {"field": what}
        ) from None


def seal_reply(reply_bytes: bytes, reply_recipient: str, staff_recipients: Sequence[Any]) -> bytes:
    """Age-encrypt a reply to the case's reply recipient and to every staff recipient.

    ``staff_recipients`` are ``age1…`` strings or pyrage X25519 recipients; at
    least one is needed, so staff keep a readable copy. The reply must pass
    :func:`parse_reply` (:class:`ReplyFormatError` otherwise); a malformed
    recipient is a ValueError.
    """
    parse_reply(reply_bytes)
    recipients = [_recipient(reply_recipient, _("reply recipient"))]
    if not staff_recipients:
        raise ValueError(_("no staff recipient: staff would keep no readable copy"))
    recipients += [
        _recipient(r, _("staff recipient %(number)d") % {"number": i})
        for i, r in enumerate(staff_recipients, 1)
    ]
    sealed: bytes = pyrage.encrypt(bytes(reply_bytes), recipients)
    if len(sealed) > MAX_SEALED_BYTES:
        raise ValueError(
            _("the sealed reply is larger than %(max)d bytes") % {"max": MAX_SEALED_BYTES}
        )
    return sealed


def open_reply(sealed: bytes, identities: Sequence[Any], *, case_id: str | None = None) -> Reply:
    """Decrypt and parse a sealed reply; raises only :class:`ReplyFormatError`.

    With ``case_id``, a reply naming another case is refused too.
    """
    if len(sealed) > MAX_SEALED_BYTES:
        raise ReplyFormatError(
            _("sealed reply: larger than %(max)d bytes") % {"max": MAX_SEALED_BYTES}
        )
    if not identities:
        raise ReplyFormatError(_("sealed reply: cannot decrypt (no identity given)"))
    try:
        plain: bytes = pyrage.decrypt(bytes(sealed), list(identities))
    except (pyrage.DecryptError, OSError, ValueError, TypeError) as exc:
        reason = _shown(str(exc).split("\n", 1)[0]) if str(exc) else type(exc).__name__
        raise ReplyFormatError(
            _("sealed reply: cannot decrypt (%(reason)s)") % {"reason": reason}
        ) from None
    reply = parse_reply(plain)
    if case_id is not None and reply.case_id != case_id:
        raise ReplyFormatError(
            _("reply %(id)s: names case %(case)s, not %(wanted)s")
            % {"id": reply.id, "case": reply.case_id, "wanted": _shown(case_id)}
        )
    return reply


# ---------------------------------------------------------------------------
# The replies bundle


@dataclass(frozen=True)
class ReplyEntry:
    """What a replies bundle's manifest says about one sealed reply."""

    id: str
    case_id: str
    size: int
    sha256: str
    status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "size": self.size,
            "sha256": self.sha256,
            "status": self.status,
        }


@dataclass(frozen=True)
class RepliesManifest:
    """A parsed replies manifest: its hour and the entries, in bundle order."""

    created_hour: str
    entries: tuple[ReplyEntry, ...]


def reply_member_name(reply_id: str) -> str:
    """The tar member of a sealed reply: ``replies/<id>.age``."""
    if not isinstance(reply_id, str) or not _REPLY_ID_RE.fullmatch(reply_id):
        raise ValueError(f"not a reply id: {_shown(str(reply_id))}")
    return f"{REPLY_DIR}{reply_id}{REPLY_SUFFIX}"


def reply_entry(reply: Reply, sealed: bytes) -> ReplyEntry:
    """The manifest entry of a sealed reply (size and SHA-256 of ``sealed``)."""
    return ReplyEntry(
        reply.id, reply.case_id, len(sealed), hashlib.sha256(sealed).hexdigest(), reply.status
    )


def _parse_entry(value: Any, index: int) -> ReplyEntry:
    where = f"manifest.json: replies[{index}]"
    if not isinstance(value, dict):
        raise RepliesBundleError(_("%(field)s: expected an object") % {"field": where})
    reply_id = value.get("id")
    if not isinstance(reply_id, str) or not _REPLY_ID_RE.fullmatch(reply_id):
        raise RepliesBundleError(_hex20(f"{where}.id"))
    where = f"manifest.json: reply {reply_id}"
    unknown = sorted(str(k) for k in value if k not in _ENTRY_KEYS)
    if unknown:
        raise RepliesBundleError(
            f"{where}: " + _("unknown key %(key)s") % {"key": _shown(unknown[0])}
        )
    missing = sorted(_ENTRY_KEYS - set(value))
    if missing:
        raise RepliesBundleError(
            f"{where}: " + _("missing key %(key)s") % {"key": repr(missing[0])}
        )
    case_id = value["case_id"]
    if not isinstance(case_id, str) or not _CASE_ID_RE.fullmatch(case_id):
        raise RepliesBundleError(_("%(field)s: not a case id") % {"field": f"{where}: case_id"})
    size = value["size"]
    if type(size) is not int or not 0 < size <= MAX_SEALED_BYTES:
        raise RepliesBundleError(
            _("%(field)s: expected a byte count from 1 to %(max)d")
            % {"field": f"{where}: size", "max": MAX_SEALED_BYTES}
        )
    sha256 = value["sha256"]
    if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
        raise RepliesBundleError(
            _("%(field)s: expected 64 lowercase hex digits") % {"field": f"{where}: sha256"}
        )
    status = value["status"]
    if status is not None and (not isinstance(status, str) or status not in REPLY_STATUSES):
        raise RepliesBundleError(_one_of_statuses(f"{where}: status"))
    return ReplyEntry(reply_id, case_id, size, sha256, status)


def _parse_manifest_document(document: Any) -> RepliesManifest:
    if not isinstance(document, dict):
        raise RepliesBundleError(_("manifest.json: expected a JSON object"))
    unknown = sorted(str(k) for k in document if k not in _MANIFEST_KEYS)
    if unknown:
        raise RepliesBundleError(
            "manifest.json: " + _("unknown key %(key)s") % {"key": _shown(unknown[0])}
        )
    if document.get("format") != REPLIES_FORMAT:
        raise RepliesBundleError(
            _("manifest.json: format: expected %(format)s") % {"format": repr(REPLIES_FORMAT)}
        )
    version = document.get("version")
    if type(version) is not int:
        raise RepliesBundleError(_("manifest.json: version: expected a whole number"))
    if version != REPLIES_VERSION:
        raise RepliesBundleError("manifest.json: " + _unsupported_version(version, REPLIES_VERSION))
    created = _check_hour(
        document.get("created_hour"), "manifest.json: created_hour", RepliesBundleError
    )
    raw = document.get("replies")
    if not isinstance(raw, list):
        raise RepliesBundleError(
            _("%(field)s: expected a list") % {"field": "manifest.json: replies"}
        )
    if len(raw) > MAX_REPLIES:
        raise RepliesBundleError(
            _("manifest.json: more than %(max)d replies") % {"max": MAX_REPLIES}
        )
    entries: list[ReplyEntry] = []
    seen: set[str] = set()
    total = 0
    for index, value in enumerate(raw):
        entry = _parse_entry(value, index)
        if entry.id in seen:
            raise RepliesBundleError(
                _("manifest.json: reply %(id)s is listed twice") % {"id": entry.id}
            )
        seen.add(entry.id)
        total += entry.size
        if total > MAX_TOTAL_SEALED_BYTES:
            raise RepliesBundleError(
                _("manifest.json: reply %(id)s: the replies exceed %(max)d bytes together")
                % {"id": entry.id, "max": MAX_TOTAL_SEALED_BYTES}
            )
        entries.append(entry)
    return RepliesManifest(created, tuple(entries))


def parse_replies_manifest(data: bytes) -> RepliesManifest:
    """Parse untrusted replies manifest bytes; raises only :class:`RepliesBundleError`."""
    try:
        document = _load_json(data, RepliesBundleError, "manifest.json", MAX_MANIFEST_BYTES)
        return _parse_manifest_document(document)
    except RepliesBundleError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise RepliesBundleError("manifest.json: " + _too_deep(exc)) from None
    except Exception as exc:  # the contract: only RepliesBundleError escapes
        raise RepliesBundleError("manifest.json: " + _malformed(exc)) from None


def replies_manifest_bytes(created_hour: str, entries: Iterable[ReplyEntry]) -> bytes:
    """Serialise a replies manifest exactly as :func:`parse_replies_manifest` reads it."""
    document = {
        "format": REPLIES_FORMAT,
        "version": REPLIES_VERSION,
        "created_hour": created_hour,
        "replies": [entry.to_dict() for entry in entries],
    }
    data = (json.dumps(document, indent=1, ensure_ascii=True) + "\n").encode("ascii")
    parse_replies_manifest(data)  # never write what the reader refuses
    return data


def _shown(text: str, limit: int = 80) -> str:
    """A hostile string made safe for a one-line message: quoted, escaped, cut."""
    escaped = "".join(
        ch if ch.isprintable() and ch.isascii() else f"\\u{ord(ch):04x}" for ch in text[:limit]
    )
    return repr(escaped + ("…" if len(text) > limit else ""))


def _check_sealed(entry: ReplyEntry, sealed: bytes, where: str) -> None:
    if len(sealed) != entry.size:
        raise RepliesBundleError(
            _(
                "%(file)s: reply %(id)s: size %(size)d differs from the manifest's "
                "%(expected)d (bundle damaged or altered)"
            )
            % {"file": where, "id": entry.id, "size": len(sealed), "expected": entry.size}
        )
    if hashlib.sha256(sealed).hexdigest() != entry.sha256:
        raise RepliesBundleError(
            _(
                "%(file)s: reply %(id)s: SHA-256 differs from the manifest "
                "(bundle damaged or altered)"
            )
            % {"file": where, "id": entry.id}
        )
    if not sealed.startswith(_AGE_MAGIC):
        raise RepliesBundleError(
            _("%(file)s: reply %(id)s: not an age-encrypted file") % {"file": where, "id": entry.id}
        )


def _read_member(archive: tarfile.TarFile, info: tarfile.TarInfo, limit: int, what: str) -> bytes:
    try:
        stream = archive.extractfile(info)
        data = stream.read(limit + 1) if stream is not None else b""
    except _TAR_ERRORS as exc:
        raise RepliesBundleError(
            _("%(file)s: cannot be read (%(reason)s)")
            % {"file": what, "reason": type(exc).__name__}
        ) from None
    if len(data) != info.size:
        raise RepliesBundleError(_("%(file)s: truncated") % {"file": what})
    return data


def read_replies_bundle(path: Path | str) -> list[tuple[ReplyEntry, bytes]]:
    """Read a replies bundle strictly; ``(entry, sealed bytes)`` in manifest order.

    Refused whole, with a :class:`RepliesBundleError` naming the entry or
    member, unless: the file is an uncompressed tar whose first member is a
    regular ``manifest.json`` the strict parser accepts, followed only by
    regular ``replies/<id>.age`` members, exactly one per manifest entry, each
    matching its entry's size and SHA-256 and starting like an age file; at
    most :data:`MAX_REPLIES` replies of at most :data:`MAX_SEALED_BYTES` each.
    """
    path = Path(path)
    name = path.name
    try:
        size = path.stat().st_size
        handle = path.open("rb")
    except OSError as exc:
        raise RepliesBundleError(
            _("%(file)s: cannot be read (%(reason)s)") % {"file": name, "reason": exc.strerror}
        ) from None
    # Headers and padding add at most a few KiB per member.
    limit = MAX_MANIFEST_BYTES + MAX_TOTAL_SEALED_BYTES + (MAX_REPLIES + 1) * 8192
    with handle:
        if size > limit:
            raise RepliesBundleError(
                _("%(file)s: larger than any replies bundle (%(size)d bytes)")
                % {"file": name, "size": size}
            )
        try:
            check_tar_headers(handle)  # before tarfile's own parser sees a crafted header
            archive = tarfile.open(fileobj=handle, mode="r:")  # noqa: SIM115 - closed below
        except (*_TAR_ERRORS, TarCheckError):
            raise RepliesBundleError(
                _("%(file)s: not a replies bundle (not a tar file)") % {"file": name}
            ) from None
        with archive:
            return _read_archive(archive, name)


def _next_member(archive: tarfile.TarFile, name: str, count: int) -> tarfile.TarInfo | None:
    try:
        return archive.next()
    except _TAR_ERRORS as exc:
        raise RepliesBundleError(
            _("%(file)s: the tar is damaged after %(count)d members (%(kind)s)")
            % {"file": name, "count": count, "kind": type(exc).__name__}
        ) from None


def _read_archive(archive: tarfile.TarFile, name: str) -> list[tuple[ReplyEntry, bytes]]:
    first = _next_member(archive, name, 0)
    if first is None:
        raise RepliesBundleError(_("%(file)s: empty (no manifest.json)") % {"file": name})
    if first.name != MANIFEST_NAME:
        raise RepliesBundleError(
            _("%(file)s: member %(member)s: manifest.json must be the first member")
            % {"file": name, "member": _shown(first.name)}
        )
    if not first.isreg():
        raise RepliesBundleError(
            _("%(file)s: manifest.json is not a regular file") % {"file": name}
        )
    if first.size > MAX_MANIFEST_BYTES:
        raise RepliesBundleError(
            f"{name}: "
            + _("manifest.json: larger than %(max)d bytes") % {"max": MAX_MANIFEST_BYTES}
        )
    data = _read_member(archive, first, MAX_MANIFEST_BYTES, f"{name}: manifest.json")
    try:
        manifest = parse_replies_manifest(data)
    except RepliesBundleError as exc:
        raise RepliesBundleError(f"{name}: {exc}") from None
    expected = {entry.id: entry for entry in manifest.entries}
    found: dict[str, bytes] = {}
    count = 1
    while (info := _next_member(archive, name, count)) is not None:
        count += 1
        member = _shown(info.name)
        # Bounded: every member past the manifest must be a distinct listed reply.
        match = _MEMBER_RE.fullmatch(info.name)
        if info.name == MANIFEST_NAME:
            raise RepliesBundleError(_("%(file)s: manifest.json appears twice") % {"file": name})
        where = _("%(file)s: member %(member)s") % {"file": name, "member": member}
        if match is None:
            raise RepliesBundleError(
                _("%(field)s: not allowed (only manifest.json and replies/<id>.age)")
                % {"field": where}
            )
        reply_id = match.group(1)
        if not info.isreg():
            raise RepliesBundleError(
                _("%(field)s: not a regular file (link, folder or device)") % {"field": where}
            )
        if reply_id in found:
            raise RepliesBundleError(_("%(field)s: appears twice") % {"field": where})
        entry = expected.get(reply_id)
        if entry is None:
            raise RepliesBundleError(
                _("%(field)s: reply %(id)s is not in the manifest")
                % {"field": where, "id": reply_id}
            )
        if info.size > MAX_SEALED_BYTES:
            raise RepliesBundleError(_too_large_reply(name, reply_id))
        sealed = _read_member(archive, info, MAX_SEALED_BYTES, where)
        _check_sealed(entry, sealed, name)
        found[reply_id] = sealed
    for entry in manifest.entries:
        if entry.id not in found:
            raise RepliesBundleError(
                _("%(file)s: reply %(id)s is in the manifest but missing from the bundle")
                % {"file": name, "id": entry.id}
            )
    return [(entry, found[entry.id]) for entry in manifest.entries]


def _too_large_reply(file: str, reply_id: str) -> str:
    return _("%(file)s: reply %(id)s: larger than %(max)d bytes") % {
        "file": file,
        "id": reply_id,
        "max": MAX_SEALED_BYTES,
    }


def _tar_info(member: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(member)
    info.size = size
    info.mode = 0o600
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_replies_bundle(
    path: Path | str, entries: Iterable[tuple[ReplyEntry, bytes]]
) -> list[ReplyEntry]:
    """Write sealed replies to a bundle at ``path``; returns every entry it now holds.

    If ``path`` exists, it is read back with :func:`read_replies_bundle` first
    (a bad bundle is refused, :class:`RepliesBundleError`) and the new entries
    are added after the existing ones. The new file is written to a temporary
    file beside it, synced and renamed into place, so ``path`` is always either
    the old bundle or the complete new one. A new entry whose id is already
    there, or whose size or SHA-256 does not match its bytes, is refused
    (:class:`RepliesBundleError`) and nothing is written.
    """
    path = Path(path).absolute()
    combined: list[tuple[ReplyEntry, bytes]] = []
    if path.exists():
        combined.extend(read_replies_bundle(path))
    ids = {entry.id for entry, _sealed in combined}
    for entry, sealed in entries:
        reply_member_name(entry.id)
        sealed = bytes(sealed)
        if entry.id in ids:
            raise RepliesBundleError(
                _("%(file)s: reply %(id)s is already in the bundle")
                % {"file": path.name, "id": entry.id}
            )
        if len(sealed) > MAX_SEALED_BYTES:
            raise RepliesBundleError(_too_large_reply(path.name, entry.id))
        _check_sealed(entry, sealed, path.name)
        ids.add(entry.id)
        combined.append((entry, sealed))
    manifest = replies_manifest_bytes(_hour_now(), [entry for entry, _ in combined])

    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            with tarfile.open(fileobj=handle, mode="w", format=tarfile.USTAR_FORMAT) as archive:
                archive.addfile(_tar_info(MANIFEST_NAME, len(manifest)), io.BytesIO(manifest))
                for entry, sealed in combined:
                    info = _tar_info(reply_member_name(entry.id), len(sealed))
                    archive.addfile(info, io.BytesIO(sealed))
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where the OS allows
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return [entry for entry, _ in combined]
