"""``intake-review``: read sealed reports on the offline machine, and reply to them.

Commands: ``keygen``; ``trust`` (pin the server's bundle-signing key) and
``import`` (verify a bundle's signature and chain, add it to the local archive
and write the acknowledgement for the server, see :mod:`.archive`); ``list``,
``show`` and ``extract``, which work on cases (a report and the follow-ups its
reporter added, see :mod:`.cases`) in the archive or in a bundle or folder
named as SOURCE; and ``reply``, which seals a staff reply to a case's reply
key and to staff and adds it to a replies bundle for the server (see
:mod:`.replies`).

A version 2 bundle named as SOURCE is checked as ``import`` checks it: its
``manifest.sig`` must be the pinned server key's (state folder: ``--state``,
``$INTAKE_REVIEW_HOME``, ``~/.intake-review``), else the command refuses it
(exit 1) unless ``--unverified`` is given; with no key pinned it warns and reads.

Output language: ``--lang ky|ru|uz|en`` before the command, else
``$INTAKE_REVIEW_LANG``, else the POSIX locale, else English (see :mod:`.lang`).
``list --person NAME`` lists only the cases whose detained person's name or
other spellings match NAME, however it was typed (see :func:`person_matches`).

Exit codes: 0 all went well, 1 some envelopes (or the bundle) had problems,
2 usage or key error. Errors go to stderr, one line each, never a traceback.
This module only parses arguments and calls the modules that do the work.
"""

from __future__ import annotations

import argparse
import getpass
import io
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from intake.crypto.keys import KeyFileError, load_recipients
from intake.i18n import LANGUAGES as UI_LANGUAGES
from intake.i18n import name_contains, names_match, supported
from intake.review import lang
from intake.review.archive import (
    ArchiveError,
    ImportRefused,
    State,
    default_state_dir,
    import_bundle,
    open_archive,
    signature_problem,
    trust,
)
from intake.review.bundle import ManifestEntry
from intake.review.cases import Case, CaseEnvelope, group_cases, manifest_problems, select_cases
from intake.review.extract import case_folder, extract_envelope
from intake.review.identities import (
    MIN_PASSPHRASE_LENGTH,
    Prompt,
    load_identity_files,
    read_passphrase_file,
    write_new_identity,
)
from intake.review.lang import N_, _, ngettext
from intake.review.render import (
    attachment_status,
    render_case_header,
    render_followup,
    render_json,
    render_reply,
    render_report,
    render_table,
)
from intake.review.replies import (
    LANGUAGES,
    MAX_MESSAGE_CHARS,
    REPLY_STATUSES,
    RepliesBundleError,
    ReplyEntry,
    ReplyFormatError,
    build_reply,
    open_reply,
    parse_reply,
    read_replies_bundle,
    reply_entry,
    reply_json_bytes,
    reply_prefix,
    seal_reply,
    write_replies_bundle,
)
from intake.review.reports import ReviewError, read_full, read_summary
from intake.review.sources import SelectionError, Source, SourceError, open_source
from intake.review.terminal import neutralise
from intake.schema import FollowUpReport, Report

__all__ = ["main"]

IDENTITY_ENV = "INTAKE_REVIEW_IDENTITY"
STATE_ENV_NAME = "INTAKE_REVIEW_HOME"
DEBUG_ENV = "INTAKE_REVIEW_DEBUG"
EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
#: What reading a bundle named directly says when no server key is pinned.
NOT_VERIFIED: Final = N_("not verified: no server key pinned; run intake-review trust")


class UsageError(Exception):
    """A command that cannot run as given; the message is one line."""


class SignatureRefused(Exception):
    """A bundle named directly whose signature is not the pinned key's; one line."""


def _error(subject: str | None, message: str) -> None:
    if subject:
        line = _("error: %(subject)s: %(message)s") % {
            "subject": neutralise(subject),
            "message": neutralise(message),
        }
    else:
        line = _("error: %(message)s") % {"message": neutralise(message)}
    print(line, file=sys.stderr)


def _warning(subject: str | None, message: str) -> None:
    if subject:
        line = _("warning: %(subject)s: %(message)s") % {
            "subject": neutralise(subject),
            "message": neutralise(message),
        }
    else:
        line = _("warning: %(message)s") % {"message": neutralise(message)}
    print(line, file=sys.stderr)


