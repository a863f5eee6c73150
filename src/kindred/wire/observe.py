"""One raw batch body as the domain's Observation: decoded once against the wire schema and
normalized with its input's guardrails. Every path a batch enters by (the events API, CSV
import, replay of quarantined batches, rebuilds and the activation's computation over the
event log) goes through this one function, so they all read a body alike.
"""

from __future__ import annotations

from kindred.domain.observation import Observation
from kindred.domain.tenancy import InputDef
from kindred.wire.batch import decode_batch
from kindred.wire.limits import check_depth
from kindred.wire.normalize import normalize_batch

__all__ = ["observe"]


def observe(
    body: bytes,
    source: InputDef,
    received_ms: int,
    client_ip: str | None = None,
    *,
    historical: bool = False,
) -> Observation:
    """Decode and normalize one raw batch from `source`; raises msgspec errors or
    InvalidBatch naming the offending field (a body nested too deep among them)."""
    check_depth(body)
    return normalize_batch(
        decode_batch(body),
        received_ms=received_ms,
        guardrails=source.workspace.account.guardrails,
        client_ip=client_ip if source.is_client else None,
        historical=historical,
    )
