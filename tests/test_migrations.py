"""Migrations: the Alembic revisions make exactly the models' schema, both ways of running."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import Column, Engine, Integer, MetaData, create_engine, inspect

from intake.models import Base, db

from conftest import MIGRATIONS, ROOT, alembic_config, downgrade_database, upgrade_database


def schema_diff(engine: Engine, metadata: MetaData = Base.metadata) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def test_upgrade_head_matches_models(migrated_engine: Engine) -> None:
    assert schema_diff(migrated_engine) == []
    insp = inspect(migrated_engine)
    assert set(insp.get_table_names()) == {
        "reports",
        "envelope_chunks",
        "followups",
        "replies",
        "reporter_sessions",
        "staff_users",
        "staff_sessions",
        "audit_events",
        "chain_entries",
        "chain_head",
        "alert_state",
        "alembic_version",
    }
    # PostgreSQL also reports the unique constraint's index.
    indexes = {ix["name"] for ix in insp.get_indexes("reports")} - {"uq_reports_lookup_key"}
    assert indexes == {"ix_reports_status_received_hour"}


def test_comparison_would_see_a_difference(migrated_engine: Engine) -> None:
    """The check above is not vacuous: a model change shows up."""
    changed = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["reports"].append_column(Column("extra", Integer))
    diff = schema_diff(migrated_engine, changed)
    assert [d[0] for d in diff] == ["add_column"]


def test_downgrade_base_and_up_again(database_url: str) -> None:
    upgrade_database(database_url)
    downgrade_database(database_url)
    engine = create_engine(database_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade_database(database_url)
        assert schema_diff(engine) == []
    finally:
        engine.dispose()


def test_single_linear_history() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    assert script.get_base() == "0001"


def test_offline_sql(tmp_path: Path) -> None:
    # Offline SQL is for PostgreSQL (SQLite's batch mode needs a live table).
    config = alembic_config("postgresql+psycopg://nobody@127.0.0.1:1/never")
    out = io.StringIO()
    config.output_buffer = out
    command.upgrade(config, "head", sql=True)
    assert "CREATE TABLE reports" in out.getvalue()
    assert "CREATE TABLE followups" in out.getvalue()


def _bare_app(database_url: str) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    db.init_app(app)
    flask_migrate.Migrate(app, db, directory=str(MIGRATIONS))
    return app


def test_flask_migrate_upgrade(database_url: str) -> None:
    """The Flask-Migrate path: env.py takes engine and metadata from current_app."""
    app = _bare_app(database_url)
    with app.app_context():
        flask_migrate.upgrade()
        assert schema_diff(db.engine) == []
        flask_migrate.downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.engine.dispose()


def test_flask_db_upgrade_command(database_url: str) -> None:
    """`flask db upgrade`, as `make migrate` runs it (on a bare app here)."""
    app = _bare_app(database_url)
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert schema_diff(db.engine) == []
        db.engine.dispose()


def test_schema_is_made_only_by_migrations() -> None:
    """No create_all anywhere in the code or tests (see architecture brief)."""
    pattern = re.compile(r"\b" + "create" + r"_all\s*\(")
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("intake", "tests", "migrations")
        for path in (ROOT / folder).rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


@pytest.mark.parametrize("name", sorted(p.name for p in (MIGRATIONS / "versions").glob("*.py")))
def test_revisions_import_no_app_code(name: str) -> None:
    """Revisions must not import the models: they describe the schema as it was."""
    source = (MIGRATIONS / "versions" / name).read_text(encoding="utf-8")
    assert "intake" not in re.findall(r"^\s*(?:from|import)\s+(\w+)", source, re.MULTILINE)