def _note(message: str) -> None:
    print(_("note: %(message)s") % {"message": message}, file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="intake-review",
        description=_(
            "Read intake reports offline: list, show and extract sealed envelopes "
            "from an export bundle or a folder of .age files."
        ),
    )
    parser.add_argument(
        "--lang",
        dest="ui_lang",
        metavar="LANG",
        help=_("language of the output: %(languages)s (default $%(env)s, else the locale, else en)")
        % {"languages": "|".join(UI_LANGUAGES), "env": lang.ENV},
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, description: str, parents: Sequence[argparse.ArgumentParser] = ()
    ) -> Any:
        return commands.add_parser(
            name, parents=list(parents), help=description, description=description
        )

    keygen = command("keygen", _("make a passphrase-protected identity and print its recipient"))
    keygen.add_argument("--out", required=True, type=Path, help=_("identity file to write"))
    keygen.add_argument("--passphrase-file", type=Path, help=_("read the passphrase from a file"))
    keygen.add_argument("--force", action="store_true", help=_("overwrite an existing file"))

    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state",
        type=Path,
        metavar="DIR",
        help=_(
            "review state folder: pinned key, archive, last chain head (default "
            "$%(env)s or ~/.intake-review)"
        )
        % {"env": STATE_ENV_NAME},
    )

    trusting = command(
        "trust",
        _("pin the server's bundle-signing key (from `flask --app intake signing-key`)"),
        [state],
    )
    trusting.add_argument("key", metavar="SERVER_KEY", help="intake-ed25519:<base64>")

    importing = command(
        "import",
        _("verify a bundle (signature, chain) and add its envelopes to the archive"),
        [state],
    )
    importing.add_argument("bundle", type=Path, metavar="BUNDLE")
    importing.add_argument(
        "--ack-out",
        type=Path,
        metavar="FILE",
        help=_("where to write the acknowledgement (default ack-HEAD.json next to the bundle)"),
    )

    verifying = argparse.ArgumentParser(add_help=False)
    verifying.add_argument(
        "--unverified",
        action="store_true",
        help=_(
            "read a bundle named as SOURCE even if its signature does not match "
            "the pinned server key (with a warning)"
        ),
    )

    reading = argparse.ArgumentParser(add_help=False, parents=[state, verifying])
    reading.add_argument(
        "--identity",
        "-i",
        action="append",
        type=Path,
        default=[],
        help=_(
            "age identity file, plain or passphrase-protected (repeatable; "
            "default from $%(env)s, several separated by %(separator)s)"
        )
        % {"env": IDENTITY_ENV, "separator": os.pathsep},
    )
    reading.add_argument("--passphrase-file", type=Path, help=_("passphrase of the identity files"))

    listing = command(
        "list", _("one line per case (report and follow-ups), danger now first"), [reading]
    )
    listing.add_argument("--json", action="store_true", help=_("a JSON array instead of a table"))
    listing.add_argument(
        "--person",
        metavar="NAME",
        help=_(
            "only cases whose detained person's name or other spellings match NAME, "
            "also typed without Kyrgyz or Uzbek letters or in the other script"
        ),
    )
    listing.add_argument(
        "source",
        type=Path,
        nargs="?",
        metavar="SOURCE",
        help=_("bundle or folder (default: the archive)"),
    )

    show = command("show", _("print whole cases: the report, then each follow-up"), [reading])
    show.add_argument(
        "ids",
        nargs="+",
        metavar="[SOURCE] ID",
        help=_(
            "a bundle or folder (default: the archive), then case ids, envelope ids, "
            "or unique prefixes"
        ),
    )
    show.add_argument(
        "--replies",
        type=Path,
        metavar="REPLIES_TAR",
        help=_("also show the staff copies of replies to these cases from a replies bundle"),
    )

    extract = command(
        "extract",
        _("write each case to DIR/CASE/ (follow-ups to DIR/CASE/followup-N/)"),
        [reading],
    )
    extract.add_argument("ids", nargs="+", metavar="[SOURCE] ID")
    extract.add_argument("--to", required=True, type=Path, metavar="DIR")

    reply = command(
        "reply",
        _("seal a reply to a case's reply key and to staff, and add it to a replies bundle"),
        [state, verifying],
    )
    reply.add_argument("case_id", metavar="CASE_ID", help=_("case id (or a unique prefix)"))
    reply.add_argument(
        "source",
        type=Path,
        nargs="?",
        metavar="SOURCE",
        help=_("the export bundle the case came in (default: the archive)"),
    )
    reply.add_argument(
        "--message-file",
        action="append",
        required=True,
        metavar="[LANG:]FILE",
        help=_(
            "UTF-8 plain text, at most %(max)d characters; one per language "
            "(%(languages)s), e.g. ru:reply-ru.txt (repeatable)"
        )
        % {"max": MAX_MESSAGE_CHARS, "languages": ", ".join(LANGUAGES)},
    )
    reply.add_argument(
        "--lang",
        choices=LANGUAGES,
        default="en",
        help=_("language of message files given without a LANG: prefix (default en)"),
    )
    reply.add_argument(
        "--status",
        choices=REPLY_STATUSES,
        help=_("also change the case's status for the reporter"),
    )
    reply.add_argument(
        "--staff-recipients",
        required=True,
        type=Path,
        metavar="RECIPIENTS_FILE",
        help=_("age recipients file of staff (age1… lines): they keep a readable copy"),
    )
    reply.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="REPLIES_TAR",
        help=_("replies bundle to write, or to add to if it exists"),
    )
    return parser


