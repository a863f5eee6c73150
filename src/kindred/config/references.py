"""An output's settings written `env:NAME`, read from the environment when it sends."""

from __future__ import annotations

import os

import msgspec

from kindred.domain.errors import ConfigError
from kindred.domain.forwarding import ENV_REFERENCE, SEALED, OutputDef

__all__ = ["resolve_output"]


def resolve_output(output: OutputDef, environ: dict[str, str] | None = None) -> OutputDef:
    """The output with its `env:NAME` settings replaced by the variables' values;
    ConfigError naming the setting when one is not set, or when a stored secret could not
    be decrypted."""
    environ = dict(os.environ) if environ is None else environ
    changes = {}
    for key in ("url", "auth_header"):
        value = getattr(output, key)
        if value is None:
            continue
        where = f"outputs[{output.name!r}].{key}"
        if value.startswith(SEALED):
            raise ConfigError(f"{where}: the stored secret does not decrypt with the secrets key")
        if value.startswith(ENV_REFERENCE):
            name = value.removeprefix(ENV_REFERENCE)
            if name not in environ:
                raise ConfigError(f"{where}: environment variable {name} is not set")
            changes[key] = environ[name]
    return msgspec.structs.replace(output, **changes) if changes else output
