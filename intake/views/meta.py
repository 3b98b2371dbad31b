"""Machine-readable pages: ``/metadata`` and ``/robots.txt``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from intake import __version__
from intake.app import intake_state
from intake.schema import LANGUAGES

meta = Blueprint("meta", __name__)


@meta.get("/metadata")
def metadata() -> Response:
    """What a staff member or monitor may check: version, languages, key fingerprints."""
    state = intake_state()
    return jsonify(
        {
            "name": "intake",
            "version": __version__,
            "languages": [code for code, _label in LANGUAGES],
            "recipient_fingerprints": state.fingerprints,
            "demo_key": state.demo,
            "uploads_allowed": state.settings.limits.max_files > 0,
            "max_files": state.settings.limits.max_files,
            "max_file_mib": state.settings.limits.max_file_mib,
        }
    )


@meta.get("/robots.txt")
def robots() -> Response:
    """Ask every crawler to stay away."""
    return Response("User-agent: *\nDisallow: /\n", mimetype="text/plain")
