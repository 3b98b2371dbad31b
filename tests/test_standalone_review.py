"""intake-review installs alone, as on the offline machine: `pip install .`, no extras.

A fresh virtualenv gets the project's base install (built from a copy of the
source, so the checkout stays as it is) and must then hold neither Flask nor
SQLAlchemy, yet run the review tool: its help, and reading
an envelope sealed to a staff key, in Russian.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pyrage
import pytest
from test_review_support import report_dict, seal

from intake.crypto.keys import generate_identity

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` outside this test run's virtualenv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=600, env=env
    )


def test_the_review_tool_installs_and_runs_without_the_server(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    shutil.copytree(
        ROOT / "intake", source / "intake", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = _run([str(python), "-m", "pip", "install", "--quiet", str(source)])
    assert installed.returncode == 0, installed.stderr[-3000:]

    listed = _run([str(python), "-m", "pip", "list", "--format=freeze"])
    packages = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert {"pyrage", "cryptography", "intake"} <= packages
    assert not packages & {"flask", "sqlalchemy", "flask-sqlalchemy", "werkzeug", "pynacl"}

    tool = env_dir / "bin" / "intake-review"
    helped = _run([str(tool), "--lang", "ru", "--help"])
    assert helped.returncode == 0, helped.stderr
    assert "keygen" in helped.stdout and "import" in helped.stdout
    assert "usage:" not in helped.stdout  # argparse's own words are in Russian too

    # The server side (this test's own environment) seals a report to a staff key.
    identity_text, recipient = generate_identity()
    identity = tmp_path / "staff.txt"
    identity.write_text(identity_text)
    folder = tmp_path / "envelopes"
    folder.mkdir()
    report = report_dict(what_happened="Её избили при переводе.", language="ru")
    sealed = seal(report, [pyrage.x25519.Recipient.from_str(recipient)])
    (folder / f"{'a' * 20}.age").write_bytes(sealed)

    shown = _run([str(tool), "--lang", "ru", "show", "-i", str(identity), str(folder), "a" * 20])
    assert shown.returncode == 0, shown.stderr
    assert "Её избили при переводе." in shown.stdout
