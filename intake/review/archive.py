"""The review machine's archive: pinned server key, verified imports, acknowledgements.

State directory (``--state DIR``, else ``$INTAKE_REVIEW_HOME``, else
``~/.intake-review``; folders 0700, files 0600)::

    server-key             the pinned key, "intake-ed25519:<base64>" (intake-review trust)
    head.json              {"format": "intake.review-head", "version": 1,
                            "seq": N, "hash": "<chain hash at N>"}: the last chain
                            head an import verified (absent: nothing imported yet)
    archive/manifest.json  {"format": "intake.archive", "version": 1,
                            "envelopes": [bundle manifest entries, chain order]}
    archive/envelopes/<id>.age   the sealed envelopes, exactly as exported
    .lock                  held while an import runs

``import`` is all or nothing. It verifies the bundle's signature against the
pinned key, recomputes the chain over the bundle's entries and its omitted
entries from the bundle's ``from`` to its ``head``, checks that this stretch
continues the archive's head (or starts at the genesis for a first import),
and checks every envelope member against the signed manifest. Any problem is
reported per envelope (missing, reordered, duplicated, altered, foreign) and
nothing is imported. Otherwise the envelopes are copied in (still sealed),
the archive manifest and then the head are replaced atomically, and an
acknowledgement listing the SHA-256 of every envelope in the archive is
written for the server (``flask --app intake purge --ack``).

Stdlib, pyrage (via :mod:`.bundle`) and cryptography only.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from intake.review.bundle import (
    ManifestEntry,
    ManifestError,
    OmittedEntry,
    _check_unique,
    _entry,
    chain_hash,
)
from intake.review.lang import N_, _
from intake.review.signature import (
    SignatureFormatError,
    format_public_key,
    key_fingerprint,
    parse_public_key,
    parse_signature,
    verify,
)
from intake.review.sources import (
    DUPLICATE_MEMBER,
    EnvelopeRef,
    Source,
    SourceError,
    _file_opener,
    missing_member_problem,
    open_source,
)
from intake.review.terminal import neutralise

__all__ = [
    "ACK_FORMAT",
    "ACK_VERSION",
    "STATE_ENV",
    "ArchiveError",
    "ImportRefused",
    "ImportResult",
    "State",
    "ack_bytes",
    "default_state_dir",
    "import_bundle",
    "open_archive",
    "signature_problem",
    "trust",
]

STATE_ENV: Final = "INTAKE_REVIEW_HOME"
ACK_FORMAT: Final = "intake.ack"
ACK_VERSION: Final = 1
HEAD_FORMAT: Final = "intake.review-head"
ARCHIVE_FORMAT: Final = "intake.archive"
_CHUNK: Final = 1 << 20
_MAX_STATE_FILE: Final = 256 * 1024 * 1024


class ArchiveError(Exception):
    """The state directory cannot be used (no pinned key, unreadable files); one line."""


class ImportRefused(Exception):
    """The bundle failed a check: nothing was imported. ``problems`` says why, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ImportResult:
    """What an import added."""

    added: list[str]
    already_held: int
    head_seq: int
    previous_head_seq: int
    omitted: int
    #: Chain entries after the previous head whose envelopes are in neither the
    #: bundle nor the archive (purged on the server before anyone here saw
    #: them, or exported in a bundle not imported here): (seq, envelope id).
    not_held: list[tuple[int, str]]
    ack_path: Path
    acknowledged: int


def default_state_dir() -> Path:
    """``$INTAKE_REVIEW_HOME``, else ``~/.intake-review``."""
    env = os.environ.get(STATE_ENV, "")
    return Path(env) if env else Path.home() / ".intake-review"


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (0600) via a temp file, fsync and rename."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_json(path: Path, what: str) -> Any:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_STATE_FILE + 1)
    except OSError as exc:
        raise ArchiveError(
            _("%(path)s: cannot read the %(what)s (%(reason)s)")
            % {"path": path, "what": _(what), "reason": exc.strerror}
        ) from None
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        raise ArchiveError(
            _("%(path)s: the %(what)s is not valid JSON (damaged?)")
            % {"path": path, "what": _(what)}
        ) from None


