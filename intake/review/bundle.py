"""The export bundle format, shared by the server's exporter and the review tool.

A bundle is an uncompressed POSIX tar holding::

    manifest.json              {"format": "intake.bundle", "version": 2,
                                "created_hour": "2024-05-01T13:00Z",
                                "signing_key": "intake-ed25519:…",
                                "chain": {"from_seq", "from_hash", "head_seq",
                                          "head_hash", "omitted": [{"seq",
                                          "envelope_id", "envelope_sha256", "kind",
                                          "case_id", "received_hour"}]},
                                "envelopes": [{"id", "received_hour", "size", "sha256",
                                               "kind", "case_id", "seq",
                                               "reply_recipient",
                                               "chain_seq", "chain_hash"}]}
    manifest.sig               base64 Ed25519 signature of manifest.json's exact
                               bytes (version 2; see :mod:`.signature`)
    envelopes/<id>.age         one sealed envelope per report or follow-up,
                               id matching ENVELOPE_ID_RE

Chain (version 2). The server appends every envelope it stores to a hash
chain (``chain_hash = SHA-256(previous ‖ envelope SHA-256 ‖
"seq|kind|envelope_id|case_id|received_hour")``, see :func:`chain_hash`).
Each entry names its place (``chain_seq``) and hash; ``chain`` says where the
bundle's stretch of the chain starts (``from_seq``/``from_hash``, the hash
before the first entry, zeros at genesis) and ends (the server's head at
export), and lists under ``omitted`` every chain entry in that stretch whose
envelope is not in the bundle (purged, or exported earlier), so the offline
tool can recompute the chain end to end. ``signing_key`` names the key that
signed the manifest (so a bundle from another server can be told from an
altered one; trust comes only from the key staff pinned). Version 1 bundles
(no chain, no signature) are still read, as "unsigned".

Cases. An entry is a report (``"kind": "report"``, the default) or a
follow-up (``"kind": "followup"``) a reporter added later. A report is its own
case (``case_id`` is its id, ``seq`` 0) and may carry ``reply_recipient``, the
public half of the reporter's reply key (``age1…``), which staff need to seal
replies. A follow-up names the case it belongs to and its place in it
(``seq`` 1, 2, …). All four keys are optional, so a bundle from before
follow-ups reads as reports only.

The exporter should build the manifest with :func:`manifest_bytes` (which
refuses entries :func:`parse_manifest` would refuse) and name members with
:func:`envelope_member_name`; the review tool reads it back with
:func:`parse_manifest`, which treats it as hostile (a bundle travels on a USB
stick) and raises only :class:`ManifestError`. Stdlib and pyrage only.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import pyrage
from pyrage import x25519

from intake.review.lang import _
from intake.strictjson import StrictJSONError, loads_strict

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "BUNDLE_VERSION_UNSIGNED",
    "CASE_ID_RE",
    "ENTRY_KINDS",
    "ENVELOPE_DIR",
    "ENVELOPE_ID_RE",
    "ENVELOPE_SUFFIX",
    "GENESIS",
    "KIND_FOLLOWUP",
    "KIND_REPORT",
    "MANIFEST_NAME",
    "MAX_MANIFEST_BYTES",
    "MAX_SEQ",
    "ChainInfo",
    "Manifest",
    "ManifestEntry",
    "ManifestError",
    "OmittedEntry",
    "chain_hash",
    "envelope_member_name",
    "json_refusal",
    "manifest_bytes",
    "parse_manifest",
]

BUNDLE_FORMAT: Final = "intake.bundle"
#: Signed bundles with the chain; :data:`BUNDLE_VERSION_UNSIGNED` is still read.
BUNDLE_VERSION: Final = 2
BUNDLE_VERSION_UNSIGNED: Final = 1
#: The "previous hash" of the first chain entry.
GENESIS: Final = "0" * 64
#: The highest chain sequence number accepted (far beyond any server's life).
MAX_CHAIN_SEQ: Final = 1 << 53
MANIFEST_NAME: Final = "manifest.json"
ENVELOPE_DIR: Final = "envelopes/"
ENVELOPE_SUFFIX: Final = ".age"
#: Envelope ids: what the server generates, and all a bundle may name.
ENVELOPE_ID_RE: Final = re.compile(r"[a-z0-9-]{1,64}")
#: A manifest is a few hundred bytes per envelope; refuse anything absurd.
MAX_MANIFEST_BYTES: Final = 16 * 1024 * 1024
MAX_MANIFEST_ENTRIES: Final = 1_000_000
#: Case ids: a report's id, as follow-ups and replies name it.
CASE_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
KIND_REPORT: Final = "report"
KIND_FOLLOWUP: Final = "followup"
ENTRY_KINDS: Final = (KIND_REPORT, KIND_FOLLOWUP)
#: The highest follow-up sequence number (as :mod:`intake.schema` allows).
MAX_SEQ: Final = 1_000_000

_MEMBER_RE: Final = re.compile(r"envelopes/([a-z0-9-]{1,64})\.age")
_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
_HOUR_MAX_LEN: Final = 40
_RECIPIENT_MAX_LEN: Final = 100
_KEY_MAX_LEN: Final = 100
# Sizes beyond this are not envelopes anyone exported (1 PiB).
_MAX_SIZE: Final = 1 << 50


class ManifestError(ValueError):
    """A manifest.json that cannot be used; the message is one line."""


@dataclass(frozen=True)
class ManifestEntry:
    """What the manifest says about one envelope.

    ``case_id`` defaults to the entry's own id (a report is its own case);
    ``seq`` is 0 for a report and 1, 2, … for the follow-ups of a case;
    ``reply_recipient`` (reports only) is the reporter's reply key, ``age1…``.
    Construction does not validate; :func:`manifest_bytes` does.
    """

    id: str
    received_hour: str
    size: int
    sha256: str
    kind: str = KIND_REPORT
    case_id: str = ""
    seq: int = 0
    reply_recipient: str | None = None
    #: Its place in the server's hash chain, and the chain hash there (version 2).
    chain_seq: int | None = None
    chain_hash: str | None = None

    def __post_init__(self) -> None:
        if not self.case_id:
            object.__setattr__(self, "case_id", self.id)

    @property
    def is_followup(self) -> bool:
        return self.kind == KIND_FOLLOWUP

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "received_hour": self.received_hour,
            "size": self.size,
            "sha256": self.sha256,
            "kind": self.kind,
            "case_id": self.case_id,
            "seq": self.seq,
        }
        if self.reply_recipient is not None:
            out["reply_recipient"] = self.reply_recipient
        if self.chain_seq is not None:
            out["chain_seq"] = self.chain_seq
        if self.chain_hash is not None:
            out["chain_hash"] = self.chain_hash
        return out


@dataclass(frozen=True)
class OmittedEntry:
    """A chain entry inside the bundle's stretch whose envelope is not in the bundle."""

    seq: int
    envelope_id: str
    envelope_sha256: str
    kind: str
    case_id: str
    received_hour: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "envelope_id": self.envelope_id,
            "envelope_sha256": self.envelope_sha256,
            "kind": self.kind,
            "case_id": self.case_id,
            "received_hour": self.received_hour,
        }


