"""The report.json format: vocabulary, builder and strict parser.

This module is the single source of truth for what a report contains. The web
form (:mod:`intake.forms`) builds its choices from the vocabularies here, the
server calls :func:`build_report` to make the ``report.json`` sealed into the
envelope, and the offline review tool calls :func:`parse_report` /
:func:`loads_report` on whatever comes out of an envelope.

Stdlib only: the review machine has neither Flask nor WTForms.

Untrusted input. Anyone holding the public key can seal an envelope, so
:func:`parse_report` treats its input as hostile: every value is type- and
length-checked, every code must be in the vocabulary, and the only exception
it raises is :class:`ReportFormatError` (a ``ValueError`` with a one-line
message naming the field).

Unknown keys. A report from this or an older version never contains keys the
parser does not know, so extra keys come from a buggy or hostile producer. They
are dropped from the parsed report (their values are never walked, so deep
nesting there costs nothing) but their dotted paths are kept, capped, in
:attr:`Report.unknown_keys` so the review tool can warn that something was
ignored.

Shape of report.json (version 1)::

    {"format": "intake.report", "version": 1, "kind": "report",
     "received_hour": "2024-05-01T13:00Z", "language": "ru",
     "reporter":   {"relationship", "relationship_other", "name"},
     "person":     {"name", "other_names", "age", "sex", "occupation", "health"},
     "detention":  {"facility_type", "facility_name", "arrest_date", "charges",
                    "court", "case_number", "next_hearing", "lawyer_access",
                    "family_visits", "visits_details"},
     "incident":   {"what_happened", "acts": [{"code", "huridocs", "label"}],
                    "date": {"value", "precision"}, "perpetrator_types": [...],
                    "perpetrator_names", "witnesses", "injuries", "medical_care"},
     "danger_now": {"answer": "yes|no|dont_know", "kinds": [...], "details"},
     "already_told": {"bodies": [...], "response"},
     "consent":    {"store": bool, "share": "this_org|partners|un",
                    "detainee_agrees", "action", "use_reporter_name": bool},
     "risk":       {"publicity_risk", "officials_warned", "phone": [...]},
     "contact":    {"do_not_contact": bool, "channel", "times",
                    "if_someone_else_answers", "preferred_language"},
     "help_needed": [...],
     "attachments": [{"name", "member", "size", "sha256"}]}

Free text is a string ("" when not answered); an optional single choice is a
code or null; a multiple choice is a list of distinct codes.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final, Literal

from intake.strictjson import loads_strict

SCHEMA_VERSION: Final = 1
REPORT_FORMAT: Final = "intake.report"
REPORT_KIND: Final = "report"

# Per-field length limits, in characters. The form and the parser share them.
MAX_SHORT: Final = 200  # names, dates, case numbers
MAX_LINE: Final = 1000  # one-line answers: charges, contact channel, ...
MAX_TEXT: Final = 20000  # open text: what happened, health, injuries, ...
MAX_FILE_NAME: Final = 255
MAX_ATTACHMENTS: Final = 100
MAX_ATTACHMENT_SIZE: Final = 1 << 40
# Upper bound for a serialised report.json; generous against the field limits.
MAX_REPORT_BYTES: Final = 4 * 1024 * 1024
MAX_UNKNOWN_KEYS: Final = 20

Vocabulary = tuple[tuple[str, str], ...]

# ---------------------------------------------------------------------------
# Vocabularies: ordered (code, English label). Codes are stable; labels may be
# reworded and translated.

RELATIONSHIPS: Final[Vocabulary] = (
    ("relative", "Relative (family member)"),
    ("lawyer", "Lawyer"),
    ("former_cellmate", "Former cellmate"),
    ("colleague", "Colleague"),
    ("other", "Other"),
)

FACILITY_TYPES: Final[Vocabulary] = (
    ("ivs", "Temporary police detention (IVS)"),
    ("sizo", "Pre-trial detention (SIZO)"),
    ("gknb", "Security service (GKNB) detention"),
    ("colony", "Penal colony"),
    ("hospital", "Hospital"),
    ("psychiatric", "Psychiatric institution"),
    ("unknown", "I don't know"),
    ("other", "Other"),
)


@dataclass(frozen=True)
class Act:
    """One "what happened" checkbox and its HURIDOCS Events act code (list 4)."""

    code: str
    label: str
    huridocs: str


ACTS: Final[tuple[Act, ...]] = (
    Act("torture", "Torture", "020111110000"),
    Act("beaten", "Beaten / physically assaulted", "020101"),
    Act("sexual_violence", "Sexual violence or threats of it", "020102"),
    Act("harassment", "Harassment, psychological pressure", "020103"),
    Act("death_threats_person", "Death threats against them", "020103020100"),
    Act("death_threats_family", "Death threats against the family", "020103020200"),
    Act("other_threats_person", "Other threats against them", "020103010100"),
    Act("other_threats_family", "Other threats against the family", "020103010200"),
    Act("medical_refused", "Medical care or medicine refused", "360102040000"),
    Act("food_refused", "Food refused", "360102030000"),
    Act("degrading", "Degrading treatment or conditions", "360102010000"),
    Act("complaints_blocked", "Complaints blocked", "360102060000"),
    Act("lawyer_refused", "Lawyer refused", "350109"),
    Act("no_defence_contact", "No contact with the defence", "350113"),
    Act("forced_confession", "Forced to sign or confess", "350118"),
    Act("location_unknown", "Location unknown, no contact", "030103"),
)
ACT_CHOICES: Final[Vocabulary] = tuple((a.code, a.label) for a in ACTS)
ACTS_BY_CODE: Final[Mapping[str, Act]] = {a.code: a for a in ACTS}

DATE_PRECISIONS: Final[Vocabulary] = (
    ("day", "Exact day"),
    ("month", "Month"),
    ("year", "Year only"),
    ("unknown", "I don't know / roughly"),
)

YES_NO_DONT_KNOW: Final[Vocabulary] = (
    ("yes", "Yes"),
    ("no", "No"),
    ("dont_know", "I don't know"),
)
YES_NO: Final[Vocabulary] = (("yes", "Yes"), ("no", "No"))

DANGER_KINDS: Final[Vocabulary] = (
    ("ongoing_abuse", "Abuse is still going on"),
    ("urgent_health", "Urgent health problem"),
    ("planned_transfer", "A transfer is planned"),
    ("hunger_strike", "Hunger strike"),
    ("threat_to_life", "Threat to life"),
)

SEXES: Final[Vocabulary] = (
    ("female", "Female"),
    ("male", "Male"),
    ("other", "Other"),
    ("dont_know", "I don't know / prefer not to say"),
)

PERPETRATOR_TYPES: Final[Vocabulary] = (
    ("police", "Police"),
    ("prison_staff", "Prison or detention staff"),
    ("security_service", "Security service (GKNB)"),
    ("fellow_prisoner", "Fellow prisoner"),
    ("other", "Other"),
    ("dont_know", "I don't know"),
)

ALREADY_TOLD: Final[Vocabulary] = (
    ("prosecutor", "Prosecutor"),
    ("ombudsperson", "Ombudsperson (Akyikatchy)"),
    ("ncpt", "National Centre for the Prevention of Torture"),
    ("un", "United Nations"),
    ("other_ngos", "Other organisations (NGOs)"),
    ("other", "Someone else"),
)

# Cumulative: each option includes the ones before it.
SHARE_OPTIONS: Final[Vocabulary] = (
    ("this_org", "Only this organisation"),
    ("partners", "This organisation and named partner organisations"),
    ("un", "Also UN human-rights mechanisms"),
)

DETAINEE_CONSENT: Final[Vocabulary] = (
    ("yes", "Yes, they know and agree"),
    ("no", "No"),
    ("impossible", "It is impossible to ask them"),
)

ACTIONS: Final[Vocabulary] = (
    ("public_named", "Speak publicly, with their name"),
    ("public_anonymous", "Speak publicly, without their name"),
    ("quiet_advocacy", "Only quiet advocacy, nothing public"),
    ("nothing_until_we_talk", "Nothing until we have talked"),
)

PHONE_RISKS: Final[Vocabulary] = (
    ("shared", "Shared with other people"),
    ("seized", "Was taken or seized before"),
    ("monitored", "May be monitored"),
    ("none", "None of these"),
    ("dont_know", "I don't know"),
)

LANGUAGES: Final[Vocabulary] = (
    ("ky", "Кыргызча (Kyrgyz)"),
    ("ru", "Русский (Russian)"),
    ("uz", "Oʻzbekcha (Uzbek)"),
    ("en", "English"),
)

HELP_NEEDED: Final[Vocabulary] = (
    ("medical", "Medical help"),
    ("legal", "Legal help"),
    ("relocation", "Help to move somewhere safe"),
    ("none", "None right now"),
)


def codes(vocabulary: Vocabulary) -> tuple[str, ...]:
    """The codes of a vocabulary, in order."""
    return tuple(code for code, _ in vocabulary)


def label_for(vocabulary: Vocabulary, code: str | None) -> str:
    """The English label of ``code``, or the code itself if unknown."""
    if code is None:
        return ""
    return dict(vocabulary).get(code, code)


# ---------------------------------------------------------------------------
# Field table: one row per value inside a section. ``build_report`` reads the
# form field ``form_name``; the parser checks the same rule on the way back.

Kind = Literal["text", "choice", "choices", "bool"]


@dataclass(frozen=True)
class FieldSpec:
    """How one report value is stored and checked."""

    key: str
    form_name: str
    kind: Kind
    label: str
    max_len: int = MAX_SHORT
    vocabulary: Vocabulary = ()
    required: bool = False  # choice: must not be null


def _t(key: str, form_name: str, label: str, max_len: int = MAX_SHORT) -> FieldSpec:
    return FieldSpec(key, form_name, "text", label, max_len=max_len)


def _c(key: str, form_name: str, label: str, vocab: Vocabulary, *, required: bool) -> FieldSpec:
    return FieldSpec(key, form_name, "choice", label, vocabulary=vocab, required=required)


def _m(key: str, form_name: str, label: str, vocab: Vocabulary) -> FieldSpec:
    return FieldSpec(key, form_name, "choices", label, vocabulary=vocab)


def _b(key: str, form_name: str, label: str) -> FieldSpec:
    return FieldSpec(key, form_name, "bool", label)


# Sections in presentation order. "incident" acts/date are handled specially.
SECTIONS: Final[Mapping[str, tuple[FieldSpec, ...]]] = {
    "danger_now": (
        _c("answer", "danger_now", "Danger right now", YES_NO_DONT_KNOW, required=True),
        _m("kinds", "danger_kinds", "Kind of danger", DANGER_KINDS),
        _t("details", "danger_details", "About the danger", MAX_TEXT),
    ),
    "reporter": (
        _c("relationship", "relationship", "Reporter is", RELATIONSHIPS, required=True),
        _t("relationship_other", "relationship_other", "Relationship (other)"),
        _t("name", "reporter_name", "Reporter's name or pseudonym"),
    ),
    "person": (
        _t("name", "person_name", "Detained person"),
        _t("other_names", "person_other_names", "Other spellings", MAX_LINE),
        _t("age", "person_age", "Age"),
        _c("sex", "person_sex", "Sex", SEXES, required=False),
        _t("occupation", "person_occupation", "Occupation / why targeted", MAX_LINE),
        _t("health", "person_health", "Health and medication", MAX_TEXT),
    ),
    "detention": (
        _c("facility_type", "facility_type", "Held in", FACILITY_TYPES, required=True),
        _t("facility_name", "facility_name", "City or facility", MAX_LINE),
        _t("arrest_date", "arrest_date", "Arrested on"),
        _t("charges", "charges", "Charges / article", MAX_LINE),
        _t("court", "court", "Court", MAX_LINE),
        _t("case_number", "case_number", "Case number"),
        _t("next_hearing", "next_hearing", "Next hearing"),
        _c("lawyer_access", "lawyer_access", "Lawyer access", YES_NO_DONT_KNOW, required=False),
        _c("family_visits", "family_visits", "Family visits", YES_NO_DONT_KNOW, required=False),
        _t("visits_details", "visits_details", "Visits (lawyer, family, doctor)", MAX_TEXT),
    ),
    "incident": (
        _t("what_happened", "what_happened", "What happened", MAX_TEXT),
        _m("perpetrator_types", "perpetrator_types", "Who did it", PERPETRATOR_TYPES),
        _t("perpetrator_names", "perpetrator_names", "Names or ranks", MAX_TEXT),
        _t("witnesses", "witnesses", "Witnesses", MAX_TEXT),
        _t("injuries", "injuries", "Visible injuries", MAX_TEXT),
        _t("medical_care", "medical_care", "Medical care asked for or given", MAX_TEXT),
    ),
    "already_told": (
        _m("bodies", "already_told", "Already told", ALREADY_TOLD),
        _t("response", "already_told_response", "Their response", MAX_TEXT),
    ),
    "consent": (
        _b("store", "consent_store", "May store this report"),
        _c("share", "consent_share", "Who may see it", SHARE_OPTIONS, required=True),
        _c(
            "detainee_agrees",
            "detainee_consent",
            "Detained person knows and agrees",
            DETAINEE_CONSENT,
            required=True,
        ),
        _c("action", "action_wanted", "Action wanted", ACTIONS, required=True),
        _b("use_reporter_name", "use_reporter_name", "May use reporter's name"),
    ),
    "risk": (
        _c(
            "publicity_risk",
            "publicity_risk",
            "Publicity could make it worse",
            YES_NO_DONT_KNOW,
            required=True,
        ),
        _c(
            "officials_warned",
            "officials_warned",
            "Officials warned or threatened reporter",
            YES_NO_DONT_KNOW,
            required=True,
        ),
        _m("phone", "phone_risk", "Reporter's phone", PHONE_RISKS),
    ),
    "contact": (
        _b("do_not_contact", "no_contact", "Do not contact"),
        _t("channel", "contact_channel", "Safe channel", MAX_LINE),
        _t("times", "contact_times", "Safe times", MAX_LINE),
        _t("if_someone_else_answers", "contact_if_other", "If someone else answers", MAX_LINE),
        _c(
            "preferred_language",
            "preferred_language",
            "Preferred language",
            LANGUAGES,
            required=True,
        ),
    ),
}

# Form fields build_report reads besides those in SECTIONS.
EXTRA_FORM_FIELDS: Final = ("acts", "incident_date", "date_precision", "help_needed")
FORM_FIELD_NAMES: Final[tuple[str, ...]] = (
    tuple(s.form_name for specs in SECTIONS.values() for s in specs) + EXTRA_FORM_FIELDS
)

_TOP_KEYS: Final = frozenset(
    {"format", "version", "kind", "received_hour", "language", "help_needed", "attachments"}
    | set(SECTIONS)
)


# ---------------------------------------------------------------------------
# Errors and small checks


class ReportFormatError(ValueError):
    """A report.json that does not follow the schema; the message is one line."""


# ASCII digits only: \d would also take ٢٠٢٤ or २०२४, which are not the
# YYYY-MM-DD the format promises.
_HOUR_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:00(?::00)?(?:Z|\+00:00)")
_DAY_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}")
_YEAR_RE: Final = re.compile(r"[0-9]{4}")
_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
_MEMBER_RE: Final = re.compile(r"attachments/[^/\x00]{1,255}")
# C0 controls except tab and newline, and DEL: never useful in a report.
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def without_control_characters(text: str) -> str:
    """``text`` without C0 control characters (tab and newline stay) and DEL."""
    return _CONTROL_RE.sub("", text)


def received_hour_now(now: datetime | None = None) -> str:
    """The current UTC time rounded down to the hour, as report.json stores it."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:00Z")