@dataclass
class State:
    """The review state directory."""

    root: Path

    @property
    def key_file(self) -> Path:
        return self.root / "server-key"

    @property
    def head_file(self) -> Path:
        return self.root / "head.json"

    @property
    def archive_dir(self) -> Path:
        return self.root / "archive"

    @property
    def envelope_dir(self) -> Path:
        return self.archive_dir / "envelopes"

    @property
    def manifest_file(self) -> Path:
        return self.archive_dir / "manifest.json"

    def make(self) -> None:
        try:
            for folder in (self.root, self.archive_dir, self.envelope_dir):
                folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ArchiveError(
                _("%(path)s: cannot make the state folder (%(reason)s)")
                % {"path": self.root, "reason": exc.strerror}
            ) from None

    def pinned_key(self) -> bytes:
        """The raw pinned server key; :class:`ArchiveError` if none is pinned."""
        key = self.pinned_key_if_any()
        if key is None:
            raise ArchiveError(
                _(
                    "no server key is pinned in %(path)s: run `intake-review trust SERVER_KEY` "
                    "with the key `flask --app intake signing-key` prints on the server"
                )
                % {"path": self.root}
            )
        return key

    def pinned_key_if_any(self) -> bytes | None:
        """The raw pinned server key, None if none is pinned; :class:`ArchiveError` if unusable."""
        try:
            text = self.key_file.read_text(encoding="ascii")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ArchiveError(
                _("%(path)s: cannot read the pinned key (%(reason)s)")
                % {"path": self.key_file, "reason": exc}
            ) from None
        try:
            return parse_public_key(text)
        except SignatureFormatError as exc:
            raise ArchiveError(f"{self.key_file}: {exc}") from None

    def head(self) -> tuple[int, str] | None:
        """The last verified chain head (seq, hash), or None before the first import."""
        if not self.head_file.exists():
            return None
        document = _read_json(self.head_file, N_("archive head"))
        if (
            not isinstance(document, dict)
            or document.get("format") != HEAD_FORMAT
            or document.get("version") != 1
            or type(document.get("seq")) is not int
            or document["seq"] < 0
            or not isinstance(document.get("hash"), str)
            or len(document["hash"]) != 64
        ):
            raise ArchiveError(
                _("%(path)s: not an archive head file (damaged?)") % {"path": self.head_file}
            )
        return int(document["seq"]), str(document["hash"])

    def entries(self) -> list[ManifestEntry]:
        """The archive manifest's entries, in chain order (empty before the first import)."""
        if not self.manifest_file.exists():
            return []
        document = _read_json(self.manifest_file, N_("archive manifest"))
        if (
            not isinstance(document, dict)
            or document.get("format") != ARCHIVE_FORMAT
            or document.get("version") != 1
            or not isinstance(document.get("envelopes"), list)
        ):
            raise ArchiveError(
                _("%(path)s: not an archive manifest (damaged?)") % {"path": self.manifest_file}
            )
        entries: list[ManifestEntry] = []
        seen: set[str] = set()
        positions: set[tuple[str, int]] = set()
        try:
            for index, raw in enumerate(document["envelopes"]):
                entry = _entry(raw, index)
                _check_unique(entry, seen, positions)
                entries.append(entry)
        except ManifestError as exc:
            raise ArchiveError(
                _("%(path)s: %(problem)s (damaged?)") % {"path": self.manifest_file, "problem": exc}
            ) from None
        return entries

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state's lock: one import at a time."""
        self.make()
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ArchiveError(
                    _("%(path)s: another import is running") % {"path": self.root}
                ) from None
            yield
        finally:
            os.close(fd)


def trust(state: State, key_text: str) -> tuple[str, str]:
    """Pin ``key_text`` (``intake-ed25519:…``); returns (canonical text, fingerprint).

    Replacing a different pinned key is refused: remove the file deliberately
    when the server's key really changed.
    """
    try:
        raw = parse_public_key(key_text)
    except SignatureFormatError as exc:
        raise ArchiveError(str(exc)) from None
    text = format_public_key(raw)
    state.make()
    if state.key_file.exists():
        if state.pinned_key() == raw:
            return text, key_fingerprint(raw)
        raise ArchiveError(
            _(
                "another server key is already pinned in %(path)s; if the server's key "
                "really changed, remove that file first (and check why it changed)"
            )
            % {"path": state.key_file}
        )
    _write_atomic(state.key_file, (text + "\n").encode("ascii"))
    return text, key_fingerprint(raw)


