"""`POST /v2/import/csv`: the CSV importer over HTTP, authenticated as a CSV-import input."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kindred.api.auth import InputAuthenticator
from kindred.bootstrap import Container
from kindred.domain.errors import AuthRejected, InvalidBatch
from kindred.domain.tenancy import SourceType

__all__ = ["MAX_CSV_BYTES", "ImportApi"]

MAX_CSV_BYTES = 64 * 1024 * 1024


class ImportApi:
    def __init__(self, container: Container) -> None:
        self._auth = InputAuthenticator(container.tenancy)
        self._importer = container.csv_import

    async def csv(self, request: Request) -> Response:
        source = self._auth.basic(request.headers.get("authorization"))
        if source.source_type is not SourceType.CSV_IMPORT:
            raise AuthRejected(f"input {source.name!r} is not a CSV import input")
        body = await request.body()
        if len(body) > MAX_CSV_BYTES:
            raise InvalidBatch(f"CSV files over {MAX_CSV_BYTES} bytes go through the CLI")
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidBatch("CSV must be UTF-8") from None
        report = await run_in_threadpool(self._importer.run, text, source)
        return JSONResponse(report.as_dict())
