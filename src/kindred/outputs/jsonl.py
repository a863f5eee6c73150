"""JSON-lines files: one message a line, in `directory`, a new file once the current one
passes `rotate_bytes`. Each write is flushed to disk before it counts as delivered."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from kindred.domain.errors import DeliveryFailed
from kindred.domain.forwarding import OutputDef

__all__ = ["JsonlSink"]

_ENCODER = msgspec.json.Encoder()


class JsonlSink:
    def __init__(self, output: OutputDef) -> None:
        assert output.directory is not None
        self._dir = Path(output.directory)
        self._prefix = output.name
        self._rotate = output.rotate_bytes
        self._pattern = re.compile(rf"^{re.escape(output.name)}-(\d+)\.jsonl$")

    def send(self, messages: Sequence[dict[str, Any]]) -> None:
        data = b"".join(_ENCODER.encode(m) + b"\n" for m in messages)
        try:
            if not self._dir.exists():
                # Private to the service user, like every file Kindred writes.
                self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self._current(len(data))
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Every write is closed already."""

    def _current(self, adding: int) -> Path:
        numbers = [
            int(m.group(1)) for p in self._dir.iterdir() if (m := self._pattern.match(p.name))
        ]
        number = max(numbers, default=1)
        path = self._path(number)
        if (
            path.exists()
            and path.stat().st_size > 0
            and path.stat().st_size + adding > self._rotate
        ):
            path = self._path(number + 1)
        return path

    def _path(self, number: int) -> Path:
        return self._dir / f"{self._prefix}-{number:06d}.jsonl"