def ack_bytes(hashes: list[str]) -> bytes:
    """The acknowledgement for the server: every envelope SHA-256 the archive holds."""
    document = {"format": ACK_FORMAT, "version": ACK_VERSION, "envelopes": sorted(set(hashes))}
    return (json.dumps(document, indent=1) + "\n").encode("ascii")


def _archive_manifest_bytes(entries: list[ManifestEntry]) -> bytes:
    document = {
        "format": ARCHIVE_FORMAT,
        "version": 1,
        "envelopes": [entry.to_dict() for entry in entries],
    }
    return (json.dumps(document, indent=1, ensure_ascii=True) + "\n").encode("ascii")


# --- checking a bundle ----------------------------------------------------------------


@dataclass
class _Checked:
    """A bundle that passed every check, ready to be copied in."""

    entries: list[ManifestEntry]
    refs: dict[str, EnvelopeRef]
    head: tuple[int, str]
    omitted: list[OmittedEntry]


@dataclass
class _Problems:
    items: list[str] = field(default_factory=list)

    def add(self, subject: str | None, message: str) -> None:
        self.items.append(f"{neutralise(subject)}: {message}" if subject else message)


def signature_problem(source: Source, pinned: bytes) -> str | None:
    """Why the bundle's manifest is not signed by ``pinned`` (one line), or None if it is.

    The check ``import`` makes; ``list``, ``show``, ``extract`` and ``reply``
    make it too on a bundle named directly.
    """
    problems = _Problems()
    if _verify_signature(source, pinned, problems):
        return None
    return "; ".join(problems.items)


def _verify_signature(source: Source, pinned: bytes, problems: _Problems) -> bool:
    """True when the manifest's signature is the pinned key's; else says why."""
    manifest = source.manifest
    if source.manifest_data is None:
        problems.add(None, _("no manifest.json: not an export bundle, or a damaged one"))
        return False
    if manifest is not None and not manifest.signed:
        problems.add(
            None,
            _(
                "unsigned bundle (manifest version 1): its origin cannot be verified; "
                "export it again from an up-to-date server"
            ),
        )
        return False
    if source.signature_data is None:
        problems.add(None, _("no usable manifest.sig: the bundle is not signed (altered?)"))
        return False
    try:
        signature = parse_signature(source.signature_data)
    except SignatureFormatError as exc:
        problems.add(None, _("bad signature: %(reason)s") % {"reason": exc})
        return False
    if verify(pinned, source.manifest_data, signature):
        return True
    claimed = manifest.signing_key if manifest is not None else None
    other: bytes | None = None
    if claimed is not None:
        try:
            other = parse_public_key(claimed)
        except SignatureFormatError:
            other = None
    if other is not None and other != pinned and verify(other, source.manifest_data, signature):
        problems.add(
            None,
            _(
                "bundle from another server: signed by key %(other)s, "
                "not by the pinned key %(pinned)s"
            )
            % {"other": key_fingerprint(other), "pinned": key_fingerprint(pinned)},
        )
    else:
        problems.add(
            None,
            _(
                "bad signature: manifest.json was not signed by the pinned server key "
                "(altered after export, or signed by someone else)"
            ),
        )
    return False


