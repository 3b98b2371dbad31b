"""The operator's commands: ``flask --app intake export``, ``import-replies``, ``sweep``,
``send-alerts``.

Thin wrappers: the work is in :mod:`intake.export` and :mod:`intake.store`.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import delete, select

from intake import audit
from intake.audit import CLI_ACTOR
from intake.cases import RepliesImportError, import_replies
from intake.export import export_bundle
from intake.models import (
    AlertState,
    FollowUp,
    Report,
    ReporterSession,
    StaffSession,
    UTCHourCeiling,
    db,
)
from intake.retention import (
    AckError,
    PurgeResult,
    forget_old_cases,
    purge_acknowledged,
    purge_expired,
)
from intake.signing import public_key_fingerprint, public_key_text
from intake.store import FilesystemStore

__all__ = ["register_cli"]


def _rowcount(result: object) -> int:
    count = getattr(result, "rowcount", 0)
    return count if isinstance(count, int) and count > 0 else 0


def register_cli(app: Flask) -> None:
    """Add the operator's commands to ``flask --app intake``."""
    from intake.app import intake_state

    app.cli.add_command(staff_group)

    @app.cli.command("export")
    @click.option(
        "--out",
        "out",
        required=True,
        type=click.Path(path_type=Path),
        help="Where to write the bundle (a .tar file).",
    )
    @click.option(
        "--all",
        "include_all",
        is_flag=True,
        help="Every envelope still held, not only those not yet exported.",
    )
    @click.option(
        "--chain-from",
        "chain_from",
        type=click.IntRange(min=0),
        default=None,
        help="Start the bundle's chain at this sequence number (the archive's last head, "
        "as `intake-review import` names it; 0 for a new archive).",
    )
    def export_command(out: Path, include_all: bool, chain_from: int | None) -> None:
        """Write envelopes not yet exported into a signed bundle for the offline machine."""
        state = intake_state()
        try:
            result = export_bundle(
                out,
                session=db.session(),
                store=state.store,
                include_all=include_all,
                signing_key=state.signing_key,
                chain_from=chain_from,
            )
        except ValueError as exc:
            raise click.ClickException(f"nothing written: {exc}") from None
        audit.record(db.session(), CLI_ACTOR, "export", envelopes=len(result.envelope_ids))
        db.session.commit()
        click.echo(f"wrote {len(result.envelope_ids)} envelope(s) to {result.path}")
        if result.missing:
            click.echo(
                f"warning: {len(result.missing)} envelope(s) listed in the database are missing "
                f"from the store and were left out: {', '.join(result.missing)}",
                err=True,
            )
        click.echo(
            f"signed; chain head {result.head_seq}, {result.omitted} chain entr"
            f"{'y' if result.omitted == 1 else 'ies'} listed as omitted"
        )
        if result.envelope_ids:
            click.echo(
                "carry it to the offline machine and import it with: "
                f"intake-review import {result.path.name}"
            )

    @app.cli.command("signing-key")
    def signing_key_command() -> None:
        """Print the public key that signs bundles, for `intake-review trust`."""
        key = intake_state().signing_key
        click.echo(public_key_text(key))
        click.echo(f"fingerprint: {public_key_fingerprint(key)}")
        click.echo(
            "on the offline machine: intake-review trust KEY (compare the fingerprint "
            "over a channel you trust)"
        )

    @app.cli.command("purge")
    @click.option(
        "--ack",
        "ack",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="An acknowledgement file from `intake-review import`: purge what it names.",
    )
    @click.option(
        "--expired",
        is_flag=True,
        help="Purge envelopes nobody collected within [retention] max_age_days.",
    )
    def purge_command(ack: Path | None, expired: bool) -> None:
        """Delete envelopes staff hold safely offline, or that nobody collected in time."""
        from intake.cases import now_utc

        if (ack is None) == (not expired):
            raise click.UsageError("give exactly one of --ack FILE or --expired")
        state = intake_state()
        result: PurgeResult
        if ack is not None:
            data = ack.read_bytes()
            try:
                result = purge_acknowledged(
                    data,
                    session=db.session(),
                    store=state.store,
                    settings=state.settings,
                    now=now_utc(),
                    actor=CLI_ACTOR,
                )
            except AckError as exc:
                raise click.ClickException(f"refused, nothing purged: {exc}") from None
        else:
            result = purge_expired(
                session=db.session(),
                store=state.store,
                settings=state.settings,
                now=now_utc(),
                actor=CLI_ACTOR,
            )
        for envelope_id in result.purged:
            click.echo(f"purged {envelope_id}")
        click.echo(result.summary())
        if expired:
            forgotten = forget_old_cases(
                session=db.session(), settings=state.settings, now=now_utc(), actor=CLI_ACTOR
            )
            click.echo(f"forgot {len(forgotten)} old case(s) whose envelopes were all purged")

    @app.cli.command("import-replies")
    @click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    def import_replies_command(bundle: Path) -> None:
        """Store the sealed replies of a bundle made by `intake-review reply`."""
        try:
            result = import_replies(bundle, session=db.session())
        except RepliesImportError as exc:
            raise click.ClickException(f"refused, nothing imported: {exc}") from None
        audit.record(db.session(), CLI_ACTOR, "replies_upload", envelopes=result.added)
        db.session.commit()
        click.echo(
            f"imported {result.added} repl{'y' if result.added == 1 else 'ies'}"
            f" ({result.already_there} already there, {result.status_changes} status change(s))"
        )

    @app.cli.command("sweep")
    @click.option(
        "--older-than-hours",
        default=24,
        show_default=True,
        type=click.IntRange(min=1),
        help="Leave anything younger alone: it may belong to an upload in progress.",
    )
    def sweep_command(older_than_hours: int) -> None:
        """Remove what a crash left behind (stray temp files, envelopes without a row) and
        expired reporter and staff sessions."""
        from intake.cases import now_utc

        now = now_utc()
        dbs = db.session()
        reporters = dbs.execute(
            delete(ReporterSession).where(UTCHourCeiling.before(ReporterSession.expires_at, now))
        )
        staffs = dbs.execute(
            delete(StaffSession).where(UTCHourCeiling.before(StaffSession.expires_at, now))
        )
        dbs.commit()
        click.echo(
            f"removed {_rowcount(reporters)} expired reporter session(s) and "
            f"{_rowcount(staffs)} expired staff session(s)"
        )
        store = intake_state().store
        if not isinstance(store, FilesystemStore):
            click.echo("the database store keeps no temp files: nothing to sweep")
            return
        # Every envelope with a row: reports and follow-ups alike.
        known = set(db.session.scalars(select(Report.id))) | set(
            db.session.scalars(select(FollowUp.id))
        )
        result = store.sweep_orphans(known, timedelta(hours=older_than_hours))
        click.echo(
            f"removed {result.temp_files} temp file(s) and "
            f"{len(result.orphan_ids)} envelope(s) without a record"
        )

    @app.cli.command("send-alerts")
    def send_alerts_command() -> None:
        """Send the content-free alert if something arrived before this slot began.

        Run it every few minutes (cron or a systemd timer). Time is cut into
        slots of [alerts] interval_minutes; only the first run of a slot sends,
        so at most one alert per slot, and an arrival waits for the next slot.
        """
        from intake.alerts import ALERT_ID, due_at, email_configured, send_due_alerts

        settings = intake_state().settings
        if not (email_configured(settings.alerts) or settings.alerts.webhook_url):
            raise click.ClickException(
                "no alert channel configured: set [alerts] email_to and smtp_host, or webhook_url"
            )
        from intake.cases import now_utc

        session = db.session()
        now = now_utc()
        if send_due_alerts(session, settings, now=now):
            click.echo("sent")
            return
        session.expire_all()
        state = session.get(AlertState, ALERT_ID)
        if state is None or not state.pending:
            click.echo("nothing to send")
            return
        due = due_at(state, settings.alerts, now)
        if due is not None and now < due:
            click.echo(f"not yet: next in {math.ceil((due - now).total_seconds() / 60)} min")
            return
        raise click.ClickException(
            "not sent (see the log above); it stays pending for the next run"
        )