def check_date(value: str, precision: str) -> str | None:
    """Why ``value`` does not fit ``precision``, or None if it does.

    day: YYYY-MM-DD, month: YYYY-MM, year: YYYY (all real calendar values);
    unknown: any short text ("spring 2024") or nothing.
    """
    if precision == "unknown":
        return None
    if precision == "day":
        if not _DAY_RE.fullmatch(value):
            return "Write the exact day as YYYY-MM-DD, for example 2024-03-15."
        try:
            date.fromisoformat(value)
        except ValueError:
            return "This day does not exist in the calendar."
        return None
    if precision == "month":
        if not _MONTH_RE.fullmatch(value) or not 1 <= int(value[5:]) <= 12:
            return "Write the month as YYYY-MM, for example 2024-03."
        return None
    if precision == "year":
        if not _YEAR_RE.fullmatch(value):
            return "Write the year as YYYY, for example 2024."
        return None
    return "Unknown date precision."


def _fail(path: str, problem: str) -> ReportFormatError:
    return ReportFormatError(f"{path}: {problem}")


def _check_text(value: Any, path: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise _fail(path, f"expected a string, got {_type_name(value)}")
    if len(value) > max_len:
        raise _fail(path, f"longer than {max_len} characters")
    return value


def _check_choice(value: Any, path: str, vocab: Vocabulary, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise _fail(path, f"expected a code, got {_type_name(value)}")
    if value not in codes(vocab):
        raise _fail(path, f"unknown code {_preview(value)}")
    return value


def _check_code(value: Any, path: str, vocab: Vocabulary) -> str:
    code = _check_choice(value, path, vocab, required=True)
    if code is None:
        raise _fail(path, "missing")
    return code


def _check_choices(value: Any, path: str, vocab: Vocabulary) -> list[str]:
    if not isinstance(value, list):
        raise _fail(path, f"expected a list, got {_type_name(value)}")
    if len(value) > len(vocab):
        raise _fail(path, "too many entries")
    out: list[str] = []
    for i, item in enumerate(value):
        code = _check_code(item, f"{path}[{i}]", vocab)
        if code in out:
            raise _fail(f"{path}[{i}]", f"duplicate code {code!r}")
        out.append(code)
    return out


def _check_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, f"expected true or false, got {_type_name(value)}")
    return value


def _check_object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, f"expected an object, got {_type_name(value)}")
    return value


