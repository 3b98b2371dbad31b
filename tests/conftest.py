"""Shared fixtures: databases (SQLite and PostgreSQL), migrations, settings.

Every database test runs twice, on SQLite and on PostgreSQL (the URL of a
real server comes from ``INTAKE_TEST_DATABASE_URL``; without it the PostgreSQL
half is skipped). Each PostgreSQL test gets a schema of its own, selected via
the connection's ``search_path`` inside the URL, so tests never see each
other's tables or rows and any code given the URL is isolated too.

The schema is made by Alembic only (:func:`upgrade_database`), never by
``create_all``.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, create_engine, make_url, text

from intake.config import Settings, load_settings

# No test asserts on time: on a busy two-core machine Hypothesis' per-example
# deadline only produces flakes, so it is off for the whole suite.
hypothesis_settings.register_profile("intake", deadline=None)
hypothesis_settings.load_profile("intake")

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "migrations"
PG_ENV = "INTAKE_TEST_DATABASE_URL"
DATABASE_KINDS = ["sqlite", "postgresql"]


# --- migrations ------------------------------------------------------------------


def alembic_config(url: str) -> Config:
    """An Alembic config for ``migrations/`` aimed at ``url``, no app needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation: a literal % (URL escapes) must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    """Run ``alembic upgrade`` on the database at ``url``."""
    command.upgrade(alembic_config(url), revision)


def downgrade_database(url: str, revision: str = "base") -> None:
    """Run ``alembic downgrade`` on the database at ``url``."""
    command.downgrade(alembic_config(url), revision)


# --- databases -------------------------------------------------------------------


def _postgres_url() -> str:
    url = os.environ.get(PG_ENV, "")
    if not url:
        pytest.skip(f"{PG_ENV} is unset")
    return url


@contextmanager
def temporary_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of ``kind`` ("sqlite" or "postgresql").

    SQLite: a file under tmp_path. PostgreSQL: a fresh schema, dropped after.
    """
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'test-{secrets.token_hex(4)}.db'}"
        return
    if kind != "postgresql":
        raise ValueError(f"unknown database kind {kind!r}")

    base = _postgres_url()
    schema = f"test_{secrets.token_hex(6)}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        # psycopg passes `options` to the server: every connection made from
        # this URL (by any engine, Alembic or Flask) works inside the schema.
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=DATABASE_KINDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    with temporary_database(request.param, tmp_path) as url:
        yield url


@contextmanager
def migrated_database(kind: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database of ``kind``, upgraded to head."""
    with temporary_database(kind, tmp_path) as url:
        upgrade_database(url)
        eng = create_engine(url)
        try:
            yield eng
        finally:
            eng.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the (empty, unmigrated) test database."""
    eng = create_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def migrated_engine(database_url: str) -> Iterator[Engine]:
    """An engine on the test database, upgraded to the newest revision."""
    upgrade_database(database_url)
    eng = create_engine(database_url)
    yield eng
    eng.dispose()


# --- settings --------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        text_ = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text_}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def write_toml(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write ``{section: {key: value}}`` as a TOML file (str, int, float, bool, Path)."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(v)}" for key, v in values.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def settings_factory(tmp_path: Path) -> SettingsFactory:
    """Write a real TOML file under tmp_path and load it.

    Call as ``settings_factory(storage={"backend": "database"}, limits={...})``:
    each keyword is a section. Paths default to places under tmp_path, so no
    test touches the working directory.
    """

    def make(**overrides: Mapping[str, Any]) -> Settings:
        sections: dict[str, dict[str, Any]] = {
            "server": {
                "secret_key_file": tmp_path / "instance" / "secret_key",
                "signing_key_file": tmp_path / "instance" / "signing_key",
            },
            "keys": {"recipients_file": tmp_path / "keys" / "recipients.txt"},
            "storage": {"data_dir": tmp_path / "data"},
        }
        for section, values in overrides.items():
            sections.setdefault(section, {}).update(values)
        path = write_toml(tmp_path / f"config-{secrets.token_hex(4)}.toml", sections)
        return load_settings(path)

    return make


# --- intake-review output language --------------------------------------------------


@pytest.fixture(autouse=True)
def _review_output_in_english(monkeypatch: pytest.MonkeyPatch) -> None:
    """intake-review speaks English in tests, whatever LANG the machine has.

    Its language comes from --lang, $INTAKE_REVIEW_LANG, then the locale; the
    variable wins over the locale. Tests of the language choice change it.
    """
    monkeypatch.setenv("INTAKE_REVIEW_LANG", "en")


@pytest.fixture(autouse=True)
def _review_state_of_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """intake-review keeps its pinned key and archive in a fresh folder per test.

    Without this, a test that opens a bundle without --state would read the
    machine's real ~/.intake-review (and one that pins a key would write it).
    """
    monkeypatch.setenv("INTAKE_REVIEW_HOME", str(tmp_path / "intake-review-home"))


@pytest.fixture(autouse=True)
def _one_utc_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rate-limit keys see one UTC day per test.

    Their secret changes at midnight UTC, which gives every client a fresh
    allowance: a test counting requests across midnight would see its limit
    vanish. The day change itself is tested in test_limits.py.
    """
    monkeypatch.setattr("intake.limits.utc_day", lambda: "2030-01-01")


# --- the real-server harness -----------------------------------------------------

BENCH = Path(__file__).resolve().parent.parent / "bench" / "upload_memory.py"


def load_bench() -> ModuleType:
    """``bench/upload_memory.py``, loaded by path: its site builder and gunicorn harness."""
    name = "bench_upload_memory"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {BENCH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench() -> ModuleType:
    """The harness that runs a real gunicorn on a throw-away site (Linux, gunicorn installed)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("the server harness reads /proc (Linux only)")
    if importlib.util.find_spec("gunicorn") is None:
        pytest.skip("gunicorn is not installed (pip install -e '.[server]')")
    return load_bench()