# --- staff accounts -----------------------------------------------------------------


@click.group("staff", cls=AppGroup)
def staff_group() -> None:
    """Staff accounts: made only here, signed in on /staff with passphrase + TOTP."""


def _show_enrolment(uri: str, qr_png: Path | None) -> None:
    import segno

    click.echo("TOTP enrolment (scan the QR code or type the URI into an authenticator app):")
    click.echo(uri)
    qr = segno.make(uri, micro=False, error="m")
    if qr_png is not None:
        qr.save(str(qr_png), kind="png", scale=8, border=4)
        qr_png.chmod(0o600)
        click.echo(f"QR code written to {qr_png} (delete it once scanned)")
    else:
        qr.terminal(compact=True)


_QR_PNG = click.option(
    "--qr-png",
    "qr_png",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the TOTP QR code to this PNG file instead of printing it.",
)


@staff_group.command("add")
@click.argument("name")
@_QR_PNG
def staff_add_command(name: str, qr_png: Path | None) -> None:
    """Make a staff account; prints its passphrase and TOTP enrolment once."""
    from intake.staff import StaffError, add_staff

    try:
        passphrase, uri = add_staff(db.session(), name)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"staff account {name.strip().lower()!r} made")
    click.echo("passphrase (shown once; give it to the person in private):")
    click.echo(f"  {passphrase}")
    _show_enrolment(uri, qr_png)


@staff_group.command("list")
def staff_list_command() -> None:
    """Name, creation time and state of every staff account (never a secret)."""
    from intake.staff import list_staff

    users = list_staff(db.session())
    if not users:
        click.echo("no staff accounts")
    for user in users:
        state = "disabled" if user.disabled else "active"
        click.echo(f"{user.name}\t{user.created_at:%Y-%m-%d %H:%M}\t{state}")


@staff_group.command("disable")
@click.argument("name")
def staff_disable_command(name: str) -> None:
    """Disable a staff account and end its sessions."""
    from intake.staff import StaffError, disable_staff

    try:
        disable_staff(db.session(), name)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"staff account {name.strip().lower()!r} disabled")


@staff_group.command("reset-2fa")
@click.argument("name")
@_QR_PNG
def staff_reset_2fa_command(name: str, qr_png: Path | None) -> None:
    """Give a staff account a new TOTP secret (old codes stop working)."""
    from intake.staff import StaffError, reset_2fa

    try:
        uri = reset_2fa(db.session(), name)
    except StaffError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"staff account {name.strip().lower()!r}: new TOTP secret, sessions ended")
    _show_enrolment(uri, qr_png)
