"""Users from a YAML file (``F8A_JOBS_USERS_FILE``): their groups, whether they are admins,
and the SHA-256 digests of their tokens; the tokens themselves are never stored.

    groups: [data, ops]          # optional: the groups there are (a user's other group is an error)
    users:
      alice: {groups: [data], admin: false, tokens: [<sha256 hex of a token>]}

The file is read again when it changes (its modification time, size or inode), without a
restart. A changed file that does not parse, or names an unknown group, is refused as a
whole: the last good one stays in force, and ``problem`` says why (the log and readiness
show it). ``f8a-jobs hash-token`` prints a token's digest.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from f8a_jobs.core.access import Caller, parse_name
from f8a_jobs.core.errors import ConfigurationError, F8aJobsError, InvalidInput, refuse_unknown

log = logging.getLogger(__name__)
DIGEST = re.compile(r"[0-9a-f]{64}")
USER_KEYS = ("groups", "admin", "tokens")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UsersFile:
    """The users of one file, as last read successfully."""

    def __init__(
        self, path: Path, admin_groups: tuple[str, ...] = (), reserved: frozenset[str] = frozenset()
    ) -> None:
        self.path = path
        self.admin_groups = admin_groups
        self.reserved = reserved
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] | None = None
        self._tokens: list[tuple[bytes, Caller]] = []
        self._groups: frozenset[str] = frozenset()
        if not self.refresh():
            raise ConfigurationError(f"F8A_JOBS_USERS_FILE: {self.problem}")

    def lookup(self, token: str) -> Caller | None:
        """The user holding ``token``: every digest is compared, in constant time each."""
        self.refresh()
        digest = token_digest(token).encode()
        found = None
        for known, caller in self._tokens:
            if hmac.compare_digest(digest, known):
                found = caller
        return found

    def groups(self) -> frozenset[str]:
        self.refresh()
        return self._groups

    def refresh(self) -> bool:
        """Read the file again if it changed; whether the users in force are the file's."""
        try:
            status = self.path.stat()
        except OSError as error:
            return self._refused(f"{self.path}: cannot read it: {error.strerror}", None)
        stamp = (status.st_mtime_ns, status.st_ctime_ns, status.st_size, status.st_ino)
        if stamp == self._stamp:
            return self.problem is None
        with self._lock:
            if stamp == self._stamp:
                return self.problem is None
            try:
                tokens, groups = parse_users(self._read(), self.admin_groups, self.reserved)
            except F8aJobsError as error:
                return self._refused(f"{self.path}: {error.detail}", stamp)
            except Exception as error:  # a shape parse_users did not foresee: refused all the same
                return self._refused(f"{self.path}: cannot read it: {error!r}", stamp)
            self._tokens, self._groups, self._stamp, self.problem = tokens, groups, stamp, None
            log.info("users file %s: %d users", self.path, len({c.user for _, c in tokens}))
            return True

    def _read(self) -> Any:
        try:
            return yaml.safe_load(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidInput("file", f"cannot read it: {error}") from None
        except yaml.YAMLError as error:
            raise InvalidInput("yaml", f"not valid YAML: {error}") from None

    def _refused(self, problem: str, stamp: tuple[int, ...] | None) -> bool:
        if problem != self.problem:
            kept = "the users read before stay in force" if self._stamp else "no users"
            log.error("users file refused: %s; %s", problem, kept)
        self.problem, self._stamp = problem, stamp if stamp else self._stamp
        return False


def parse_users(
    data: Any, admin_groups: tuple[str, ...] = (), reserved: frozenset[str] = frozenset()
) -> tuple[list[tuple[bytes, Caller]], frozenset[str]]:
    """The callers by token digest, and the groups there are; errors name the entry."""
    if not isinstance(data, Mapping) or not isinstance(data.get("users"), Mapping):
        raise InvalidInput("users", "the file must hold a mapping 'users: {name: {...}}'")
    refuse_unknown(data, ("users", "groups"))
    declared = _names(data["groups"], "groups") if "groups" in data else None
    tokens: dict[str, Caller] = {}
    for name, entry in data["users"].items():
        caller = _caller(name, entry, declared, admin_groups)
        if caller.user in reserved:
            raise InvalidInput(f"users.{name}", "the name is reserved (the system owner, token-N)")
        listed = entry.get("tokens") or []
        if not isinstance(listed, list):
            raise InvalidInput(
                f"users.{name}.tokens", f"expected a list of digests, got {listed!r}"
            )
        for n, digest in enumerate(listed):
            field = f"users.{name}.tokens[{n}]"
            if not isinstance(digest, str) or not DIGEST.fullmatch(digest.lower()):
                raise InvalidInput(field, "expected a SHA-256 hex digest (f8a-jobs hash-token)")
            if digest.lower() in tokens:
                raise InvalidInput(field, f"the same token as {tokens[digest.lower()].user!r}")
            tokens[digest.lower()] = caller
    groups = declared if declared is not None else {g for c in tokens.values() for g in c.groups}
    return [(digest.encode(), caller) for digest, caller in tokens.items()], frozenset(groups)


def _caller(
    name: Any, entry: Any, declared: set[str] | None, admin_groups: tuple[str, ...]
) -> Caller:
    field = f"users.{name}"
    parse_name(name, field)
    if not isinstance(entry, Mapping):
        raise InvalidInput(field, "expected a mapping with groups, admin and tokens")
    refuse_unknown(entry, USER_KEYS, field)
    groups = _names(entry.get("groups") or [], f"{field}.groups")
    unknown = sorted(groups - declared) if declared is not None else []
    if unknown:
        raise InvalidInput(f"{field}.groups", f"unknown group {unknown[0]!r}: not in 'groups'")
    admin = entry.get("admin", False)
    if not isinstance(admin, bool):
        raise InvalidInput(f"{field}.admin", f"expected true or false, got {admin!r}")
    ordered = tuple(dict.fromkeys(entry.get("groups") or []))
    return Caller(str(name), ordered, admin or any(g in admin_groups for g in ordered))


def _names(value: Any, field: str) -> set[str]:
    if not isinstance(value, list):
        raise InvalidInput(field, f"expected a list of names, got {value!r}")
    return {str(parse_name(item, field)) for item in value}
