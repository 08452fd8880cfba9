"""Bring the schema to the newest Alembic revision; safe when several processes start at once."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from f8a_jobs.storage.locks import exclusive

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> None:
    config = alembic_config()
    with exclusive(engine, "migrate"), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