def _type_name(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return names.get(type(value), type(value).__name__)


def _preview(value: str) -> str:
    short = value[:40] + ("…" if len(value) > 40 else "")
    return repr(short)


def _key_name(key: Any) -> str:
    text = key if isinstance(key, str) else repr(key)
    return text[:64]


# ---------------------------------------------------------------------------
# Attachments


@dataclass(frozen=True)
class AttachmentMeta:
    """One attachment as listed in report.json (the bytes are a tar member)."""

    name: str  # the name the submitter's browser sent
    member: str  # tar member name inside the envelope, "attachments/NN-..."
    size: int  # bytes
    sha256: str  # lowercase hex of the plaintext

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "member": self.member, "size": self.size, "sha256": self.sha256}


def _check_attachment(value: Any, path: str) -> AttachmentMeta:
    obj = _check_object(value, path)
    for key in ("name", "member", "size", "sha256"):
        if key not in obj:
            raise _fail(f"{path}.{key}", "missing")
    name = _check_text(obj["name"], f"{path}.name", MAX_FILE_NAME)
    member = _check_text(obj["member"], f"{path}.member", MAX_FILE_NAME + 20)
    if not _MEMBER_RE.fullmatch(member) or member.endswith(("/.", "/..")):
        raise _fail(f"{path}.member", "not an attachments/ member name")
    size = obj["size"]
    if type(size) is not int or not 0 <= size <= MAX_ATTACHMENT_SIZE:
        raise _fail(f"{path}.size", "expected a non-negative whole number of bytes")
    sha = _check_text(obj["sha256"], f"{path}.sha256", 64)
    if not _SHA256_RE.fullmatch(sha):
        raise _fail(f"{path}.sha256", "expected 64 lowercase hex digits")
    return AttachmentMeta(name=name, member=member, size=size, sha256=sha)


