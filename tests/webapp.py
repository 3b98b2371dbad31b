"""Helpers for tests that drive the web app: a configured app, a valid form, opening envelopes."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from intake.app import create_app
from intake.crypto.envelope import OpenedEnvelope, open_envelope
from intake.crypto.keys import (
    DEMO_MARKER,
    generate_identity,
    load_identities,
    recipient_fingerprint,
)

from conftest import upgrade_database, write_toml


@dataclass
class WebApp:
    """A running app with its own key pair, data dir and database."""

    app: Flask
    client: FlaskClient
    data_dir: Path
    identity_file: Path
    database_url: str
    fingerprints: list[str]
    config_file: Path


def make_app(
    tmp_path: Path,
    *,
    database_url: str | None = None,
    csrf: bool = False,
    demo: bool = False,
    settings: dict[str, dict[str, Any]] | None = None,
    **flask_config: Any,
) -> WebApp:
    """A fresh app in ``tmp_path``: new identity, migrated database, empty store."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    identity, recipient = generate_identity()
    identity_file = tmp_path / "identity.txt"
    identity_file.write_text(identity)
    recipients = tmp_path / "recipients.txt"
    recipients.write_text((f"{DEMO_MARKER}\n" if demo else "") + f"{recipient}\n")
    data_dir = tmp_path / "data"
    url = database_url or f"sqlite:///{tmp_path / 'intake.db'}"
    upgrade_database(url)
    sections: dict[str, dict[str, Any]] = {
        "keys": {"recipients_file": str(recipients)},
        "storage": {"data_dir": str(data_dir)},
        "database": {"url": url},
        "server": {
            "secret_key_file": str(tmp_path / "secret_key"),
            "receipt_pepper_file": str(tmp_path / "receipt_pepper"),
            "signing_key_file": str(tmp_path / "signing_key"),
        },
    }
    for name, values in (settings or {}).items():
        sections.setdefault(name, {}).update(values)
    config = write_toml(tmp_path / "config.toml", sections)
    app = create_app(str(config), TESTING=True, WTF_CSRF_ENABLED=csrf, **flask_config)
    return WebApp(
        app=app,
        client=app.test_client(),
        data_dir=data_dir,
        identity_file=identity_file,
        database_url=url,
        fingerprints=[recipient_fingerprint(recipient)],
        config_file=config,
    )


def valid_form(**overrides: Any) -> dict[str, Any]:
    """The smallest complete submission a relative could send."""
    data: dict[str, Any] = {
        "relationship": "relative",
        "person_name": "Aigul Tashieva",
        "facility_type": "sizo",
        "facility_name": "SIZO-1 Bishkek",
        "what_happened": "She was threatened by a fellow prisoner.",
        "acts": ["death_threats_person"],
        "incident_date": "2024-05",
        "date_precision": "month",
        "danger_now": "yes",
        "danger_kinds": ["threat_to_life"],
        "consent_store": "y",
        "consent_share": "this_org",
        "detainee_consent": "impossible",
        "action_wanted": "nothing_until_we_talk",
        "use_reporter_name": "no",
        "publicity_risk": "dont_know",
        "officials_warned": "no",
        "no_contact": "y",
        "preferred_language": "ru",
    }
    data.update(overrides)
    return data


def open_stored(web: WebApp, report_id: str, sinks: dict[str, io.BytesIO]) -> OpenedEnvelope:
    """Open a stored envelope with the app's private key, as staff would offline."""
    identities = load_identities(web.identity_file.read_bytes(), str(web.identity_file))

    def sink(member: str, size: int) -> io.BytesIO:
        sinks[member] = io.BytesIO()
        return sinks[member]

    store = web.app.extensions["intake"].store
    with store.open(report_id) as stream:
        return open_envelope(stream, identities, sink)


def receipt_of(response: Any) -> str:
    """The receipt shown on a receipt page (``1234-5678-…``), or "" if there is none."""
    page = response.get_data(as_text=True)
    groups = re.findall(r'<span class="receipt-group">(\d{4})</span>', page)
    return "-".join(groups)
