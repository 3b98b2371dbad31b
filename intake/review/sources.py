"""Where envelopes come from: an export bundle (a tar) or a folder of ``*.age`` files.

A bundle is untrusted: it is read with :mod:`tarfile` member by member and
never extracted to disk. Only regular members named ``manifest.json`` and
``envelopes/<id>.age`` are used; anything else (links, devices, ``..``,
absolute paths, other names) is ignored and reported as a problem. Each
envelope can be checked against the manifest's size and SHA-256.

A version 2 bundle also holds ``manifest.sig``; the source keeps the exact
manifest bytes and the signature member, which ``intake-review import`` (and
``list``, ``show``, ``extract`` and ``reply`` on a bundle named directly)
verify against the pinned server key (:func:`.archive.signature_problem`).
Reading a version 1 bundle adds the warning "unsigned bundle".
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tarfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, BinaryIO, Final, cast

from intake.review.bundle import (
    BUNDLE_VERSION,
    ENVELOPE_SUFFIX,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestEntry,
    ManifestError,
    envelope_id_of_member,
    parse_manifest,
)
from intake.review.bundle import too_large_message as _manifest_too_large
from intake.review.lang import N_, _
from intake.review.signature import MAX_SIGNATURE_BYTES, SIGNATURE_NAME
from intake.review.tarcheck import TarCheckError, check_tar_headers
from intake.review.terminal import neutralise

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "EnvelopeRef",
    "SelectionError",
    "Source",
    "SourceError",
    "open_source",
]

#: What reading a version 1 bundle warns (list, show and extract still read it).
#: An English msgid: shown through :func:`intake.review.lang._`.
UNSIGNED_WARNING: Final = N_(
    "unsigned bundle (manifest version 1): where it came from cannot be verified; "
    "`intake-review import` refuses it"
)
#: An envelope member's problem when the bundle holds it twice (an English msgid).
DUPLICATE_MEMBER: Final = N_(
    "appears twice in the bundle (bundle altered?); the first copy is used"
)

#: More tar members than this in a bundle is refused (bounds memory and time).
MAX_BUNDLE_MEMBERS: Final = 200_000
#: Ids of envelopes in a folder: the file name without ``.age``.
FOLDER_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_CHUNK = 1 << 20
_TAR_ERRORS = (tarfile.TarError, OSError, EOFError, ValueError, OverflowError, UnicodeError)


def missing_member_problem(envelope_id: str) -> str:
    """The source problem for a manifest entry whose envelope is not in the bundle."""
    return _("envelope %(id)s is in the manifest but missing from the bundle") % {"id": envelope_id}


class SourceError(Exception):
    """A source that cannot be read at all (missing, not a tar, not a folder)."""


class SelectionError(Exception):
    """An id or prefix given on the command line matches no envelope, or several."""


@dataclass
class EnvelopeRef:
    """One envelope in a source: its id, how to open it, and what is known about it."""

    id: str
    opener: Callable[[], BinaryIO]
    expected: ManifestEntry | None = None
    problems: list[str] = field(default_factory=list)

    def open(self) -> BinaryIO:
        """A fresh binary stream over the sealed envelope bytes."""
        return self.opener()

    @property
    def received_hour(self) -> str:
        return self.expected.received_hour if self.expected else ""

    def check_integrity(self) -> str | None:
        """Compare the envelope's size and SHA-256 with the manifest; a problem or None."""
        if self.expected is None:
            return None
        digest = hashlib.sha256()
        size = 0
        try:
            with self.open() as stream:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
        except _TAR_ERRORS as exc:
            return _("cannot be read from the source (%(reason)s)") % {"reason": _one_line(exc)}
        if size != self.expected.size:
            return _(
                "size %(size)d differs from the manifest's %(expected)d (bundle damaged or altered)"
            ) % {"size": size, "expected": self.expected.size}
        if digest.hexdigest() != self.expected.sha256:
            return _("SHA-256 differs from the manifest (bundle damaged or altered)")
        return None