def _check_chain(source: Source, head: tuple[int, str] | None, problems: _Problems) -> int:
    """Recompute the bundle's chain; returns the number of problems found."""
    manifest = source.manifest
    if manifest is None or manifest.chain is None:  # the caller checked both
        raise ArchiveError("the bundle has no signed chain")
    chain = manifest.chain
    before = len(problems.items)
    entries = list(manifest.entries.values())

    # Order in the manifest is chain order.
    for previous, entry in itertools.pairwise(entries):
        if (
            previous.chain_seq is not None
            and entry.chain_seq is not None
            and entry.chain_seq <= previous.chain_seq
        ):
            problems.add(
                entry.id,
                _(
                    "reordered: listed after envelope %(previous)s (chain seq "
                    "%(previous_seq)d) but its chain seq is %(seq)d"
                )
                % {
                    "previous": previous.id,
                    "previous_seq": previous.chain_seq,
                    "seq": entry.chain_seq,
                },
            )

    # Every seq in (from, head] exactly once, from the bundle or omitted.
    at: dict[int, ManifestEntry | OmittedEntry] = {}
    ids: dict[str, int] = {}
    hashes: dict[str, str] = {}
    for entry in entries:
        if entry.chain_seq is None:
            problems.add(
                entry.id, _("not in the server's chain (no chain seq): cannot be verified")
            )
            continue
        items: list[tuple[ManifestEntry | OmittedEntry, int, str, str]] = [
            (entry, entry.chain_seq, entry.id, entry.sha256)
        ]
        _place(items, at, ids, hashes, chain.from_seq, chain.head_seq, problems)
    for omitted in chain.omitted:
        items = [(omitted, omitted.seq, omitted.envelope_id, omitted.envelope_sha256)]
        _place(items, at, ids, hashes, chain.from_seq, chain.head_seq, problems)
    for seq in range(chain.from_seq + 1, chain.head_seq + 1):
        if seq not in at:
            problems.add(
                None,
                _(
                    "missing: chain seq %(seq)d is neither in the bundle nor listed as omitted "
                    "(an envelope was removed from the bundle)"
                )
                % {"seq": seq},
            )

    # Recompute; where a listed hash disagrees, see if the entry fits elsewhere.
    claimed: dict[int, str] = {chain.from_seq: chain.from_hash}
    for entry in entries:
        if entry.chain_seq is not None and entry.chain_hash is not None:
            claimed.setdefault(entry.chain_seq, entry.chain_hash)
    previous_hash = chain.from_hash
    if head is not None and head[0] == chain.from_seq and head[1] != chain.from_hash:
        problems.add(
            None,
            _(
                "does not continue this archive: the chain before seq %(seq)d "
                "differs from the one this archive verified (another server, or the server's "
                "chain was rewritten)"
            )
            % {"seq": chain.from_seq + 1},
        )
    mismatched: list[ManifestEntry] = []
    broken = False
    for seq in range(chain.from_seq + 1, chain.head_seq + 1):
        item = at.get(seq)
        if item is None:
            broken = True
            break
        computed = _hash_of(previous_hash, seq, item)
        if isinstance(item, ManifestEntry) and computed != item.chain_hash:
            mismatched.append(item)
            computed = item.chain_hash or computed
        previous_hash = computed
        if head is not None and seq == head[0] and computed != head[1]:
            problems.add(
                None,
                _(
                    "does not continue this archive: the chain hash at seq %(seq)d differs from "
                    "the one this archive verified (another server, or the chain was rewritten)"
                )
                % {"seq": seq},
            )
    for entry in mismatched:
        home = _fits_at(entry, claimed, chain.from_seq, chain.head_seq)
        if home is not None and home != entry.chain_seq:
            problems.add(
                entry.id,
                _(
                    "reordered: the chain places this envelope at seq %(home)d, the manifest at "
                    "seq %(seq)s"
                )
                % {"home": home, "seq": entry.chain_seq},
            )
        else:
            problems.add(
                entry.id,
                _("altered: its SHA-256 or details do not match the server's chain at seq %(seq)s")
                % {"seq": entry.chain_seq},
            )
    if not broken and not mismatched and previous_hash != chain.head_hash:
        problems.add(None, _("the recomputed chain does not end at the bundle's head (altered)"))
    return len(problems.items) - before


def _place(
    items: list[tuple[ManifestEntry | OmittedEntry, int, str, str]],
    at: dict[int, ManifestEntry | OmittedEntry],
    ids: dict[str, int],
    hashes: dict[str, str],
    from_seq: int,
    head_seq: int,
    problems: _Problems,
) -> None:
    for item, seq, envelope_id, sha in items:
        if not from_seq < seq <= head_seq:
            problems.add(
                envelope_id,
                _("chain seq %(seq)d is outside the bundle's chain (%(low)d..%(high)d)")
                % {"seq": seq, "low": from_seq + 1, "high": head_seq},
            )
            continue
        if seq in at:
            problems.add(
                envelope_id, _("duplicated: chain seq %(seq)d appears twice") % {"seq": seq}
            )
            continue
        if envelope_id in ids:
            problems.add(envelope_id, _("duplicated: the envelope appears twice in the chain"))
            continue
        if sha in hashes:
            problems.add(
                envelope_id,
                _("duplicated: same SHA-256 as envelope %(other)s (a copy under another id)")
                % {"other": hashes[sha]},
            )
            continue
        at[seq] = item
        ids[envelope_id] = seq
        hashes[sha] = envelope_id


