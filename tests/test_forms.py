"""The submission form and its templates, in a minimal Flask app (no intake.app)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask, render_template
from werkzeug.datastructures import FileStorage, MultiDict

from intake import schema
from intake.config import LimitsSettings, Settings
from intake.followup_forms import FollowUpForm
from intake.forms import MESSAGES, SubmissionForm, form_to_fields, honeypot_tripped

PACKAGE = Path(__file__).resolve().parent.parent / "intake"
TEMPLATES = PACKAGE / "templates"
STATIC = PACKAGE / "static"

REQUIRED = [
    "relationship",
    "person_name",
    "facility_type",
    "what_happened",
    "date_precision",
    "danger_now",
    "consent_store",
    "consent_share",
    "detainee_consent",
    "action_wanted",
    "publicity_risk",
    "officials_warned",
    "preferred_language",
]


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__, template_folder=str(TEMPLATES), static_folder=str(STATIC))
    app.config.update(SECRET_KEY="test", WTF_CSRF_ENABLED=False, TESTING=True)
    return app


def valid_data() -> MultiDict[str, Any]:
    return MultiDict(
        [
            ("relationship", "relative"),
            ("person_name", "  Айгүл Өмүрова  "),
            ("person_other_names", "Aigul Omurova"),
            ("facility_type", "sizo"),
            ("facility_name", "SIZO-1, Bishkek"),
            ("what_happened", "She was beaten by guards.\r\nA note reached us."),
            ("acts", "beaten"),
            ("acts", "death_threats_person"),
            ("incident_date", "2024-03-15"),
            ("date_precision", "day"),
            ("danger_now", "yes"),
            ("danger_kinds", "threat_to_life"),
            ("person_age", "41"),
            ("person_sex", "female"),
            ("person_occupation", "journalist"),
            ("perpetrator_types", "prison_staff"),
            ("perpetrator_types", "fellow_prisoner"),
            ("already_told", "ombudsperson"),
            ("consent_store", "y"),
            ("consent_share", "un"),
            ("detainee_consent", "impossible"),
            ("action_wanted", "quiet_advocacy"),
            ("use_reporter_name", "no"),
            ("publicity_risk", "dont_know"),
            ("officials_warned", "yes"),
            ("phone_risk", "seized"),
            ("help_needed", "legal"),
            ("contact_channel", "Signal +996 555 000 000"),
            ("contact_times", "evenings"),
            ("contact_if_other", "Wrong number, sorry."),
            ("preferred_language", "ky"),
        ]
    )


@pytest.fixture
def post(app: Flask) -> Iterator[Any]:
    contexts: list[Any] = []

    def _post(data: MultiDict[str, Any]) -> SubmissionForm:
        ctx = app.test_request_context("/", method="POST", data=data)
        ctx.push()
        contexts.append(ctx)
        return SubmissionForm()

    yield _post
    for ctx in reversed(contexts):
        ctx.pop()


def test_full_valid_post_builds_expected_report(post: Any) -> None:
    data = valid_data()
    data.add(
        "attachments",
        FileStorage(stream=BytesIO(b"jpeg"), filename="note.jpg", content_type="image/jpeg"),
    )
    form = post(data)
    assert form.validate(), form.errors
    assert not honeypot_tripped(form)

    fields = form_to_fields(form)
    assert set(fields) == set(schema.FORM_FIELD_NAMES)
    attachment = schema.AttachmentMeta("note.jpg", "attachments/01-note.jpg", 4, "a" * 64)
    report = schema.build_report(
        fields, [attachment], received_hour="2024-03-16T10:00Z", language="ky"
    )

    assert report["format"] == "intake.report" and report["version"] == 1
    assert report["reporter"]["relationship"] == "relative"
    assert report["person"]["name"] == "Айгүл Өмүрова"  # stripped, Kyrgyz letters intact
    assert report["person"]["sex"] == "female"
    assert report["detention"] == {
        "facility_type": "sizo",
        "facility_name": "SIZO-1, Bishkek",
        "arrest_date": "",
        "charges": "",
        "court": "",
        "case_number": "",
        "next_hearing": "",
        "lawyer_access": None,
        "family_visits": None,
        "visits_details": "",
    }
    incident = report["incident"]
    assert incident["what_happened"] == "She was beaten by guards.\nA note reached us."
    assert incident["acts"] == [
        {"code": "beaten", "huridocs": "020101", "label": "Beaten / physically assaulted"},
        {
            "code": "death_threats_person",
            "huridocs": "020103020100",
            "label": "Death threats against them",
        },
    ]
    assert incident["date"] == {"value": "2024-03-15", "precision": "day"}
    assert incident["perpetrator_types"] == ["prison_staff", "fellow_prisoner"]
    assert report["danger_now"] == {"answer": "yes", "kinds": ["threat_to_life"], "details": ""}
    assert report["already_told"] == {"bodies": ["ombudsperson"], "response": ""}
    assert report["consent"] == {
        "store": True,
        "share": "un",
        "detainee_agrees": "impossible",
        "action": "quiet_advocacy",
        "use_reporter_name": False,
    }
    assert report["risk"] == {
        "publicity_risk": "dont_know",
        "officials_warned": "yes",
        "phone": ["seized"],
    }
    assert report["contact"] == {
        "do_not_contact": False,
        "channel": "Signal +996 555 000 000",
        "times": "evenings",
        "if_someone_else_answers": "Wrong number, sorry.",
        "preferred_language": "ky",
    }
    assert report["help_needed"] == ["legal"]
    assert report["attachments"] == [attachment.to_dict()]
    assert schema.parse_report(report).to_dict() == report


def test_empty_post_names_every_required_field(post: Any) -> None:
    form = post(MultiDict())
    assert not form.validate()
    for name in REQUIRED:
        assert name in form.errors, name
        assert form.errors[name] == [MESSAGES[name]], name
    # One message per field: no doubled "Not a valid choice" from WTForms.
    assert form.errors["contact_channel"] == [MESSAGES["contact_missing"]]
    # use_reporter_name defaults to "no", so it is not an error.
    assert "use_reporter_name" not in form.errors
    assert form.use_reporter_name.data == "no"
    # Optional questions stay optional.
    for name in ("person_age", "person_sex", "acts", "attachments", "reporter_name", "website"):
        assert name not in form.errors


def test_whitespace_only_text_is_missing(post: Any) -> None:
    data = valid_data()
    data["person_name"] = "   "
    data["what_happened"] = "\n\n"
    form = post(data)
    assert not form.validate()
    assert form.errors["person_name"] == [MESSAGES["person_name"]]
    assert form.errors["what_happened"] == [MESSAGES["what_happened"]]


@pytest.mark.parametrize(
    ("precision", "value", "ok"),
    [
        ("day", "2024-03-15", True),
        ("day", "2024-02-30", False),
        ("day", "15.03.2024", False),
        ("day", "", False),
        ("month", "2024-03", True),
        ("month", "2024-13", False),
        ("month", "March 2024", False),
        ("year", "2024", True),
        ("year", "24", False),
        ("unknown", "spring 2024", True),
        ("unknown", "", True),
    ],
)
def test_date_checked_against_precision(post: Any, precision: str, value: str, ok: bool) -> None:
    data = valid_data()
    data["date_precision"] = precision
    data["incident_date"] = value
    form = post(data)
    assert form.validate() is ok, form.errors
    if not ok:
        assert form.errors == {"incident_date": [MESSAGES[f"date_{precision}"]]}


def test_facility_name_required_unless_unknown(post: Any) -> None:
    data = valid_data()
    data["facility_name"] = ""
    form = post(data)
    assert not form.validate()
    assert form.errors == {"facility_name": [MESSAGES["facility_name"]]}

    data["facility_type"] = "unknown"
    assert post(data).validate()


def test_contact_or_do_not_contact(post: Any) -> None:
    data = valid_data()
    data["no_contact"] = "y"
    form = post(data)
    assert not form.validate()
    assert form.errors == {"contact_channel": [MESSAGES["contact_both"]]}

    data["contact_channel"] = ""
    form = post(data)
    assert form.validate(), form.errors
    report = schema.build_report(
        form_to_fields(form), [], received_hour="2024-03-16T10:00Z", language="en"
    )
    assert report["contact"]["do_not_contact"] is True


def test_unknown_codes_and_overlong_text_refused(post: Any) -> None:
    data = valid_data()
    data["facility_type"] = "spaceship"
    data.add("acts", "invented")
    data["person_name"] = "x" * (schema.MAX_SHORT + 1)
    data["what_happened"] = "y" * (schema.MAX_TEXT + 1)
    form = post(data)
    assert not form.validate()
    assert set(form.errors) == {"facility_type", "acts", "person_name", "what_happened"}
    assert str(schema.MAX_SHORT) in form.errors["person_name"][0]


def test_max_field_chars_lowers_every_text_limit(app: Flask, post: Any) -> None:
    """The configured limit wins where it is lower: validators, maxlength and message agree."""
    data = valid_data()
    data["what_happened"] = "y" * 13
    data["person_name"] = "x" * 13
    data["charges"] = "c" * 12
    assert post(data).validate()  # without intake's settings, each field's own limit

    limits = LimitsSettings(max_field_chars=12)
    app.extensions["intake"] = SimpleNamespace(settings=Settings(limits=limits))
    form = post(data)
    assert not form.validate()
    too_long = MESSAGES["too_long"] % {"max": 12}
    assert form.errors["what_happened"] == form.errors["person_name"] == [too_long]
    assert "charges" not in form.errors  # 12 characters: at the limit
    assert form.what_happened.data == "y" * 13  # kept, to be shown again
    html = render_template("submit.html", form=form)
    for name in ("what_happened", "person_name", "charges", "contact_channel"):
        assert re.search(rf'<(input|textarea) [^>]*maxlength="12"[^>]*name="{name}"', html), name

    with app.test_request_context("/case/add", method="POST", data={"text": "z" * 13}):
        followup = FollowUpForm()
        assert followup.text.flags.maxlength == 12
        assert not followup.validate()
        assert followup.errors["text"] == [too_long]


def test_choices_come_from_schema() -> None:
    form_cls = SubmissionForm
    pairs = {
        "relationship": schema.RELATIONSHIPS,
        "facility_type": schema.FACILITY_TYPES,
        "acts": schema.ACT_CHOICES,
        "date_precision": schema.DATE_PRECISIONS,
        "danger_now": schema.YES_NO_DONT_KNOW,
        "danger_kinds": schema.DANGER_KINDS,
        "consent_share": schema.SHARE_OPTIONS,
        "action_wanted": schema.ACTIONS,
        "preferred_language": schema.LANGUAGES,
        "help_needed": schema.HELP_NEEDED,
    }
    for name, vocab in pairs.items():
        unbound = getattr(form_cls, name)
        choices = [(c.value, c.label) for c in unbound.kwargs["choices"]]
        assert choices == list(vocab), name


def test_what_happened_comes_before_the_checkboxes(app: Flask, post: Any) -> None:
    html = render_template("submit.html", form=post(MultiDict()))
    assert html.index('name="what_happened"') < html.index('name="acts"')
    legends = re.findall(r'<span class="section-number">(\d+)</span>', html)
    assert legends == [str(n) for n in range(1, 11)]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def by_id(self, element_id: str) -> tuple[str, dict[str, str | None]]:
        found = [e for e in self.elements if e[1].get("id") == element_id]
        assert len(found) == 1, (element_id, found)
        return found[0]


def test_rerender_with_errors_keeps_values_and_links_errors(app: Flask, post: Any) -> None:
    data = valid_data()
    del data["person_name"]
    del data["danger_now"]
    data["what_happened"] = "Guards <b>beat</b> her & took her glasses"
    data["person_age"] = "about 40"  # inside <details>: it must open
    form = post(data)
    assert not form.validate()
    html = render_template("submit.html", form=form)
    parser = _Collector()
    parser.feed(html)

    # Typed values are kept (and escaped).
    assert "Guards &lt;b&gt;beat&lt;/b&gt; her &amp; took her glasses" in html
    assert parser.by_id("facility_name")[1]["value"] == "SIZO-1, Bishkek"
    assert parser.by_id("contact_channel")[1]["value"] == "Signal +996 555 000 000"
    assert "checked" in parser.by_id("relationship-0")[1]  # relative
    beaten = schema.ACT_CHOICES.index(("beaten", "Beaten / physically assaulted"))
    assert "checked" in parser.by_id(f"acts-{beaten}")[1]
    assert "checked" not in parser.by_id("acts-0")[1]
    assert "open" in next(e for e in parser.elements if e[0] == "details")[1]

    # The summary links each error to the field (first option of a group).
    start = html.index('class="error-summary"')
    summary = html[start : html.index("</div>", start)].replace("&#39;", "'")
    assert f'<a href="#person_name">{MESSAGES["person_name"]}</a>' in summary
    assert f'<a href="#danger_now-0">{MESSAGES["danger_now"]}</a>' in summary
    assert summary.count("<a href=") == 2
    for target in ("person_name", "danger_now-0"):
        parser.by_id(target)

    # Each error sits by its field and is announced with it.
    assert parser.by_id("person_name-error")[0] == "p"
    described = parser.by_id("person_name")[1]["aria-describedby"] or ""
    assert "person_name-error" in described.split()
    assert parser.by_id("person_name")[1]["aria-invalid"] == "true"
    group = [
        e
        for e in parser.elements
        if e[0] == "fieldset" and "danger_now-error" in (e[1].get("aria-describedby") or "")
    ]
    assert group, "the danger_now radio group must reference its error"
    # And the note that files must be chosen again.
    assert "choose your files again" in html.lower()


def test_clean_page_has_no_error_summary(app: Flask, post: Any) -> None:
    with app.test_request_context("/"):
        html = render_template("submit.html", form=SubmissionForm())
    assert "error-summary" not in html
    assert "choose your files again" not in html.lower()
    assert "aria-invalid" not in html
    assert 'enctype="multipart/form-data"' in html and 'method="post"' in html
    assert "Send securely" in html
    assert html.count("(required") >= len(REQUIRED)
    assert "multiple" in re.search(r'<input[^>]*name="attachments"[^>]*>', html).group(0)  # type: ignore[union-attr]


def test_files_dropped_note(app: Flask, post: Any) -> None:
    form = post(valid_data())
    form.validate()
    html = render_template("submit.html", form=form, files_dropped=True)
    assert 'id="attachments-again"' in html
    assert re.search(r'<input[^>]*aria-describedby="[^"]*attachments-again', html)


def test_honeypot_present_but_hidden(app: Flask, post: Any) -> None:
    form = post(valid_data())
    html = render_template("submit.html", form=form)
    parser = _Collector()
    parser.feed(html)
    tag, attrs = parser.by_id("website")
    assert tag == "input" and attrs["name"] == "website"
    assert attrs["tabindex"] == "-1" and attrs["autocomplete"] == "off"
    assert attrs["aria-hidden"] == "true"
    wrapper = re.search(r'<div class="honeypot" aria-hidden="true">\s*<label for="website">', html)
    assert wrapper, "honeypot must sit inside the hidden .honeypot wrapper"
    css = (STATIC / "style.css").read_text()
    rule = re.search(r"\.honeypot\s*\{([^}]*)\}", css)
    assert rule and "left: -10000px" in rule.group(1)


def test_honeypot_tripped(post: Any) -> None:
    data = valid_data()
    data["website"] = "http://spam.example"
    form = post(data)
    assert form.validate()  # the view decides; the form does not tell the bot
    assert honeypot_tripped(form)


def test_demo_banner_and_other_pages(app: Flask) -> None:
    with app.test_request_context("/"):
        assert "Demo key: do not submit real reports" in render_template(
            "submitted.html", demo_mode=True
        )
        assert "demo-banner" not in render_template("submitted.html", demo_mode=False)
        page = render_template("error.html", code=413, title="Too large", message="Files too big.")
    assert "Error 413" in page and "<h1>Too large</h1>" in page and "Files too big." in page
    assert '<html lang="en">' in page and 'name="viewport"' in page


def _template_files() -> list[Path]:
    files = sorted(p for p in TEMPLATES.rglob("*") if p.is_file())
    assert len(files) >= 4
    return files


@pytest.mark.parametrize("path", _template_files(), ids=lambda p: p.name)
def test_templates_safe_for_csp(path: Path) -> None:
    text = path.read_text()
    assert "<script" not in text.lower()
    assert not re.search(r"\sstyle\s*=", text, re.IGNORECASE)
    assert "<style" not in text.lower()
    assert not re.search(r"\son[a-z]+\s*=", text, re.IGNORECASE), "no inline event handlers"
    assert not re.search(r"https?://", text, re.IGNORECASE), "no other origin"
    assert "//" not in re.sub(r"\{#.*?#\}", "", text, flags=re.DOTALL).replace("://", ""), (
        "no protocol-relative URL"
    )


def test_no_javascript_or_remote_assets_in_static() -> None:
    assert not list(STATIC.rglob("*.js"))
    css = (STATIC / "style.css").read_text()
    assert "@import" not in css and "url(" not in css
    assert len(css.encode()) < 15 * 1024
