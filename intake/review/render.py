"""Text and JSON output of cases, reports, follow-ups and staff replies.

Every string from an envelope, a manifest or a reply passes :func:`neutralise`.
Text output is in the current language (:mod:`.lang`): headers, labels and
vocabulary values are translated, what people typed is shown as typed. JSON
output gives codes, never labels, in any language.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any

from intake.review.cases import Case, CaseEnvelope
from intake.review.lang import N_, _, label, labels, ngettext
from intake.review.replies import Reply as StaffReply
from intake.review.replies import ReplyEntry
from intake.review.reports import AttachmentCheck
from intake.review.terminal import display_width, neutralise, truncate
from intake.schema import (
    ACT_CHOICES,
    DANGER_KINDS,
    DATE_PRECISIONS,
    FACILITY_TYPES,
    HELP_NEEDED,
    LANGUAGES,
    SECTIONS,
    YES_NO_DONT_KNOW,
    FieldSpec,
    FollowUpReport,
    Report,
)

__all__ = [
    "attachment_status",
    "case_dict",
    "danger_line",
    "followup_rows",
    "render_case_header",
    "render_followup",
    "render_json",
    "render_reply",
    "render_report",
    "render_table",
    "report_rows",
    "safe_json",
    "sort_for_triage",
]

# TRANSLATORS: the DANGER column of `intake-review list`: short, "YES" stands out.
_DANGER_SHOWN = {"yes": N_("YES"), "no": N_("no"), "dont_know": "?"}
_NO_REPORT = N_("(no report)")  # the case's report is not in this source


def sort_for_triage(cases: Sequence[Case]) -> list[Case]:
    """Danger now first, then newest activity first (hours sort as text), then by id."""
    by_id = sorted(cases, key=lambda case: case.id)
    newest = sorted(by_id, key=lambda case: case.latest_hour, reverse=True)
    return sorted(newest, key=lambda case: case.danger_now != "yes")


def _facility(report: Report) -> str:
    """English facility "type, name", as the schema's summary gives it (JSON output)."""
    return report.summary().facility


def _facility_shown(report: Report) -> str:
    """The facility type's translated label, then the name as typed."""
    shown = label(FACILITY_TYPES, report.facility_type)
    return f"{shown}, {report.facility_name}" if report.facility_name else shown


def _followup_count(case: Case) -> str:
    return f"+{len(case.followups)}" if case.followups else ""


def _row(case: Case) -> list[str]:
    report = case.report_content
    if report is not None:
        person, facility = report.person_name, _facility_shown(report)
        what = report.what_happened
    else:
        latest = case.followups[-1].followup if case.followups else None
        person, facility = _(_NO_REPORT), ""
        what = latest.text if latest else ""
    return [
        neutralise(case.id),
        neutralise(case.received_hour),
        _(_DANGER_SHOWN.get(case.danger_now, "?")),
        _followup_count(case),
        neutralise(person),
        neutralise(facility),
        " ".join(neutralise(what).split()),
    ]


# TRANSLATORS: column headers of `intake-review list`, in capitals where the script has them.
_HEADERS = (
    N_("ID"),
    N_("RECEIVED"),
    N_("DANGER"),
    N_("FOLLOW-UPS"),
    N_("PERSON"),
    N_("FACILITY"),
    N_("WHAT HAPPENED"),
)
# Columns that may shrink, and the narrowest each may get.
_MIN_WIDTHS = {4: 12, 5: 12, 6: 16}
_WHAT = 6


