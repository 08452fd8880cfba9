"""A small copy of the fabric8-analytics tables the README's prepared queries read."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
)

metadata = MetaData()
ecosystems = Table("ecosystems", metadata, Column("id", Integer, primary_key=True), Column("name", String(255)))
packages = Table(
    "packages", metadata, Column("id", Integer, primary_key=True),
    Column("ecosystem_id", ForeignKey("ecosystems.id")), Column("name", String(255)),
)
versions = Table(
    "versions", metadata, Column("id", Integer, primary_key=True),
    Column("package_id", ForeignKey("packages.id")), Column("identifier", String(255)),
)
analyses = Table(
    "analyses", metadata, Column("id", Integer, primary_key=True), Column("version_id", ForeignKey("versions.id")),
    Column("started_at", DateTime), Column("finished_at", DateTime),
)
worker_results = Table(
    "worker_results", metadata, Column("id", Integer, primary_key=True),
    Column("analysis_id", ForeignKey("analyses.id")), Column("worker", String(255)), Column("error", Boolean),
)


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2017, 4, day, hour, 0)


def create(engine: Engine) -> None:
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(ecosystems.insert(), [{"id": 1, "name": "npm"}, {"id": 2, "name": "maven"}, {"id": 3, "name": "pypi"}])
        connection.execute(packages.insert(), [
            {"id": 1, "ecosystem_id": 1, "name": "serve-static"},
            {"id": 2, "ecosystem_id": 2, "name": "net.iharder:base64"},
            {"id": 3, "ecosystem_id": 3, "name": "requests"},
        ])
        connection.execute(versions.insert(), [
            {"id": 1, "package_id": 1, "identifier": "1.7.1"},
            {"id": 2, "package_id": 1, "identifier": "1.7.2"},
            {"id": 3, "package_id": 2, "identifier": "2.3.9"},
            {"id": 4, "package_id": 3, "identifier": "2.31.0"},
        ])
        connection.execute(analyses.insert(), [
            {"id": 1, "version_id": 1, "started_at": at(1), "finished_at": at(1, 13)},
            {"id": 2, "version_id": 2, "started_at": at(2), "finished_at": None},
            {"id": 3, "version_id": 3, "started_at": at(3), "finished_at": None},
            {"id": 4, "version_id": 3, "started_at": at(4), "finished_at": at(4, 13)},  # newer, finished
            {"id": 5, "version_id": 4, "started_at": at(5), "finished_at": at(5, 13)},
        ])
        connection.execute(worker_results.insert(), [
            {"id": 1, "analysis_id": 1, "worker": "github_details", "error": True},
            {"id": 2, "analysis_id": 2, "worker": "github_details", "error": False},
            {"id": 3, "analysis_id": 4, "worker": "metadata", "error": True},
        ])


def drop(engine: Engine) -> None:
    metadata.drop_all(engine)


__all__ = ["UTC", "create", "drop"]
