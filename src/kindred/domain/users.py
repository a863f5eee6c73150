"""Users, roles and audience access: who may do what through the admin API and the web UI.

A caller is a `Principal`: a user (from the config file or the store) with a role, the
bootstrap `admin.token` (the admin role), or the command line (the admin role). Roles are
ordered: a viewer reads, an editor also writes audiences, calculated attributes, outputs
and connections, an admin does everything (deleting profiles, credentials, keys, users).
`role_needed` says which role a request needs from its method and path alone, so a route
added later is covered without code of its own.

An audience carries an access level its owner (`created_by`) sets: `private` (only its
owner and admins see or use it), `view` (others see it, do not change or use it), `usable`
(others see it and use it: nest it, connect it, download it). Only its owner or an admin
changes or deletes it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Literal, get_args

import msgspec

from kindred.domain.errors import AuthRejected, InvalidBatch

__all__ = [
    "ACCESS_LEVELS",
    "ADMIN_TOKEN",
    "CLI",
    "EDITOR_PATHS",
    "READ_METHODS",
    "AudienceAccess",
    "Principal",
    "Role",
    "UserKeyRecord",
    "UserRecord",
    "check_user_name",
    "may_change",
    "may_see",
    "may_use",
    "role_needed",
]


class Role(enum.Enum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def covers(self, needed: Role) -> bool:
        """Whether this role may do what `needed` may."""
        return self.rank >= needed.rank

    @classmethod
    def parse(cls, text: str, path: str = "role") -> Role:
        try:
            return cls(text)
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise InvalidBatch(f"unknown role {text!r}: one of {names}", path) from None


_RANKS = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}

AudienceAccess = Literal["private", "view", "usable"]
ACCESS_LEVELS: tuple[str, ...] = get_args(AudienceAccess)

# Who an audience's `created_by` / `updated_by` names when no user made the change.
ADMIN_TOKEN = "admin token"
CLI = "cli"
_RESERVED_NAMES = frozenset({ADMIN_TOKEN, CLI, "demo", "config", "admin api"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")

# Reads: any role.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The admin API's paths an editor may write under; every other write needs an admin.
EDITOR_PATHS = (
    "/admin/v1/audiences",
    "/admin/v1/calculated-attributes",
    "/admin/v1/outputs",
    "/admin/v1/connections",
)
# Paths an admin alone may even read.
_ADMIN_ONLY_PATHS = ("/admin/v1/users", "/admin/v1/credentials", "/admin/v1/keys")


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def role_needed(method: str, path: str) -> Role:
    """The least role a request to the admin API needs (from its method and path)."""
    if _under(path, _ADMIN_ONLY_PATHS):
        return Role.ADMIN
    if method.upper() in READ_METHODS:
        # A download exports the members' identities: using the audience, which takes the
        # editor role (as the web UI's Download tab does), though it changes nothing.
        if path.startswith("/admin/v1/audiences/") and path.endswith("/download"):
            return Role.EDITOR
        return Role.VIEWER
    if _under(path, EDITOR_PATHS):
        return Role.EDITOR
    return Role.ADMIN


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: `name` is what an audience records as its creator or last editor
    (a user's name, "admin token" or "cli"); `user` says whether it names a user."""

    name: str
    role: Role
    user: bool = True

    def require(self, needed: Role, what: str) -> None:
        """AuthRejected (403) naming the role `what` needs, unless this role covers it."""
        if not self.role.covers(needed):
            raise AuthRejected(
                f"{what} needs the {needed.value} role; {self.name} is {_article(self.role)}"
            )


def _article(role: Role) -> str:
    return f"an {role.value}" if role.value[0] in "aeiou" else f"a {role.value}"


def _owns(caller: Principal, owner: str) -> bool:
    return caller.role is Role.ADMIN or (caller.user and caller.name == owner)


def may_see(caller: Principal, owner: str, access: str) -> bool:
    return _owns(caller, owner) or access != "private"


def may_use(caller: Principal, owner: str, access: str) -> bool:
    """Nest it in another audience, connect it, download it."""
    return _owns(caller, owner) or access == "usable"


def may_change(caller: Principal, owner: str) -> bool:
    """Edit, activate, deactivate or delete it (and set its access)."""
    return caller.role.covers(Role.EDITOR) and _owns(caller, owner)


def check_user_name(name: str) -> str:
    """A name a user may have: letters, digits and `._@+-`, up to 64 characters, not one
    an audience records for the admin token, the command line or the demo."""
    if not _NAME.fullmatch(name):
        raise InvalidBatch(
            f"user name {name!r}: 1 to 64 letters, digits or ._@+- (starting with a letter"
            " or digit)",
            "name",
        )
    if name.lower() in _RESERVED_NAMES:
        raise InvalidBatch(f"user name {name!r} is reserved", "name")
    return name


class UserRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A user who signs in to the web UI and may hold API keys. `origin`: "config" (the
    config file's `[[ui.users]]`) or "store" (`kindred users add`)."""

    name: str
    role: str
    password_hash: str
    created_ms: int = 0
    origin: str = "store"

    @property
    def role_value(self) -> Role:
        return Role(self.role)


class UserKeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A user's API key for the admin API as the store keeps it: an scrypt hash of the
    secret, never the secret."""

    key_id: str
    user: str
    secret_hash: str
    created_ms: int
    revoked_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_ms is None
