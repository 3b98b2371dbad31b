"""What reporter and staff sessions share: the token's hash and the cookie's deadlines.

A session is a random token in the signed Flask session cookie; the database
keeps only its SHA-256 and an hour-rounded bound, while the precise deadlines
(Unix seconds) live in the signed cookie alone.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime

__all__ = ["deadline_passed", "idle_deadline", "token_hash"]


def token_hash(token: str) -> str:
    """What the database keeps of a session token (never the token itself)."""
    # UTF-8, not ASCII: a tampered cookie's odd characters must not raise.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def idle_deadline(now: datetime, minutes: int) -> int:
    """The precise idle expiry for the signed session cookie: a Unix time in seconds.

    Only the cookie holds it; the database keeps an hour-rounded upper bound.
    """
    return math.ceil(now.timestamp()) + minutes * 60


def deadline_passed(deadline: object, now: datetime) -> bool:
    """True unless ``deadline`` (read from the cookie) is a Unix time still ahead of ``now``."""
    if not isinstance(deadline, int) or isinstance(deadline, bool):
        return True
    return deadline <= now.timestamp()