# ---------------------------------------------------------------------------
# Building


def _clean_text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(name, f"expected text, got {_type_name(value)}")
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL_RE.sub("", text).strip()


def _clean_choice(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _clean_choices(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence | set | frozenset):
        raise _fail(name, f"expected a list, got {_type_name(value)}")
    out: list[str] = []
    for item in value:
        if item not in out:
            out.append(str(item))
    return out


def _clean_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value in ("y", "yes", "true", "on", "1")
    return bool(value)


def build_report(
    fields: Mapping[str, Any],
    attachments: Sequence[AttachmentMeta],
    *,
    received_hour: str,
    language: str,
) -> dict[str, Any]:
    """The report.json dict for one submission.

    ``fields`` maps the form field names (:data:`FORM_FIELD_NAMES`) to their
    values; missing ones count as not answered. Text is stripped and stripped
    of control characters; multiple choices keep the vocabulary's order.
    Raises :class:`ReportFormatError` if the result would not parse (an
    unknown code, an over-long value, a bad date): the form should have
    caught it first.
    """
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "version": SCHEMA_VERSION,
        "kind": REPORT_KIND,
        "received_hour": received_hour,
        "language": language,
    }
    for section, specs in SECTIONS.items():
        out: dict[str, Any] = {}
        for spec in specs:
            raw = fields.get(spec.form_name)
            if spec.kind == "text":
                out[spec.key] = _clean_text(raw, spec.form_name)
            elif spec.kind == "choice":
                out[spec.key] = _clean_choice(raw)
            elif spec.kind == "choices":
                chosen = _clean_choices(raw, spec.form_name)
                order = codes(spec.vocabulary)
                out[spec.key] = sorted(chosen, key=lambda c: order.index(c) if c in order else -1)
            else:
                out[spec.key] = _clean_bool(raw)
        report[section] = out

    incident = report["incident"]
    acts = _clean_choices(fields.get("acts"), "acts")
    unknown = [code for code in acts if code not in ACTS_BY_CODE]
    if unknown:
        raise _fail("incident.acts", f"unknown code {_preview(unknown[0])}")
    incident["acts"] = [_act_dict(a.code) for a in ACTS if a.code in acts]
    incident["date"] = {
        "value": _clean_text(fields.get("incident_date"), "incident_date"),
        "precision": _clean_choice(fields.get("date_precision")),
    }
    help_needed = _clean_choices(fields.get("help_needed"), "help_needed")
    order = codes(HELP_NEEDED)
    report["help_needed"] = sorted(help_needed, key=lambda c: order.index(c) if c in order else -1)
    report["attachments"] = [a.to_dict() for a in attachments]
    # The builder's output must always pass the parser; check it here, where a
    # bug is cheap, rather than on the offline machine.
    parse_report(report)
    return report


