"""Content-free alerts: tell staff that something new arrived, and nothing more.

Two halves:

- :func:`note_arrival` runs inside the transaction that stores a report or a
  follow-up and marks the single :class:`~intake.models.AlertState` row
  pending (and "danger-now pending" when the operator records that flag and
  the report says so). It commits nothing itself: the mark lands with the row
  or not at all.
- :func:`send_due_alerts` is what ``flask --app intake send-alerts`` runs from
  cron or a systemd timer. Time is cut into fixed slots of ``[alerts]
  interval_minutes``, counted from the Unix epoch. Only the first run at or
  after a slot boundary may send: when something is pending then, it sends ONE
  notification to every configured channel (e-mail through SMTP with STARTTLS,
  and/or a webhook POST), clears the mark and records the slot's start (never
  a finer time). Something that arrives later in the slot waits for the next
  boundary. So an alert says only "something arrived before this slot began";
  it never tells when within the interval, or how many.

What an alert says is fixed: something new has arrived since the last alert,
plus, only with ``[privacy] record_danger_flag`` on and a danger-now report
among what arrived, that it is marked danger-now. Never an id, a count, a name,
an arrival time or any content. The e-mail subject is the same every time; the
Message-ID is random under the reserved domain ``intake.invalid`` and the SMTP
greeting uses that name too, so neither names the server. The text is in
``[alerts] language``.

Failures: a channel that fails is logged (its kind and the exception type
only: a webhook URL may hold a token) and the alert stays pending. If every
channel failed, the next run tries again (within the slot, which tells nothing
new); if some channel succeeded, the next try waits for the next slot, so a
broken webhook does not make the mailbox fill up with a message every few
minutes.

No Flask here: the functions take a SQLAlchemy session and the settings.
"""

from __future__ import annotations

import json
import logging
import secrets
import smtplib
import ssl
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from intake.config import AlertSettings, Settings
from intake.i18n import N_, translator
from intake.models import AlertState

__all__ = [
    "ALERT_ID",
    "HELO_NAME",
    "MSGID_DOMAIN",
    "AlertError",
    "EmailSender",
    "WebhookSender",
    "alert_body",
    "alert_subject",
    "build_email",
    "due_at",
    "email_configured",
    "note_arrival",
    "send_due_alerts",
    "send_email",
    "send_webhook",
    "slot_start",
    "webhook_body",
]

log = logging.getLogger(__name__)

#: The one AlertState row (created by migration 0003).
ALERT_ID = 1
#: A reserved name (RFC 2606): the Message-ID and the SMTP greeting name no host.
MSGID_DOMAIN = "intake.invalid"
HELO_NAME = MSGID_DOMAIN
#: Seconds before an SMTP or webhook connection gives up.
TIMEOUT_SECONDS = 30

# The whole vocabulary of an alert. The same words whatever arrived.
SUBJECT = N_("Something new has arrived")
NEW_TEXT = N_(
    "Something new has arrived since the last alert. "
    "Collect it and read it on the offline computer."
)
DANGER_TEXT = N_("Some of what arrived is marked “danger right now”. Please look at it soon.")
NOTHING_MORE_TEXT = N_("This message says nothing more, on purpose.")


class AlertError(Exception):
    """A channel refused or failed to take the alert."""


#: Sends one ready e-mail (tests may wrap :func:`send_email`).
EmailSender = Callable[[AlertSettings, EmailMessage, ssl.SSLContext | None], None]
#: POSTs one JSON body to the webhook URL.
WebhookSender = Callable[[str, bytes, ssl.SSLContext | None], None]


# --- recording arrivals ----------------------------------------------------------


def note_arrival(session: Session, *, danger: bool | None) -> None:
    """Mark an alert pending, in the caller's transaction (the caller commits).

    ``danger`` is True only for a danger-now report stored while the operator
    records the flag; None or False add nothing beyond "something new".
    """
    values: dict[str, bool] = {"pending": True}
    if danger is True:
        values["pending_danger"] = True
    result = session.execute(update(AlertState).where(AlertState.id == ALERT_ID).values(**values))
    if getattr(result, "rowcount", 1) == 0:  # the row should exist; make it if not
        session.add(AlertState(id=ALERT_ID, pending=True, pending_danger=danger is True))


# --- what an alert says ----------------------------------------------------------


def alert_subject(language: str) -> str:
    """The e-mail subject: one fixed line."""
    return translator(language).gettext(SUBJECT)


