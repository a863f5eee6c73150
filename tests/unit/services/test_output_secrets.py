"""Output secrets (SEC-3): kept encrypted in the store, shown masked, kept when a save sends
the mask back, plaintext of an older version still read and encrypted at start, `env:`
references read when the output sends."""

from __future__ import annotations

import base64
import json
import logging
import os

import msgspec
import pytest

from kindred.config.references import resolve_output
from kindred.domain.errors import ConfigError, DeliveryFailed
from kindred.domain.forwarding import OutputDef, check_output, masked, unmasked
from kindred.outputs import make_sink
from kindred.services.forwarding.catalog import OutputCatalog, OutputsAndConnections
from kindred.storage.memory import MemoryStore
from kindred.system import FernetBox
from tests.unit.services.test_forwarding_catalog import TENANCY

URL = "https://hooks:pa55@example.com/in?token=t0k&v=2"
HEADER = "Authorization: Bearer s3cret"
SECRETS = ("pa55", "t0k", "s3cret")


def key() -> bytes:
    return os.urandom(32)


def doc(**fields: object) -> bytes:
    return json.dumps({"name": "hook", "kind": "webhook", **fields}).encode()


@pytest.fixture
def keys() -> list[bytes]:
    return [key()]


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def catalog(store: MemoryStore, keys: list[bytes]) -> OutputCatalog:
    return OutputCatalog(store, TENANCY, OutputsAndConnections(), FernetBox(lambda: list(keys)))


def stored_doc(store: MemoryStore) -> str:
    (found,) = store.list_definitions("output")
    return found.decode()


def test_secrets_are_stored_encrypted_and_answered_masked(
    catalog: OutputCatalog, store: MemoryStore
) -> None:
    saved = catalog.save("output", doc(url=URL, auth_header=HEADER))
    assert saved == OutputDef(
        name="hook",
        kind="webhook",
        url="https://hooks:***@example.com/in?token=***&v=2",
        auth_header="********",
    )
    raw = stored_doc(store)
    assert all(s not in raw for s in SECRETS)
    assert json.loads(raw)["auth_header"].startswith("enc:")
    (output,) = catalog.current().outputs
    assert (output.url, output.auth_header) == (URL, HEADER)  # what the lanes send with
    assert catalog.outputs_shown() == [saved]


def test_the_mask_sent_back_keeps_the_stored_secrets(catalog: OutputCatalog) -> None:
    shown = catalog.save("output", doc(url=URL, auth_header=HEADER))
    again = msgspec.json.encode(msgspec.structs.replace(shown, batch_size=5))  # type: ignore[type-var]
    catalog.save("output", again, name="hook")
    (output,) = catalog.current().outputs
    assert (output.url, output.auth_header, output.batch_size) == (URL, HEADER, 5)
    catalog.patch("output", "hook", b'{"timeout_s": 3}')
    (output,) = catalog.current().outputs
    assert (output.url, output.auth_header, output.timeout_s) == (URL, HEADER, 3)
    # A new password in a masked URL: the rest kept.
    catalog.patch("output", "hook", b'{"url": "https://hooks:new@example.com/in?token=***&v=3"}')
    assert catalog.current().outputs[0].url == "https://hooks:new@example.com/in?token=t0k&v=3"
    with pytest.raises(ConfigError, match="not 'other'"):
        catalog.save("output", again, name="other")


def test_a_mask_with_nothing_stored_is_refused(catalog: OutputCatalog) -> None:
    with pytest.raises(ConfigError, match="auth_header: no stored secret"):
        catalog.save("output", doc(url="https://h/x", auth_header="********"))
    with pytest.raises(ConfigError, match="url: no stored"):
        catalog.save("output", doc(url="https://u:***@h/x"))


def test_plaintext_of_an_older_version_is_read_then_encrypted(
    catalog: OutputCatalog, store: MemoryStore
) -> None:
    store.save_definition("output", "hook", doc(url=URL, auth_header=HEADER))
    assert catalog.current().outputs[0].auth_header == HEADER
    assert catalog.encrypt_stored() == 1
    assert all(s not in stored_doc(store) for s in SECRETS)
    assert catalog.current().outputs[0].auth_header == HEADER
    assert catalog.encrypt_stored() == 0


