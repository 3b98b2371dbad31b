"""Alembic environment for intake.

Flask-Migrate's standard env.py, plus a standalone mode so the schema can be
migrated without building the Flask app (the tests use it):

* Under Flask-Migrate (``flask --app intake db upgrade``, or
  ``flask_migrate.upgrade()`` inside an app context) the engine and metadata
  come from ``current_app.extensions["migrate"]``, as in the template.
* Standalone (no app context): the URL comes from the Alembic config's
  ``sqlalchemy.url`` (or an open connection is passed in
  ``config.attributes["connection"]``) and the metadata is
  ``intake.models.Base.metadata``.
"""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app, has_app_context
from sqlalchemy import create_engine, pool

# this is the Alembic Config object, which provides
# access to the values within the .ini file in use.
config = context.config

# Interpret the config file for Python logging. A Config built in code has no
# file; keep others' loggers alive (fileConfig disables them by default).
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

USE_FLASK = has_app_context() and "migrate" in current_app.extensions


def get_engine():
    # Flask-SQLAlchemy >= 3 (the template's get_engine() fallback is deprecated)
    return current_app.extensions["migrate"].db.engine


def get_engine_url():
    try:
        return get_engine().url.render_as_string(hide_password=False).replace("%", "%%")
    except AttributeError:
        return str(get_engine().url).replace("%", "%%")


if USE_FLASK:
    config.set_main_option("sqlalchemy.url", get_engine_url())
    target_db = current_app.extensions["migrate"].db
elif not config.get_main_option("sqlalchemy.url") and "connection" not in config.attributes:
    raise RuntimeError(
        "no database: run through Flask-Migrate (flask --app intake db upgrade) "
        "or set sqlalchemy.url in the Alembic config"
    )


def get_metadata():
    if not USE_FLASK:
        from intake.models import Base

        return Base.metadata
    if hasattr(target_db, "metadatas"):
        return target_db.metadatas[None]
    return target_db.metadata


def run_migrations_offline():
    """Run migrations in 'offline' mode.

    This configures the context with just a URL
    and not an Engine, though an Engine is acceptable
    here as well.  By skipping the Engine creation
    we don't even need a DBAPI to be available.

    Calls to context.execute() here emit the given string to the
    script output.

    """
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=get_metadata(),
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )

    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run migrations in 'online' mode.

    In this scenario we need to create an Engine
    and associate a connection with the context.

    """

    # this callback is used to prevent an auto-migration from being generated
    # when there are no changes to the schema
    # reference: http://alembic.zzzcomputing.com/en/latest/cookbook.html
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    if USE_FLASK:
        conf_args = dict(current_app.extensions["migrate"].configure_args)
    else:
        conf_args = {"compare_type": True}
    if conf_args.get("process_revision_directives") is None:
        conf_args["process_revision_directives"] = process_revision_directives

    def run(connection):
        # SQLite can't ALTER most things: batch mode copies the table instead.
        conf_args.setdefault("render_as_batch", connection.dialect.name == "sqlite")
        context.configure(connection=connection, target_metadata=get_metadata(), **conf_args)
        with context.begin_transaction():
            context.run_migrations()

    given = config.attributes.get("connection")
    if given is not None:
        run(given)
        return
    if USE_FLASK:
        connectable = get_engine()
    else:
        connectable = create_engine(
            config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool
        )
    with connectable.connect() as connection:
        run(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
