"""The staff pages at /staff: sign in, list cases, download bundles, upload replies and acks.

Thin: accounts and sessions are in :mod:`intake.staff`, bundles in
:mod:`intake.export`, replies in :mod:`intake.cases`, purges in
:mod:`intake.retention`. The Flask session cookie holds a random token under
its own key (``staff``), separate from the reporter's, with the precise idle
expiry and the absolute end of the session; the database keeps the token's
SHA-256 and an expiry bound rounded up to the hour. Every page is a plain form: no
JavaScript. Every action is audited, without content and without addresses.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar, cast

from flask import Blueprint, g, redirect, render_template, request, send_file, session, url_for
from flask_wtf import FlaskForm
from sqlalchemy import case, func, select
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers.response import Response
from wtforms import FileField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from intake import audit
from intake.app import intake_state
from intake.cases import RepliesImportError, import_replies, now_utc
from intake.crypto.spool import EncryptedSpool
from intake.export import export_bundle
from intake.i18n_web import gettext
from intake.models import FollowUp, Report, ReportStatus, StaffUser, db, hour_now
from intake.retention import AckError, expiring_soon, purge_acknowledged
from intake.sessions import idle_deadline
from intake.staff import (
    end_staff_session,
    resume_staff_session,
    session_limit,
    start_staff_session,
)
from intake.staff import verify_sign_in as check_sign_in
from intake.views import render_error

staff = Blueprint("staff", __name__, url_prefix="/staff")
log = logging.getLogger(__name__)

#: The key of the staff token in the Flask session (the reporter's is "reporter").
SESSION_KEY = "staff"
#: The precise idle expiry and the absolute end (Unix seconds), only in the signed cookie.
EXPIRY_KEY = "staff_exp"
LIMIT_KEY = "staff_until"
#: An acknowledgement lists SHA-256s: 16 MiB is hundreds of thousands of them.
MAX_ACK_BYTES = 16 * 1024 * 1024
_COPY_CHUNK = 1 << 20

_View = TypeVar("_View", bound=Callable[..., Any])


class StaffSignInForm(FlaskForm):  # type: ignore[misc]
    """Name, passphrase and the TOTP code from the authenticator app."""

    name = StringField(validators=[DataRequired(), Length(max=100)])
    passphrase = PasswordField(validators=[DataRequired(), Length(max=400)])
    code = StringField(validators=[DataRequired(), Length(max=20)])


class ActionForm(FlaskForm):  # type: ignore[misc]
    """A button that changes something: only the CSRF token."""


class UploadForm(FlaskForm):  # type: ignore[misc]
    """One file to upload (a replies bundle or an acknowledgement)."""

    upload = FileField()


@dataclass(frozen=True)
class CaseRow:
    """One line of the case list."""

    id: str
    received_hour: str
    padded_size: int
    followups: int
    new_followups: int
    danger_now: bool | None
    status: str
    collected: bool
    days_left: int | None


def _forget_cookie_session() -> None:
    for key in (SESSION_KEY, EXPIRY_KEY, LIMIT_KEY):
        session.pop(key, None)


def _signed_in() -> StaffUser | None:
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        return None
    minutes = intake_state().settings.staff.session_minutes
    now = now_utc()
    user = resume_staff_session(
        token,
        deadline=session.get(EXPIRY_KEY),
        limit=session.get(LIMIT_KEY),
        minutes=minutes,
        session=db.session(),
        now=now,
    )
    if user is None:
        _forget_cookie_session()
    else:
        session[EXPIRY_KEY] = idle_deadline(now, minutes)
    return user


def staff_required(view: _View) -> _View:
    """Run ``view`` only for a signed-in staff member (``g.staff_user``); else the sign-in page."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = _signed_in()
        if user is None:
            return redirect(url_for("staff.sign_in"), code=303)
        g.staff_user = user
        return view(*args, **kwargs)

    return cast(_View, wrapper)


def _actor() -> str:
    return cast(StaffUser, g.staff_user).name


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return gettext("%(num).1f MiB", num=size / (1024 * 1024))
    return gettext("%(num)d KiB", num=max(1, round(size / 1024)))


