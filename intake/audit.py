"""The audit log of staff actions: who, what, when, how many envelopes.

Never content, never an address: a row names the staff member (or "cli" for
an operator's command), an action from :data:`ACTIONS`, a count and a short
content-free detail.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from intake.models import AuditEvent

__all__ = ["ACTIONS", "CLI_ACTOR", "record"]

#: The actor of an operator's command (`flask --app intake …`).
CLI_ACTOR = "cli"

ACTIONS = frozenset(
    {
        "sign_in",
        "sign_in_failed",
        "sign_out",
        "export",
        "replies_upload",
        "ack_upload",
        "purge",
        "account_add",
        "account_disable",
        "account_reset_2fa",
    }
)


def record(
    session: Session,
    actor: str,
    action: str,
    *,
    envelopes: int | None = None,
    detail: str = "",
) -> None:
    """Add an audit event to the session (the caller commits with its own work)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    session.add(
        AuditEvent(actor=actor[:64], action=action, envelopes=envelopes, detail=detail[:200])
    )