def alert_body(language: str, *, danger: bool) -> str:
    """The e-mail text: something new, perhaps "danger-now", nothing else."""
    t = translator(language)
    lines = [t.gettext(NEW_TEXT)]
    if danger:
        lines.append(t.gettext(DANGER_TEXT))
    lines.append(t.gettext(NOTHING_MORE_TEXT))
    return "\n\n".join(lines) + "\n"


def webhook_body(*, danger: bool | None) -> bytes:
    """``{"event": "new"}``, with ``"danger_now"`` only when the operator records the flag."""
    body: dict[str, object] = {"event": "new"}
    if danger is not None:
        body["danger_now"] = danger
    return json.dumps(body).encode("utf-8")


def build_email(alerts: AlertSettings, *, danger: bool, now: datetime) -> EmailMessage:
    """The alert e-mail: fixed subject, random Message-ID under ``intake.invalid``."""
    message = EmailMessage()
    message["Subject"] = alert_subject(alerts.language)
    message["From"] = alerts.email_from or alerts.email_to[0]
    message["To"] = ", ".join(alerts.email_to)
    # The send time is no secret (the recipient sees it anyway); UTC names no zone.
    message["Date"] = format_datetime(now.astimezone(UTC))
    # Not make_msgid(): it embeds the time to 0.1 ms and the process id.
    message["Message-ID"] = f"<{secrets.token_hex(16)}@{MSGID_DOMAIN}>"
    message.set_content(alert_body(alerts.language, danger=danger))
    return message


# --- channels --------------------------------------------------------------------


def email_configured(alerts: AlertSettings) -> bool:
    """E-mail alerts need at least a recipient and an SMTP server."""
    return bool(alerts.email_to and alerts.smtp_host)


def send_email(
    alerts: AlertSettings, message: EmailMessage, context: ssl.SSLContext | None = None
) -> None:
    """Hand ``message`` to the configured SMTP server.

    With ``smtp_starttls`` (the default) the connection is upgraded with
    STARTTLS and the server's certificate checked against ``context`` (the
    system's trust store unless given); a server that does not offer STARTTLS
    gets nothing. Signs in when ``smtp_user`` is set, with the password read
    from ``smtp_password_file``.
    """
    password = ""  # empty until read from the password file  # nosec B105
    if alerts.smtp_user:
        if alerts.smtp_password_file is None:
            raise AlertError("smtp_user is set but smtp_password_file is not")
        password = alerts.smtp_password_file.read_text(encoding="utf-8").strip()
    with smtplib.SMTP(
        alerts.smtp_host, alerts.smtp_port, local_hostname=HELO_NAME, timeout=TIMEOUT_SECONDS
    ) as smtp:
        smtp.ehlo()
        if alerts.smtp_starttls:
            if not smtp.has_extn("starttls"):
                raise AlertError("the SMTP server does not offer STARTTLS")
            smtp.starttls(context=context or ssl.create_default_context())
            smtp.ehlo()
        if alerts.smtp_user:
            smtp.login(alerts.smtp_user, password)
        smtp.send_message(message)


def send_webhook(url: str, body: bytes, context: ssl.SSLContext | None = None) -> None:
    """POST ``body`` (JSON) to ``url``; any answer but 2xx is a failure."""
    if not url.lower().startswith(("https://", "http://")):
        raise AlertError("the webhook URL must be http(s)")
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "intake"},
    )
    if url.lower().startswith("https://"):
        context = context or ssl.create_default_context()
    else:
        context = None
    # The scheme is checked above: only http(s), never file: or custom ones.
    with urllib.request.urlopen(  # noqa: S310  # nosec B310
        request, timeout=TIMEOUT_SECONDS, context=context
    ) as response:
        if not 200 <= response.status < 300:
            raise AlertError(f"the webhook answered {response.status}")