@dataclass
class Source(AbstractContextManager["Source"]):
    """The envelopes of a bundle or folder, sorted by id, and problems found reading it."""

    path: Path
    kind: str  # "bundle" | "folder"
    envelopes: list[EnvelopeRef]
    problems: list[str] = field(default_factory=list)
    manifest: Manifest | None = None
    #: The exact bytes of manifest.json (bundles), even when it did not parse.
    manifest_data: bytes | None = None
    #: The manifest.sig member's bytes, if the bundle has exactly one.
    signature_data: bytes | None = None
    #: Things to say that are not problems (an unsigned bundle).
    warnings: list[str] = field(default_factory=list)
    _closer: Callable[[], None] | None = None

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def select(self, wanted: Sequence[str]) -> list[EnvelopeRef]:
        """The envelopes named by ids or unique id prefixes, in the order given."""
        by_id = {ref.id: ref for ref in self.envelopes}
        chosen: list[EnvelopeRef] = []
        for prefix in wanted:
            if prefix in by_id:
                match = by_id[prefix]
            else:
                candidates = [ref for ref in self.envelopes if ref.id.startswith(prefix)]
                if not prefix or not candidates:
                    raise SelectionError(
                        _("no envelope id starts with %(prefix)s")
                        % {"prefix": repr(neutralise(prefix))}
                    )
                if len(candidates) > 1:
                    raise SelectionError(
                        _("%(prefix)s matches %(count)d envelopes; give more characters")
                        % {"prefix": repr(neutralise(prefix)), "count": len(candidates)}
                    )
                match = candidates[0]
            if match not in chosen:
                chosen.append(match)
        return chosen


def open_source(path: Path) -> Source:
    """Open a bundle (a tar file) or a folder of envelopes; raises :class:`SourceError`."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SourceError(_("%(path)s: no such file or folder") % {"path": path}) from None
    except OSError as exc:
        raise SourceError(_cannot_read(path, exc)) from None
    if stat.S_ISDIR(mode):
        return _open_folder(path)
    if stat.S_ISREG(mode):
        return _open_bundle(path)
    raise SourceError(_("%(path)s: neither a bundle file nor a folder") % {"path": path})


def _cannot_read(path: Path, exc: OSError) -> str:
    return _("%(path)s: cannot be read (%(reason)s)") % {"path": path, "reason": exc.strerror}


def _open_folder(path: Path) -> Source:
    envelopes: list[EnvelopeRef] = []
    problems: list[str] = []
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as exc:
        raise SourceError(
            _("%(path)s: cannot be listed (%(reason)s)") % {"path": path, "reason": exc.strerror}
        ) from None
    for entry in entries:
        if not entry.name.endswith(ENVELOPE_SUFFIX):
            continue
        envelope_id = entry.name[: -len(ENVELOPE_SUFFIX)]
        shown = neutralise(entry.name)
        if not FOLDER_ID_RE.fullmatch(envelope_id):
            problems.append(
                _("%(file)s: skipped (name is not a plain envelope id)") % {"file": shown}
            )
            continue
        if not entry.is_file(follow_symlinks=False):
            problems.append(_("%(file)s: skipped (not a regular file)") % {"file": shown})
            continue
        file_path = Path(entry.path)
        envelopes.append(EnvelopeRef(envelope_id, _file_opener(file_path)))
    return Source(path, "folder", envelopes, problems)


def _file_opener(file_path: Path) -> Callable[[], BinaryIO]:
    def opener() -> BinaryIO:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        return cast(BinaryIO, os.fdopen(os.open(file_path, flags), "rb"))

    return opener


def _iter_members(archive: tarfile.TarFile, problems: list[str]) -> Iterator[tarfile.TarInfo]:
    count = 0
    while True:
        try:
            info = archive.next()
        except _TAR_ERRORS as exc:
            problems.append(
                _("the tar is damaged after %(count)d members (%(kind)s); the rest is ignored")
                % {"count": count, "kind": type(exc).__name__}
            )
            return
        if info is None:
            return
        count += 1
        if count > MAX_BUNDLE_MEMBERS:
            problems.append(
                _("more than %(max)d members; the rest is ignored") % {"max": MAX_BUNDLE_MEMBERS}
            )
            return
        yield info


class _MemberReader(io.RawIOBase):
    """A tar member's bytes; a damaged tar surfaces as OSError, like any read failure."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__()
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._stream.read(len(view))
        except _TAR_ERRORS as exc:
            raise OSError(_damaged(exc)) from None
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()


def _damaged(exc: BaseException) -> str:
    return _("the bundle is damaged (%(reason)s)") % {"reason": _one_line(exc)}


def _one_line(exc: BaseException) -> str:
    return neutralise(str(exc).split("\n", 1)[0])[:120] or type(exc).__name__


def _member_opener(archive: tarfile.TarFile, info: tarfile.TarInfo) -> Callable[[], BinaryIO]:
    def opener() -> BinaryIO:
        try:
            stream = archive.extractfile(info)
        except _TAR_ERRORS as exc:
            raise OSError(_damaged(exc)) from None
        if stream is None:  # only for non-regular members, which are never kept
            raise OSError(_("not a regular member"))
        return cast(BinaryIO, io.BufferedReader(_MemberReader(stream)))

    return opener