def _act_dict(code: str) -> dict[str, str]:
    act = ACTS_BY_CODE[code]
    return {"code": act.code, "huridocs": act.huridocs, "label": act.label}


# ---------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True)
class ReportSummary:
    """The id-less one-line view the review tool lists."""

    received_hour: str
    danger_now: bool | None  # yes → True, no → False, don't know → None
    person_name: str
    facility: str
    what_happened: str


@dataclass(frozen=True)
class Report:
    """A validated report.json.

    The most used values are typed attributes; :meth:`to_dict` gives the whole
    normalised structure (every section and key present, as
    :func:`build_report` writes it, with canonical act labels).
    """

    version: int
    received_hour: str
    language: str
    danger_now: str  # "yes" | "no" | "dont_know"
    danger_kinds: tuple[str, ...]
    person_name: str
    facility_type: str
    facility_name: str
    what_happened: str
    acts: tuple[Act, ...]
    date_value: str
    date_precision: str
    attachments: tuple[AttachmentMeta, ...]
    sections: Mapping[str, Mapping[str, Any]] = field(repr=False)
    help_needed: tuple[str, ...] = ()
    unknown_keys: tuple[str, ...] = ()

    def section(self, name: str) -> Mapping[str, Any]:
        """One section ("person", "consent", ...) as a read-only mapping."""
        return self.sections[name]

    @property
    def is_urgent(self) -> bool:
        return self.danger_now == "yes"

    def summary(self) -> ReportSummary:
        facility = label_for(FACILITY_TYPES, self.facility_type)
        if self.facility_name:
            facility = f"{facility}, {self.facility_name}"
        danger = {"yes": True, "no": False}.get(self.danger_now)
        return ReportSummary(
            received_hour=self.received_hour,
            danger_now=danger,
            person_name=self.person_name,
            facility=facility,
            what_happened=self.what_happened,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": REPORT_FORMAT,
            "version": self.version,
            "kind": REPORT_KIND,
            "received_hour": self.received_hour,
            "language": self.language,
        }
        for name, values in self.sections.items():
            out[name] = copy.deepcopy(dict(values))
        out["help_needed"] = list(self.help_needed)
        out["attachments"] = [a.to_dict() for a in self.attachments]
        return out


