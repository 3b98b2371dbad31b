"""The public submission form: show it, take it, confirm it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers.response import Response

from intake.app import intake_state
from intake.crypto.receipts import new_receipt
from intake.followup_forms import ReceiptKeptForm
from intake.forms import SubmissionForm, form_to_fields, honeypot_tripped
from intake.i18n_web import current_language, gettext
from intake.models import db
from intake.submission import accept_submission
from intake.views import render_error, spooled_uploads

submit = Blueprint("submit", __name__)
log = logging.getLogger(__name__)


@submit.get("/")
def form() -> str:
    return render_template("submit.html", form=SubmissionForm())


@submit.post("/")
def take() -> str | tuple[str, int]:
    form = SubmissionForm()
    state = intake_state()
    if honeypot_tripped(form):
        # A bot filled the field people never see: answer as if it worked,
        # with a receipt that opens nothing.
        return _receipt_page(new_receipt())
    uploads = spooled_uploads(request.files.getlist(form.attachments.name))
    valid = form.validate()
    max_files = state.settings.limits.max_files
    if len(uploads) > max_files:
        form.attachments.errors = [
            *form.attachments.errors,
            gettext("Please attach at most %(count)d files.", count=max_files),
        ]
        valid = False
    if not valid:
        # The typed text comes back; files cannot (browsers never refill them).
        return render_template("submit.html", form=form, files_dropped=bool(uploads)), 400
    try:
        submitted = accept_submission(
            form_to_fields(form),
            uploads,
            language=current_language(),
            recipients=state.recipients,
            store=state.store,
            session=db.session(),
            received=datetime.now(UTC),
            pepper=state.pepper,
            record_danger_flag=state.settings.privacy.record_danger_flag,
        )
    except (OSError, SQLAlchemyError) as exc:
        log.error("a submission could not be stored (%s)", type(exc).__name__)
        return render_error(503)
    return _receipt_page(submitted.receipt)


def _receipt_page(receipt: str) -> str:
    """The receipt, shown once, in this response only: never stored, never in a URL.

    The page has no links away; it is left through a form that asks the
    reporter to confirm they wrote the code down.
    """
    return render_template(
        "receipt.html", receipt=receipt.split("-"), form=ReceiptKeptForm(), hide_nav=True
    )


@submit.post("/submitted")
def receipt_kept() -> Response | tuple[str, int]:
    form = ReceiptKeptForm()
    if form.validate():
        return redirect(url_for("submit.done"), code=303)
    return render_template("receipt_unconfirmed.html", hide_nav=True), 400


@submit.get("/submitted")
def done() -> str:
    return render_template("submitted.html")