def render_table(cases: Sequence[Case], width: int = 120) -> str:
    """One line per case, fitting ``width`` columns; long cells end with "…"."""
    rows = [_row(case) for case in sort_for_triage(cases)]
    headers = [_(header) for header in _HEADERS]
    widths = [
        max([display_width(h)] + [display_width(r[i]) for r in rows]) for i, h in enumerate(headers)
    ]
    widths[_WHAT] = max(widths[_WHAT], _MIN_WIDTHS[_WHAT])
    gaps = 2 * (len(widths) - 1)
    # Shrink what happened first, then facility, then person, to fit.
    for column in (6, 5, 4):
        excess = sum(widths) + gaps - width
        if excess <= 0:
            break
        widths[column] = max(_MIN_WIDTHS[column], widths[column] - excess)
    lines = []
    for cells in [headers, *rows]:
        parts = []
        for i, cell in enumerate(cells):
            text = truncate(cell, widths[i])
            parts.append(text + " " * (widths[i] - display_width(text)))
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines) + "\n"


def _unsafe_char(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")


def safe_json(value: Any) -> str:
    """JSON text with readable non-ASCII, but every control/format character escaped.

    ``json.dumps`` escapes C0 controls inside strings; C1 controls, bidi
    overrides and lone surrogates would otherwise reach the terminal raw.
    Outside strings JSON text is ASCII, so escaping every such non-ASCII
    character wherever it appears stays valid JSON.
    """
    text = json.dumps(value, ensure_ascii=False, indent=2)
    return "".join(_json_escape(ch) if ch >= "\x7f" and _unsafe_char(ch) else ch for ch in text)


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON spells astral characters as a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _followup_dict(envelope: CaseEnvelope) -> dict[str, Any]:
    followup = envelope.followup
    if followup is None:  # only follow-ups are passed here
        raise ValueError("not a follow-up")
    return {
        "id": envelope.id,
        "seq": envelope.seq,  # its place in the case (the signed manifest decides)
        "received": followup.received_hour,
        "danger_now": followup.danger_now,
        "danger_kinds": list(followup.danger_kinds),
        "text": followup.text,
        "attachments": len(followup.attachments),
        "problems": list(envelope.problems),
    }


def case_dict(case: Case) -> dict[str, Any]:
    """One case as ``list --json`` gives it: the report's fields, and its follow-ups."""
    report = case.report_content
    return {
        "id": case.id,
        "received": case.received_hour,
        "latest": case.latest_hour,
        "danger_now": case.danger_now,
        "danger_kinds": list(case.danger_kinds),
        "report_in_source": report is not None,
        "person": report.person_name if report else None,
        "facility_type": report.facility_type if report else None,
        "facility": _facility(report) if report else None,
        "what_happened": report.what_happened if report else None,
        "acts": [{"code": a.code, "huridocs": a.huridocs} for a in report.acts] if report else [],
        "attachments": len(report.attachments) if report else 0,
        "followup_count": len(case.followups),
        "followups": [_followup_dict(envelope) for envelope in case.followups],
        "problems": list(case.report.problems if case.report else ()) + list(case.problems),
    }


def render_json(cases: Sequence[Case]) -> str:
    """The ``list --json`` output: an array of cases, in triage order."""
    return safe_json([case_dict(case) for case in sort_for_triage(cases)]) + "\n"


def _value(spec: FieldSpec, raw: Any) -> str:
    """A section value in the current language: labels translated, text as typed."""
    if spec.kind == "text":
        return str(raw)
    if spec.kind == "choice":
        return label(spec.vocabulary, raw)
    if spec.kind == "choices":
        return labels(spec.vocabulary, raw)
    return _("yes") if raw else _("no")


def report_rows(report: Report) -> list[tuple[str, str]]:
    """(label, value) rows of a report in the current language, most urgent first.

    The one rendering of a report's fields (the labels are the English msgids
    of :data:`.lang.FIELD_LABELS`): translated labels and vocabulary values,
    typed text untouched. Unanswered optional values are left out; required
    ones always appear. No attachment rows: :func:`render_report` lists the
    attachments with their checks.
    """
    rows: list[tuple[str, str]] = []

    def add(name: str, value: str, *, always: bool = False) -> None:
        if value or always:
            rows.append((_(name), value))

    add("Received", report.received_hour, always=True)
    add("Form language", label(LANGUAGES, report.language), always=True)
    for section, specs in SECTIONS.items():
        values = report.sections[section]
        for spec in specs:
            if section == "incident" and spec.key == "perpetrator_types":
                acts = "; ".join(
                    f"{label(ACT_CHOICES, a.code)} [{a.huridocs}]" for a in report.acts
                )
                add("Acts (HURIDOCS)", acts)
                precision = label(DATE_PRECISIONS, report.date_precision)
                when = f"{report.date_value} ({precision})" if report.date_value else precision
                add("When", when, always=True)
            always = (
                spec.required
                or spec.kind == "bool"
                or spec.form_name in ("person_name", "what_happened")
            )
            add(spec.label, _value(spec, values[spec.key]), always=always)
    add("Help needed now", labels(HELP_NEEDED, report.help_needed))
    if report.unknown_keys:
        add("Ignored unknown keys", ", ".join(report.unknown_keys))
    return rows


def followup_rows(followup: FollowUpReport, *, case_id: str, seq: int) -> list[tuple[str, str]]:
    """(label, value) rows of a follow-up, like :func:`report_rows`.

    ``case_id`` and ``seq`` are the follow-up's place as the signed manifest
    gives it (:attr:`.cases.CaseEnvelope.case_id`), not the envelope's own claim.
    """
    rows = [
        (
            _("Follow-up"),
            _("#%(seq)d to case %(case)s") % {"seq": seq, "case": case_id},
        ),
        (_("Received"), followup.received_hour),
        (_("Form language"), label(LANGUAGES, followup.language)),
        (_("Danger right now"), label(YES_NO_DONT_KNOW, followup.danger_now)),
    ]
    if followup.danger_kinds:
        rows.append((_("Kind of danger"), labels(DANGER_KINDS, followup.danger_kinds)))
    rows.append((_("New information"), followup.text))
    if followup.unknown_keys:
        rows.append((_("Ignored unknown keys"), ", ".join(followup.unknown_keys)))
    return rows


def _field(name: str, value: str) -> list[str]:
    lines = neutralise(value, multiline=True).split("\n")
    if len(lines) == 1:
        return [f"{name}: {lines[0]}"]
    return [f"{name}:"] + [f"    {line}" for line in lines]


def attachment_status(check: AttachmentCheck) -> str:
    """:attr:`AttachmentCheck.status` in the current language."""
    if check.meta is None:
        return _("NOT LISTED in report.json")
    if check.size is None:
        return _("MISSING from the envelope")
    if check.size != check.meta.size:
        return _("SIZE MISMATCH (%(size)d bytes, report says %(listed)d)") % {
            "size": check.size,
            "listed": check.meta.size,
        }
    if check.sha256 != check.meta.sha256:
        return _("SHA-256 MISMATCH")
    return _("verified")


def _body(
    title: str,
    urgent: bool,
    rows: Sequence[tuple[str, str]],
    attachments: Sequence[AttachmentCheck],
    problems: Sequence[str],
) -> str:
    out = [title, "=" * display_width(title)]
    if urgent:
        out.append(_("!! DANGER NOW !!"))
    for name, value in rows:
        out.extend(_field(neutralise(name), value))
    out.append("")
    out.append(_("Attachments (%(count)d)") % {"count": len(attachments)})
    for index, check in enumerate(attachments, start=1):
        name = neutralise(check.meta.name) if check.meta else _("(not listed in report.json)")
        size = check.size if check.size is not None else (check.meta.size if check.meta else 0)
        sha = check.sha256 or (check.meta.sha256 if check.meta else "")
        out.append(f"  {index}. {name}")
        out.append("     " + _("member: %(member)s") % {"member": neutralise(check.member)})
        out.append(
            "     " + _("size: %(size)d bytes  sha256: %(sha256)s") % {"size": size, "sha256": sha}
        )
        out.append("     " + _("check: %(status)s") % {"status": attachment_status(check)})
    for problem in problems:
        out.append(_problem(problem))
    return "\n".join(out) + "\n"


def _problem(problem: str) -> str:
    return _("Problem: %(problem)s") % {"problem": neutralise(problem)}


def render_report(
    envelope_id: str,
    report: Report,
    attachments: Sequence[AttachmentCheck],
    problems: Sequence[str] = (),
) -> str:
    """The whole report, readably: every answered field, then attachments and checks."""
    title = _("Report %(id)s") % {"id": neutralise(envelope_id)}
    return _body(title, report.is_urgent, report_rows(report), attachments, problems)


def render_followup(
    envelope: CaseEnvelope,
    followup: FollowUpReport,
    attachments: Sequence[AttachmentCheck],
    problems: Sequence[str] = (),
) -> str:
    """A follow-up, like :func:`render_report`: its fields, attachments and checks.

    Its case and place come from ``envelope`` (the signed manifest where there is
    one); where the envelope claims otherwise, ``problems`` says so.
    """
    title = _("Follow-up #%(seq)d to case %(case)s (envelope %(id)s)") % {
        "seq": envelope.seq,
        "case": neutralise(envelope.case_id),
        "id": neutralise(envelope.id),
    }
    rows = followup_rows(followup, case_id=envelope.case_id, seq=envelope.seq)
    return _body(title, followup.is_urgent, rows, attachments, problems)


def danger_line(case: Case) -> str:
    """The "danger now" line above a case, naming the envelope that first said so."""
    for envelope in case.envelopes:
        if envelope.content.danger_now == "yes":
            if envelope.followup:
                return _("!! DANGER NOW (said in the follow-up #%(seq)d) !!") % {
                    "seq": envelope.seq
                }
            return _("!! DANGER NOW (said in the report) !!")
    return ""


def render_case_header(case: Case) -> str:
    """A line or two above a case that has follow-ups, or whose report is missing."""
    if not case.followups:
        return ""
    count = len(case.followups)
    values = {"case": neutralise(case.id), "count": count}
    if case.report is not None:
        title = ngettext(
            "Case %(case)s: report and %(count)d follow-up",
            "Case %(case)s: report and %(count)d follow-ups",
            count,
        )
    else:
        title = ngettext(
            "Case %(case)s: no report in this source and %(count)d follow-up",
            "Case %(case)s: no report in this source and %(count)d follow-ups",
            count,
        )
    title %= values
    out = [title, "#" * display_width(title)]
    if case.danger_now == "yes":
        out.append(danger_line(case))
    if case.report is None:
        out.append(
            _(
                "Note: the report of this case is not in this source (it probably came in an "
                "earlier bundle); only the follow-ups are shown."
            )
        )
    for problem in case.problems:
        out.append(_problem(problem))
    return "\n".join(out) + "\n\n"


def render_reply(entry: ReplyEntry, reply: StaffReply | None, problems: Sequence[str] = ()) -> str:
    """A staff reply from a replies bundle (``reply`` None if it could not be opened)."""
    title = _("Reply %(id)s (staff copy)") % {"id": neutralise(entry.id)}
    out = [title, "-" * display_width(title)]
    none = _("none")
    if reply is not None:
        out.append(_("Written: %(hour)s") % {"hour": neutralise(reply.written_hour)})
        out.append(_("Status change: %(status)s") % {"status": neutralise(reply.status or none)})
        for language, text in reply.messages.items():
            name = _("Message (%(language)s)") % {"language": label(LANGUAGES, language)}
            out.extend(_field(neutralise(name), text))
    else:
        out.append(
            _("Status change (manifest): %(status)s") % {"status": neutralise(entry.status or none)}
        )
    for problem in problems:
        out.append(_problem(problem))
    return "\n".join(out) + "\n"
