"""Where the processor's key (erasure receipts, status callbacks) is kept: the store by
default, so that every process sharing it signs alike; or `[privacy] processor_key_file`,
made private on first use; a rotation keeps the old certificate trusted."""

from __future__ import annotations

from pathlib import Path

import msgspec

from kindred.bootstrap import build
from kindred.config import PrivacySettings, Settings, load_settings
from kindred.services.privacy.signing import split_certificates
from kindred.storage.memory import MemoryStore


def settings(tmp_path: Path, key_file: str | None = None) -> Settings:
    base = load_settings(None, data_dir=str(tmp_path / "data"), env={})
    return msgspec.structs.replace(base, privacy=PrivacySettings(processor_key_file=key_file))


def test_processes_sharing_a_store_sign_with_one_stored_key(tmp_path: Path) -> None:
    store = MemoryStore()
    one = build(settings(tmp_path), store=store).processor_key
    two = build(settings(tmp_path), store=store).processor_key
    assert one.certificate == two.certificate
    assert one.where == "the store"
    assert not list(tmp_path.rglob("*.pem"))  # no key file
    old = one.fingerprint
    one.rotate()
    assert one.fingerprint != old
    # A process started afterwards reads the new key, and still trusts the old one.
    three = build(settings(tmp_path), store=store).processor_key
    assert three.fingerprint == one.fingerprint
    assert set(three.trusted()) == {old, one.fingerprint}


def test_a_key_file_is_made_private_on_first_use_and_rotated_beside_it(tmp_path: Path) -> None:
    configured = settings(tmp_path, "keys/processor.pem")
    key = build(configured, store=MemoryStore()).processor_key
    certificate = key.certificate
    path = tmp_path / "data" / "keys" / "processor.pem"
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert text.startswith("-----BEGIN PRIVATE KEY-----")
    assert split_certificates(text) == [certificate]
    again = build(configured, store=MemoryStore()).processor_key
    assert again.certificate == certificate  # read, not made again
    old = key.fingerprint
    key.rotate()
    assert key.certificate != certificate
    assert split_certificates(path.with_name("processor.pem.retired").read_bytes()) == [certificate]
    assert set(key.trusted()) == {old, key.fingerprint}