def parse_report(obj: Any) -> Report:
    """Validate an untrusted, already JSON-decoded report.

    Raises :class:`ReportFormatError` (and nothing else) on any deviation.
    Missing optional values count as not answered; missing required ones and
    the envelope keys (format, version, kind, received_hour, language) are
    errors. See the module docstring for the treatment of unknown keys.
    """
    try:
        return _parse_report(obj)
    except ReportFormatError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise ReportFormatError(
            f"report: too large or too deeply nested ({type(exc).__name__})"
        ) from None
    except Exception as exc:  # the contract: only ReportFormatError escapes
        raise ReportFormatError(f"report: malformed ({type(exc).__name__})") from None


def loads_report(data: bytes | str) -> Report:
    """Decode and validate report.json bytes (size-capped, strict: see :func:`loads_strict`)."""
    obj = loads_strict(
        data, error=ReportFormatError, what="report.json", max_bytes=MAX_REPORT_BYTES
    )
    return parse_report(obj)


_NoteUnknown = Callable[[Mapping[Any, Any], AbstractSet[str], str], None]


def _parse_report(obj: Any) -> Report:
    top = _check_object(obj, "report")
    unknown: list[str] = []

    def note_unknown(mapping: Mapping[Any, Any], known: AbstractSet[str], path: str) -> None:
        for key in mapping:
            if key not in known and len(unknown) < MAX_UNKNOWN_KEYS:
                unknown.append(f"{path}{_key_name(key)}")

    if top.get("format") != REPORT_FORMAT:
        raise _fail("format", f"expected {REPORT_FORMAT!r}")
    version = top.get("version")
    if type(version) is not int or version < 1:
        raise _fail("version", "expected a positive whole number")
    if version > SCHEMA_VERSION:
        raise _fail(
            "version",
            f"report is version {version}, this tool reads up to {SCHEMA_VERSION}: "
            "update intake-review",
        )
    if top.get("kind") != REPORT_KIND:
        raise _fail("kind", f"expected {REPORT_KIND!r}")
    received_hour = _check_text(top.get("received_hour"), "received_hour", 40)
    if not _HOUR_RE.fullmatch(received_hour):
        raise _fail("received_hour", "expected YYYY-MM-DDTHH:00Z")
    try:
        datetime.fromisoformat(received_hour.replace("Z", "+00:00"))
    except ValueError:
        raise _fail("received_hour", "not a real time") from None
    language = _check_code(top.get("language"), "language", LANGUAGES)
    note_unknown(top, _TOP_KEYS, "")

    sections: dict[str, dict[str, Any]] = {}
    for name, specs in SECTIONS.items():
        raw = top.get(name, {})
        section = _check_object(raw, name)
        out: dict[str, Any] = {}
        for spec in specs:
            path = f"{name}.{spec.key}"
            if spec.kind == "text":
                out[spec.key] = _check_text(section.get(spec.key, ""), path, spec.max_len)
            elif spec.kind == "choice":
                out[spec.key] = _check_choice(
                    section.get(spec.key), path, spec.vocabulary, required=spec.required
                )
            elif spec.kind == "choices":
                out[spec.key] = _check_choices(section.get(spec.key, []), path, spec.vocabulary)
            else:
                out[spec.key] = _check_bool(section.get(spec.key, False), path)
        known = {s.key for s in specs}
        if name == "incident":
            known |= {"acts", "date"}
        note_unknown(section, known, f"{name}.")
        sections[name] = out

    raw_incident = _check_object(top.get("incident", {}), "incident")
    acts = _parse_acts(raw_incident.get("acts", []), note_unknown)
    sections["incident"]["acts"] = [_act_dict(a.code) for a in acts]
    date_obj = _check_object(raw_incident.get("date", {}), "incident.date")
    note_unknown(date_obj, {"value", "precision"}, "incident.date.")
    date_value = _check_text(date_obj.get("value", ""), "incident.date.value", MAX_SHORT)
    precision = _check_code(date_obj.get("precision"), "incident.date.precision", DATE_PRECISIONS)
    problem = check_date(date_value, precision)
    if problem:
        raise _fail("incident.date.value", problem)
    sections["incident"]["date"] = {"value": date_value, "precision": precision}

    if not sections["person"]["name"].strip():
        raise _fail("person.name", "missing")
    if not sections["incident"]["what_happened"].strip():
        raise _fail("incident.what_happened", "missing")

    help_needed = _check_choices(top.get("help_needed", []), "help_needed", HELP_NEEDED)

    raw_attachments = top.get("attachments", [])
    if not isinstance(raw_attachments, list):
        raise _fail("attachments", f"expected a list, got {_type_name(raw_attachments)}")
    if len(raw_attachments) > MAX_ATTACHMENTS:
        raise _fail("attachments", f"more than {MAX_ATTACHMENTS}")
    attachments = tuple(
        _check_attachment(a, f"attachments[{i}]") for i, a in enumerate(raw_attachments)
    )
    members = [a.member for a in attachments]
    if len(set(members)) != len(members):
        raise _fail("attachments", "two attachments share a member name")

    return Report(
        version=version,
        received_hour=received_hour,
        language=language,
        danger_now=sections["danger_now"]["answer"],
        danger_kinds=tuple(sections["danger_now"]["kinds"]),
        person_name=sections["person"]["name"],
        facility_type=sections["detention"]["facility_type"],
        facility_name=sections["detention"]["facility_name"],
        what_happened=sections["incident"]["what_happened"],
        acts=acts,
        date_value=date_value,
        date_precision=precision,
        attachments=attachments,
        sections=sections,
        help_needed=tuple(help_needed),
        unknown_keys=tuple(unknown),
    )


