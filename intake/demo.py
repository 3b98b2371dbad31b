"""Make a demo key for a first run (``make run``), when no recipients are configured.

Writes a plain identity to ``instance/demo-identity.txt`` and its recipient,
marked as a demo key, to the configured recipients file. While that marker is
there every page shows "demo key: do not submit real reports". Replace the
recipients file with your staff's public keys to leave demo mode
(keys/README.md describes the key ceremony).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from intake.config import ConfigError, load_settings
from intake.crypto.keys import DEMO_MARKER, generate_identity

DEMO_IDENTITY = Path("instance/demo-identity.txt")


def ensure_demo_key() -> Path | None:
    """Create the demo key if the recipients file is missing; return the identity path."""
    settings = load_settings()
    recipients_file = settings.keys.recipients_file
    if recipients_file.exists():
        return None
    identity_text, recipient = generate_identity()
    DEMO_IDENTITY.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(DEMO_IDENTITY, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(identity_text)
    recipients_file.parent.mkdir(parents=True, exist_ok=True)
    recipients_file.write_text(
        f"{DEMO_MARKER}\n# The private half is {DEMO_IDENTITY} on this machine:"
        " anyone with it can read what is sealed here.\n"
        f"{recipient}\n",
        encoding="utf-8",
    )
    return DEMO_IDENTITY


def main() -> int:
    try:
        identity = ensure_demo_key()
    except ConfigError as exc:
        print(f"intake: {exc}", file=sys.stderr)
        return 2
    if identity is not None:
        print(f"made a DEMO key: identity {identity}, recipient in the recipients file.")
        print("Do not submit real reports with it. See keys/README.md for real keys.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
