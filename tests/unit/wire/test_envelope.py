"""The batch log's envelope: what the API appends is what the worker reads back."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kindred.wire.envelope import Envelope, decode_envelope, encode_envelope

envelopes = st.builds(
    Envelope,
    kind=st.sampled_from(["accepted", "rejected", "quarantined"]),
    input=st.text(min_size=1),
    received_ms=st.integers(0, 2**62),
    body=st.binary(),
    client_ip=st.none() | st.text(),
    historical=st.booleans(),
    reason=st.none() | st.text(),
)


@given(envelopes)
def test_an_envelope_reads_back_as_written(envelope: Envelope) -> None:
    assert decode_envelope(encode_envelope(envelope)) == envelope


def test_bytes_that_are_no_envelope_are_refused() -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_envelope(b"\x93\x01\x02")
