"""intake: a secure incident-report intake service.

The web service lives in :mod:`intake.app` (``create_app``); the offline review
tool in :mod:`intake.review`. This module stays import-light on purpose: the
review tool imports ``intake.crypto`` and ``intake.schema`` on a machine that
has neither Flask nor SQLAlchemy, so nothing here may import them eagerly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__version__ = "0.1.0"


def create_app(config_path: str | None = None, **overrides: Any) -> Flask:
    """Build the web application (see :func:`intake.app.create_app`).

    This is the entry point of ``flask --app intake`` and ``wsgi.py``: an unsafe
    configuration ends the process with a one-line message naming what to fix,
    not a traceback.
    """
    from intake.app import StartupError
    from intake.app import create_app as _create_app

    try:
        return _create_app(config_path, **overrides)
    except StartupError as exc:
        raise SystemExit(f"intake cannot start: {exc}") from None
