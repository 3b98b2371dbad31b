"""The reporter's pages after submitting: sign in with the receipt, see status and
replies, add information, sign out.

Thin: the work is in :mod:`intake.cases`. The session cookie holds only a
random token; replies are shown in the sign-in response, the only moment the
server holds the key that opens them.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers.response import Response

from intake.app import intake_state
from intake.cases import (
    CaseReply,
    add_followup,
    end_session,
    now_utc,
    reporter_status,
    resume_session,
    sign_in,
    start_session,
)
from intake.followup_forms import FollowUpForm, SignInForm
from intake.i18n_web import current_language, gettext
from intake.models import Report, db
from intake.sessions import idle_deadline
from intake.views import render_error, spooled_uploads

followup = Blueprint("followup", __name__, url_prefix="/case")
log = logging.getLogger(__name__)

_SESSION_KEY = "reporter"
#: The precise idle expiry (Unix seconds), kept only in the signed cookie.
_EXPIRY_KEY = "reporter_exp"


class SignOutForm(FlaskForm):  # type: ignore[misc]
    """The "Sign out" button: only the CSRF token."""


def _signed_in_case() -> str | None:
    token = session.get(_SESSION_KEY)
    if not isinstance(token, str):
        return None
    minutes = intake_state().settings.server.reporter_session_minutes
    now = now_utc()
    case_id = resume_session(
        token,
        deadline=session.get(_EXPIRY_KEY),
        minutes=minutes,
        session=db.session(),
        now=now,
    )
    if case_id is None:
        session.pop(_SESSION_KEY, None)
        session.pop(_EXPIRY_KEY, None)
    else:
        session[_EXPIRY_KEY] = idle_deadline(now, minutes)
    return case_id


def _case_page(
    case_id: str,
    *,
    form: FollowUpForm | None = None,
    replies: list[CaseReply] | None = None,
    added: bool = False,
    files_dropped: bool = False,
) -> str:
    report = db.session.get(Report, case_id)
    status = reporter_status(report) if report is not None else "received"
    return render_template(
        "case.html",
        status=status,
        replies=replies,
        form=form or FollowUpForm(formdata=None),
        added=added,
        files_dropped=files_dropped,
    )


@followup.get("/")
def case() -> str:
    case_id = _signed_in_case()
    if case_id is None:
        return render_template("signin.html", form=SignInForm())
    return _case_page(case_id, added=request.args.get("added") == "1")


@followup.post("/sign-in")
def sign_in_view() -> str | tuple[str, int]:
    form = SignInForm()
    if not form.validate():
        return render_template("signin.html", form=form), 400
    state = intake_state()
    result = sign_in(
        form.receipt.data or "",
        pepper=state.pepper,
        session=db.session(),
        language=current_language(),
    )
    if result is None:
        form.receipt.errors = [gettext("This code did not work. Check each digit and try again.")]
        return render_template("signin.html", form=form), 400
    previous = session.get(_SESSION_KEY)
    if isinstance(previous, str):
        end_session(previous, session=db.session())  # a copied old cookie must not live on
    session.clear()
    # The form token Flask-WTF made for this request was stored in the session
    # just cleared: drop it, so the page below gets one the new session holds.
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    minutes = state.settings.server.reporter_session_minutes
    now = now_utc()
    session[_SESSION_KEY] = start_session(
        result.case_id, minutes=minutes, session=db.session(), now=now
    )
    session[_EXPIRY_KEY] = idle_deadline(now, minutes)
    return _case_page(result.case_id, replies=result.replies)


@followup.post("/add")
def add() -> Any:
    case_id = _signed_in_case()
    if case_id is None:
        return redirect(url_for("followup.case"), code=303)
    form = FollowUpForm()
    state = intake_state()
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
        return _case_page(case_id, form=form, files_dropped=bool(uploads)), 400
    try:
        add_followup(
            case_id,
            {
                "text": form.text.data,
                "danger_now": form.danger_now.data,
                "danger_kinds": form.danger_kinds.data,
            },
            uploads,
            language=current_language(),
            recipients=state.recipients,
            store=state.store,
            session=db.session(),
            received=now_utc(),
        )
    except (OSError, SQLAlchemyError) as exc:
        log.error("a follow-up could not be stored (%s)", type(exc).__name__)
        return render_error(503)
    return redirect(url_for("followup.case", added="1"), code=303)


@followup.post("/sign-out")
def sign_out() -> Response | tuple[str, int]:
    if not SignOutForm().validate():
        return render_error(400)
    token = session.get(_SESSION_KEY)
    if isinstance(token, str):
        end_session(token, session=db.session())
    session.clear()
    return redirect(url_for("submit.form"), code=303)
