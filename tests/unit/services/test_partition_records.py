"""What a worker makes of a batch log record: the batch the API accepted, decoded again
alike; a refusal kept as refused; a record whose input left the config, or that is no
envelope, only moves its partition's position. And where the API puts a batch: one user's
batches in one partition."""

from __future__ import annotations

import msgspec

from kindred.config import load_settings
from kindred.config.tenancy import tenancy_from
from kindred.services.partitions.appender import envelope_of, partition_for
from kindred.services.partitions.worker import command_of
from kindred.services.writes.commands import Accepted, Refused
from kindred.wire.envelope import Envelope, encode_envelope
from kindred.wire.observe import observe

TENANCY = tenancy_from(load_settings(None, env={}))
SOURCE = next(i for i in TENANCY.inputs_by_name.values() if i.source_type.value != "web")


def _accepted(body: bytes, received: int = 1_700_000_000_000) -> Accepted:
    return Accepted(SOURCE, observe(body, SOURCE, received), body, client_ip="10.0.0.1")


def test_an_accepted_batch_reads_back_as_the_same_command() -> None:
    body = msgspec.json.encode(
        {"user_identities": {"customer_id": "c-1"}, "user_attributes": {"tier": "gold"}}
    )
    sent = _accepted(body)
    assert command_of(encode_envelope(envelope_of(sent)), TENANCY.input_named) == sent


def test_a_refused_batch_reads_back_refused_with_its_reason() -> None:
    refused = Refused(SOURCE.name, 5, "quarantined", "events[0].data: bad", b"{")
    assert command_of(encode_envelope(envelope_of(refused)), TENANCY.input_named) == refused


def test_a_record_of_an_input_gone_or_no_envelope_makes_no_command() -> None:
    gone = Envelope(kind="accepted", input="gone", received_ms=1, body=b"{}")
    assert command_of(encode_envelope(gone), TENANCY.input_named) is None
    assert command_of(b"not msgpack at all", TENANCY.input_named) is None


def test_a_body_that_no_longer_reads_is_kept_as_rejected() -> None:
    record = Envelope(kind="accepted", input=SOURCE.name, received_ms=1, body=b'{"events": 3}')
    command = command_of(encode_envelope(record), TENANCY.input_named)
    assert isinstance(command, Refused)
    assert command.kind == "rejected"


def test_one_users_batches_go_to_one_partition() -> None:
    def body(n: int) -> bytes:
        return msgspec.json.encode(
            {"user_identities": {"customer_id": "c-9", "email": f"e{n}@x.io"}}
        )

    assert len({partition_for(_accepted(body(n)), 64) for n in range(20)}) == 1