# --- sending ---------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    # SQLite keeps no zone: the stored value is naive UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def slot_start(moment: datetime, interval_minutes: int) -> datetime:
    """The start of the alert slot holding ``moment``: floored to ``interval_minutes``
    counted from the Unix epoch (naive means UTC)."""
    moment = _aware(moment).astimezone(UTC)
    interval = timedelta(minutes=interval_minutes)
    return _EPOCH + ((moment - _EPOCH) // interval) * interval


def due_at(state: AlertState, alerts: AlertSettings, now: datetime) -> datetime | None:
    """When a pending alert may go out: None means a run now may send it, else the
    next slot boundary (this slot has had its run already)."""
    slot = slot_start(now, alerts.interval_minutes)
    if state.last_run_slot is None or _aware(state.last_run_slot) < slot:
        return None
    return slot + timedelta(minutes=alerts.interval_minutes)


@dataclass(frozen=True)
class _Claim:
    danger: bool
    previous_sent: datetime | None
    previous_run: datetime | None
    slot: datetime


def _same(column: Any, value: datetime | None) -> ColumnElement[bool]:
    return cast(ColumnElement[bool], column.is_(None) if value is None else column == value)


def _claim(session: Session, settings: Settings, now: datetime) -> _Claim | None:
    """Atomically take this slot's run, and the pending alert with it if there is one;
    None when there is nothing to send now (and commit).

    Only the first run at or after a slot boundary may send, so an alert tells
    no more than "something arrived before this slot began": an arrival
    waits for the next boundary. Compare-and-set on the values just read, so
    two runs at once cannot both send, and no row lock is held while talking
    to the network (submissions mark the same row).
    """
    slot = slot_start(now, settings.alerts.interval_minutes)
    for _attempt in range(5):
        state = session.scalars(select(AlertState).where(AlertState.id == ALERT_ID)).one_or_none()
        if state is None or due_at(state, settings.alerts, now) is not None:
            session.rollback()
            return None
        previous_sent, previous_run = state.last_sent_at, state.last_run_slot
        pending, danger = state.pending, state.pending_danger
        values: dict[str, Any] = {"last_run_slot": slot}
        if pending:
            values.update(pending=False, pending_danger=False, last_sent_at=slot)
        result = session.execute(
            update(AlertState)
            .where(
                AlertState.id == ALERT_ID,
                AlertState.pending.is_(pending),
                AlertState.pending_danger.is_(danger),
                _same(AlertState.last_sent_at, previous_sent),
                _same(AlertState.last_run_slot, previous_run),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        if getattr(result, "rowcount", 0) == 1:
            if not pending:
                return None
            return _Claim(danger, previous_sent, previous_run, slot)
        session.expire_all()  # changed under us (a new arrival or another run): read again
    return None


def _give_back(session: Session, claim: _Claim, *, none_sent: bool) -> None:
    """Mark the alert pending again; if nothing went out, let the next run try at once.

    A retry within the slot tells nothing new: what it announces arrived
    before the slot began.
    """
    values: dict[str, bool] = {"pending": True}
    if claim.danger:
        values["pending_danger"] = True
    session.execute(
        update(AlertState)
        .where(AlertState.id == ALERT_ID)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if none_sent:
        session.execute(
            update(AlertState)
            .where(
                AlertState.id == ALERT_ID,
                AlertState.last_sent_at == claim.slot,
                AlertState.last_run_slot == claim.slot,
            )
            .values(last_sent_at=claim.previous_sent, last_run_slot=claim.previous_run)
            .execution_options(synchronize_session=False)
        )
    session.commit()
    session.expire_all()


def send_due_alerts(
    session: Session,
    settings: Settings,
    *,
    now: datetime,
    send_email: EmailSender = send_email,
    send_webhook: WebhookSender = send_webhook,
    ssl_context: ssl.SSLContext | None = None,
) -> bool:
    """Send one alert to every configured channel if one is pending and this is the
    first run of a slot.

    Returns True when an alert went out on every channel (the pending mark is
    then cleared); False when nothing was due, no channel is configured, or a
    channel failed (the mark stays; see the module docstring). ``now`` must be
    timezone-aware. ``ssl_context`` is what the channels check certificates
    against (the system's trust store when None).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    alerts = settings.alerts
    channels = email_configured(alerts) or bool(alerts.webhook_url)
    if not channels:
        return False
    claim = _claim(session, settings, now)
    if claim is None:
        return False
    # Only with the operator's consent does an alert mention danger at all.
    danger: bool | None = claim.danger if settings.privacy.record_danger_flag else None

    sent = failed = 0
    if email_configured(alerts):
        try:
            send_email(alerts, build_email(alerts, danger=danger is True, now=now), ssl_context)
            sent += 1
        except Exception as exc:  # any failure: keep the alert pending
            failed += 1
            log.warning("alert e-mail not sent: %s", type(exc).__name__)
    if alerts.webhook_url:
        try:
            send_webhook(alerts.webhook_url, webhook_body(danger=danger), ssl_context)
            sent += 1
        except Exception as exc:
            failed += 1
            # The type only: the URL (which may hold a token) can be in the message.
            log.warning("alert webhook not sent: %s", type(exc).__name__)
    if failed:
        _give_back(session, claim, none_sent=sent == 0)
        return False
    log.info("alert sent")
    return True
