"""The public submission form (Flask-WTF).

Every choice comes from :mod:`intake.schema`, and every field name is the name
:func:`intake.schema.build_report` reads, so the form and report.json cannot
drift apart. Labels, hints and warnings live in the templates; the only
user-visible English here is the validation messages, collected in
:data:`MESSAGES` (English msgids, marked with ``N_``) and translated into the
request's language when the form is validated. The choices' labels are the
English labels of :mod:`intake.schema`, translated when the page is rendered.

Every text answer is limited to its length in :mod:`intake.schema`, or to
``[limits] max_field_chars`` of the configuration if that is lower
(:class:`MaxChars`): a longer answer gets a form error with the limit, the
rest of what was typed kept, and the limit is the field's ``maxlength``.

The form never reads uploaded files: sizes and counts are enforced where the
request is spooled. The honeypot field ``website`` is not validated here;
the view checks :func:`honeypot_tripped` and answers a bot as if it had
succeeded.
"""

from __future__ import annotations

from typing import Any, Final

from flask import current_app, has_app_context
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    MultipleFileField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from intake import schema
from intake.i18n import N_
from intake.i18n_web import lazy_translate, translate
from intake.schema import MAX_LINE, MAX_SHORT, MAX_TEXT, Vocabulary

MESSAGES: Final[dict[str, str]] = {
    "relationship": N_("Choose your relationship to the detained person."),
    "person_name": N_("Write the detained person's name."),
    "facility_type": N_("Choose where they are held now, or “I don't know”."),
    "facility_name": N_("Write the city or the name of the place, or choose “I don't know” above."),
    "what_happened": N_("Write what happened, in your own words."),
    "date_precision": N_("Choose how exactly you know when it happened."),
    "date_day": N_("Write the exact day as YYYY-MM-DD, for example 2024-03-15."),
    "date_month": N_("Write the month as YYYY-MM, for example 2024-03."),
    "date_year": N_("Write the year as YYYY, for example 2024."),
    "danger_now": N_("Say whether there is danger right now (“I don't know” is an answer)."),
    "consent_store": N_("We can only accept the report if you agree that we store it."),
    "consent_share": N_("Choose who may see this report."),
    "detainee_consent": N_("Say whether the detained person knows and agrees."),
    "action_wanted": N_("Choose what you want us to do."),
    "use_reporter_name": N_("Say whether we may use your name."),
    "publicity_risk": N_("Say whether publicity could make things worse."),
    "officials_warned": N_("Say whether officials have warned or threatened you."),
    "preferred_language": N_("Choose the language we should use with you."),
    "contact_missing": N_("Write a safe way to reach you, or tick “Do not contact me”."),
    "contact_both": N_(
        "You ticked “Do not contact me” and also wrote a way to reach you: choose one."
    ),
    "too_long": N_("This answer is too long (at most %(max)d characters)."),
}


def _choices(vocabulary: Vocabulary) -> list[SelectChoice]:
    return [SelectChoice(code, lazy_translate(label)) for code, label in vocabulary]


def field_limit(cap: int) -> int:
    """The most characters a text field takes: ``cap``, or less if the configuration says so.

    ``[limits] max_field_chars`` of the running app (which is never above
    :data:`intake.schema.MAX_TEXT`) lowers every field's own limit; outside
    an app made by :func:`intake.app.create_app`, the field's own limit holds.
    """
    state = current_app.extensions.get("intake") if has_app_context() else None
    if state is None:
        return cap
    return min(cap, int(state.settings.limits.max_field_chars))


class MaxChars:
    """Like ``Length(max=cap)``, but the limit is :func:`field_limit`, read from the running app.

    The field's ``maxlength`` attribute (WTForms reads ``field_flags`` when a
    form binds its fields) and the "too long" message say the same limit.
    """

    def __init__(self, cap: int, msgid: str) -> None:
        self.cap = cap
        self.msgid = msgid

    @property
    def field_flags(self) -> dict[str, int]:
        return {"maxlength": field_limit(self.cap)}

    def __call__(self, form: Any, field: Any) -> None:
        limit = field_limit(self.cap)
        if field.data and len(field.data) > limit:
            raise ValidationError(translate(self.msgid) % {"max": limit})


def _max(n: int) -> MaxChars:
    return MaxChars(n, MESSAGES["too_long"])


class ChoiceRadioField(RadioField):  # type: ignore[misc]
    """A radio group whose "nothing chosen" is left to the required validator.

    WTForms' RadioField reports "Not a valid choice" when nothing is ticked,
    which doubles the required message, or blocks an optional question.
    """

    def pre_validate(self, form: Any) -> None:
        if self.data in (None, ""):
            return
        super().pre_validate(form)


