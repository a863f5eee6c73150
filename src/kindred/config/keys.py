"""Where the server's keys come from (SEC-3): the environment, a key file, or the store.

Three keys, by the name `kindred keys` gives them:

- `secrets`: encrypts the output secrets kept in the store. Never in the store itself:
  `KINDRED_SECRETS_KEY`, else the file `security.secrets_key_file`, else
  `DATA_DIR/secrets.key`, made (0600) by the first process that needs it.
- `token-signing`: signs the Profile API's bearer tokens. `KINDRED_TOKEN_SIGNING_KEY`, else
  `security.token_signing_key_file`, else kept in the store (made on first use).
- `ui-session`: signs the web UI's session cookies. `KINDRED_UI_SESSION_KEY`, else
  `security.ui_session_key_file`, else kept in the store.

A key is 32 random bytes written in URL-safe base64 (`kindred keys generate` prints one).
An environment variable or key file may hold several, separated by commas or new lines:
the first is the one in use; the others still decrypt (`secrets` only), which is how the
secrets key is rotated without a moment where stored secrets cannot be read.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kindred.config import Settings
from kindred.domain.errors import ConfigError

__all__ = [
    "KEY_NAMES",
    "KeySource",
    "encode_key",
    "generate_key",
    "key_source",
    "read_keys",
    "read_pem_file",
    "replace_private_file",
    "write_key_file",
]

KEY_BYTES = 32
KEY_NAMES = ("secrets", "token-signing", "ui-session")
_ENV = {
    "secrets": "KINDRED_SECRETS_KEY",
    "token-signing": "KINDRED_TOKEN_SIGNING_KEY",
    "ui-session": "KINDRED_UI_SESSION_KEY",
}
_SPLIT = re.compile(r"[\s,]+")


@dataclass(frozen=True)
class KeySource:
    """Where one key comes from: `env` (the variable's name), `file` (its path) or
    `store` (kept in the store; the token-signing and UI session keys only)."""

    name: str
    kind: Literal["env", "file", "store"]
    where: str

    def describe(self) -> str:
        if self.kind == "env":
            return f"environment variable {self.where}"
        if self.kind == "file":
            return f"key file {self.where}"
        return "the store"


def key_source(settings: Settings, name: str, environ: dict[str, str] | None = None) -> KeySource:
    environ = dict(os.environ) if environ is None else environ
    if name not in _ENV:
        raise ConfigError(f"no key {name!r}: one of {', '.join(KEY_NAMES)}")
    env = _ENV[name]
    if environ.get(env, "").strip():
        return KeySource(name, "env", env)
    security = settings.security
    configured = {
        "secrets": security.secrets_key_file,
        "token-signing": security.token_signing_key_file,
        "ui-session": security.ui_session_key_file,
    }[name]
    if configured:
        return KeySource(name, "file", str(Path(settings.data_dir) / configured))
    if name == "secrets":
        return KeySource(name, "file", str(Path(settings.data_dir) / "secrets.key"))
    return KeySource(name, "store", "")


def read_keys(source: KeySource, environ: dict[str, str] | None = None) -> list[bytes]:
    """The keys (raw bytes, the one in use first) of an `env` or `file` source; a key file
    that does not exist yet is made, with one new key, private to the service user."""
    if source.kind == "env":
        environ = dict(os.environ) if environ is None else environ
        return _parse(environ.get(source.where, ""), source)
    if source.kind == "store":
        return []
    path = Path(source.where)
    if not path.exists():
        _create_key_file(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{source.describe()}: cannot read it: {exc}") from None
    return _parse(text, source)


def generate_key() -> str:
    """A new key, as key files and environment variables hold it."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def encode_key(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def write_key_file(path: Path | str, keys: list[str]) -> None:
    """Replace a key file at once (a reader sees the old or the new file, never half of
    one), 0600, one key a line."""
    path = Path(path)
    _private_parent(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{k}\n" for k in keys))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read_pem_file(path: Path | str, make: Callable[[], bytes]) -> bytes:
    """A PEM file's bytes (the processor's key and certificate); made with `make()` when it
    does not exist yet (private to the service user; the first process to make it wins)."""
    path = Path(path)
    if not path.exists():
        _private_parent(path)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(make())
                f.flush()
                os.fsync(f.fileno())
            os.chmod(temp, 0o600)
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
        finally:
            Path(temp).unlink(missing_ok=True)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None


def replace_private_file(path: Path | str, data: bytes) -> None:
    """Replace a file at once (0600): a reader sees the old or the new one."""
    path = Path(path)
    _private_parent(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _create_key_file(path: Path) -> None:
    """Make a key file holding one new key, unless another process makes it first (the
    file appears whole or not at all: written aside, then linked into place)."""
    _private_parent(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(generate_key() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o600)
        # Another process made it first: that one is used.
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)


def _private_parent(path: Path) -> None:
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def _parse(text: str, source: KeySource) -> list[bytes]:
    keys = []
    for item in _SPLIT.split(text.strip()):
        if not item:
            continue
        try:
            raw = base64.urlsafe_b64decode(item + "=" * (-len(item) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != KEY_BYTES:
            raise ConfigError(
                f"{source.describe()}: a key is {KEY_BYTES} random bytes in URL-safe base64"
                " (44 characters, as `kindred keys generate` prints)"
            )
        keys.append(raw)
    if not keys:
        raise ConfigError(f"{source.describe()}: holds no key")
    return keys