# --- keygen -------------------------------------------------------------------------


def _print_labelled(rows: Sequence[tuple[str, str]]) -> None:
    """``label: value`` lines with the values lined up, whatever the labels' language."""
    width = max(len(label) for label, _value in rows)
    for label, value in rows:
        print(f"{label:<{width}} {value}")


def _keygen(args: argparse.Namespace, prompt: Prompt) -> int:
    if args.passphrase_file is not None:
        passphrase = read_passphrase_file(args.passphrase_file)
    else:
        try:
            passphrase = prompt(_("New passphrase for the identity: "))
            again = prompt(_("The same passphrase again: "))
        except (EOFError, KeyboardInterrupt):
            raise UsageError(_("no passphrase entered")) from None
        if passphrase != again:
            raise UsageError(_("the two passphrases differ; nothing was written"))
    if not passphrase:
        raise UsageError(_("the passphrase must not be empty; nothing was written"))
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        _warning(
            None,
            _(
                "the passphrase is shorter than %(min)d characters; "
                "a long passphrase (several words) protects the key far better"
            )
            % {"min": MIN_PASSPHRASE_LENGTH},
        )
    made = write_new_identity(args.out, passphrase, force=args.force)
    print(
        _("wrote %(path)s (passphrase-protected, mode 0600)") % {"path": neutralise(str(made.path))}
    )
    _print_labelled([(_("recipient:"), made.recipient), (_("fingerprint:"), made.fingerprint)])
    print(
        _("add the recipient line to the server's keys/recipients.txt; keep the identity offline")
    )
    return EXIT_OK


# --- reading ------------------------------------------------------------------------


def _identity_paths(args: argparse.Namespace) -> list[Path]:
    paths: list[Path] = list(args.identity)
    if not paths:
        env = os.environ.get(IDENTITY_ENV, "")
        paths = [Path(p) for p in env.split(os.pathsep) if p]
    return paths


def _report_source_problems(source: Source) -> bool:
    for warning in source.warnings:
        _warning(str(source.path), warning)
    for problem in source.problems:
        _error(str(source.path), problem)
    return bool(source.problems)


def _envelope_problems(source: Source, ids: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Per envelope: problems of the source, and the manifest integrity check."""
    found: dict[str, list[str]] = {}
    for ref in source.envelopes:
        if ids is not None and ref.id not in ids:
            continue
        problems = list(ref.problems)
        integrity = ref.check_integrity()
        if integrity:
            problems.append(integrity)
        found[ref.id] = problems
    return found


def _read_cases(
    source: Source, identities: list[Any], *, integrity: bool
) -> tuple[list[Case], dict[str, str], dict[str, list[str]]]:
    """Read every envelope up to its report.json and group the readable ones into cases.

    Returns the cases, the envelopes that could not be read (id → error),
    and each envelope's problems (the source's, the manifest check when
    ``integrity``, and where the manifest disagrees with the content).
    """
    problems = (
        _envelope_problems(source)
        if integrity
        else {ref.id: list(ref.problems) for ref in source.envelopes}
    )
    envelopes: list[CaseEnvelope] = []
    unreadable: dict[str, str] = {}
    for ref in source.envelopes:
        try:
            content = read_summary(ref, identities)
        except ReviewError as exc:
            unreadable[ref.id] = str(exc)
            continue
        problems[ref.id].extend(manifest_problems(ref, content))
        envelopes.append(CaseEnvelope(ref.id, content, tuple(problems[ref.id]), ref))
    return group_cases(envelopes), unreadable, problems


def _other_spellings(report: Report) -> list[str]:
    """The person's other spellings, one name each (typed as "A, B; C" or one a line)."""
    typed = str(report.section("person").get("other_names") or "")
    return [part for part in re.split(r"[,;/\n]", typed) if part.strip()]