def _open_bundle(path: Path) -> Source:
    try:
        handle: IO[bytes] = path.open("rb")
    except OSError as exc:
        raise SourceError(_cannot_read(path, exc)) from None
    try:
        check_tar_headers(handle)  # before tarfile's own parser sees a crafted header
        archive = tarfile.open(fileobj=handle, mode="r:")  # noqa: SIM115 - kept open by Source
    except (*_TAR_ERRORS, TarCheckError):
        handle.close()
        raise SourceError(
            _("%(path)s: not an export bundle (not a tar file)") % {"path": path}
        ) from None

    def closer() -> None:
        archive.close()
        handle.close()

    problems: list[str] = []
    envelopes: dict[str, EnvelopeRef] = {}
    manifest_info: tarfile.TarInfo | None = None
    manifest_seen = 0
    signature_info: tarfile.TarInfo | None = None
    signature_seen = 0
    for info in _iter_members(archive, problems):
        name = info.name
        shown = neutralise(name)[:120]
        regular = info.type in (tarfile.REGTYPE, tarfile.AREGTYPE)
        if info.isdir() and name.rstrip("/") in ("envelopes", "."):
            continue
        if name == MANIFEST_NAME:
            manifest_seen += 1
            if not regular:
                problems.append(_("manifest.json is not a regular file; ignored"))
            else:
                manifest_info = info
            continue
        if name == SIGNATURE_NAME:
            signature_seen += 1
            if not regular:
                problems.append(_("manifest.sig is not a regular file; ignored"))
            else:
                signature_info = info
            continue
        envelope_id = envelope_id_of_member(name)
        if envelope_id is None:
            problems.append(_("ignored unexpected member %(member)s") % {"member": repr(shown)})
            continue
        if not regular:
            problems.append(
                _("ignored %(member)s: not a regular file (link or device)")
                % {"member": repr(shown)}
            )
            continue
        if envelope_id in envelopes:
            envelopes[envelope_id].problems.append(_(DUPLICATE_MEMBER))
            continue
        envelopes[envelope_id] = EnvelopeRef(envelope_id, _member_opener(archive, info))

    source = Source(path, "bundle", sorted(envelopes.values(), key=lambda r: r.id), problems)
    source._closer = closer
    if manifest_seen > 1:
        problems.append(_("manifest.json appears more than once (bundle altered?)"))
    if signature_seen > 1:
        problems.append(_("manifest.sig appears more than once (bundle altered?)"))
    elif signature_info is not None:
        source.signature_data = _read_small(archive, signature_info, MAX_SIGNATURE_BYTES)
    if manifest_info is None:
        problems.append(_("no usable manifest.json; envelopes cannot be checked against it"))
        return source
    try:
        source.manifest_data = _read_manifest_bytes(archive, manifest_info)
        source.manifest = parse_manifest(source.manifest_data)
    except ManifestError as exc:
        problems.append(_("%(problem)s; envelopes cannot be checked against it") % {"problem": exc})
        return source
    if not source.manifest.signed:
        source.warnings.append(_(UNSIGNED_WARNING))
    elif source.manifest.version == BUNDLE_VERSION and signature_info is None:
        problems.append(_("a signed (version 2) bundle without manifest.sig (bundle altered?)"))
    for ref in source.envelopes:
        ref.expected = source.manifest.entries.get(ref.id)
        if ref.expected is None:
            ref.problems.append(_("is in the bundle but not in its manifest (bundle altered?)"))
    present = {ref.id for ref in source.envelopes}
    for missing in sorted(set(source.manifest.entries) - present):
        problems.append(missing_member_problem(missing))
    return source


def _read_manifest_bytes(archive: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    if info.size > MAX_MANIFEST_BYTES:
        raise ManifestError(_manifest_too_large())
    try:
        stream = archive.extractfile(info)
        return stream.read(MAX_MANIFEST_BYTES + 1) if stream else b""
    except _TAR_ERRORS as exc:
        raise ManifestError(
            _("manifest.json: cannot be read (%(kind)s)") % {"kind": type(exc).__name__}
        ) from None


def _read_small(archive: tarfile.TarFile, info: tarfile.TarInfo, limit: int) -> bytes | None:
    """A small member's bytes; None if it is larger than ``limit`` or unreadable."""
    if info.size > limit:
        return None
    try:
        stream = archive.extractfile(info)
        return stream.read(limit + 1) if stream else None
    except _TAR_ERRORS:
        return None
