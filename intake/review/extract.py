"""Write an envelope's report.json and attachments to ``DIR/<id>/``, and nowhere else.

A case is written as ``DIR/<case>/`` (the report) with one
``DIR/<case>/followup-<seq>/`` folder per follow-up (see :func:`case_folder`).

Defence in depth on top of the envelope reader (which already refuses links,
devices and odd member names): every output name is sanitised again, every
path is resolved and must sit directly inside ``DIR/<id>``, files are created
with ``O_EXCL | O_NOFOLLOW`` (never overwriting, never following a planted
link), and a failed envelope leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from intake.crypto.envelope import sanitise_filename
from intake.review.bundle import ENVELOPE_ID_RE
from intake.review.lang import _
from intake.review.reports import (
    AttachmentCheck,
    ReviewError,
    match_attachments,
    read_raw_full,
)
from intake.review.sources import FOLDER_ID_RE, EnvelopeRef
from intake.schema import ReportFormatError, parse_envelope_json

__all__ = ["ExtractResult", "case_folder", "extract_envelope", "output_name"]

REPORT_FILE = "report.json"
_ATTACHMENT_PREFIX = "attachments/"


@dataclass
class ExtractResult:
    """What one envelope's extraction wrote and found."""

    folder: Path
    written: list[tuple[Path, AttachmentCheck | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def output_name(member: str) -> str:
    """The file name an attachment member gets on disk: ``01-photo.jpg``, sanitised."""
    name = sanitise_filename(member.removeprefix(_ATTACHMENT_PREFIX))
    if name in ("", ".", "..", REPORT_FILE) or any(c in name for c in "/\\\0"):
        raise ReviewError(_("an attachment name cannot be used safely"))
    return name


def _create_exclusive(path: Path) -> BinaryIO:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return cast(BinaryIO, os.fdopen(os.open(path, flags, 0o600), "wb"))


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve(strict=False).parent == folder


def _check_folder_name(name: str) -> None:
    if not (ENVELOPE_ID_RE.fullmatch(name) or FOLDER_ID_RE.fullmatch(name)) or name in (".", ".."):
        raise ReviewError(_("the envelope id cannot be used as a folder name"))


def case_folder(base: Path, case_id: str) -> Path:
    """``base/<case>``, made if missing (follow-ups may arrive after the report was extracted).

    Refuses a name that is not a plain id, and a path that would leave
    ``base`` (a planted symlink); raises :class:`ReviewError`.
    """
    _check_folder_name(case_id)
    folder = base / case_id
    if not _inside(folder, base):
        raise ReviewError(_("the case folder would be outside the target"))
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ReviewError(_cannot_create(folder, exc)) from None
    if folder.is_symlink() or not folder.is_dir():
        raise ReviewError(_("%(path)s is not a plain folder") % {"path": folder})
    return folder.resolve(strict=True)


def _prepare_folder(base: Path, envelope_id: str) -> Path:
    _check_folder_name(envelope_id)
    folder = base / envelope_id
    if not _inside(folder, base):
        raise ReviewError(_("the output folder would be outside the target"))
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        raise ReviewError(
            _("%(path)s already exists; refusing to overwrite (remove it or use another --to)")
            % {"path": folder}
        ) from None
    except OSError as exc:
        raise ReviewError(_cannot_create(folder, exc)) from None
    return folder


def _cannot_create(folder: Path, exc: OSError) -> str:
    return _("cannot create %(path)s (%(reason)s)") % {"path": folder, "reason": exc.strerror}


def extract_envelope(
    ref: EnvelopeRef, identities: Sequence[Any], base: Path, folder_name: str | None = None
) -> ExtractResult:
    """Extract one envelope into ``base/<folder_name or id>/``; raises :class:`ReviewError`.

    ``base`` must be an existing folder, already resolved; the envelope's
    folder must not exist yet. On failure that folder and every file written
    into it are removed.
    """
    folder = _prepare_folder(base, folder_name or ref.id)
    result = ExtractResult(folder)
    created: list[Path] = []
    paths: dict[str, Path] = {}

    def out_for(member: str, _size: int) -> BinaryIO | None:
        try:
            name = output_name(member)
        except ReviewError as exc:
            result.problems.append(
                _("%(member)s: not written (%(reason)s)") % {"member": member, "reason": exc}
            )
            return None
        path = folder / name
        if not _inside(path, folder):
            result.problems.append(
                _("%(member)s: not written (path would leave the folder)") % {"member": member}
            )
            return None
        try:
            stream = _create_exclusive(path)
        except FileExistsError:
            result.problems.append(
                _("%(member)s: not written (%(name)s already exists)")
                % {"member": member, "name": name}
            )
            return None
        created.append(path)
        paths[member] = path
        return stream

    try:
        raw, sinks = read_raw_full(ref, identities, out_for)
        report_path = folder / REPORT_FILE
        with _create_exclusive(report_path) as out:
            created.append(report_path)
            out.write(json.dumps(raw, ensure_ascii=False, indent=2).encode("utf-8") + b"\n")
    except (ReviewError, OSError) as exc:
        for path in created:
            path.unlink(missing_ok=True)
        # If something we did not write is in it, leave it to the user.
        with contextlib.suppress(OSError):
            folder.rmdir()
        reason = str(exc) if isinstance(exc, ReviewError) else (exc.strerror or repr(exc))
        raise ReviewError(_("%(reason)s; partial files removed") % {"reason": reason}) from None

    result.written.append((report_path, None))
    try:
        report = parse_envelope_json(raw)
    except ReportFormatError as exc:
        result.problems.append(
            _(
                "report.json does not follow the schema (%(problem)s); "
                "attachments written unverified"
            )
            % {"problem": exc}
        )
        result.written.extend((paths[s.member], None) for s in sinks if s.member in paths)
        return result
    for check in match_attachments(report, sinks):
        written = paths.get(check.member)
        if written is not None:
            result.written.append((written, check))
        if not check.ok:
            result.problems.append(f"{check.member}: {check.status}")
    return result
