"""Secrets out of sight: URL passwords and query tokens masked in URLs and in free text."""

from __future__ import annotations

from kindred.domain.redact import redact_text, redact_url, url_secrets


def test_a_url_keeps_everything_but_its_password_and_tokens() -> None:
    assert (
        redact_url("https://hooks:s3cret@example.com/in?token=abc&v=2")
        == "https://hooks:***@example.com/in?token=***&v=2"
    )
    assert redact_url("postgresql://kindred:pw@127.0.0.1:5432/db") == (
        "postgresql://kindred:***@127.0.0.1:5432/db"
    )
    assert (
        redact_url("https://h/x?X-Amz-Signature=zz&a=b%20c")
        == "https://h/x?X-Amz-Signature=***&a=b%20c"
    )
    assert redact_url("https://h/x?api_key=1&access_token=2&page=3") == (
        "https://h/x?api_key=***&access_token=***&page=3"
    )


def test_a_url_without_secrets_is_left_as_written() -> None:
    for url in ("sqlite:///kindred.db", "http://127.0.0.1:1/hook", "postgresql://u@h/db"):
        assert redact_url(url) == url
        assert not url_secrets(url)
    assert url_secrets("nats://u:p@h:4222")
    assert url_secrets("https://h/hook?token=x")


def test_free_text_loses_url_passwords_tokens_and_password_settings() -> None:
    line = 'HTTP Request: POST http://user:pw@127.0.0.1:5/hook?token=abc&x=1 "HTTP/1.1 200 OK"'
    assert redact_text(line) == (
        'HTTP Request: POST http://user:***@127.0.0.1:5/hook?token=***&x=1 "HTTP/1.1 200 OK"'
    )
    assert redact_text("connection failed: host=x password=abc user=y") == (
        "connection failed: host=x password=*** user=y"
    )
    assert redact_text("nothing to hide here") == "nothing to hide here"