@dataclass(frozen=True)
class ChainInfo:
    """The stretch of the server's chain a version 2 bundle covers."""

    from_seq: int
    from_hash: str
    head_seq: int
    head_hash: str
    omitted: tuple[OmittedEntry, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "from_seq": self.from_seq,
            "from_hash": self.from_hash,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "omitted": [entry.to_dict() for entry in self.omitted],
        }


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest: its header and one entry per envelope id.

    ``entries`` keeps the manifest's order. ``chain`` and ``signing_key`` are
    set for version 2 and None for version 1 (unsigned) bundles.
    """

    created_hour: str
    entries: Mapping[str, ManifestEntry]
    version: int = BUNDLE_VERSION_UNSIGNED
    chain: ChainInfo | None = None
    signing_key: str | None = None

    @property
    def signed(self) -> bool:
        return self.version >= BUNDLE_VERSION


def chain_hash(
    previous: str,
    envelope_sha256: str,
    *,
    seq: int,
    kind: str,
    envelope_id: str,
    case_id: str,
    received_hour: str,
) -> str:
    """SHA-256(previous ‖ envelope SHA-256 ‖ "seq|kind|envelope_id|case_id|received_hour").

    The server appends with this very function (:mod:`intake.chain`) and the
    offline tool recomputes with it; hex in, hex out.
    """
    metadata = f"{seq}|{kind}|{envelope_id}|{case_id}|{received_hour}"
    digest = hashlib.sha256()
    digest.update(bytes.fromhex(previous))
    digest.update(bytes.fromhex(envelope_sha256))
    digest.update(metadata.encode("ascii"))
    return digest.hexdigest()


def envelope_member_name(envelope_id: str) -> str:
    """The tar member name of an envelope: ``envelopes/<id>.age``."""
    if not ENVELOPE_ID_RE.fullmatch(envelope_id):
        raise ValueError(f"not a valid envelope id: {envelope_id!r}")
    return f"{ENVELOPE_DIR}{envelope_id}{ENVELOPE_SUFFIX}"


def envelope_id_of_member(name: str) -> str | None:
    """The envelope id a member name stands for, or None if it is not an envelope member."""
    match = _MEMBER_RE.fullmatch(name)
    return match.group(1) if match else None


def manifest_bytes(
    created_hour: str,
    entries: Iterable[ManifestEntry],
    *,
    chain: ChainInfo | None = None,
    signing_key: str | None = None,
) -> bytes:
    """Serialise a manifest exactly as :func:`parse_manifest` expects it.

    With ``chain`` (and ``signing_key``) it is a version 2 manifest, to be
    signed; without, an unsigned version 1 manifest (whose entries must then
    carry no chain fields).

    Raises :class:`ManifestError` (a ValueError) for an entry the parser would
    refuse, naming it: a bad id, kind, case id, sequence number, recipient or
    chain field, or an id or follow-up (case, seq) listed twice.
    """
    listed = list(entries)
    seen: set[str] = set()
    positions: set[tuple[str, int]] = set()
    for index, entry in enumerate(listed):
        envelope_member_name(entry.id)  # validates the id
        where = f"envelopes[{index}] ({entry.id})"
        _check_case_fields(entry, where)
        _check_chain_fields(entry.chain_seq, entry.chain_hash, where)
        if chain is None and (entry.chain_seq is not None or entry.chain_hash is not None):
            raise ManifestError(
                _("manifest.json: %(field)s: chain fields need a chain") % {"field": where}
            )
        _check_unique(entry, seen, positions)
    document: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION_UNSIGNED if chain is None else BUNDLE_VERSION,
        "created_hour": created_hour,
    }
    if chain is not None:
        if signing_key is None:
            raise ManifestError(_("manifest.json: a version 2 manifest names its signing key"))
        document["signing_key"] = signing_key
        document["chain"] = chain.to_dict()
        _parse_chain(document["chain"])  # refuses what the parser would
        _text(signing_key, "signing_key", _KEY_MAX_LEN)
    document["envelopes"] = [entry.to_dict() for entry in listed]
    return (json.dumps(document, indent=1, ensure_ascii=True) + "\n").encode("ascii")


# Messages. Field paths ("manifest.json: envelopes[3].kind") are JSON
# locations, not words: they stay as they are in every language.


def too_large_message() -> str:
    """What a manifest larger than :data:`MAX_MANIFEST_BYTES` is told, in the current language."""
    return _("manifest.json: larger than %(max)d bytes") % {"max": MAX_MANIFEST_BYTES}


def _one_of(field: str) -> str:
    return _("%(field)s: expected one of %(values)s") % {
        "field": field,
        "values": ", ".join(ENTRY_KINDS),
    }


def _not_case_id(field: str) -> str:
    return _("%(field)s: not a case id") % {"field": field}


def _not_envelope_id(field: str) -> str:
    return _("%(field)s: not a valid envelope id") % {"field": field}


def _whole_from(field: str, low: int) -> str:
    return _("%(field)s: expected a whole number from %(low)d") % {"field": field, "low": low}


def _hex64(field: str) -> str:
    return _("%(field)s: expected 64 lowercase hex digits") % {"field": field}


def _object(field: str) -> str:
    return _("%(field)s: expected an object") % {"field": field}


def _list(field: str) -> str:
    return _("%(field)s: expected a list") % {"field": field}


def _too_many(field: str) -> str:
    return _("%(field)s: too many entries") % {"field": field}


def json_refusal(refusal: StrictJSONError) -> str:
    """Why :func:`~intake.strictjson.loads_strict` refused a document, in the current language.

    Without the document's name (the caller puts it in front). The decoder's
    particulars (line, column) are left out: they are English only.
    """
    if refusal.refusal == "size":
        return _("larger than %(max)d bytes") % {"max": refusal.limit}
    if refusal.refusal == "duplicate":
        return _("the key %(key)s appears twice") % {"key": refusal.key}
    if refusal.refusal == "constant":
        return _("%(name)s is not allowed") % {"name": refusal.constant}
    return _("not valid UTF-8 JSON")


def _text(value: Any, path: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise ManifestError(_("manifest.json: %(field)s: expected a string") % {"field": path})
    if len(value) > max_len or not value.isprintable():
        raise ManifestError(
            _("manifest.json: %(field)s: not a short printable string") % {"field": path}
        )
    return value


def _check_case_fields(entry: ManifestEntry, path: str) -> None:
    """The case fields of one entry: kind, case id, seq, reply recipient."""
    where = f"manifest.json: {path}"
    if entry.kind not in ENTRY_KINDS:
        raise ManifestError(_one_of(f"{where}.kind"))
    # An old-style id (ENVELOPE_ID_RE allows a leading "-") may be its own case.
    valid_case = isinstance(entry.case_id, str) and CASE_ID_RE.fullmatch(entry.case_id)
    if not valid_case and entry.case_id != entry.id:
        raise ManifestError(_not_case_id(f"{where}.case_id"))
    if type(entry.seq) is not int or not 0 <= entry.seq <= MAX_SEQ:
        raise ManifestError(
            _("%(field)s: expected a whole number from 0 to %(max)d")
            % {"field": f"{where}.seq", "max": MAX_SEQ}
        )
    if entry.kind == KIND_REPORT:
        if entry.case_id != entry.id:
            raise ManifestError(
                _("%(field)s: a report is its own case") % {"field": f"{where}.case_id"}
            )
        if entry.seq != 0:
            raise ManifestError(_("%(field)s: a report has seq 0") % {"field": f"{where}.seq"})
    else:
        if entry.case_id == entry.id:
            raise ManifestError(
                _("%(field)s: a follow-up must name its report's case")
                % {"field": f"{where}.case_id"}
            )
        if entry.seq < 1:
            raise ManifestError(
                _("%(field)s: a follow-up has seq 1 or more") % {"field": f"{where}.seq"}
            )
        if entry.reply_recipient is not None:
            raise ManifestError(
                _("%(field)s: only a report carries one") % {"field": f"{where}.reply_recipient"}
            )
    if entry.reply_recipient is not None:
        _check_recipient(entry.reply_recipient, f"{where}.reply_recipient")


def _check_recipient(value: Any, where: str) -> None:
    if (
        not isinstance(value, str)
        or not value.startswith("age1")
        or len(value) > _RECIPIENT_MAX_LEN
        or not value.isascii()
    ):
        raise ManifestError(_("%(field)s: not an age X25519 recipient (age1…)") % {"field": where})
    try:
        parsed = x25519.Recipient.from_str(value)
    except (pyrage.RecipientError, ValueError, TypeError):
        raise ManifestError(
            _("%(field)s: not a valid age X25519 recipient") % {"field": where}
        ) from None
    if str(parsed) != value:
        raise ManifestError(
            _("%(field)s: not in canonical form (lowercase age1…)") % {"field": where}
        )


def _check_unique(entry: ManifestEntry, seen: set[str], positions: set[tuple[str, int]]) -> None:
    if entry.id in seen:
        raise ManifestError(_("manifest.json: envelope %(id)s is listed twice") % {"id": entry.id})
    seen.add(entry.id)
    if entry.is_followup:
        position = (entry.case_id, entry.seq)
        if position in positions:
            raise ManifestError(
                _(
                    "manifest.json: envelope %(id)s: case %(case)s has two "
                    "follow-ups with seq %(seq)d"
                )
                % {"id": entry.id, "case": entry.case_id, "seq": entry.seq}
            )
        positions.add(position)


def _check_chain_fields(chain_seq: Any, hash_: Any, where: str) -> None:
    if (chain_seq is None) != (hash_ is None):
        raise ManifestError(
            _("manifest.json: %(field)s: chain_seq and chain_hash go together") % {"field": where}
        )
    if chain_seq is None:
        return
    if type(chain_seq) is not int or not 1 <= chain_seq <= MAX_CHAIN_SEQ:
        raise ManifestError(_whole_from(f"manifest.json: {where}.chain_seq", 1))
    if not isinstance(hash_, str) or not _SHA256_RE.fullmatch(hash_):
        raise ManifestError(_hex64(f"manifest.json: {where}.chain_hash"))


def _seq_field(value: Any, where: str, low: int) -> int:
    if type(value) is not int or not low <= value <= MAX_CHAIN_SEQ:
        raise ManifestError(_whole_from(f"manifest.json: {where}", low))
    return int(value)


def _hash_field(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _SHA256_RE.fullmatch(value):
        raise ManifestError(_hex64(f"manifest.json: {where}"))
    return value


def _omitted(value: Any, index: int) -> OmittedEntry:
    where = f"chain.omitted[{index}]"
    if not isinstance(value, dict):
        raise ManifestError(_object(f"manifest.json: {where}"))
    if set(value) != {"seq", "envelope_id", "envelope_sha256", "kind", "case_id", "received_hour"}:
        raise ManifestError(
            _("manifest.json: %(field)s: expected exactly the six chain fields") % {"field": where}
        )
    seq = _seq_field(value["seq"], f"{where}.seq", 1)
    envelope_id = value["envelope_id"]
    if not isinstance(envelope_id, str) or not ENVELOPE_ID_RE.fullmatch(envelope_id):
        raise ManifestError(_not_envelope_id(f"manifest.json: {where}.envelope_id"))
    sha = _hash_field(value["envelope_sha256"], f"{where}.envelope_sha256")
    kind = value["kind"]
    if not isinstance(kind, str) or kind not in ENTRY_KINDS:
        raise ManifestError(_one_of(f"manifest.json: {where}.kind"))
    case_id = value["case_id"]
    if not isinstance(case_id, str) or not CASE_ID_RE.fullmatch(case_id):
        raise ManifestError(_not_case_id(f"manifest.json: {where}.case_id"))
    hour = _text(value["received_hour"], f"{where}.received_hour", _HOUR_MAX_LEN)
    if not hour.isascii():
        raise ManifestError(
            _("%(field)s: not ASCII") % {"field": f"manifest.json: {where}.received_hour"}
        )
    return OmittedEntry(seq, envelope_id, sha, kind, case_id, hour)


def _parse_chain(value: Any) -> ChainInfo:
    if not isinstance(value, dict):
        raise ManifestError(_object("manifest.json: chain"))
    if set(value) != {"from_seq", "from_hash", "head_seq", "head_hash", "omitted"}:
        raise ManifestError(
            _("manifest.json: chain: expected from_seq, from_hash, head_seq, head_hash, omitted")
        )
    from_seq = _seq_field(value["from_seq"], "chain.from_seq", 0)
    head_seq = _seq_field(value["head_seq"], "chain.head_seq", 0)
    if head_seq < from_seq:
        raise ManifestError(_("manifest.json: chain: head_seq is before from_seq"))
    from_hash = _hash_field(value["from_hash"], "chain.from_hash")
    head_hash = _hash_field(value["head_hash"], "chain.head_hash")
    if from_seq == 0 and from_hash != GENESIS:
        raise ManifestError(_("manifest.json: chain.from_hash: the chain starts at zeros"))
    raw = value["omitted"]
    if not isinstance(raw, list):
        raise ManifestError(_list("manifest.json: chain.omitted"))
    if len(raw) > MAX_MANIFEST_ENTRIES:
        raise ManifestError(_too_many("manifest.json: chain.omitted"))
    omitted = tuple(_omitted(item, index) for index, item in enumerate(raw))
    return ChainInfo(from_seq, from_hash, head_seq, head_hash, omitted)


def _entry(value: Any, index: int) -> ManifestEntry:
    path = f"envelopes[{index}]"
    if not isinstance(value, dict):
        raise ManifestError(_object(f"manifest.json: {path}"))
    envelope_id = value.get("id")
    if not isinstance(envelope_id, str) or not ENVELOPE_ID_RE.fullmatch(envelope_id):
        raise ManifestError(_not_envelope_id(f"manifest.json: {path}.id"))
    size = value.get("size")
    if type(size) is not int or not 0 <= size <= _MAX_SIZE:
        raise ManifestError(
            _("%(field)s: expected a byte count") % {"field": f"manifest.json: {path}.size"}
        )
    sha256 = value.get("sha256")
    if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
        raise ManifestError(_hex64(f"manifest.json: {path}.sha256"))
    received = _text(value.get("received_hour", ""), f"{path}.received_hour", _HOUR_MAX_LEN)
    path = f"envelopes[{index}] ({envelope_id})"
    kind = value.get("kind", KIND_REPORT)
    if not isinstance(kind, str) or kind not in ENTRY_KINDS:
        raise ManifestError(_one_of(f"manifest.json: {path}.kind"))
    case_id = value.get("case_id", envelope_id)
    if not isinstance(case_id, str) or len(case_id) > 64:
        raise ManifestError(_not_case_id(f"manifest.json: {path}.case_id"))
    seq = value.get("seq", 0)
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise ManifestError(
            _("%(field)s: expected a whole number 0 to %(max)d")
            % {"field": f"manifest.json: {path}.seq", "max": MAX_SEQ}
        )
    recipient = value.get("reply_recipient")
    if recipient is not None and not isinstance(recipient, str):
        raise ManifestError(
            _("%(field)s: expected a string or null")
            % {"field": f"manifest.json: {path}.reply_recipient"}
        )
    chain_seq = value.get("chain_seq")
    hash_ = value.get("chain_hash")
    _check_chain_fields(chain_seq, hash_, path)
    entry = ManifestEntry(
        envelope_id, received, size, sha256, kind, case_id, seq, recipient, chain_seq, hash_
    )
    _check_case_fields(entry, path)
    return entry


def parse_manifest(data: bytes) -> Manifest:
    """Parse untrusted manifest.json bytes; raises only :class:`ManifestError`."""
    try:
        document = loads_strict(data, what=MANIFEST_NAME, max_bytes=MAX_MANIFEST_BYTES)
    except StrictJSONError as refusal:
        raise ManifestError(f"{MANIFEST_NAME}: {json_refusal(refusal)}") from None
    if not isinstance(document, dict):
        raise ManifestError(_("manifest.json: expected a JSON object"))
    if document.get("format") != BUNDLE_FORMAT:
        raise ManifestError(
            _("manifest.json: format: expected %(format)s") % {"format": repr(BUNDLE_FORMAT)}
        )
    version = document.get("version")
    if type(version) is not int:
        raise ManifestError(_("manifest.json: version: expected a whole number"))
    if version not in (BUNDLE_VERSION_UNSIGNED, BUNDLE_VERSION):
        raise ManifestError(
            _(
                "manifest.json: version %(version)d is not supported (this tool reads "
                "%(old)d and %(new)d); update intake-review"
            )
            % {"version": version, "old": BUNDLE_VERSION_UNSIGNED, "new": BUNDLE_VERSION}
        )
    created = _text(document.get("created_hour", ""), "created_hour", _HOUR_MAX_LEN)
    chain: ChainInfo | None = None
    signing_key: str | None = None
    if version == BUNDLE_VERSION:
        chain = _parse_chain(document.get("chain"))
        signing_key = _text(document.get("signing_key"), "signing_key", _KEY_MAX_LEN)
    elif "chain" in document or "signing_key" in document:
        raise ManifestError(_("manifest.json: a version 1 manifest has no chain or signing key"))
    raw_entries = document.get("envelopes")
    if not isinstance(raw_entries, list):
        raise ManifestError(_list("manifest.json: envelopes"))
    if len(raw_entries) > MAX_MANIFEST_ENTRIES:
        raise ManifestError(_too_many("manifest.json: envelopes"))
    entries: dict[str, ManifestEntry] = {}
    seen: set[str] = set()
    positions: set[tuple[str, int]] = set()
    for index, raw in enumerate(raw_entries):
        entry = _entry(raw, index)
        if chain is None and entry.chain_seq is not None:
            raise ManifestError(
                _("%(field)s: chain fields in a version 1 manifest")
                % {"field": f"manifest.json: envelopes[{index}] ({entry.id})"}
            )
        _check_unique(entry, seen, positions)
        entries[entry.id] = entry
    return Manifest(created, entries, version, chain, signing_key)
