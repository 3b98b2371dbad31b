"""The reporter's forms after submission: sign in with a receipt, add information.

Messages are English msgids marked with ``N_`` and translated when the form
is validated, as in :mod:`intake.forms`.
"""

from __future__ import annotations

from typing import Final

from flask_wtf import FlaskForm
from wtforms import BooleanField, MultipleFileField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from intake import schema
from intake.forms import MaxChars, _checkboxes, _radio, _strip
from intake.i18n import N_
from intake.i18n_web import lazy_translate

FOLLOWUP_MESSAGES: Final[dict[str, str]] = {
    "receipt": N_("Write the code you were given when you sent your report."),
    "text": N_("Write what you want to add."),
    "danger_now": N_("Say whether there is danger right now (“I don't know” is an answer)."),
    "too_long": N_("This answer is too long (at most %(max)d characters)."),
    "written_down": N_("Tick the box once you have written down your code."),
}


class SignInForm(FlaskForm):  # type: ignore[misc]
    """The receipt, typed back in any layout: spaces, dashes, any digits."""

    receipt = StringField(
        validators=[
            DataRequired(message=lazy_translate(FOLLOWUP_MESSAGES["receipt"])),
            Length(max=200),
        ],
        filters=[_strip],
    )


class FollowUpForm(FlaskForm):  # type: ignore[misc]
    """New information for a case: text, the "danger now" question again, files."""

    text = TextAreaField(
        validators=[
            DataRequired(message=lazy_translate(FOLLOWUP_MESSAGES["text"])),
            # schema.MAX_TEXT, or [limits] max_field_chars if lower.
            MaxChars(schema.MAX_TEXT, FOLLOWUP_MESSAGES["too_long"]),
        ],
        filters=[_strip],
    )
    danger_now = _radio(schema.YES_NO_DONT_KNOW, FOLLOWUP_MESSAGES["danger_now"])
    danger_kinds = _checkboxes(schema.DANGER_KINDS)
    attachments = MultipleFileField()


class ReceiptKeptForm(FlaskForm):  # type: ignore[misc]
    """The reporter confirms they wrote the receipt down before leaving its page."""

    written_down = BooleanField(
        validators=[DataRequired(message=lazy_translate(FOLLOWUP_MESSAGES["written_down"]))]
    )
