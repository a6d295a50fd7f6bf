"""Who may do what on the embedded Hub: users with tokens, organisations with members, and the Hub's rules.

Two kinds of `Accounts`: `SingleUser` (the default: one optional token, held by one user who may write anywhere) and
`UserDirectory`, read once at start from a YAML file (``adapterzoo hub serve --users FILE``)::

    users:
      ana:
        tokens:
          - {token: hf_ana_write, role: write}     # role: write (the default) or read
          - {token: hf_ana_read, role: read, name: ci}
      bo:
        tokens: [{token: hf_bo}]
    organizations:
      lab:
        members: {ana: admin, bo: read}             # roles: admin, write, read; a plain list [ana, bo] means write

The rules are the Hub's: a read token cannot write; a user writes to their own namespace and to organisations where
their role is write or admin; a private repo is visible to its namespace's owner and members only (404 to others).
"""

from __future__ import annotations

import hmac
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adapterzoo.hub.names import HubError, check_repo_id

TOKEN_ROLES = ("read", "write")
ORG_ROLES = ("read", "write", "admin")
_WRITING_ORG_ROLES = ("write", "admin")


class UsersFileError(ValueError):
    """A users file that cannot be used: the message names the file, the entry and what is wrong with it."""


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the user's name, their token's role and the token's display name."""

    name: str
    role: str = "write"
    token_name: str = "token"


class Accounts(ABC):
    """How requests are authenticated and what their callers may read and write."""

    @abstractmethod
    def authenticate(self, authorization: str) -> Caller | None:
        """The caller of a request with this ``Authorization`` header (None if anonymous); 401 for a bad token."""

    @abstractmethod
    def may_read(self, caller: Caller | None, namespace: str) -> bool:
        """Whether ``caller`` may see the private repos of ``namespace``."""

    @abstractmethod
    def may_write(self, user: str, namespace: str) -> bool:
        """Whether ``user`` may create and change repos in ``namespace``."""

    def check_write(self, caller: Caller | None, repo_type: str, repo_id: str) -> str:
        """``caller``'s name if they may write ``repo_id``; 401 when anonymous, 403 when not allowed."""
        name = self.check_contributor(caller)
        namespace = check_repo_id(repo_id)[0]
        if not self.may_write(name, namespace):
            raise HubError(
                403, f"You don't have the rights to write the {repo_type} {repo_id} in the namespace {namespace!r}"
            )
        return name

    def check_contributor(self, caller: Caller | None) -> str:
        """``caller``'s name if they may open and comment discussions: 401 when anonymous, 403 for a read token."""
        if caller is None:
            raise HubError(401, "This hub needs a token to write: pass token= or set HF_TOKEN")
        if caller.role != "write":
            raise HubError(403, "Forbidden: your token has the read role: a write token is needed to change the Hub")
        return caller.name

    def organizations(self, user: str) -> dict[str, str]:
        """The organisations ``user`` belongs to, with their role in each."""
        return {}

    def whoami(self, caller: Caller) -> dict[str, Any]:
        """The ``/api/whoami-v2`` answer for ``caller``."""
        orgs = [
            {"type": "org", "name": org, "fullname": org, "roleInOrg": role}
            for org, role in sorted(self.organizations(caller.name).items())
        ]
        token = {"displayName": caller.token_name, "role": caller.role}
        return {
            "type": "user",
            "name": caller.name,
            "fullname": caller.name,
            "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": token},
        }


@dataclass(frozen=True)
class SingleUser(Accounts):
    """One user, who may write anywhere; with a token, anonymous requests only read public repos."""

    user: str = "local"
    token: str | None = None

    def authenticate(self, authorization: str) -> Caller | None:
        if self.token is None:
            return Caller(self.user)
        if not authorization:
            return None
        if hmac.compare_digest(authorization.encode(), f"Bearer {self.token}".encode()):
            return Caller(self.user)
        raise HubError(401, "Invalid credentials in Authorization header")

    def may_read(self, caller: Caller | None, namespace: str) -> bool:
        return caller is not None

    def may_write(self, user: str, namespace: str) -> bool:
        return True


