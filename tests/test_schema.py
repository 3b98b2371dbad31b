"""report.json: vocabulary, build → JSON → parse round trip, hostile input."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake import schema
from intake.review.render import report_rows
from intake.schema import (
    AttachmentMeta,
    ReportFormatError,
    build_report,
    loads_report,
    parse_report,
)

# The domain brief's table, written out again on purpose: a typo in schema.py
# must not be able to agree with itself.
HURIDOCS = {
    "torture": "020111110000",
    "beaten": "020101",
    "sexual_violence": "020102",
    "harassment": "020103",
    "death_threats_person": "020103020100",
    "death_threats_family": "020103020200",
    "other_threats_person": "020103010100",
    "other_threats_family": "020103010200",
    "medical_refused": "360102040000",
    "food_refused": "360102030000",
    "degrading": "360102010000",
    "complaints_blocked": "360102060000",
    "lawyer_refused": "350109",
    "no_defence_contact": "350113",
    "forced_confession": "350118",
    "location_unknown": "030103",
}

HOUR = "2024-03-16T10:00Z"


def minimal_fields() -> dict[str, Any]:
    return {
        "relationship": "lawyer",
        "person_name": "Makhabat Tazhibek kyzy",
        "facility_type": "unknown",
        "what_happened": "Beaten by guards in SIZO.",
        "date_precision": "unknown",
        "danger_now": "dont_know",
        "consent_store": True,
        "consent_share": "this_org",
        "detainee_consent": "no",
        "action_wanted": "nothing_until_we_talk",
        "use_reporter_name": "no",
        "publicity_risk": "yes",
        "officials_warned": "dont_know",
        "no_contact": True,
        "preferred_language": "ru",
    }


def full_fields() -> dict[str, Any]:
    fields = minimal_fields()
    for spec in (s for specs in schema.SECTIONS.values() for s in specs):
        if spec.kind == "text":
            fields[spec.form_name] = f"{spec.form_name} Ң ү ө"
        elif spec.kind == "choice":
            fields[spec.form_name] = spec.vocabulary[-1][0]
        elif spec.kind == "choices":
            fields[spec.form_name] = list(reversed(schema.codes(spec.vocabulary)))
    fields.update(
        no_contact=False,
        consent_store=True,
        use_reporter_name="yes",
        acts=list(HURIDOCS),
        incident_date="2024-02",
        date_precision="month",
        help_needed=["relocation", "medical"],
    )
    return fields


ATTACHMENTS = [
    AttachmentMeta("letter.jpg", "attachments/01-letter.jpg", 123456, "ab" * 32),
    AttachmentMeta("Письмо.pdf", "attachments/02-Pismo.pdf", 0, "0" * 64),
]


def valid_report() -> dict[str, Any]:
    return build_report(full_fields(), ATTACHMENTS, received_hour=HOUR, language="ky")


def test_every_act_has_its_huridocs_code() -> None:
    assert {a.code: a.huridocs for a in schema.ACTS} == HURIDOCS
    assert [a.code for a in schema.ACTS] == list(HURIDOCS)  # the brief's order
    assert len({a.label for a in schema.ACTS}) == len(schema.ACTS)


def test_vocabularies_have_the_briefs_codes() -> None:
    assert schema.codes(schema.RELATIONSHIPS) == (
        "relative", "lawyer", "former_cellmate", "colleague", "other",
    )  # fmt: skip
    assert schema.codes(schema.FACILITY_TYPES) == (
        "ivs", "sizo", "gknb", "colony", "hospital", "psychiatric", "unknown", "other",
    )  # fmt: skip
    assert schema.codes(schema.DATE_PRECISIONS) == ("day", "month", "year", "unknown")
    assert schema.codes(schema.DANGER_KINDS) == (
        "ongoing_abuse", "urgent_health", "planned_transfer", "hunger_strike", "threat_to_life",
    )  # fmt: skip
    assert schema.codes(schema.YES_NO_DONT_KNOW) == ("yes", "no", "dont_know")
    assert schema.codes(schema.ALREADY_TOLD) == (
        "prosecutor", "ombudsperson", "ncpt", "un", "other_ngos", "other",
    )  # fmt: skip
    assert dict(schema.ALREADY_TOLD)["ncpt"] == "National Centre for the Prevention of Torture"
    assert schema.codes(schema.SHARE_OPTIONS) == ("this_org", "partners", "un")
    assert schema.codes(schema.DETAINEE_CONSENT) == ("yes", "no", "impossible")
    assert schema.codes(schema.ACTIONS) == (
        "public_named", "public_anonymous", "quiet_advocacy", "nothing_until_we_talk",
    )  # fmt: skip
    assert schema.codes(schema.LANGUAGES) == ("ky", "ru", "uz", "en")
    assert schema.codes(schema.HELP_NEEDED) == ("medical", "legal", "relocation", "none")
    assert dict(schema.FACILITY_TYPES)["ivs"] == "Temporary police detention (IVS)"


@pytest.mark.parametrize("fields", [minimal_fields(), full_fields()], ids=["minimal", "full"])
def test_build_json_parse_round_trip(fields: dict[str, Any]) -> None:
    report = build_report(fields, ATTACHMENTS, received_hour=HOUR, language="ky")
    text = json.dumps(report, ensure_ascii=False)
    parsed = loads_report(text.encode())
    assert parsed.to_dict() == report
    assert parse_report(json.loads(text)) == parsed
    assert parsed.attachments == tuple(ATTACHMENTS)
    assert parsed.unknown_keys == ()


def test_build_structure() -> None:
    report = valid_report()
    assert list(report)[:5] == ["format", "version", "kind", "received_hour", "language"]
    assert report["format"] == "intake.report" and report["version"] == schema.SCHEMA_VERSION
    assert report["kind"] == "report"
    # Acts carry their HURIDOCS code and appear in vocabulary order.
    assert [(a["code"], a["huridocs"]) for a in report["incident"]["acts"]] == list(
        HURIDOCS.items()
    )
    # Multiple choices are put back in vocabulary order whatever the input order.
    assert report["help_needed"] == ["medical", "relocation"]
    assert report["danger_now"]["kinds"] == list(schema.codes(schema.DANGER_KINDS))
    assert report["consent"]["use_reporter_name"] is True
    assert report["incident"]["date"] == {"value": "2024-02", "precision": "month"}
    assert report["attachments"][1] == {
        "name": "Письмо.pdf",
        "member": "attachments/02-Pismo.pdf",
        "size": 0,
        "sha256": "0" * 64,
    }


def test_build_cleans_text_and_fills_unanswered() -> None:
    fields = minimal_fields()
    fields["what_happened"] = "  line one\r\nline\x00 two\x1b[31m\r "
    report = build_report(fields, [], received_hour=HOUR, language="en")
    assert report["incident"]["what_happened"] == "line one\nline two[31m"
    assert report["person"]["sex"] is None and report["person"]["age"] == ""
    assert report["incident"]["acts"] == [] and report["attachments"] == []
    assert report["consent"]["use_reporter_name"] is False


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"acts": ["torture", "made_up"]}, "incident.acts"),
        ({"facility_type": "spaceship"}, "detention.facility_type"),
        ({"person_name": ""}, "person.name"),
        ({"person_name": "x" * (schema.MAX_SHORT + 1)}, "person.name"),
        ({"danger_now": None}, "danger_now.answer"),
        ({"date_precision": "day", "incident_date": "spring"}, "incident.date.value"),
        ({"person_age": 41}, "person_age"),
    ],
)
def test_build_refuses_what_would_not_parse(change: dict[str, Any], field: str) -> None:
    fields = minimal_fields() | change
    with pytest.raises(ReportFormatError, match=f"^{field.replace('.', '[.]')}"):
        build_report(fields, [], received_hour=HOUR, language="en")


@pytest.mark.parametrize(
    "hour", ["2024-03-16T10:37Z", "2024-03-16 10:00", "2024-13-16T10:00Z", "yesterday"]
)
def test_received_hour_must_be_a_whole_hour(hour: str) -> None:
    with pytest.raises(ReportFormatError, match=r"^received_hour"):
        build_report(minimal_fields(), [], received_hour=hour, language="en")


def test_received_hour_now_is_coarse() -> None:
    from datetime import UTC, datetime

    assert schema.received_hour_now(datetime(2024, 3, 16, 10, 59, 59, tzinfo=UTC)) == HOUR


def test_newer_version_refused_older_accepted() -> None:
    report = valid_report()
    report["version"] = schema.SCHEMA_VERSION + 1
    with pytest.raises(ReportFormatError, match=r"^version: .*update intake-review"):
        parse_report(report)
    for bad in (0, -1, "1", 1.0, True, None):
        report["version"] = bad
        with pytest.raises(ReportFormatError, match=r"^version"):
            parse_report(report)


def test_unknown_keys_are_dropped_but_listed() -> None:
    report = valid_report()
    report["future"] = {"deep": [[[[1]]]]}
    report["person"]["nickname"] = "x"
    report["incident"]["acts"][0]["note"] = "y"
    parsed = parse_report(report)
    assert parsed.unknown_keys == ("future", "person.nickname", "incident.acts[0].note")
    assert "future" not in parsed.to_dict()
    assert "nickname" not in parsed.to_dict()["person"]
    assert ("Ignored unknown keys", "future, person.nickname, incident.acts[0].note") in (
        report_rows(parsed)
    )


def test_unknown_key_list_is_capped() -> None:
    report = valid_report()
    for i in range(500):
        report[f"k{i}" * 50] = i
    parsed = parse_report(report)
    assert len(parsed.unknown_keys) == schema.MAX_UNKNOWN_KEYS
    assert all(len(k) <= 64 for k in parsed.unknown_keys)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("format",), "other", "format"),
        (("kind",), "followup", "kind"),
        (("language",), "fr", "language"),
        (("person",), [], "person"),
        (("person", "name"), ["a"], "person.name"),
        (("person", "name"), "x" * 10_000, "person.name"),
        (("incident", "what_happened"), "x" * (schema.MAX_TEXT + 1), "incident.what_happened"),
        (("incident", "what_happened"), {"a": {"b": {}}}, "incident.what_happened"),
        (
            ("incident", "acts"),
            [{"code": "torture", "huridocs": "020101"}],
            "incident.acts[0].huridocs",
        ),
        (("incident", "acts"), [{"code": "torture"}, {"code": "torture"}], "incident.acts[1]"),
        (("incident", "acts"), [{"code": "x"}] * 100, "incident.acts"),
        (("incident", "acts"), ["torture"], "incident.acts[0]"),
        (("incident", "date", "value"), "2024-02-30", "incident.date.value"),
        (("incident", "date", "precision"), None, "incident.date.precision"),
        (("danger_now", "answer"), True, "danger_now.answer"),
        (("danger_now", "kinds"), ["hunger_strike", "hunger_strike"], "danger_now.kinds[1]"),
        (("consent", "store"), "yes", "consent.store"),
        (("consent", "store"), 1, "consent.store"),
        (("consent", "share"), None, "consent.share"),
        (("attachments",), {}, "attachments"),
        (("attachments", 0, "size"), -1, "attachments[0].size"),
        (("attachments", 0, "size"), True, "attachments[0].size"),
        (("attachments", 0, "size"), 1.5, "attachments[0].size"),
        (("attachments", 0, "sha256"), "AB" * 32, "attachments[0].sha256"),
        (("attachments", 0, "member"), "../../etc/passwd", "attachments[0].member"),
        (("attachments", 0, "member"), "attachments/../x", "attachments[0].member"),
        (("attachments", 1, "member"), "attachments/01-letter.jpg", "attachments"),
        (("received_hour",), "2024-03-16T10:30Z", "received_hour"),
    ],
)
def test_hostile_values_name_the_field(path: tuple[Any, ...], value: Any, field: str) -> None:
    report = valid_report()
    target: Any = report
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ReportFormatError) as caught:
        parse_report(report)
    message = str(caught.value)
    assert message.startswith(f"{field}:"), message
    assert "\n" not in message and len(message) < 300


def test_missing_required_parts() -> None:
    for key in ("format", "version", "received_hour", "language", "danger_now", "consent"):
        report = valid_report()
        del report[key]
        with pytest.raises(ReportFormatError):
            parse_report(report)


def test_loads_report_rejects_bad_json() -> None:
    good = json.dumps(valid_report())
    assert loads_report(good).person_name
    for bad in (
        b"\xff\xfe not utf-8",
        b"{",
        b"[" * 100_000 + b"]" * 100_000,
        good.replace('"version": 1', '"version": NaN').encode(),
        good.replace("{", '{"format": "x", ', 1).encode(),  # duplicate key
        b" " * (schema.MAX_REPORT_BYTES + 1),
    ):
        with pytest.raises(ReportFormatError) as caught:
            loads_report(bad)
        assert "\n" not in str(caught.value)


def test_deeply_nested_object_is_a_format_error() -> None:
    deep: Any = "x"
    for _ in range(100_000):
        deep = {"person": deep}
    with pytest.raises(ReportFormatError):
        parse_report(deep)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_only_raises_format_error(value: Any) -> None:
    try:
        parse_report(value)
    except ReportFormatError as exc:
        assert "\n" not in str(exc)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out += _paths(value, (*prefix, i))
    return out


VALID = valid_report()
PATHS = _paths(VALID)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(PATHS), st.one_of(json_values, st.just("__delete__"))),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_report_parses_or_raises_format_error(
    mutations: list[tuple[tuple[Any, ...], Any]],
) -> None:
    report = copy.deepcopy(VALID)
    for path, value in mutations:
        target: Any = report
        try:
            for key in path[:-1]:
                target = target[key]
            if value == "__delete__":
                del target[path[-1]]
            else:
                target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    try:
        parsed = parse_report(report)
    except ReportFormatError as exc:
        assert "\n" not in str(exc)
    else:
        # Whatever was accepted is self-consistent and survives a round trip.
        assert parse_report(json.loads(json.dumps(parsed.to_dict()))).to_dict() == (
            parsed.to_dict()
        )
        report_rows(parsed)


def test_summary_and_report_rows() -> None:
    parsed = parse_report(valid_report())
    summary = parsed.summary()
    assert summary.received_hour == HOUR
    assert summary.danger_now is None  # full_fields picks the last code: dont_know
    assert summary.person_name == "person_name Ң ү ө"
    assert summary.facility == "Other, facility_name Ң ү ө"

    fields = minimal_fields() | {"danger_now": "yes", "facility_type": "sizo"}
    fields["facility_name"] = "SIZO-1"
    urgent = parse_report(build_report(fields, [], received_hour=HOUR, language="ru"))
    assert urgent.summary().danger_now is True and urgent.is_urgent
    rows = report_rows(urgent)  # English: the review tool's language outside main()
    labels = [label for label, _ in rows]
    assert labels[:3] == ["Received", "Form language", "Danger right now"]
    assert ("Held in", "Pre-trial detention (SIZO)") in rows
    assert ("Who may see it", "Only this organisation") in rows
    assert ("When", "I don't know / roughly") in rows
    assert "Age" not in labels  # unanswered optional values are left out
    assert all(isinstance(v, str) for _, v in rows)

    acts = dict(report_rows(parsed))["Acts (HURIDOCS)"]
    assert "Torture [020111110000]" in acts and "Location unknown, no contact [030103]" in acts


def test_schema_imports_no_flask() -> None:
    code = (
        "import sys, intake.schema; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('flask', 'wtforms', 'sqlalchemy')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