def person_matches(case: Case, query: str) -> bool:
    """True if the detained person's name, or one of its other spellings, matches ``query``.

    Substitute letters (Н for Ң, O for Ө, U for Ү, ' for ʻ) and Cyrillic or
    Latin spelling all match (:func:`intake.i18n.names_match`); so do the
    beginnings of words in any order (:func:`intake.i18n.name_contains`:
    "Айгул", "tash"). A case whose report is not in the source has no name and
    never matches. Lossy on purpose: a person checks what it finds.
    """
    report = case.report_content
    if report is None:
        return False
    names = [report.person_name, *_other_spellings(report)]
    return any(names_match(name, query) or name_contains(name, query) for name in names)


def _list(args: argparse.Namespace, identities: list[Any], source: Source) -> int:
    failed = _report_source_problems(source)
    cases, unreadable, problems = _read_cases(source, identities, integrity=True)
    for ref in source.envelopes:
        for problem in problems[ref.id]:
            _error(ref.id, problem)
            failed = True
        if ref.id in unreadable:
            _error(ref.id, unreadable[ref.id])
            failed = True
    for case in cases:
        for problem in case.problems:
            _error(case.id, problem)
            failed = True
    if args.person is not None:
        if not args.person.strip():
            raise UsageError(_("--person: give a name"))
        cases = [case for case in cases if person_matches(case, args.person)]
    if args.json:
        sys.stdout.write(render_json(cases))
    elif cases:
        width = shutil.get_terminal_size((120, 24)).columns
        sys.stdout.write(render_table(cases, width))
    elif args.person is not None and source.envelopes:
        print(_("no case names a person like %(name)s") % {"name": repr(neutralise(args.person))})
    else:
        print(_("no reports could be listed") if source.envelopes else _("no envelopes found"))
    return EXIT_PROBLEMS if failed else EXIT_OK


def _selected(
    args: argparse.Namespace, identities: list[Any], source: Source
) -> tuple[list[Case], bool]:
    """The cases the command line names; errors for chosen envelopes that cannot be read."""
    cases, unreadable, _ = _read_cases(source, identities, integrity=False)
    chosen, broken = select_cases(cases, args.ids, unreadable)
    failed = _report_source_problems(source)
    for envelope_id in broken:
        _error(envelope_id, unreadable[envelope_id])
        failed = True
    if unreadable and chosen:
        _note(
            ngettext(
                "%(count)d envelope in the source could not be read; "
                "follow-ups among them are not shown",
                "%(count)d envelopes in the source could not be read; "
                "follow-ups among them are not shown",
                len(unreadable),
            )
            % {"count": len(unreadable)}
        )
    return chosen, failed


def _checked_problems(envelope: CaseEnvelope) -> list[str]:
    problems = list(envelope.problems)
    if envelope.ref is not None:
        integrity = envelope.ref.check_integrity()
        if integrity:
            problems.append(integrity)
    return problems


def _show_envelope(envelope: CaseEnvelope, identities: list[Any]) -> bool:
    """Print one envelope in full; True if anything was wrong."""
    failed = False
    problems = _checked_problems(envelope)
    for problem in problems:
        _error(envelope.id, problem)
        failed = True
    if envelope.ref is None:  # pragma: no cover - every read envelope has its ref
        return True
    try:
        full = read_full(envelope.ref, identities)
    except ReviewError as exc:
        _error(envelope.id, str(exc))
        return True
    bad = [f"{c.member}: {attachment_status(c)}" for c in full.attachments if not c.ok]
    for problem in bad:
        _error(envelope.id, problem)
        failed = True
    if isinstance(full.report, FollowUpReport):
        text = render_followup(envelope, full.report, full.attachments, problems + bad)
    else:
        text = render_report(envelope.id, full.report, full.attachments, problems + bad)
    sys.stdout.write(text)
    return failed