def _case_rows() -> list[CaseRow]:
    settings = intake_state().settings
    dbs = db.session()
    counts = {
        case_id: (total, new or 0)
        for case_id, total, new in dbs.execute(
            select(
                FollowUp.case_id,
                func.count(FollowUp.id),
                func.sum(case((FollowUp.status == ReportStatus.NEW, 1), else_=0)),
            ).group_by(FollowUp.case_id)
        )
    }
    expiring = dict(expiring_soon(dbs, settings, now_utc()))
    record_danger = settings.privacy.record_danger_flag
    rows = []
    for report in dbs.scalars(select(Report).order_by(Report.received_hour.desc(), Report.id)):
        total, new = counts.get(report.id, (0, 0))
        rows.append(
            CaseRow(
                id=report.id,
                received_hour=f"{report.received_hour:%Y-%m-%d %H:00} UTC",
                padded_size=report.padded_size,
                followups=total,
                new_followups=int(new),
                danger_now=report.danger_now if record_danger else None,
                status=report.status.value,
                collected=report.status != ReportStatus.NEW and not new,
                days_left=expiring.get(report.id),
            )
        )
    if record_danger:
        # Stable sort: danger now first, newest first within each group.
        rows.sort(key=lambda row: not row.danger_now)
    return rows


def _list_page(**extra: Any) -> str:
    settings = intake_state().settings
    return render_template(
        "staff_list.html",
        user=g.staff_user,
        cases=_case_rows(),
        record_danger=settings.privacy.record_danger_flag,
        warn_days=settings.retention.warn_days,
        size=_size,
        action_form=ActionForm(formdata=None),
        upload_form=UploadForm(formdata=None),
        **extra,
    )


@staff.get("")
@staff.get("/")
def index() -> Any:
    """The case list, or the sign-in form for someone not signed in."""
    user = _signed_in()
    if user is None:
        return render_template("staff_signin.html", form=StaffSignInForm(formdata=None))
    g.staff_user = user
    return _list_page()


@staff.get("/sign-in")
def sign_in() -> Any:
    if _signed_in() is not None:
        return redirect(url_for("staff.index"), code=303)
    return render_template("staff_signin.html", form=StaffSignInForm(formdata=None))


@staff.post("/sign-in")
def sign_in_post() -> Any:
    """Check passphrase and TOTP code; every failure gets the same answer (and costs a try)."""
    form = StaffSignInForm()
    user = None
    if form.validate():
        user = check_sign_in(
            db.session(),
            form.name.data or "",
            form.passphrase.data or "",
            form.code.data or "",
            now_utc(),
        )
    if user is None:
        form.passphrase.data = ""
        form.code.data = ""
        failed = gettext(
            "Sign-in failed. Check the name, the passphrase and the code, and try again."
        )
        return render_template("staff_signin.html", form=form, failed=failed), 400
    session.clear()
    minutes = intake_state().settings.staff.session_minutes
    now = now_utc()
    session[SESSION_KEY] = start_staff_session(user, minutes=minutes, session=db.session(), now=now)
    session[EXPIRY_KEY] = idle_deadline(now, minutes)
    session[LIMIT_KEY] = session_limit(now)
    return redirect(url_for("staff.index"), code=303)


@staff.post("/sign-out")
def sign_out() -> Response | tuple[str, int]:
    if not ActionForm().validate():
        return render_error(400)
    token = session.get(SESSION_KEY)
    if isinstance(token, str):
        user = _signed_in()
        end_staff_session(token, session=db.session(), actor=user.name if user else None)
    _forget_cookie_session()
    return redirect(url_for("staff.sign_in"), code=303)


def _temp_path(prefix: str) -> Path:
    """A fresh file name in the data directory (same disk as the envelopes, 0700)."""
    directory = intake_state().settings.storage.data_dir / "staff-tmp"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory / f"{prefix}-{secrets.token_hex(8)}"