@dataclass(frozen=True)
class UserDirectory(Accounts):
    """Users with their tokens and organisations with their members, as a users file lists them."""

    tokens: dict[str, Caller] = field(default_factory=dict)
    members: dict[str, dict[str, str]] = field(default_factory=dict)

    def authenticate(self, authorization: str) -> Caller | None:
        if not authorization:
            return None
        found = None
        given = authorization.encode()
        for token, caller in self.tokens.items():  # every token is compared: the time says nothing about which
            if hmac.compare_digest(given, f"Bearer {token}".encode()):
                found = caller
        if found is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return found

    def may_read(self, caller: Caller | None, namespace: str) -> bool:
        return caller is not None and (caller.name == namespace or caller.name in self.members.get(namespace, {}))

    def may_write(self, user: str, namespace: str) -> bool:
        return user == namespace or self.members.get(namespace, {}).get(user) in _WRITING_ORG_ROLES

    def organizations(self, user: str) -> dict[str, str]:
        return {org: members[user] for org, members in self.members.items() if user in members}


def load_accounts(source: str | os.PathLike | Mapping[str, Any]) -> UserDirectory:
    """A `UserDirectory` from a users file (or its content as a mapping); `UsersFileError` says what is wrong."""
    where = "the users mapping"
    if not isinstance(source, Mapping):
        where = str(source)
        try:
            source = yaml.safe_load(Path(source).read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise UsersFileError(f"Cannot read the users file {where}: {_one_line(exc)}") from None
    data = _mapping(source, where, ("users", "organizations"))
    tokens: dict[str, Caller] = {}
    users = _mapping(data.get("users"), f"{where}: 'users'")
    if not users:
        raise UsersFileError(f"{where}: 'users' must list at least one user")
    for user, entry in users.items():
        _namespace(user, where)
        entry = _mapping(entry, f"{where}: user {user!r}", ("tokens",))
        for token_entry in _list(entry.get("tokens", []), f"{where}: the tokens of {user!r}"):
            token_where = f"{where}: a token of {user!r}"
            token_entry = _mapping(token_entry, token_where, ("token", "role", "name"))
            token, role = token_entry.get("token"), token_entry.get("role", "write")
            if not isinstance(token, str) or len(token) < 8 or not token.isascii() or not token.isprintable():
                raise UsersFileError(f"{token_where}: 'token' must be at least 8 printable ASCII characters")
            if token in tokens:
                raise UsersFileError(f"{token_where}: this token is already given to {tokens[token].name!r}")
            if role not in TOKEN_ROLES:
                raise UsersFileError(f"{token_where}: 'role' must be one of {', '.join(TOKEN_ROLES)}, not {role!r}")
            tokens[token] = Caller(user, role, str(token_entry.get("name", f"{user}-{role}")))
    members: dict[str, dict[str, str]] = {}
    for org, entry in _mapping(data.get("organizations"), f"{where}: 'organizations'").items():
        _namespace(org, where)
        org_where = f"{where}: the members of organization {org!r}"
        if org in users:
            raise UsersFileError(f"{where}: {org!r} is both a user and an organization")
        listed = _mapping(entry, f"{where}: organization {org!r}", ("members",)).get("members")
        roles = dict.fromkeys(_list(listed, org_where), "write") if not isinstance(listed, dict) else listed
        for member, role in roles.items():
            if member not in users:
                raise UsersFileError(f"{org_where}: {member!r} is not a user of this file")
            if role not in ORG_ROLES:
                raise UsersFileError(f"{org_where}: the role of {member!r} must be one of {', '.join(ORG_ROLES)}")
        members[org] = dict(roles)
    return UserDirectory(tokens=tokens, members=members)


def _mapping(value: Any, where: str, keys: tuple[str, ...] | None = None) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsersFileError(f"{where} must be a mapping, not {type(value).__name__}")
    if keys is not None and (unknown := sorted(map(str, value.keys() - set(keys)))):
        raise UsersFileError(f"{where}: unknown key {unknown[0]!r} (expected {', '.join(keys)})")
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise UsersFileError(f"{where} must be a list")
    return value


def _namespace(name: Any, where: str) -> None:
    try:
        check_repo_id(f"{name}/x" if isinstance(name, str) else None)
    except HubError:
        raise UsersFileError(f"{where}: {name!r} is not a valid user or organization name") from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