def _load_replies(path: Path | None) -> tuple[list[tuple[ReplyEntry, bytes]], bool]:
    if path is None:
        return [], False
    try:
        return read_replies_bundle(path), False
    except RepliesBundleError as exc:
        _error(str(path), _("replies not shown: %(reason)s") % {"reason": exc})
        return [], True


def _show_replies(
    case: Case, replies: list[tuple[ReplyEntry, bytes]], identities: list[Any]
) -> bool:
    mine = [(entry, sealed) for entry, sealed in replies if entry.case_id == case.id]
    if not mine:
        return False
    failed = False
    print()
    print(_("Replies from staff (%(count)d, oldest first)") % {"count": len(mine)})
    for entry, sealed in mine:
        problems: list[str] = []
        try:
            reply = open_reply(sealed, identities, case_id=case.id)
        except ReplyFormatError as exc:
            reply = None
            problems.append(str(exc))
        if reply is not None and reply.id != entry.id:
            problems.append(
                _("the sealed reply says its id is %(id)s (bundle altered?)") % {"id": reply.id}
            )
        if reply is not None and reply.status != entry.status:
            problems.append(_("the manifest's status change differs from the sealed reply's"))
        for problem in problems:
            _error(_("reply %(id)s") % {"id": entry.id}, problem)
            failed = True
        print()
        sys.stdout.write(render_reply(entry, reply, problems))
    return failed


def _show(args: argparse.Namespace, identities: list[Any], source: Source) -> int:
    cases, failed = _selected(args, identities, source)
    replies, replies_failed = _load_replies(args.replies)
    failed |= replies_failed
    first = True
    for case in cases:
        for problem in case.problems:
            _error(case.id, problem)
            failed = True
        if not first:
            print()
        first = False
        sys.stdout.write(render_case_header(case))
        for index, envelope in enumerate(case.envelopes):
            if index:
                print()
            failed |= _show_envelope(envelope, identities)
        failed |= _show_replies(case, replies, identities)
    return EXIT_PROBLEMS if failed else EXIT_OK


def _print_extracted(envelope_id: str, result: Any) -> bool:
    for path, check in result.written:
        status = attachment_status(check) if check else ""
        if not check and path.name == "report.json":
            status = _("report")
        shown = neutralise(str(path))
        if status:
            print(_("wrote %(path)s (%(status)s)") % {"path": shown, "status": status})
        else:
            print(_("wrote %(path)s") % {"path": shown})
    for problem in result.problems:
        _error(envelope_id, problem)
    return bool(result.problems)


def _extract(args: argparse.Namespace, identities: list[Any], source: Source) -> int:
    try:
        args.to.mkdir(parents=True, exist_ok=True, mode=0o700)
        base = args.to.resolve(strict=True)
    except OSError as exc:
        raise UsageError(
            _("%(path)s: cannot use as the target folder (%(reason)s)")
            % {"path": args.to, "reason": exc.strerror}
        ) from None
    if not base.is_dir():
        raise UsageError(_("%(path)s: not a folder") % {"path": args.to})
    cases, failed = _selected(args, identities, source)
    for case in cases:
        for problem in case.problems:
            _error(case.id, problem)
            failed = True
        for envelope in case.envelopes:
            for problem in _checked_problems(envelope):
                _error(envelope.id, problem)
                failed = True
            if envelope.ref is None:  # every read envelope has its ref
                raise RuntimeError("an envelope without a reference")
            try:
                if envelope.followup is None:
                    result = extract_envelope(envelope.ref, identities, base, case.id)
                else:
                    folder = case_folder(base, case.id)
                    name = f"followup-{envelope.seq}"
                    result = extract_envelope(envelope.ref, identities, folder, name)
            except ReviewError as exc:
                _error(envelope.id, str(exc))
                failed = True
                continue
            failed |= _print_extracted(envelope.id, result)
    return EXIT_PROBLEMS if failed else EXIT_OK


# --- reply ----------------------------------------------------------------------------