def _hash_of(previous: str, seq: int, item: ManifestEntry | OmittedEntry) -> str:
    if isinstance(item, ManifestEntry):
        return chain_hash(
            previous,
            item.sha256,
            seq=seq,
            kind=item.kind,
            envelope_id=item.id,
            case_id=item.case_id,
            received_hour=item.received_hour,
        )
    return chain_hash(
        previous,
        item.envelope_sha256,
        seq=seq,
        kind=item.kind,
        envelope_id=item.envelope_id,
        case_id=item.case_id,
        received_hour=item.received_hour,
    )


def _fits_at(entry: ManifestEntry, claimed: dict[int, str], low: int, high: int) -> int | None:
    """The seq whose listed chain hash this entry's content produces, if any."""
    for seq in range(low + 1, high + 1):
        if (
            seq in claimed
            and seq - 1 in claimed
            and claimed[seq] == _hash_of(claimed[seq - 1], seq, entry)
        ):
            return seq
    return None


def _check_members(source: Source, problems: _Problems) -> dict[str, EnvelopeRef]:
    """Envelope members against the signed manifest: foreign, missing, duplicated, altered."""
    manifest = source.manifest
    if manifest is None:  # the caller checked it
        raise ArchiveError("the bundle has no manifest")
    refs: dict[str, EnvelopeRef] = {}
    # The source's messages are in the current language: compare whole messages.
    said_below = {missing_member_problem(envelope_id) for envelope_id in manifest.entries}
    for problem in source.problems:
        if problem in said_below:
            continue  # said per envelope below
        problems.add(None, problem)
    duplicate = _(DUPLICATE_MEMBER)
    for ref in source.envelopes:
        if ref.expected is None:
            problems.add(
                ref.id, _("foreign: an envelope member that the signed manifest does not list")
            )
            continue
        for problem in ref.problems:
            if problem == duplicate:
                problems.add(
                    ref.id, _("duplicated: the envelope member appears twice in the bundle")
                )
            else:
                problems.add(ref.id, problem)
        integrity = ref.check_integrity()
        if integrity is not None:
            problems.add(ref.id, _("altered: %(problem)s") % {"problem": integrity})
        refs[ref.id] = ref
    present = {ref.id for ref in source.envelopes}
    for envelope_id, entry in manifest.entries.items():
        if envelope_id not in present:
            problems.add(
                envelope_id,
                _(
                    "missing: listed in the signed manifest (chain seq %(seq)s) but "
                    "not in the bundle"
                )
                % {"seq": entry.chain_seq},
            )
    return refs


def _check(source: Source, state: State, problems: _Problems) -> _Checked | None:
    pinned = state.pinned_key()
    if not _verify_signature(source, pinned, problems):
        return None
    manifest = source.manifest
    if manifest is None or manifest.chain is None:
        # Signed by the pinned key but unreadable: say what the parser said.
        problems.add(None, "; ".join(source.problems) or _("manifest.json cannot be used"))
        return None
    chain = manifest.chain
    head = state.head()
    if head is None:
        if chain.from_seq != 0:
            problems.add(
                None,
                _(
                    "gap: this archive has imported nothing yet, so the bundle's chain must "
                    "start at the beginning, but it starts after seq %(seq)d; ask for an "
                    "export with `--all --chain-from 0`"
                )
                % {"seq": chain.from_seq},
            )
    elif chain.from_seq > head[0]:
        problems.add(
            None,
            _(
                "gap: the bundle's chain starts after seq %(start)d, but this archive's "
                "last head is seq %(head)d: chain entries %(first)d..%(start)d are "
                "not accounted for (a bundle was skipped?). Import the skipped bundle first, or "
                "ask for an export with `--chain-from %(head)d`"
            )
            % {"start": chain.from_seq, "head": head[0], "first": head[0] + 1},
        )
    elif chain.head_seq < head[0]:
        problems.add(
            None,
            _(
                "older than this archive: the bundle's chain ends at seq %(end)d, the "
                "archive already verified up to seq %(head)d"
            )
            % {"end": chain.head_seq, "head": head[0]},
        )
    _check_chain(source, head, problems)
    refs = _check_members(source, problems)
    held = {entry.id: entry for entry in state.entries()}
    for entry in manifest.entries.values():
        old = held.get(entry.id)
        if old is not None and old.sha256 != entry.sha256:
            problems.add(
                entry.id,
                _("altered: the archive already holds this envelope with another SHA-256"),
            )
    if problems.items:
        return None
    return _Checked(
        list(manifest.entries.values()),
        refs,
        (chain.head_seq, chain.head_hash),
        list(chain.omitted),
    )


