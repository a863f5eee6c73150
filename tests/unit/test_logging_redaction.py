"""Logs never hold a URL's password or token: the formatter masks them, and httpx's
per-request INFO lines (which name the URL) are not written."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from kindred.observability import configure_logging


@pytest.fixture
def stream(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    levels = {n: logging.getLogger(n).level for n in ("httpx", "httpcore")}
    yield capsys
    root.handlers[:], _ = saved
    root.setLevel(saved[1])
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_url_secrets_are_masked_in_every_line(stream: pytest.CaptureFixture[str], fmt: str) -> None:
    configure_logging("info", fmt)
    logging.getLogger("kindred.delivery").info(
        "delivering to %s", "https://hooks:pa55word@example.com/in?token=t0k3n&v=1"
    )
    try:
        raise RuntimeError("connect to postgresql://kindred:dbpa55@db/kindred failed")
    except RuntimeError:
        logging.getLogger("kindred.delivery").exception("failed")
    text = stream.readouterr().err
    assert "delivering to https://hooks:***@example.com/in?token=***&v=1" in text
    for secret in ("pa55word", "t0k3n", "dbpa55"):
        assert secret not in text


def test_httpx_request_lines_are_not_written(stream: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug", "text")
    logging.getLogger("httpx").info('HTTP Request: POST http://127.0.0.1/hook?token=x "200"')
    logging.getLogger("httpcore.connection").debug("connect_tcp.started host='127.0.0.1'")
    assert stream.readouterr().err == ""
    logging.getLogger("httpx").warning("something worth knowing")
    assert "something worth knowing" in stream.readouterr().err