def _parse_acts(value: Any, note_unknown: _NoteUnknown) -> tuple[Act, ...]:
    if not isinstance(value, list):
        raise _fail("incident.acts", f"expected a list, got {_type_name(value)}")
    if len(value) > len(ACTS):
        raise _fail("incident.acts", "too many entries")
    seen: list[Act] = []
    for i, item in enumerate(value):
        path = f"incident.acts[{i}]"
        obj = _check_object(item, path)
        code = _check_code(obj.get("code"), f"{path}.code", ACT_CHOICES)
        act = ACTS_BY_CODE[code]
        # The code is authoritative; a HURIDOCS code that disagrees with it
        # means the producer and this tool disagree on meaning: refuse.
        if "huridocs" in obj and obj["huridocs"] != act.huridocs:
            raise _fail(f"{path}.huridocs", f"does not match code {code!r}")
        if "label" in obj:
            _check_text(obj["label"], f"{path}.label", MAX_LINE)
        note_unknown(obj, {"code", "huridocs", "label"}, f"{path}.")
        if act in seen:
            raise _fail(path, f"duplicate code {code!r}")
        seen.append(act)
    return tuple(seen)


# ---------------------------------------------------------------------------
# Follow-ups: what a reporter adds to a case later, in an envelope of its own

FOLLOWUP_KIND: Final = "followup"
_CASE_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_FOLLOWUP_KEYS: Final = frozenset(
    {
        "format",
        "version",
        "kind",
        "case_id",
        "seq",
        "received_hour",
        "language",
        "text",
        "danger_now",
        "attachments",
    }
)