class MultiCheckboxField(SelectMultipleField):  # type: ignore[misc]
    """A list of checkboxes; unknown values are refused."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _radio(vocabulary: Vocabulary, message: str | None = None, **kwargs: Any) -> ChoiceRadioField:
    # DataRequired, not InputRequired: a default ("no") counts as an answer.
    validators = [DataRequired(message=lazy_translate(message))] if message else [Optional()]
    return ChoiceRadioField(choices=_choices(vocabulary), validators=validators, **kwargs)


def _checkboxes(vocabulary: Vocabulary) -> MultiCheckboxField:
    return MultiCheckboxField(choices=_choices(vocabulary), validators=[Optional()])


def _text(
    max_len: int, message: str | None = None, *, checked_by_form: bool = False
) -> StringField:
    """A one-line answer; ``checked_by_form``: a ``validate_<name>`` must run even when empty."""
    if message:
        validators = [DataRequired(message=lazy_translate(message)), _max(max_len)]
    elif checked_by_form:
        validators = [_max(max_len)]
    else:
        validators = [Optional(), _max(max_len)]
    return StringField(validators=validators, filters=[_strip])


def _area(max_len: int = MAX_TEXT, message: str | None = None) -> TextAreaField:
    first = DataRequired(message=lazy_translate(message)) if message else Optional()
    return TextAreaField(validators=[first, _max(max_len)], filters=[_strip])


def _strip(value: Any) -> Any:
    # Control characters go first, so that a field holding only those counts
    # as empty for the required check (the report would drop them anyway).
    if isinstance(value, str):
        text = value.replace("\r\n", "\n").replace("\r", "\n")
        return schema.without_control_characters(text).strip()
    return value


class SubmissionForm(FlaskForm):  # type: ignore[misc]
    """THE FORM of the domain brief; field names are report field names."""

    # 1 About you
    relationship = _radio(schema.RELATIONSHIPS, MESSAGES["relationship"])
    relationship_other = _text(MAX_SHORT)

    # 2 The detained person
    person_name = _text(MAX_SHORT, MESSAGES["person_name"])
    person_other_names = _text(MAX_LINE)

    # 3 Where they are held
    facility_type = _radio(schema.FACILITY_TYPES, MESSAGES["facility_type"])
    facility_name = _text(MAX_LINE, checked_by_form=True)

    # 4 What happened: the open question before the checkboxes
    what_happened = _area(MAX_TEXT, MESSAGES["what_happened"])
    acts = _checkboxes(schema.ACT_CHOICES)

    # 5 When
    incident_date = _text(MAX_SHORT, checked_by_form=True)
    date_precision = _radio(schema.DATE_PRECISIONS, MESSAGES["date_precision"])

    # 6 Danger right now
    danger_now = _radio(schema.YES_NO_DONT_KNOW, MESSAGES["danger_now"])
    danger_kinds = _checkboxes(schema.DANGER_KINDS)
    danger_details = _area()

    # 7 Optional details
    person_age = _text(MAX_SHORT)
    person_sex = _radio(schema.SEXES)
    person_occupation = _text(MAX_LINE)
    person_health = _area()
    arrest_date = _text(MAX_SHORT)
    charges = _text(MAX_LINE)
    court = _text(MAX_LINE)
    case_number = _text(MAX_SHORT)
    next_hearing = _text(MAX_SHORT)
    perpetrator_types = _checkboxes(schema.PERPETRATOR_TYPES)
    perpetrator_names = _area()
    witnesses = _area()
    injuries = _area()
    medical_care = _area()
    lawyer_access = _radio(schema.YES_NO_DONT_KNOW)
    family_visits = _radio(schema.YES_NO_DONT_KNOW)
    visits_details = _area()
    already_told = _checkboxes(schema.ALREADY_TOLD)
    already_told_response = _area()
    reporter_name = _text(MAX_SHORT)

    # 8 Consent and safety
    consent_store = BooleanField(
        validators=[DataRequired(message=lazy_translate(MESSAGES["consent_store"]))]
    )
    consent_share = _radio(schema.SHARE_OPTIONS, MESSAGES["consent_share"])
    detainee_consent = _radio(schema.DETAINEE_CONSENT, MESSAGES["detainee_consent"])
    action_wanted = _radio(schema.ACTIONS, MESSAGES["action_wanted"])
    use_reporter_name = _radio(schema.YES_NO, MESSAGES["use_reporter_name"], default="no")
    publicity_risk = _radio(schema.YES_NO_DONT_KNOW, MESSAGES["publicity_risk"])
    officials_warned = _radio(schema.YES_NO_DONT_KNOW, MESSAGES["officials_warned"])
    phone_risk = _checkboxes(schema.PHONE_RISKS)
    help_needed = _checkboxes(schema.HELP_NEEDED)

    # 9 How to reach you
    no_contact = BooleanField()
    contact_channel = _text(MAX_LINE, checked_by_form=True)
    contact_times = _text(MAX_LINE)
    contact_if_other = _text(MAX_LINE)
    preferred_language = _radio(schema.LANGUAGES, MESSAGES["preferred_language"])

    # 10 Files: read by the spooling request, never by the form
    attachments = MultipleFileField()

    # Honeypot: hidden from people by CSS, filled in by naive bots
    website = StringField(
        render_kw={"tabindex": "-1", "autocomplete": "off", "aria_hidden": "true"}
    )

    def validate_facility_name(self, field: StringField) -> None:
        if self.facility_type.data not in (None, "", "unknown") and not field.data:
            raise ValidationError(translate(MESSAGES["facility_name"]))

    def validate_incident_date(self, field: StringField) -> None:
        precision = self.date_precision.data
        if precision in ("day", "month", "year") and schema.check_date(field.data or "", precision):
            raise ValidationError(translate(MESSAGES[f"date_{precision}"]))

    def validate_contact_channel(self, field: StringField) -> None:
        if self.no_contact.data and field.data:
            raise ValidationError(translate(MESSAGES["contact_both"]))
        if not self.no_contact.data and not field.data:
            raise ValidationError(translate(MESSAGES["contact_missing"]))


def form_to_fields(form: SubmissionForm) -> dict[str, Any]:
    """The mapping :func:`intake.schema.build_report` takes, from a validated form."""
    return {name: form[name].data for name in schema.FORM_FIELD_NAMES}


def honeypot_tripped(form: SubmissionForm) -> bool:
    """True if the field people cannot see was filled in (a bot, most likely)."""
    return bool((form.website.data or "").strip())