# --- importing ------------------------------------------------------------------------


def _copy_in(state: State, ref: EnvelopeRef, expected: ManifestEntry) -> None:
    """Copy one sealed envelope into the archive, checking its SHA-256 as it goes."""
    final = state.envelope_dir / f"{expected.id}.age"
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{expected.id}.", suffix=".tmp", dir=state.envelope_dir
    )
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, ref.open() as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected.sha256:
            raise ImportRefused(
                [_("%(id)s: altered: changed while being copied") % {"id": expected.id}]
            )
        tmp.replace(final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def import_bundle(bundle: Path, state: State, *, ack_out: Path | None = None) -> ImportResult:
    """Verify ``bundle`` and add its envelopes to the archive; all or nothing.

    Raises :class:`ImportRefused` (with every problem found) when a check
    fails, :class:`ArchiveError` when the state cannot be used.
    """
    with state.locked():
        try:
            source = open_source(bundle)
        except SourceError as exc:
            raise ImportRefused([str(exc)]) from None
        with source:
            if source.kind != "bundle":
                raise ImportRefused([_("%(path)s: not a bundle file") % {"path": bundle}])
            problems = _Problems()
            checked = _check(source, state, problems)
            if checked is None:
                raise ImportRefused(problems.items)
            previous = state.head()
            held = {entry.id: entry for entry in state.entries()}
            added: list[str] = []
            for entry in checked.entries:
                if entry.id in held and (state.envelope_dir / f"{entry.id}.age").exists():
                    continue
                _copy_in(state, checked.refs[entry.id], entry)
                added.append(entry.id)
        _fsync_dir(state.envelope_dir)
        merged = dict(held)
        for entry in checked.entries:
            if entry.id not in merged or merged[entry.id].chain_seq is None:
                merged[entry.id] = entry
        ordered = sorted(merged.values(), key=lambda e: (e.chain_seq or 0, e.id))
        _write_atomic(state.manifest_file, _archive_manifest_bytes(ordered))
        head_seq, head_hash = checked.head
        if previous is None or head_seq >= previous[0]:
            head_document = {
                "format": HEAD_FORMAT,
                "version": 1,
                "seq": head_seq,
                "hash": head_hash,
            }
            _write_atomic(state.head_file, (json.dumps(head_document) + "\n").encode("ascii"))
        ack = ack_bytes([entry.sha256 for entry in ordered])
        ack_path = ack_out or bundle.parent / f"ack-{head_seq}.json"
        try:
            _write_atomic(ack_path, ack)
        except OSError as exc:
            raise ArchiveError(
                _(
                    "imported, but the acknowledgement could not be written to %(path)s "
                    "(%(reason)s); run import again to write it"
                )
                % {"path": ack_path, "reason": exc.strerror}
            ) from None
    return ImportResult(
        added=added,
        already_held=len(checked.entries) - len(added),
        head_seq=head_seq,
        previous_head_seq=previous[0] if previous else 0,
        omitted=len(checked.omitted),
        not_held=[
            (o.seq, o.envelope_id)
            for o in checked.omitted
            if o.envelope_id not in merged and o.seq > (previous[0] if previous else 0)
        ],
        ack_path=ack_path,
        acknowledged=len(ordered),
    )


def open_archive(state: State) -> Source:
    """The archive as a :class:`Source` for list, show, extract and reply."""
    from intake.review.bundle import Manifest

    if not state.manifest_file.exists():
        raise SourceError(
            _(
                "the archive in %(path)s is empty: import a bundle with "
                "`intake-review import BUNDLE`, or name a bundle or folder"
            )
            % {"path": state.root}
        )
    try:
        entries = state.entries()
    except ArchiveError as exc:
        raise SourceError(str(exc)) from None
    refs: list[EnvelopeRef] = []
    problems: list[str] = []
    for entry in entries:
        path = state.envelope_dir / f"{entry.id}.age"
        if not path.is_file():
            problems.append(
                _("envelope %(id)s is in the archive manifest but its file is gone")
                % {"id": entry.id}
            )
            continue
        refs.append(EnvelopeRef(entry.id, _file_opener(path), expected=entry))
    manifest = Manifest("", {entry.id: entry for entry in entries})
    refs.sort(key=lambda ref: ref.id)
    return Source(state.archive_dir, "archive", refs, problems, manifest)
