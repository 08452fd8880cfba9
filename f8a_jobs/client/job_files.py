"""A folder of job files, read for ``f8a-jobs apply``: each ``.yaml``, ``.yml`` or ``.json``
file holds one job, a list of jobs, or (YAML) several documents of either; sorted by path, so
the same folder gives the same list. Where each job came from names it in errors."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

SUFFIXES = (".yaml", ".yml", ".json")
INDEX = re.compile(r"^jobs\[(\d+)\]")


class JobFileError(ValueError):
    """A file that holds no jobs, or not as jobs are written."""


def job_files(paths: Sequence[str]) -> list[Path]:
    """The files ``paths`` name: each file, and the job files under each folder."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()))
        else:
            found.append(path)
    return found


def read_jobs(path: Path) -> Iterator[dict[str, Any]]:
    """The jobs of one file."""
    import yaml  # the CLI's dependency (f8a-jobs[client]), read only when files are

    try:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise JobFileError(f"{path}: {error}") from None
    for document in documents:
        items = document if isinstance(document, list) else [document]
        for item in items:
            if item is None:
                continue
            if not isinstance(item, dict):
                raise JobFileError(f"{path}: expected jobs (mappings), got {item!r:.80}")
            yield item


def where(field: str | None, sources: Sequence[Path]) -> str | None:
    """The file a server's ``jobs[i]…`` field points into."""
    match = INDEX.match(field or "")
    if match is None or int(match.group(1)) >= len(sources):
        return None
    return str(sources[int(match.group(1))])