def test_rotating_the_key_encrypts_again_and_an_unknown_key_fails_only_sends(
    catalog: OutputCatalog, store: MemoryStore, keys: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    catalog.save("output", doc(url=URL, auth_header=HEADER))
    before = stored_doc(store)
    keys.insert(0, key())  # the new key first, the old one still decrypting
    assert catalog.encrypt_stored(all_of_them=True) == 1
    del keys[1:]
    after = stored_doc(store)
    assert after != before
    assert catalog.current().outputs[0].auth_header == HEADER
    # A process with a key that never sealed them.
    stranger = OutputCatalog(store, TENANCY, OutputsAndConnections(), FernetBox(lambda: [key()]))
    with caplog.at_level(logging.ERROR):
        (output,) = stranger.current().outputs
    assert "does not decrypt" in caplog.text
    assert output.auth_header is not None
    assert output.auth_header.startswith("enc:")
    assert masked(output).auth_header == "********"
    with pytest.raises(ConfigError, match="does not decrypt"):
        resolve_output(output, {})


def test_env_references_are_read_when_the_output_sends() -> None:
    output = check_output(
        OutputDef(name="h", kind="webhook", url="env:HOOK_URL", auth_header="env:HOOK_AUTH")
    )
    assert masked(output) == output  # a reference is not a secret
    resolved = resolve_output(output, {"HOOK_URL": "https://h/x", "HOOK_AUTH": "X-Key: v"})
    assert (resolved.url, resolved.auth_header) == ("https://h/x", "X-Key: v")
    with pytest.raises(ConfigError, match=r"outputs\['h'\].url: environment variable HOOK_URL"):
        resolve_output(output, {})
    sink = make_sink(output, lambda o: resolve_output(o, {}))
    with pytest.raises(DeliveryFailed, match="HOOK_URL is not set"):
        sink.send([{"idempotency_key": "a"}])
    with pytest.raises(ConfigError, match="env:NAME"):
        check_output(OutputDef(name="h", kind="webhook", url="https://h", auth_header="env:1x"))


def test_unmasked_fills_only_masked_parts() -> None:
    old = OutputDef(name="h", kind="webhook", url=URL, auth_header=HEADER)
    new = OutputDef(name="h", kind="webhook", url=masked(old).url, auth_header="X-Other: 1")
    assert unmasked(new, old) == OutputDef(
        name="h", kind="webhook", url=URL, auth_header="X-Other: 1"
    )
    other_user = msgspec.structs.replace(new, url="https://someone:***@example.com/in")
    with pytest.raises(ConfigError, match="password of this user"):
        unmasked(other_user, old)


def test_the_box_reads_keys_again_when_a_secret_does_not_decrypt() -> None:
    first, second = key(), key()
    current = [first]
    box = FernetBox(lambda: list(current))
    sealed = box.seal("x")
    other = FernetBox(lambda: [second]).seal("y")
    current[:] = [second]  # rotated by another process: this one reads the file again
    assert box.open(other) == "y"
    with pytest.raises(ConfigError):
        box.open(sealed)
    assert box.open("plain") == "plain"
    assert base64.urlsafe_b64decode(sealed.removeprefix("enc:").encode())


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"url": "http://"}, "url: names no host"),
        ({"url": "http://127.0.0.1:999999/x"}, "url: Port out of range"),
        ({"url": "https://:443/x"}, "url: names no host"),
        ({"auth_header": "X-A: b\r\nX-Injected: 1"}, "auth_header: one header"),
        ({"auth_header": "X-A: b\nX-B: c"}, "auth_header: one header"),
    ],
)
def test_a_webhook_output_names_a_host_and_one_header(changes: dict[str, str], said: str) -> None:
    fine = OutputDef(name="hook", kind="webhook", url="https://hooks.example.com:8443/in")
    assert check_output(msgspec.structs.replace(fine, auth_header="X-Token: t")) is not None
    with pytest.raises(ConfigError, match=said):
        check_output(msgspec.structs.replace(fine, **changes))