def _message_arg(value: str, default_lang: str) -> tuple[str, Path]:
    """``ru:reply.txt`` → ("ru", reply.txt); a plain path gets the default language."""
    head, sep, rest = value.partition(":")
    if sep and head in LANGUAGES and rest:
        return head, Path(rest)
    looks_like_language = head.isalpha() and head.islower() and 2 <= len(head) <= 3
    if sep and rest and looks_like_language and not Path(value).exists():
        raise UsageError(
            _("--message-file %(value)s: unknown language %(language)s (expected one of %(known)s)")
            % {
                "value": neutralise(value),
                "language": repr(neutralise(head)),
                "known": ", ".join(LANGUAGES),
            }
        )
    return default_lang, Path(value)


def _read_message(path: Path) -> str:
    limit = MAX_MESSAGE_CHARS * 4 + 4  # UTF-8 is at most 4 bytes a character, plus a BOM
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise UsageError(
            _("%(path)s: cannot read the message file (%(reason)s)")
            % {"path": path, "reason": exc.strerror}
        ) from None
    if len(data) > limit:
        raise UsageError(
            _("%(path)s: longer than %(max)d characters") % {"path": path, "max": MAX_MESSAGE_CHARS}
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(_("%(path)s: not UTF-8 text") % {"path": path}) from None
    return text


def _reply_target(source: Source, wanted: str) -> ManifestEntry:
    """The manifest entry of the case's report, which carries its reply recipient."""
    if source.manifest is None:
        if source.kind == "folder":
            raise UsageError(
                _(
                    "%(path)s: a folder has no manifest; give the export bundle the case "
                    "came in (its manifest holds the case's reply key)"
                )
                % {"path": source.path}
            )
        reason = "; ".join(source.problems) or "no usable manifest.json"
        raise UsageError(f"{source.path}: {reason}")
    entries = source.manifest.entries
    reports = {e.id: e for e in entries.values() if not e.is_followup}
    if wanted in reports:
        entry = reports[wanted]
    else:
        matches = [e for e in reports.values() if wanted and e.id.startswith(wanted)]
        if len(matches) > 1:
            raise SelectionError(
                _("%(prefix)s matches %(count)d cases; give more characters")
                % {"prefix": repr(neutralise(wanted)), "count": len(matches)}
            )
        if not matches:
            followups = [e for e in entries.values() if e.is_followup and e.case_id == wanted]
            if followups:
                raise UsageError(
                    _(
                        "case %(case)s: only its follow-ups are in %(path)s; "
                        "give the export bundle its report came in (that manifest holds the "
                        "case's reply key)"
                    )
                    % {"case": neutralise(wanted), "path": source.path}
                )
            raise UsageError(
                _("case %(case)s: not in the manifest of %(path)s")
                % {"case": neutralise(wanted), "path": source.path}
            )
        entry = matches[0]
    if entry.reply_recipient is None:
        raise UsageError(
            _(
                "case %(case)s: the manifest has no reply key for it (the reporter has no "
                "receipt, or the bundle was exported before replies existed); cannot reply"
            )
            % {"case": entry.id}
        )
    return entry


def _reply(args: argparse.Namespace) -> int:
    messages: dict[str, str] = {}
    files: dict[str, Path] = {}
    for value in args.message_file:
        language, path = _message_arg(value, args.lang)
        if language in messages:
            raise UsageError(
                _(
                    "two message files in %(language)s: %(first)s and %(second)s; "
                    "give one file per language"
                )
                % {"language": language, "first": files[language], "second": path}
            )
        text = _read_message(path)
        try:
            build_reply("case", {language: text})  # checks this one message, naming its file
        except ReplyFormatError as exc:
            raise UsageError(f"{path}: {str(exc).removeprefix(reply_prefix())}") from None
        messages[language], files[language] = text, path
    staff = load_recipients(args.staff_recipients)
    with _open(args) as source:
        target = _reply_target(source, args.case_id)
    if target.reply_recipient is None:  # _reply_target refuses this already
        raise RuntimeError("the case has no reply key")
    document = build_reply(target.case_id, messages, args.status)
    data = reply_json_bytes(document)
    reply = parse_reply(data)
    sealed = seal_reply(data, target.reply_recipient, staff)
    try:
        written = write_replies_bundle(args.out, [(reply_entry(reply, sealed), sealed)])
    except RepliesBundleError as exc:
        raise UsageError(
            _("%(path)s: nothing written: %(reason)s") % {"path": args.out, "reason": exc}
        ) from None
    except OSError as exc:
        raise UsageError(
            _("%(path)s: cannot write (%(reason)s)") % {"path": args.out, "reason": exc.strerror}
        ) from None
    print(_("added reply %(id)s to case %(case)s") % {"id": reply.id, "case": reply.case_id})
    print("  " + _("languages: %(languages)s") % {"languages": ", ".join(reply.messages)})
    print("  " + _("status change: %(status)s") % {"status": reply.status or _("none")})
    print(
        "  "
        + ngettext(
            "sealed to the reporter's reply key and %(count)d staff recipient",
            "sealed to the reporter's reply key and %(count)d staff recipients",
            len(staff),
        )
        % {"count": len(staff)}
    )
    count = len(written)
    print(
        ngettext(
            "bundle: %(path)s (%(count)d reply)", "bundle: %(path)s (%(count)d replies)", count
        )
        % {"path": neutralise(str(args.out)), "count": count}
    )
    return EXIT_OK


_READERS = {"list": _list, "show": _show, "extract": _extract}


def _state(args: argparse.Namespace) -> State:
    return State(args.state if args.state is not None else default_state_dir())


def _open(args: argparse.Namespace) -> Source:
    """The SOURCE named on the command line (its signature checked), else the archive."""
    if args.source is None:
        return open_archive(_state(args))
    source = open_source(args.source)
    try:
        _check_signature(args, source)
    except BaseException:
        source.close()
        raise
    return source


def _check_signature(args: argparse.Namespace, source: Source) -> None:
    """A bundle named directly: verify manifest.sig against the pinned key, as import does.

    No pinned key: a warning. A version 1 bundle keeps its own warning
    (``source.warnings``). A signature that does not verify raises
    :class:`SignatureRefused`, unless ``--unverified`` makes it a warning.
    """
    if source.kind != "bundle":
        return
    if source.manifest is not None and not source.manifest.signed:
        return
    pinned = _state(args).pinned_key_if_any()
    if pinned is None:
        _warning(str(source.path), _(NOT_VERIFIED))
        return
    problem = signature_problem(source, pinned)
    if problem is None:
        return
    if args.unverified:
        _warning(
            str(source.path), _("%(problem)s; read anyway (--unverified)") % {"problem": problem}
        )
        return
    raise SignatureRefused(
        _("%(problem)s; refused (give --unverified to read it anyway)") % {"problem": problem}
    )


def _looks_like_source(item: str) -> bool:
    return "/" in item or item.endswith(".tar") or Path(item).exists()


def _split_source(args: argparse.Namespace) -> None:
    """``show``/``extract``: the first word is a SOURCE when it names a file or folder."""
    items: list[str] = list(args.ids)
    args.source = None
    if len(items) > 1 and _looks_like_source(items[0]):
        args.source = Path(items.pop(0))
    elif len(items) == 1 and _looks_like_source(items[0]) and Path(items[0]).exists():
        raise UsageError(
            _("%(source)s: give the ids of the cases to %(command)s")
            % {"source": neutralise(items[0]), "command": args.command}
        )
    args.ids = items


def _trust(args: argparse.Namespace) -> int:
    state = _state(args)
    text, fingerprint = trust(state, args.key)
    print(_("pinned %(key)s") % {"key": text})
    _print_labelled([(_("fingerprint:"), fingerprint)])
    print(
        _("in %(file)s; compare the fingerprint with the server operator's")
        % {"file": neutralise(str(state.key_file))}
    )
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    try:
        result = import_bundle(args.bundle, _state(args), ack_out=args.ack_out)
    except ImportRefused as exc:
        for problem in exc.problems:
            _error(str(args.bundle), problem)
        _error(
            str(args.bundle),
            _("refused: nothing was imported and the archive head is unchanged"),
        )
        return EXIT_PROBLEMS
    except ArchiveError as exc:
        _error(None, str(exc))
        return EXIT_USAGE
    print(
        _(
            "imported %(added)d envelope(s) (%(held)d already in the archive); chain verified "
            "from seq %(start)s to %(end)s (%(omitted)d purged or earlier envelope(s) "
            "accounted for)"
        )
        % {
            "added": len(result.added),
            "held": result.already_held,
            "start": result.previous_head_seq,
            "end": result.head_seq,
            "omitted": result.omitted,
        }
    )
    for envelope_id in result.added:
        print(f"  {envelope_id}")
    if result.not_held:
        shown = ", ".join(f"{seq} ({envelope_id})" for seq, envelope_id in result.not_held[:20])
        if len(result.not_held) > 20:
            shown = _("%(list)s and %(count)d more") % {
                "list": shown,
                "count": len(result.not_held) - 20,
            }
        _note(
            _(
                "%(count)d envelope(s) of the chain are in neither this bundle nor the archive "
                "(purged on the server before this archive saw them, or in a bundle not "
                "imported here): chain seq %(list)s"
            )
            % {"count": len(result.not_held), "list": neutralise(shown)}
        )
    print(
        _(
            "acknowledgement: %(path)s (%(count)d envelope(s) held); upload it on the staff "
            "page or run `flask --app intake purge --ack FILE` on the server"
        )
        % {"path": neutralise(str(result.ack_path)), "count": result.acknowledged}
    )
    return EXIT_OK


def _run(args: argparse.Namespace, prompt: Prompt) -> int:
    if args.command == "keygen":
        return _keygen(args, prompt)
    if args.command == "trust":
        return _trust(args)
    if args.command == "import":
        return _import(args)
    if args.command == "reply":
        return _reply(args)
    if args.command in ("show", "extract"):
        _split_source(args)
    identities = load_identity_files(_identity_paths(args), args.passphrase_file, prompt)
    with _open(args) as source:
        return _READERS[args.command](args, identities, source)


def _safe_streams() -> None:
    # A report may hold characters the terminal's encoding lacks: replace them
    # rather than crash halfway through a listing.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")


def _lang_option(argv: Sequence[str]) -> str | None:
    """The value of ``--lang`` given before the command, if any (read before parsing,
    so that the help and argparse's own errors come out in that language)."""
    for index, item in enumerate(argv):
        if item == "--lang":
            return argv[index + 1] if index + 1 < len(argv) else None
        if item.startswith("--lang="):
            return item.partition("=")[2]
        if not item.startswith("-"):
            return None  # the command: a later --lang is `reply --lang`
    return None


def main(argv: list[str] | None = None, *, prompt: Prompt | None = None) -> int:
    """Run ``intake-review``; returns the exit code.

    The output language (:func:`intake.review.lang.choose`) is in force for
    this call only: the previous language is restored when it returns. The
    parser is built and run inside it, with argparse's own words ("usage:",
    its errors) routed through the same catalog
    (:func:`intake.review.lang.argparse_in_language`).
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    option = _lang_option(arguments)
    previous = lang.use(lang.choose(option))
    try:
        if option and supported(option) != option.strip().replace("_", "-").split("-")[0].lower():
            _warning(
                None,
                _("unknown language %(language)s; using %(used)s")
                % {"language": repr(neutralise(option)), "used": lang.current()},
            )
        with lang.argparse_in_language():
            return _main(arguments, prompt)
    finally:
        lang.use(previous)


def _main(argv: list[str], prompt: Prompt | None) -> int:
    _safe_streams()
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        # `reply CASE --options… SOURCE`: argparse fills the optional SOURCE
        # only from words right after CASE; take one given after the options.
        lone = extra[0] if len(extra) == 1 else "-"
        if args.command == "reply" and args.source is None and not lone.startswith("-"):
            args.source, extra = Path(lone), []
        if extra:
            parser.error(
                _("unrecognized arguments: %(arguments)s") % {"arguments": " ".join(extra)}
            )
    except SystemExit as exc:  # argparse has printed usage or help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return _run(args, prompt or getpass.getpass)
    except SignatureRefused as exc:
        _error(str(args.source), str(exc))
        return EXIT_PROBLEMS
    except (
        KeyFileError,
        SourceError,
        SelectionError,
        UsageError,
        ArchiveError,
        ValueError,
    ) as exc:
        _error(None, str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error(None, _("interrupted"))
        return EXIT_USAGE
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        _error(
            None,
            _("unexpected failure (%(kind)s); set %(variable)s=1 for details")
            % {"kind": type(exc).__name__, "variable": DEBUG_ENV},
        )
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