@dataclass(frozen=True)
class FollowUpReport:
    """A validated follow-up: new text, the "danger now" question again, files."""

    version: int
    case_id: str
    seq: int
    received_hour: str
    language: str
    text: str
    danger_now: str  # "yes" | "no" | "dont_know"
    danger_kinds: tuple[str, ...]
    attachments: tuple[AttachmentMeta, ...]
    unknown_keys: tuple[str, ...] = ()

    @property
    def is_urgent(self) -> bool:
        return self.danger_now == "yes"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "version": self.version,
            "kind": FOLLOWUP_KIND,
            "case_id": self.case_id,
            "seq": self.seq,
            "received_hour": self.received_hour,
            "language": self.language,
            "text": self.text,
            "danger_now": {"answer": self.danger_now, "kinds": list(self.danger_kinds)},
            "attachments": [a.to_dict() for a in self.attachments],
        }


def build_followup(
    fields: Mapping[str, Any],
    attachments: Sequence[AttachmentMeta],
    *,
    case_id: str,
    seq: int,
    received_hour: str,
    language: str,
) -> dict[str, Any]:
    """The report.json dict of a follow-up (form fields: text, danger_now, danger_kinds)."""
    kinds = _clean_choices(fields.get("danger_kinds"), "danger_kinds")
    order = codes(DANGER_KINDS)
    followup = {
        "format": REPORT_FORMAT,
        "version": SCHEMA_VERSION,
        "kind": FOLLOWUP_KIND,
        "case_id": case_id,
        "seq": seq,
        "received_hour": received_hour,
        "language": language,
        "text": _clean_text(fields.get("text"), "text"),
        "danger_now": {
            "answer": _clean_choice(fields.get("danger_now")),
            "kinds": sorted(kinds, key=lambda c: order.index(c) if c in order else -1),
        },
        "attachments": [a.to_dict() for a in attachments],
    }
    parse_followup(followup)  # the builder's output must always parse
    return followup


def parse_followup(obj: Any) -> FollowUpReport:
    """Validate an untrusted follow-up; raises only :class:`ReportFormatError`."""
    try:
        return _parse_followup(obj)
    except ReportFormatError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise ReportFormatError(
            f"follow-up: too large or too deeply nested ({type(exc).__name__})"
        ) from None
    except Exception as exc:  # the contract: only ReportFormatError escapes
        raise ReportFormatError(f"follow-up: malformed ({type(exc).__name__})") from None


def _parse_followup(obj: Any) -> FollowUpReport:
    top = _check_object(obj, "follow-up")
    if top.get("format") != REPORT_FORMAT:
        raise _fail("format", f"expected {REPORT_FORMAT!r}")
    version = top.get("version")
    if type(version) is not int or not 1 <= version <= SCHEMA_VERSION:
        raise _fail("version", f"expected 1 to {SCHEMA_VERSION}: update intake-review if newer")
    if top.get("kind") != FOLLOWUP_KIND:
        raise _fail("kind", f"expected {FOLLOWUP_KIND!r}")
    case_id = _check_text(top.get("case_id"), "case_id", 64)
    if not _CASE_ID_RE.fullmatch(case_id):
        raise _fail("case_id", "not a case id")
    seq = top.get("seq")
    if type(seq) is not int or not 1 <= seq <= 1_000_000:
        raise _fail("seq", "expected a positive whole number")
    received_hour = _check_text(top.get("received_hour"), "received_hour", 40)
    if not _HOUR_RE.fullmatch(received_hour):
        raise _fail("received_hour", "expected YYYY-MM-DDTHH:00Z")
    language = _check_code(top.get("language"), "language", LANGUAGES)
    text = _check_text(top.get("text"), "text", MAX_TEXT)
    danger = _check_object(top.get("danger_now"), "danger_now")
    answer = _check_code(danger.get("answer"), "danger_now.answer", YES_NO_DONT_KNOW)
    kinds = _check_choices(danger.get("kinds", []), "danger_now.kinds", DANGER_KINDS)
    raw_attachments = top.get("attachments", [])
    if not isinstance(raw_attachments, list) or len(raw_attachments) > MAX_ATTACHMENTS:
        raise _fail("attachments", f"expected a list of at most {MAX_ATTACHMENTS}")
    attachments = tuple(
        _check_attachment(item, f"attachments[{i}]") for i, item in enumerate(raw_attachments)
    )
    unknown = tuple(f"{_key_name(k)}" for k in top if k not in _FOLLOWUP_KEYS)[:MAX_UNKNOWN_KEYS]
    return FollowUpReport(
        version=version,
        case_id=case_id,
        seq=seq,
        received_hour=received_hour,
        language=language,
        text=text,
        danger_now=answer,
        danger_kinds=tuple(kinds),
        attachments=attachments,
        unknown_keys=unknown,
    )


def parse_envelope_json(obj: Any) -> Report | FollowUpReport:
    """A report or a follow-up, by its ``kind``; raises only :class:`ReportFormatError`."""
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if kind == FOLLOWUP_KIND:
        return parse_followup(obj)
    return parse_report(obj)