@staff.post("/download")
@staff_required
def download() -> Any:
    """An export bundle of new envelopes (``which=new``) or of every one held (``which=all``)."""
    if not ActionForm().validate():
        return _list_page(error=gettext("The form had expired. Please try again.")), 400
    include_all = request.form.get("which") == "all"
    state = intake_state()
    out = _temp_path("export").with_suffix(".tar")
    try:
        result = export_bundle(
            out, session=db.session(), store=state.store, include_all=include_all
        )
        audit.record(
            db.session(),
            _actor(),
            "export",
            envelopes=len(result.envelope_ids),
            detail="all held" if include_all else "new",
        )
        db.session.commit()
        handle = result.path.open("rb")
    finally:
        # The open handle keeps the data readable; the name goes at once.
        out.unlink(missing_ok=True)
    hour = hour_now()
    response = send_file(
        handle,
        mimetype="application/x-tar",
        as_attachment=True,
        download_name=f"intake-bundle-{hour:%Y%m%dT%H}Z{'-all' if include_all else ''}.tar",
        max_age=0,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _uploaded(form: UploadForm) -> FileStorage | None:
    item = request.files.get(form.upload.name)
    if item is None or not item.filename or not isinstance(item.stream, EncryptedSpool):
        return None
    item.stream.seek(0)
    return item


@staff.post("/replies")
@staff_required
def replies() -> Any:
    """Store the sealed replies of a bundle made by ``intake-review reply``."""
    form = UploadForm()
    item = _uploaded(form)
    if not form.validate() or item is None:
        return _list_page(error=gettext("Choose a replies bundle to upload.")), 400
    path = _temp_path("replies").with_suffix(".tar")
    try:
        spool = cast(EncryptedSpool, item.stream)
        with path.open("xb") as out, spool.reader() as source:
            while chunk := source.read(_COPY_CHUNK):
                out.write(chunk)
        path.chmod(0o600)
        try:
            result = import_replies(path, session=db.session())
        except RepliesImportError as exc:
            audit.record(db.session(), _actor(), "replies_upload", envelopes=0, detail="refused")
            db.session.commit()
            return render_template(
                "staff_result.html",
                title=gettext("Replies refused"),
                lines=[gettext("Nothing was imported. The bundle was refused:"), str(exc)],
                ok=False,
            ), 400
    finally:
        path.unlink(missing_ok=True)
    audit.record(
        db.session(),
        _actor(),
        "replies_upload",
        envelopes=result.added,
        detail=f"{result.already_there} already there, {result.status_changes} status changes",
    )
    db.session.commit()
    return render_template(
        "staff_result.html",
        title=gettext("Replies imported"),
        lines=[
            gettext("New replies stored: %(num)d", num=result.added),
            gettext("Already stored before: %(num)d", num=result.already_there),
            gettext("Status changes: %(num)d", num=result.status_changes),
        ],
        ok=True,
    )


@staff.post("/ack")
@staff_required
def ack() -> Any:
    """Purge the envelopes an acknowledgement from ``intake-review import`` names."""
    form = UploadForm()
    item = _uploaded(form)
    if not form.validate() or item is None:
        return _list_page(error=gettext("Choose an acknowledgement file to upload.")), 400
    spool = cast(EncryptedSpool, item.stream)
    if spool.size > MAX_ACK_BYTES:
        return _list_page(error=gettext("This file is too large to be an acknowledgement.")), 400
    with spool.reader() as source:
        data = source.read()
    state = intake_state()
    try:
        result = purge_acknowledged(
            data,
            session=db.session(),
            store=state.store,
            settings=state.settings,
            now=now_utc(),
            actor=_actor(),
        )
    except AckError as exc:
        audit.record(db.session(), _actor(), "ack_upload", envelopes=0, detail="refused")
        db.session.commit()
        return render_template(
            "staff_result.html",
            title=gettext("Acknowledgement refused"),
            lines=[gettext("Nothing was removed. The file was refused:"), str(exc)],
            ok=False,
        ), 400
    audit.record(
        db.session(),
        _actor(),
        "ack_upload",
        envelopes=len(result.purged),
        detail=(
            f"{result.kept_for_retention} kept for retention, {result.already_purged} already "
            f"purged, {result.unknown} unknown"
        ),
    )
    db.session.commit()
    lines = [gettext("Envelopes removed from the server: %(num)d", num=len(result.purged))]
    if result.kept_for_retention:
        lines.append(
            gettext(
                "Kept until the retention period ends: %(num)d. Upload the file again later.",
                num=result.kept_for_retention,
            )
        )
    if result.already_purged:
        lines.append(gettext("Removed before: %(num)d", num=result.already_purged))
    if result.unknown:
        lines.append(gettext("Not known to this server: %(num)d", num=result.unknown))
    return render_template(
        "staff_result.html",
        title=gettext("Acknowledgement applied"),
        lines=lines,
        purged=result.purged,
        ok=True,
    )
